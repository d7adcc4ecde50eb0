"""The names of ``diaspora_stream.api``, on mofka-py: change the import, keep the program.

>>> from mofka_py.diaspora.api import Driver, AdaptiveBatchSize, Ordering   # was: from diaspora_stream.api import ...
"""
from __future__ import annotations

from .components import AdaptiveBatchSize, Ordering, PartitionSelector, Serializer, ThreadPool, Validator
from .consumer import ByteArrayAllocator, Consumer, Event, FullDataSelector, FutureEvent
from .descriptor import DataDescriptor
from .driver import Driver, TopicHandle
from .errors import DiasporaError
from .producer import FutureFlushed, FutureUint, Producer

#: The Diaspora exception class (``except Exception`` in a program importing ``Exception`` from here).
Exception = DiasporaError  # noqa: A001 - the Diaspora API's name
ClientException = DiasporaError

__all__ = [
    "AdaptiveBatchSize", "ByteArrayAllocator", "ClientException", "Consumer", "DataDescriptor", "DiasporaError",
    "Driver", "Event", "Exception", "FullDataSelector", "FutureEvent", "FutureFlushed", "FutureUint", "Ordering",
    "PartitionSelector", "Producer", "Serializer", "ThreadPool", "TopicHandle", "Validator",
]
