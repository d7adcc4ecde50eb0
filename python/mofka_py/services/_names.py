"""Names and record layouts shared by the pool's steering side and its workers.

Topics of pool ``P`` (system topics: hidden from ``topic list`` unless ``--all``):

- ``__pool.P.tasks.METHOD`` (and ``.hi`` / ``.lo`` lanes for priorities above / below 0):
  one event per task attempt; workers of METHOD read them as the consumer group
  ``__pool.P.workers`` (a worker's partitions are its leases).
- ``__pool.P.results``: one event per outcome (a worker may write a second one for a task
  it ran as a zombie; the steering side keeps the first per task id).
- ``__pool.P.dead``: outcomes that failed for good, with their class, traceback and attempts.

A task's metadata: ``id``, ``m`` (method), ``att`` (attempt, from 0), ``ret`` (retries
allowed), ``to`` (timeout s), ``sub`` (submit time), ``a``/``p`` (inline args or the lengths of
the pickled parts in the data), ``res`` (resources), ``nb`` (not before: a retry's backoff),
``hist`` (classes of earlier failed attempts), ``pri`` (priority).
"""
from __future__ import annotations

import re
from typing import Tuple

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$")

LANES = ("hi", "", "lo")  # order of preference


def check_name(kind: str, name: str) -> str:
    from ..errors import InvalidArgument

    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(f"{kind} name {name!r} must be 1-101 letters, digits, '_' or '-', starting with a "
                              "letter or digit")
    return name


def lane_of(priority: int) -> str:
    return "hi" if priority > 0 else "lo" if priority < 0 else ""


def task_topic(pool: str, method: str, lane: str = "") -> str:
    return f"__pool.{pool}.tasks.{method}" + (f".{lane}" if lane else "")


def parse_task_topic(pool: str, topic: str) -> Tuple[str, str]:
    """(method, lane) of a task topic of ``pool``, or ("", "") when it is not one."""
    prefix = f"__pool.{pool}.tasks."
    if not topic.startswith(prefix):
        return "", ""
    rest = topic[len(prefix):]
    method, _, lane = rest.partition(".")
    return (method, lane) if lane in LANES else ("", "")


def results_topic(pool: str) -> str:
    return f"__pool.{pool}.results"


def dead_topic(pool: str) -> str:
    return f"__pool.{pool}.dead"


def workers_group(pool: str) -> str:
    return f"__pool.{pool}.workers"


def steering_group(pool: str) -> str:
    return f"__pool.{pool}.steering"


# Failure classes (WRATH-style).
WORKER_LOST = "worker_lost"
TRANSIENT = "transient"
DETERMINISTIC = "deterministic"
TIMEOUT = "timeout"
RESOURCE = "resource"
