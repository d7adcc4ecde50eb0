"""Waiting on a condition instead of sleeping "long enough" (shared by unit, integration and MPI tests;
../conftest.py puts this folder on ``sys.path``)."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "", *, interval: float = 0.02) -> T:
    """Call ``predicate`` until it returns something true and return that; after ``timeout`` seconds
    raise AssertionError saying ``what`` was awaited (and the last value seen).

    ``timeout`` is a bound for a hung test, not an expectation: keep it generous, since the machine
    may be loaded, and assert nothing about how long the wait took.
    """
    if not what:
        raise TypeError("wait_until needs `what`: a few words saying what is awaited, for the failure message")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(interval)
