"""Task functions for the pool tests (imported by worker processes: `mofka-py worker --method`)."""
from __future__ import annotations

import os
import time

import numpy as np


def work(i: int, ms: float = 1.0) -> int:
    """A short task: sleeps ``ms`` milliseconds, returns ``i * 3``."""
    time.sleep(ms / 1000)
    return i * 3


def checksum(a: np.ndarray) -> float:
    return float(a.sum())


def always_fails(i: int) -> None:
    raise ValueError(f"bad input {i}")


def flaky(key: str, directory: str) -> str:
    """Fails with an OSError (transient) the first time it runs for ``key``, then succeeds."""
    marker = os.path.join(directory, key)
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise OSError(f"scratch file system busy ({key})")
    return key


def transient_forever(i: int) -> None:
    raise ConnectionError("the database is down")


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def eat_memory(mb: int) -> int:
    block = bytearray(mb << 20)
    return len(block)
