"""Validators, serializers and partition selectors of a topic; thread pools, ordering, batch sizes.

As in the Diaspora Stream API, a topic is created with three components, each
made with ``X.from_metadata(type=..., **parameters)`` and remembered by the
topic (every process opening it gets the same ones):

- a :class:`Validator` checks an event before it is pushed (``"default"`` accepts
  everything, ``"schema"`` checks the metadata against a JSON schema,
  ``"eventbridge"`` against an EventBridge-style pattern);
- a :class:`PartitionSelector` picks each event's partition (``"default"``: round
  robin, or the requested partition modulo the number of partitions);
- a :class:`Serializer` turns metadata into bytes and back (``"default"``: JSON).

Where Diaspora loads C++ plugins (``"name:libplugin.so"``), mofka-py imports a
Python class: ``type="package.module:ClassName"`` names a subclass of the
component, built with the other keywords as its parameters.
"""
from __future__ import annotations

import enum
import importlib
from typing import Any, ClassVar, Dict, List, Optional, Type, TypeVar

import orjson

from .errors import invalid

__all__ = ["AdaptiveBatchSize", "Ordering", "ThreadPool", "Validator", "Serializer", "PartitionSelector"]

#: ``batch_size=AdaptiveBatchSize``: let the producer (or the consumer's prefetch) choose.
AdaptiveBatchSize: int = (1 << 64) - 1


class Ordering(enum.Enum):
    """Whether a producer keeps events in push order (mofka-py always does: both are accepted)."""

    Strict = 0
    Loose = 1


class ThreadPool:
    """A count of threads, accepted where Diaspora takes a thread pool.

    mofka-py's core runs its own I/O threads and calls Python components on the
    pushing thread, so the count changes nothing; it is kept and reported.
    """

    def __init__(self, count: int = 0):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise invalid(f"thread count must be a non-negative integer (got {count!r})")
        self._count = count

    @property
    def thread_count(self) -> int:
        """The number of threads asked for."""
        return self._count

    def __repr__(self) -> str:
        return f"ThreadPool({self._count})"


C = TypeVar("C", bound="_Component")


class _Component:
    """What the three component kinds share: parameters, a ``type`` and ``from_metadata``."""

    kind: ClassVar[str] = "component"
    type_name: ClassVar[str] = ""          # the built-in name ("default", "schema", ...)
    _builtins: ClassVar[Dict[str, type]]

    def __init__(self, **params: Any):
        self.params = params

    @property
    def metadata(self) -> Dict[str, Any]:
        """This component's configuration: ``type`` and its parameters (what the topic remembers)."""
        name = self.type_name or f"{type(self).__module__}:{type(self).__qualname__}"
        return {"type": name, **self.params}

    @classmethod
    def from_metadata(cls: Type[C], **kwargs: Any) -> C:
        """Build a component from its configuration: ``type`` (a built-in name, or
        ``"module:Class"``; ``"default"`` when omitted) and its parameters.

        >>> Validator.from_metadata(type="schema", schema={"required": ["energy"]}).metadata["type"]
        'schema'
        """
        kind = kwargs.pop("type", "default")
        if not isinstance(kind, str):
            raise invalid(f"{cls.kind} type must be a string (got {kind!r})")
        impl = cls._builtins.get(kind)
        if impl is None:
            impl = _import_component(cls, kind)
        try:
            return impl(**kwargs)  # type: ignore[no-any-return]
        except TypeError as exc:
            raise invalid(f"{cls.kind} {kind!r}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.metadata == other.metadata  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}.from_metadata(**{self.metadata!r})"


def _import_component(base: Type[_Component], ref: str) -> Type[_Component]:
    if ":" not in ref or ".so" in ref:
        known = ", ".join(repr(k) for k in sorted(base._builtins))
        raise invalid(f"unknown {base.kind} type {ref!r}: mofka_py.diaspora has {known}, or imports a Python "
                      f"class given as 'package.module:ClassName' (a subclass of {base.__name__}); "
                      "C++ plugins ('name:library.so') cannot be loaded")
    module_name, _, class_name = ref.partition(":")
    try:
        impl = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise invalid(f"{base.kind} type {ref!r}: cannot import it ({exc}); check the module is on sys.path") from None
    if not (isinstance(impl, type) and issubclass(impl, base)):
        raise invalid(f"{base.kind} type {ref!r} is not a subclass of mofka_py.diaspora.{base.__name__}")
    return impl


# --- validators -------------------------------------------------------------------------------------

class Validator(_Component):
    """Checks an event before it is pushed; :meth:`validate` raises to refuse it (nothing is written).

    Subclass it and override :meth:`validate` for a check of your own::

        class EnergyValidator(Validator):
            def validate(self, metadata, data):
                if not 0 <= metadata["energy"] < self.params["energy_max"]:
                    raise ValueError("energy out of range")
    """

    kind = "validator"
    type_name = ""

    def validate(self, metadata: Any, data: Any) -> None:
        """Raise (any exception) if the event (its decoded metadata, its data) is not acceptable."""


class DefaultValidator(Validator):
    """Accepts every event."""

    type_name = "default"


def _with_schema(kind: str, params: Dict[str, Any]) -> Dict[str, Any]:
    """``params`` if it holds ``schema``, a JSON schema object; else the error saying so."""
    if "schema" not in params:
        raise invalid(f"the schema {kind} needs schema={{...}} (a JSON schema object)")
    if not isinstance(params["schema"], dict):
        raise invalid(f"schema must be a JSON object (a dict), not {type(params['schema']).__name__}")
    return params


_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _schema_errors(value: Any, schema: Dict[str, Any], path: str) -> Optional[str]:
    """The first way ``value`` breaks ``schema`` (type, required, properties, items, enum, bounds)."""
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        ok = False
        for k in kinds:
            if k == "integer":
                ok = ok or (isinstance(value, int) and not isinstance(value, bool))
            elif k == "number":
                ok = ok or (isinstance(value, (int, float)) and not isinstance(value, bool))
            else:
                ok = ok or isinstance(value, _JSON_TYPES.get(k, ()))
        if not ok:
            return f"{path} should be of type {kind}, not {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} = {value!r} is not one of {schema['enum']!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path} = {value} is below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path} = {value} is above the maximum {schema['maximum']}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return f"{path} = {value} is not below {schema['exclusiveMaximum']}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"{path} lacks the required field {name!r}"
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name in value:
                problem = _schema_errors(value[name], sub, f"{path}[{name!r}]")
                if problem:
                    return problem
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                return f"{path} has fields the schema does not allow: {extra}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = _schema_errors(item, schema["items"], f"{path}[{i}]")
            if problem:
                return problem
    return None


class SchemaValidator(Validator):
    """Checks metadata against a JSON schema (``type``, ``required``, ``properties``, ``items``,
    ``enum``, ``minimum``, ``maximum``, ``exclusiveMaximum``, ``additionalProperties: false``)."""

    type_name = "schema"

    def __init__(self, **params: Any):
        super().__init__(**_with_schema("validator", params))

    def validate(self, metadata: Any, data: Any) -> None:
        """Raise if ``metadata`` does not match the schema."""
        problem = _schema_errors(metadata, self.params["schema"], "metadata")
        if problem:
            raise ValueError(problem)


def _pattern_errors(value: Any, pattern: Dict[str, Any], path: str) -> Optional[str]:
    for name, want in pattern.items():
        if not isinstance(value, dict) or name not in value:
            return f"{path} lacks the field {name!r}"
        got = value[name]
        if isinstance(want, dict):
            problem = _pattern_errors(got, want, f"{path}[{name!r}]")
            if problem:
                return problem
        elif isinstance(want, list):
            if got not in want and not (isinstance(got, list) and any(g in want for g in got)):
                return f"{path}[{name!r}] = {got!r} is not one of {want!r}"
        elif got != want:
            return f"{path}[{name!r}] = {got!r}, expected {want!r}"
    return None


class EventbridgeValidator(Validator):
    """Checks metadata against an EventBridge-style pattern: each field names a list of accepted
    values (or a nested pattern), e.g. ``{"source": ["my.app"], "detail": {"kind": ["frame"]}}``."""

    type_name = "eventbridge"

    def __init__(self, **params: Any):
        if not isinstance(params.get("schema"), dict):
            raise invalid("the eventbridge validator needs schema={...}: a pattern object such as "
                          "{\"source\": [\"my.app\"]}")
        super().__init__(**params)

    def validate(self, metadata: Any, data: Any) -> None:
        """Raise if ``metadata`` does not match the pattern."""
        problem = _pattern_errors(metadata, self.params["schema"], "metadata")
        if problem:
            raise ValueError(problem)


Validator._builtins = {"default": DefaultValidator, "schema": SchemaValidator, "eventbridge": EventbridgeValidator}


# --- serializers ------------------------------------------------------------------------------------

class Serializer(_Component):
    """Turns metadata into the bytes stored with the event (:meth:`serialize`) and back (:meth:`deserialize`)."""

    kind = "serializer"
    type_name = ""

    def serialize(self, metadata: Any) -> bytes:
        """The bytes stored for ``metadata`` (JSON by default)."""
        try:
            return orjson.dumps(metadata)
        except TypeError as exc:
            raise invalid(f"metadata must be JSON-serialisable (dict, list, str, numbers): {exc}") from None

    def deserialize(self, raw: bytes) -> Any:
        """The metadata stored as ``raw``."""
        return orjson.loads(raw)


class DefaultSerializer(Serializer):
    """Metadata as JSON text."""

    type_name = "default"


class SchemaSerializer(Serializer):
    """Metadata as JSON text; the schema is checked when it is created (Diaspora packs values by
    the schema into a binary form: mofka-py stores JSON, so topics stay readable by any tool)."""

    type_name = "schema"

    def __init__(self, **params: Any):
        super().__init__(**_with_schema("serializer", params))


Serializer._builtins = {"default": DefaultSerializer, "schema": SchemaSerializer}


# --- partition selectors ----------------------------------------------------------------------------

class PartitionSelector(_Component):
    """Picks the partition of each event; override :meth:`select_partition` for a policy of your own."""

    kind = "partition selector"
    type_name = ""

    def __init__(self, **params: Any):
        super().__init__(**params)
        self._next = 0

    def set_partitions(self, partitions: List[Dict[str, Any]]) -> None:
        """Called once with the topic's partitions (a list of dicts with ``index``) before any event."""
        self.partitions = partitions

    def select_partition(self, metadata: Any, requested: Optional[int]) -> int:
        """The partition index for an event: ``requested`` modulo the count if given, else round robin."""
        n = len(self.partitions)
        if requested is not None:
            return requested % n
        index = self._next
        self._next = (index + 1) % n
        return index


class DefaultPartitionSelector(PartitionSelector):
    """Round robin, or the requested partition (modulo the number of partitions)."""

    type_name = "default"


PartitionSelector._builtins = {"default": DefaultPartitionSelector}
