"""The Diaspora Stream API's exception class, inside the mofka-py error hierarchy."""
from __future__ import annotations

from typing import Dict, Type

from .. import errors as _errors

__all__ = ["DiasporaError", "translate", "invalid"]


class DiasporaError(_errors.Error, RuntimeError):
    """What ``diaspora_stream.api.Exception`` is to Diaspora programs, and a :class:`mofka_py.Error`.

    Errors of mofka-py met under this API are raised as a class deriving from both this
    and the mofka-py class (e.g. a missing topic is a ``DiasporaError`` and a
    :class:`mofka_py.TopicNotFound`), so either ``except`` clause catches them.
    """


_FLAVOURS: Dict[type, Type[DiasporaError]] = {}


def _flavour(cls: type) -> Type[DiasporaError]:
    """The subclass of :class:`DiasporaError` and the mofka-py error class ``cls``."""
    if cls is DiasporaError or issubclass(cls, DiasporaError):
        return cls  # type: ignore[return-value]
    found = _FLAVOURS.get(cls)
    if found is None:
        found = type(cls.__name__, (DiasporaError, cls), {"__module__": __name__, "__doc__": cls.__doc__})
        _FLAVOURS[cls] = found
    return found


def translate(exc: BaseException) -> DiasporaError:
    """``exc`` (a mofka-py error or a component's failure) as a :class:`DiasporaError` with its message."""
    if isinstance(exc, DiasporaError):
        return exc
    if isinstance(exc, _errors.Error):
        return _flavour(type(exc))(*exc.args)
    return invalid(f"{type(exc).__name__}: {exc}")


def invalid(message: str) -> DiasporaError:
    """A :class:`DiasporaError` that is also :class:`mofka_py.InvalidArgument` (bad input, nothing written)."""
    return _flavour(_errors.InvalidArgument)(message)
