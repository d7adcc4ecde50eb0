"""A small, safe predicate language over event metadata (bridge rule filters).

Python expression syntax, evaluated by this module's own interpreter (never
``eval``): names are metadata fields, ``a.b`` and ``a["b"]`` reach nested
fields, a missing field is ``None``. Allowed: literals (numbers, strings,
``true``/``false``/``null`` and their Python spellings, lists), ``and``,
``or``, ``not``, comparisons (``== != < <= > >= in not in``, chained),
unary minus, ``+ - * / %`` and the functions ``exists(x)``, ``len(x)``,
``startswith(s, prefix)``, ``endswith(s, suffix)``, ``contains(s, part)``.
Comparing values of incompatible types (``None < 3``) is false, not an error.

>>> f = compile_filter("kind == 'frame' and energy > 10")
>>> f({"kind": "frame", "energy": 12})
True
"""
from __future__ import annotations

import ast
import operator
from typing import Any, Callable

__all__ = ["ExpressionError", "compile_filter"]

_MISSING = None
_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Mod: operator.mod}


def _str_fn(fn: Callable[[str, str], bool]) -> Callable[..., bool]:
    return lambda s, x: isinstance(s, str) and isinstance(x, str) and fn(s, x)


_FUNCS = {
    "exists": (1, lambda x: x is not None),
    "len": (1, lambda x: len(x) if isinstance(x, (str, list, dict)) else None),
    "startswith": (2, _str_fn(str.startswith)),
    "endswith": (2, _str_fn(str.endswith)),
    "contains": (2, lambda s, x: (x in s) if isinstance(s, (list, dict)) or (isinstance(s, str) and isinstance(x, str))
                 else False),
}


class ExpressionError(ValueError):
    """A filter expression is not valid in the bridge's predicate language."""


def _field(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, _MISSING)
    if isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
        return obj[key]
    return _MISSING


def _compile(node: ast.AST, text: str) -> Callable[[Any], Any]:
    """Turn one AST node into a closure ``f(metadata) -> value``."""
    if isinstance(node, ast.Expression):
        return _compile(node.body, text)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise ExpressionError(f"unsupported literal {node.value!r} in {text!r}")
        value = node.value
        return lambda m: value
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            value = _CONSTANTS[node.id]
            return lambda m: value
        name = node.id
        return lambda m: _field(m, name)
    if isinstance(node, ast.Attribute):
        inner, attr = _compile(node.value, text), node.attr
        return lambda m: _field(inner(m), attr)
    if isinstance(node, ast.Subscript):
        inner = _compile(node.value, text)
        idx = node.slice
        if isinstance(idx, ast.Index):  # Python 3.8 compatibility shape
            idx = idx.value  # type: ignore[attr-defined]
        if not (isinstance(idx, ast.Constant) and isinstance(idx.value, (str, int))):
            raise ExpressionError(f"only constant subscripts like a['b'] or a[0] are allowed in {text!r}")
        key = idx.value
        return lambda m: _field(inner(m), key)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_compile(e, text) for e in node.elts]
        return lambda m: [f(m) for f in items]
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, text) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda m: all(bool(p(m)) for p in parts)
        return lambda m: any(bool(p(m)) for p in parts)
    if isinstance(node, ast.UnaryOp):
        inner = _compile(node.operand, text)
        if isinstance(node.op, ast.Not):
            return lambda m: not inner(m)
        if isinstance(node.op, ast.USub):
            return lambda m: _safe(operator.neg, inner(m))
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed in {text!r}")
    if isinstance(node, ast.BinOp):
        op = _BIN.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed in {text!r}")
        left, right = _compile(node.left, text), _compile(node.right, text)
        return lambda m: _safe(op, left(m), right(m))
    if isinstance(node, ast.Compare):
        first = _compile(node.left, text)
        ops = []
        for o, c in zip(node.ops, node.comparators):
            fn = _CMP.get(type(o))
            if fn is None:
                raise ExpressionError(f"comparison {type(o).__name__} is not allowed in {text!r} (use == or !=)")
            ops.append((fn, _compile(c, text)))

        def compare(m: Any) -> bool:
            left = first(m)
            for fn, rf in ops:
                right = rf(m)
                if not _safe(fn, left, right):
                    return False
                left = right
            return True
        return compare
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise ExpressionError(f"unknown function in {text!r}; allowed: {', '.join(sorted(_FUNCS))}")
        arity, fn = _FUNCS[node.func.id]
        if len(node.args) != arity:
            raise ExpressionError(f"{node.func.id}() takes {arity} argument(s) in {text!r}")
        args = [_compile(a, text) for a in node.args]
        return lambda m: _safe(fn, *[a(m) for a in args])
    raise ExpressionError(f"{type(node).__name__} is not allowed in filter expressions: {text!r}")


def _safe(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except (TypeError, ZeroDivisionError, ValueError):
        return None if fn not in _CMP.values() else False


def compile_filter(text: str) -> Callable[[Any], bool]:
    """Compile a filter expression into ``predicate(metadata) -> bool``; raises :class:`ExpressionError`.

    >>> compile_filter("detector.id in [1, 2] and not exists(skip)")({"detector": {"id": 2}})
    True
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("a filter expression must be a non-empty string")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error in filter {text!r}: {exc.msg} (column {exc.offset})") from None
    fn = _compile(tree, text)
    return lambda metadata: bool(fn(metadata))
