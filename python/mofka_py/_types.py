"""Small value types shared by the API and the native core."""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["EventId"]


class EventId(NamedTuple):
    """Where an event is stored: its partition and its offset in that partition."""

    partition: int
    offset: int
