"""Safe YAML reading that keeps, for every value, the line it came from and its dotted key path.

PyYAML's `safe_load` forgets line numbers and silently keeps the last of two duplicate keys; in a
security policy a typo must point at its line and a duplicate key must never switch a rule off.
So we compose to nodes (no object construction), allow only the plain YAML tags, and convert to a
small tree of `Scalar` / `Seq` / `Map`, each carrying a `Loc` for error messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import yaml

from imgcheck.errors import PolicyError
from imgcheck.record import record

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp"))
_MAX_NODES = 100_000
"""Aliases can expand exponentially ("billion laughs"); no honest policy comes close to this."""
_MAX_DEPTH = 64

ScalarValue = str | int | float | bool | None | dt.date

_LIBYAML_LOADER: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)
"""PyYAML's libyaml composer, in every PyYAML wheel: ~10x faster than the pure-Python one (0.3 vs 4 ms for
the k2 policy). Only documents it composes without error are taken from it; anything it refuses is
composed again by the pure-Python loader, so every error message stays PyYAML's own."""


@record
class Loc:
    """Where a value came from: file, 1-based line, and dotted key path (`images[2].rules.size`)."""

    file: str
    line: int
    path: str

    def child(self, key: str | int, line: int) -> Loc:
        if isinstance(key, int):
            return Loc(self.file, line, f"{self.path}[{key}]")
        name = key if key.isprintable() else repr(key)  # a newline in a key must not split (or forge) the error line
        return Loc(self.file, line, f"{self.path}.{name}" if self.path else name)


def fail(loc: Loc, what: str, allowed: str | None = None) -> NoReturn:
    """Raise the one-line PolicyError: `file:line: key.path: what (allowed)`."""
    where = f"{loc.file}:{loc.line}: " + (f"{loc.path}: " if loc.path else "")
    raise PolicyError(where + what + (f" ({allowed})" if allowed else ""))


def did_you_mean(key: str, known: Sequence[str]) -> str:
    """`; did you mean max_compressed?` for a near-miss typo, else nothing."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def show(value: object, limit: int = 60) -> str:
    """A user value for an error message: repr (so newlines stay on one line), shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@record
class Scalar:
    value: ScalarValue
    loc: Loc


@record
class Seq:
    items: tuple[Node, ...]
    loc: Loc


@record
class Map:
    entries: dict[str, Node]
    """Key -> value, in file order; each value's `loc` names the key's line and path."""
    loc: Loc


Node = Scalar | Seq | Map


def kind(node: Node) -> str:
    """What a node is, in user terms, for "expected X, got Y" messages."""
    if isinstance(node, Map):
        return "a mapping"
    if isinstance(node, Seq):
        return "a list"
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, dt.date):
        return f"a date ({value.isoformat()})"
    return f"a string ({show(value)})"


def read_tree(path: Path) -> Node:
    """Read and parse a policy file into a located tree; every failure is a one-line PolicyError."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            f"{name}: cannot read the policy: {exc.strerror or exc}",
            hint="pass --policy FILE, or create ./imgcheck.yaml",
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError(f"{name}:{line}: the policy is not UTF-8 text (save it as UTF-8)") from None
    try:
        root = _compose(text)
    except yaml.YAMLError as exc:
        raise PolicyError(_yaml_error_message(name, text, exc)) from None
    except RecursionError:
        raise PolicyError(f"{name}:1: invalid YAML: nested too deeply") from None
    if root is None:
        raise PolicyError(
            f"{name}:1: the policy is empty (expected a mapping with version, registry, images and rules)"
        )
    return _Converter(name).convert(root, Loc(name, _line(root), ""), 0)


def _compose(text: str) -> yaml.Node | None:
    if _LIBYAML_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_LIBYAML_LOADER)
        except (yaml.YAMLError, RecursionError):
            pass  # the pure-Python loader below says what is wrong, in its words
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_error_message(name: str, text: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(getattr(exc, "position", None), int):  # ReaderError: bad character
        line = text[: exc.position].count("\n") + 1  # type: ignore[attr-defined]
    else:
        line = 1
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    detail = "; ".join(str(p) for p in parts if p) or str(exc)
    return f"{name}:{line}: invalid YAML: {' '.join(detail.split())}"


class _Converter:
    """Turns composed YAML nodes into located `Node`s, refusing anything a policy must not contain."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._count = 0
        self._active: set[int] = set()
        self._scalars = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, loc: Loc, depth: int) -> Node:
        self._count += 1
        if self._count > _MAX_NODES:
            fail(loc, f"the policy expands to more than {_MAX_NODES} values (runaway YAML aliases?)")
        if depth > _MAX_DEPTH:
            fail(loc, f"nested more than {_MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            return Scalar(self._scalar(node, loc), loc)
        if id(node) in self._active:
            fail(loc, "a YAML alias refers to the value that contains it (a cycle)")
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                self._check_tag(node, _TAG + "seq", loc)
                items = tuple(
                    self.convert(item, loc.child(i, _line(item)), depth + 1) for i, item in enumerate(node.value)
                )
                return Seq(items, loc)
            assert isinstance(node, yaml.MappingNode)
            self._check_tag(node, _TAG + "map", loc)
            return Map(self._entries(node, loc, depth), loc)
        finally:
            self._active.discard(id(node))

    def _entries(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, Node]:
        entries: dict[str, Node] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = _line(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                fail(Loc(self._name, key_line, loc.path), "a key must be a plain string, not a list or mapping")
            if key_node.tag == _TAG + "merge":
                fail(
                    Loc(self._name, key_line, loc.path),
                    "YAML merge keys (<<) are not supported",
                    "write the keys out; per-image `rules:` already merge over the default rules",
                )
            key = self._scalar(key_node, Loc(self._name, key_line, loc.path))
            if not isinstance(key, str):
                fail(Loc(self._name, key_line, loc.path), f"key {show(key)} is not a string", "quote it")
            child_loc = loc.child(key, key_line)
            if key in entries:
                fail(child_loc, f"duplicate key (first defined on line {first_line[key]})", "keep only one")
            first_line[key] = key_line
            entries[key] = self.convert(value_node, child_loc, depth + 1)
        return entries

    def _check_tag(self, node: yaml.Node, expected: str, loc: Loc) -> None:
        if node.tag != expected:
            fail(loc, f"YAML tag {show(node.tag)} is not allowed", "plain YAML values only")

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> ScalarValue:
        if node.tag not in _SCALAR_TAGS:
            fail(loc, f"YAML tag {show(node.tag)} is not allowed", "plain YAML values only")
        try:
            value = self._scalars.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:
            fail(loc, f"cannot read the value {show(node.value)}: {' '.join(str(exc).split())}")
        assert value is None or isinstance(value, str | int | float | bool | dt.date)
        return value
