"""DataDescriptor: which bytes of an event's data a consumer wants (the Diaspora selection model).

A descriptor stands for a sequence of bytes of one event's data. Views are taken
relative to that sequence and compose: ``d.make_sub_view(offset=8, size=16)``
selects bytes 8-23 of whatever ``d`` selects. :meth:`DataDescriptor.flatten`
gives the selected bytes as ``(offset, size)`` pieces of the event's whole data.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from .errors import invalid

__all__ = ["DataDescriptor"]

Segment = Tuple[int, int]


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(f"{name} must be a non-negative integer (got {value!r})")
    return value


class DataDescriptor:
    """The data of an event, or a selection of it: ``size`` bytes at ``location``.

    The consumer hands a data selector the descriptor of an event's whole data; the
    selector returns it (all the data), ``None`` (none) or a view of it made with
    :meth:`make_sub_view`, :meth:`make_stride_view` or :meth:`make_unstructured_view`.

    >>> d = DataDescriptor("frames/0/7", 26)
    >>> d.make_stride_view(offset=1, num_blocks=5, block_size=2, gap_size=3).flatten()
    [(1, 2), (6, 2), (11, 2), (16, 2), (21, 2)]
    """

    __slots__ = ("_location", "_segments", "_size")

    def __init__(self, location: str = "", size: int = 0):
        if not isinstance(location, str):
            raise invalid(f"location must be a string (got {type(location).__name__})")
        self._location = location
        self._size = _count("size", size)
        self._segments: List[Segment] = [(0, self._size)] if self._size else []

    @property
    def size(self) -> int:
        """Bytes selected."""
        return self._size

    @property
    def location(self) -> str:
        """Where the data lives (for mofka-py: ``topic/partition/offset``)."""
        return self._location

    def flatten(self) -> List[Segment]:
        """The selected bytes as ``(offset, size)`` pieces of the whole data, in order."""
        return list(self._segments)

    def _view(self, ranges: Sequence[Segment]) -> "DataDescriptor":
        """A descriptor of ``ranges`` (ordered, non-overlapping, relative to this selection)."""
        out: List[Segment] = []
        segs = self._segments
        i = 0
        seg_start = 0  # position of segs[i] in this selection
        for off, size in ranges:
            end = off + size
            while i < len(segs) and seg_start + segs[i][1] <= off:
                seg_start += segs[i][1]
                i += 1
            j, j_start = i, seg_start
            while off < end and j < len(segs):
                base, length = segs[j]
                lo = max(off, j_start) - j_start
                hi = min(end, j_start + length) - j_start
                if hi > lo:
                    if out and out[-1][0] + out[-1][1] == base + lo:
                        out[-1] = (out[-1][0], out[-1][1] + hi - lo)
                    else:
                        out.append((base + lo, hi - lo))
                if end <= j_start + length:
                    break
                j_start += length
                j += 1
        view = DataDescriptor(self._location)
        view._segments = out
        view._size = sum(s for _, s in out)
        return view

    def make_sub_view(self, *, offset: int, size: int) -> "DataDescriptor":
        """The ``size`` bytes from ``offset`` (cut at the end of the data; an empty descriptor
        when ``offset`` is past the end or ``size`` is 0).

        >>> DataDescriptor("", 26).make_sub_view(offset=4, size=8).flatten()
        [(4, 8)]
        """
        _count("offset", offset)
        _count("size", size)
        if offset > self._size or size == 0 or self._size == 0:
            return DataDescriptor()
        return self._view([(offset, min(self._size - offset, size))])

    def make_stride_view(self, *, offset: int, num_blocks: int, block_size: int, gap_size: int) -> "DataDescriptor":
        """``num_blocks`` blocks of ``block_size`` bytes, the first at ``offset``, each followed by
        ``gap_size`` bytes left out (e.g. a rectangle of rows of an image stored row by row).

        Raises :class:`DiasporaError` if the blocks go past the end of the data.
        """
        for name, value in (("offset", offset), ("num_blocks", num_blocks), ("block_size", block_size),
                            ("gap_size", gap_size)):
            _count(name, value)
        if offset > self._size or num_blocks == 0 or block_size == 0:
            return DataDescriptor()
        last_end = offset + (num_blocks - 1) * (block_size + gap_size) + block_size
        if last_end > self._size:
            raise invalid(f"strided view of {num_blocks} blocks of {block_size} bytes from offset {offset} with "
                          f"gaps of {gap_size} ends at byte {last_end}, past the {self._size} bytes selected; "
                          "use fewer or smaller blocks")
        step = block_size + gap_size
        if gap_size == 0:
            return self._view([(offset, num_blocks * block_size)])
        return self._view([(offset + k * step, block_size) for k in range(num_blocks)])

    make_strided_view = make_stride_view  # the name the Diaspora documentation uses

    def make_unstructured_view(self, *, segments: Sequence[Segment]) -> "DataDescriptor":
        """The listed ``(offset, size)`` pieces, in order and not overlapping (adjacent ones merge).

        Raises :class:`DiasporaError` if they overlap, come out of order or go past the end.
        """
        ranges: List[Segment] = []
        current = 0
        for item in segments:
            try:
                off, size = item
            except (TypeError, ValueError):
                raise invalid(f"segments must be (offset, size) pairs (got {item!r})") from None
            _count("segment offset", off)
            _count("segment size", size)
            if off < current:
                raise invalid(f"segment ({off}, {size}) overlaps or precedes the one before it; "
                              "give segments in increasing order without overlap")
            if off >= self._size or off + size > self._size:
                raise invalid(f"segment ({off}, {size}) goes past the {self._size} bytes selected")
            if ranges and ranges[-1][0] + ranges[-1][1] == off:
                ranges[-1] = (ranges[-1][0], ranges[-1][1] + size)
            elif size:
                ranges.append((off, size))
            current = off + size
        if not ranges:
            return DataDescriptor()
        return self._view(ranges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataDescriptor):
            return NotImplemented
        return (self._location, self._segments) == (other._location, other._segments)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DataDescriptor(location={self._location!r}, size={self._size}, segments={self._segments!r})"
