"""Resilience services on the fabric, built on the public API only.

- :class:`Pool` / :func:`serve_worker`: a compute pool whose tasks are durable events, so that
  no task is lost when a worker, the fabric service or the steering process dies.
- :class:`Heartbeat` / :class:`HealthMonitor`: health and resource events (``node_down``,
  ``node_up``, ``slow``) derived from heartbeats on the ``__health`` topic.
"""
from .health import HealthMonitor, Heartbeat
from .pool import Pool, Result, TaskFailed, TaskFuture, pool_status
from .worker import Worker, classify, serve_worker

__all__ = ["Pool", "Result", "TaskFailed", "TaskFuture", "pool_status", "Worker", "serve_worker", "classify",
           "Heartbeat", "HealthMonitor"]
