"""The integration tests import their helpers (kafka_helpers, pool_helpers) from this folder, and
service_helpers and waiting from the one above;
time limits and environment: ../conftest.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
