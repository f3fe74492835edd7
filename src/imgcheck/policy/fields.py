"""Parse a located YAML value into a rule's frozen config dataclass, driven by its annotations.

Rules declare their keys once, as dataclass fields; this module is the only place that knows how a
YAML value becomes a `ByteSize`, a compiled regex or a `tuple[Waiver, ...]`. Adding a rule, or a
key to a rule, needs no change here as long as it uses the types listed in `policy/types.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from imgcheck.errors import PolicyError
from imgcheck.policy.patterns import Pattern, PatternError, compile_pattern
from imgcheck.policy.types import ByteSize, Percent, parse_duration_seconds
from imgcheck.policy.yamltree import Map, Node, Scalar, Seq, did_you_mean, fail, kind, show

_NONE = type(None)
_MAPPING_ORIGINS = (Mapping, dict)


@functools.cache
def field_types(cls: type) -> Mapping[str, Any]:
    """A dataclass's resolved annotations (`from __future__ import annotations` makes them strings).
    Cached per class: resolving evaluates every annotation, and a policy parses each rule once per image."""
    return types.MappingProxyType(typing.get_type_hints(cls))


@functools.cache
def init_fields(cls: type) -> Mapping[str, dataclasses.Field[Any]]:
    """The keys a dataclass takes, its own before inherited ones (`mode` last reads best in errors)."""
    own = inspect.get_annotations(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    return types.MappingProxyType({f.name: f for f in sorted(fields, key=lambda f: f.name not in own)})


def is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


class FieldError(ValueError):
    """A config's `__post_init__` found one key's value wrong (`cpus: 0`): the loader reports it at
    that key's line and path rather than at the rule's. Plain ValueErrors (keys at odds with each
    other) are reported at the rule's mapping."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def parse_dataclass(cls: type, node: Map) -> Any:
    """Build `cls` from a mapping: unknown keys and missing required keys are errors."""
    known = init_fields(cls)
    hints = field_types(cls)
    for key, value in node.entries.items():
        if key not in known:
            fail(value.loc, "unknown key" + did_you_mean(key, list(known)), f"known: {', '.join(known) or 'none'}")
    missing = [name for name, f in known.items() if is_required(f) and name not in node.entries]
    if missing:
        fail(node.loc, f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    kwargs = {key: parse_value(hints[key], value) for key, value in node.entries.items()}
    try:
        return cls(**kwargs)
    except FieldError as exc:  # one key at fault; a default it kept (not in the file) falls back to the mapping
        entry = node.entries.get(exc.key)
        fail(entry.loc if entry is not None else node.loc, " ".join(str(exc).split()))
    except (ValueError, TypeError) as exc:  # a config's own __post_init__ validation across keys
        fail(node.loc, " ".join(str(exc).split()))


def parse_value(tp: Any, node: Node) -> Any:
    """One YAML value as annotation `tp`; strict: a quoted "yes" is not a bool, 1 is not a string."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _parse_union(get_args(tp), node)
    if origin is Literal:
        return _parse_literal(get_args(tp), node)
    if origin is tuple:
        return _parse_tuple(get_args(tp), node)
    if origin in _MAPPING_ORIGINS:
        return _parse_mapping(get_args(tp), node)
    if tp is Pattern:
        return _parse_regex(node)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(node, Map):
            fail(node.loc, f"expected a mapping, got {kind(node)}", f"keys: {', '.join(init_fields(tp))}")
        return parse_dataclass(tp, node)
    if isinstance(tp, type) and tp in _SCALAR_PARSERS:
        if not isinstance(node, Scalar):
            fail(node.loc, f"expected {_SCALAR_WANT[tp]}, got {kind(node)}")
        return _SCALAR_PARSERS[tp](node)
    raise TypeError(f"policy loader: unsupported config annotation {tp!r}")


def check_annotation(tp: Any) -> None:
    """Raise TypeError if `tp` (or anything inside it) is a type the loader cannot parse."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType, tuple) or origin in _MAPPING_ORIGINS:
        args = [a for a in get_args(tp) if a is not Ellipsis and a is not _NONE]
        if origin is tuple and (len(get_args(tp)) != 2 or get_args(tp)[1] is not Ellipsis):
            raise TypeError(f"only tuple[X, ...] is supported, not {tp!r}")
        if origin in _MAPPING_ORIGINS and get_args(tp)[0] is not str:
            raise TypeError(f"mapping keys must be str, not {tp!r}")
        for arg in args[1:] if origin in _MAPPING_ORIGINS else args:
            check_annotation(arg)
        return
    if origin is re.Pattern or tp is re.Pattern:
        raise TypeError("a policy pattern is imgcheck.policy.patterns.Pattern (RE2, linear time), not re.Pattern")
    if origin is Literal or tp is Pattern:
        return
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        for name in init_fields(tp):
            check_annotation(field_types(tp)[name])
        return
    if isinstance(tp, type) and tp in _SCALAR_PARSERS:
        return
    raise TypeError(f"policy loader: unsupported config annotation {tp!r}")


def _parse_union(args: tuple[Any, ...], node: Node) -> Any:
    if _NONE in args and isinstance(node, Scalar) and node.value is None:
        return None
    options = [a for a in args if a is not _NONE]
    if len(options) == 1:
        return parse_value(options[0], node)
    first_error: PolicyError | None = None
    for option in options:
        try:
            return parse_value(option, node)
        except PolicyError as exc:  # try the next alternative; report the first failure
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _parse_literal(allowed: tuple[Any, ...], node: Node) -> Any:
    if isinstance(node, Scalar):
        for choice in allowed:
            if type(choice) is type(node.value) and choice == node.value:
                return choice
    got = show(node.value) if isinstance(node, Scalar) else kind(node)
    fail(node.loc, f"unknown value {got}", f"allowed: {', '.join(str(a) for a in allowed)}")


def _parse_tuple(args: tuple[Any, ...], node: Node) -> tuple[Any, ...]:
    if len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"policy loader: only tuple[X, ...] is supported, not tuple{list(args)}")
    if not isinstance(node, Seq):
        fail(node.loc, f"expected a list, got {kind(node)}", "write [a, b] or one '- item' per line")
    return tuple(parse_value(args[0], item) for item in node.items)


def _parse_mapping(args: tuple[Any, ...], node: Node) -> dict[str, Any]:
    if not isinstance(node, Map):
        fail(node.loc, f"expected a mapping, got {kind(node)}", "write one 'key: value' per line")
    value_type = args[1] if len(args) == 2 else Any
    return {key: parse_value(value_type, value) for key, value in node.entries.items()}


def _parse_regex(node: Node) -> Pattern:
    if not isinstance(node, Scalar) or not isinstance(node.value, str):
        fail(node.loc, f"expected a regular expression string, got {kind(node)}", "quote it: '...'")
    try:
        return compile_pattern(node.value)
    except PatternError as exc:
        fail(node.loc, f"bad regular expression {show(node.value)}: {exc}")


def _str(node: Scalar) -> str:
    if not isinstance(node.value, str):
        fail(node.loc, f"expected a string, got {kind(node)}", "quote the value")
    return node.value


def _bool(node: Scalar) -> bool:
    if not isinstance(node.value, bool):
        fail(node.loc, f"expected true or false, got {kind(node)}")
    return node.value


def _int(node: Scalar) -> int:
    if isinstance(node.value, bool) or not isinstance(node.value, int):
        fail(node.loc, f"expected a whole number, got {kind(node)}")
    return node.value


def _float(node: Scalar) -> float:
    if isinstance(node.value, bool) or not isinstance(node.value, int | float):
        fail(node.loc, f"expected a number, got {kind(node)}")
    return float(node.value)


def _size(node: Scalar) -> ByteSize:
    if isinstance(node.value, bool) or not isinstance(node.value, str | int):
        fail(node.loc, f"expected a size, got {kind(node)}", "like 500MB, 1.5GiB, or a byte count")
    try:
        return ByteSize.parse(node.value)
    except (ValueError, OverflowError) as exc:
        fail(node.loc, f"bad size: {exc}", "kB/MB/GB are decimal, KiB/MiB/GiB binary")


def _percent(node: Scalar) -> Percent:
    if not isinstance(node.value, str):
        fail(node.loc, f"expected a percentage, got {kind(node)}", "like 10%")
    try:
        return Percent.parse(node.value)
    except (ValueError, OverflowError) as exc:
        fail(node.loc, f"bad percentage: {exc}")


def _duration(node: Scalar) -> dt.timedelta:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        fail(node.loc, f"expected a duration, got {kind(node)}", "like 30s, 15m, 24h or 7d")
    try:
        return dt.timedelta(seconds=parse_duration_seconds(value))
    except ValueError as exc:  # its message already gives the examples: they are said once
        fail(node.loc, f"bad duration: {exc}")
    except OverflowError:
        fail(node.loc, f"bad duration: {value!r} is too long", "like 30s, 15m, 24h or 7d")


def _date(node: Scalar) -> dt.date:
    value = node.value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    fail(node.loc, f"expected a date, got {kind(node)}", "like 2027-01-31")


def _path(node: Scalar) -> Path:
    return Path(_str(node))


_SCALAR_PARSERS = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    ByteSize: _size,
    Percent: _percent,
    dt.timedelta: _duration,
    dt.date: _date,
    Path: _path,
}
_SCALAR_WANT = {
    str: "a string",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    ByteSize: "a size like 500MB",
    Percent: "a percentage like 10%",
    dt.timedelta: "a duration like 30s or 24h",
    dt.date: "a date like 2027-01-31",
    Path: "a file path",
}
