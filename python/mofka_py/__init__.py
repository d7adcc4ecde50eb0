"""mofka-py: an HPC-native event fabric for science.

>>> import mofka_py as mp
>>> fab = mp.connect("memory://")
>>> topic = fab.create_topic("demo")
"""
from __future__ import annotations

from . import _core
from ._types import EventId
from .api import Consumer, Event, EventBatch, Fabric, Future, Producer, Topic, connect, reserve_memory
from .errors import (
    AuthError,
    BufferFull,
    Closed,
    CommitFailed,
    ConnectionError,
    CorruptionError,
    Error,
    EventTooLarge,
    FabricLocked,
    GroupActive,
    InvalidArgument,
    NotAFabric,
    NotEnoughReplicas,
    NotLeader,
    OffsetOutOfRange,
    OutOfSequence,
    StorageError,
    TimeoutError,
    TopicExists,
    TopicNotFound,
)

__version__: str = _core.__version__  # from the file VERSION, compiled into the extension

__all__ = [
    "connect", "reserve_memory", "Fabric", "Topic", "Producer", "Consumer", "Future", "Event", "EventBatch", "EventId",
    "Error", "InvalidArgument", "TopicNotFound", "TopicExists", "TimeoutError", "ConnectionError",
    "AuthError", "CorruptionError", "Closed", "FabricLocked", "NotAFabric", "EventTooLarge", "BufferFull",
    "GroupActive", "OffsetOutOfRange", "CommitFailed", "StorageError", "OutOfSequence", "NotLeader",
    "NotEnoughReplicas", "__version__",
]
