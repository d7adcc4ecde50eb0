"""The integration tests import their helpers (service_helpers, kafka_helpers) from this folder;
time limits and environment: ../conftest.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
