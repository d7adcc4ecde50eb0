"""The mofka-py error hierarchy (the same codes as the C++ core's ``Error``).

Every error raised by mofka-py is a :class:`Error`; catch the subclasses to
handle a specific situation. Messages say what was wrong and what to do.
"""
from __future__ import annotations

import builtins

__all__ = [
    "Error", "InvalidArgument", "TopicNotFound", "TopicExists", "TimeoutError",
    "ConnectionError", "AuthError", "CorruptionError", "Closed", "FabricLocked",
    "NotAFabric", "EventTooLarge", "BufferFull", "GroupActive", "OffsetOutOfRange", "CommitFailed",
    "StorageError", "OutOfSequence", "NotLeader", "NotEnoughReplicas",
]


class Error(Exception):
    """Base class of every mofka-py error."""


class InvalidArgument(Error, ValueError):
    """A value given to mofka-py is not acceptable (nothing was written)."""


class TopicNotFound(Error, LookupError):
    """The named topic does not exist."""


class TopicExists(Error):
    """A topic of that name already exists."""


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 - the name is part of the API
    """A wait ran out of time."""


class ConnectionError(Error, builtins.ConnectionError):  # noqa: A001
    """A transport lost or could not reach its peer."""


class AuthError(Error):
    """Authentication with a fabric service failed."""


class CorruptionError(Error):
    """Stored or received bytes fail their checksum or structure checks."""


class Closed(Error):
    """The object (fabric, producer, consumer, topic) no longer accepts this call."""


class FabricLocked(Error):
    """A ``file://`` fabric directory is owned by another process."""


class NotAFabric(Error):
    """A path given as a fabric directory is not one."""


class EventTooLarge(InvalidArgument):
    """An event exceeds the topic's ``max_event_bytes``."""


class BufferFull(Error):
    """The producer's pending memory is full and ``block=False`` was asked."""


class GroupActive(Error):
    """An administrative change to a consumer group (e.g. ``reset_group``) was refused
    because the group still has live members; stop them (or wait for their session to
    expire) and try again."""


class OffsetOutOfRange(Error, LookupError):
    """A consumer's position was deleted by retention before it read it (a gap).

    Open the consumer with ``on_gap="earliest"`` to skip ahead to the oldest retained
    event (the skipped events are counted), or rewind the group with ``reset_group``."""


class CommitFailed(Error):
    """A commit was refused because this member no longer owns the partition (its session
    expired and the group moved the partition to another member); events after its last
    successful commit are delivered again to the new owner."""


class StorageError(Error, OSError):
    """The storage refused a write (disk full, I/O error). The message names the file and the
    free space; nothing of the failed batch was stored. Reads keep working; free space (or
    shorten retention, ``mofka-py topic purge``), then ``producer.reset()`` to write again."""


class OutOfSequence(Error):
    """A producer's batch was refused because an earlier batch of the same producer to that
    partition was not stored: storing it would leave a gap in the producer's stream."""


class NotLeader(Error):
    """A request for a replicated partition reached a cluster node that does not lead it (or
    whose leadership lapsed). Clients of a cluster URL (``tcp://n1:p1,n2:p2,...``) find the new
    leader and resend by themselves; you see this only when no leader appeared in time."""


class NotEnoughReplicas(Error):
    """A replicated partition has fewer in-sync replicas than its topic's ``min_insync``, so it
    refuses writes rather than acknowledge what one failure could lose. Restart the missing
    nodes (``mofka-py cluster status`` shows which), or lower ``min_insync``."""
