"""How task arguments and results travel as events: small JSON-able values inside the
metadata, anything else pickled (protocol 5) with numpy arrays and other large buffers as
out-of-band parts of the event data, so they are neither copied into the pickle stream nor,
on the receiving side, out of the stored event (``numpy`` arrays come back as views)."""
from __future__ import annotations

import pickle
from typing import Any, List, Tuple

# Parts of the event data start on this boundary (views of stored data stay aligned for any dtype).
_ALIGN = 64
_PAD = bytes(_ALIGN)
_SIMPLE = (str, int, float, bool, type(None))


def _is_simple(value: Any, depth: int = 0) -> bool:
    """JSON can carry it exactly (tuples are not: they would come back as lists)."""
    if isinstance(value, _SIMPLE):
        return not isinstance(value, float) or value == value and value not in (float("inf"), float("-inf"))
    if depth > 4:
        return False
    if type(value) is list:
        return len(value) <= 64 and all(_is_simple(v, depth + 1) for v in value)
    if type(value) is dict:
        return len(value) <= 64 and all(type(k) is str and _is_simple(v, depth + 1) for k, v in value.items())
    return False


def encode(value: Any) -> Tuple[Any, List[Any], List[int]]:
    """``value`` as (inline JSON value or None, data parts, part lengths). Inline when JSON
    carries it exactly; else a pickle with out-of-band buffers (the first part is the pickle)."""
    if _is_simple(value):
        return value, [], []
    buffers: List[pickle.PickleBuffer] = []
    stream = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    parts: List[Any] = []
    lengths: List[int] = []
    for part in [stream] + [b.raw() for b in buffers]:
        n = len(part) if isinstance(part, (bytes, bytearray)) else part.nbytes
        parts.append(part)
        lengths.append(n)
        pad = -n % _ALIGN
        if pad:
            parts.append(_PAD[:pad])
    return None, parts, lengths


def decode(inline: Any, lengths: List[int], data: memoryview) -> Any:
    """The value :func:`encode` made; buffers are views of ``data`` (no copy)."""
    if not lengths:
        return inline
    views = []
    pos = 0
    for n in lengths:
        views.append(data[pos:pos + n])
        pos += n + (-n % _ALIGN)
    return pickle.loads(views[0], buffers=views[1:])
