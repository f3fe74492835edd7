"""The audit as JSON (`imgcheck.audit/v1`): indented like `json.dumps(indent=2)`, but one check per line.

Why not plain `indent=2`: the standard library writes indented JSON with its pure-Python encoder (only
compact output is C-accelerated), and a nightly audit's report is a few thousand checks, ~1 MB: that was
three times the cost of everything else the warm run does after reading the tags but before writing
the history. Containers from `ONE_LINE_DEPTH` down (a release's checks) are written by the C encoder on
one line with the separators of `json.dumps` (`", "`, `": "`); everything above keeps `indent=2`'s layout.
The output is the same JSON value as `json.dumps(doc, default=str)`, deterministic, and one line per
check is easy to grep (`"verdict": "fail"`).
"""

from __future__ import annotations

import json
from typing import Any

from imgcheck.audit.model import AuditReport, to_dict

ONE_LINE_DEPTH = 4
"""report (0) > `releases` (1) > a release (2) > its `checks` (3) > a check (4), written on one line."""
INDENT = "  "

_ONE_LINE = json.JSONEncoder(default=str)
_CONTAINERS = (dict, list, tuple)


def render_json(report: AuditReport) -> str:
    return dumps(to_dict(report)) + "\n"


def dumps(doc: Any, one_line_depth: int = ONE_LINE_DEPTH) -> str:
    """`doc` as `json.dumps(doc, indent=2, default=str)` lays it out, except that containers at
    `one_line_depth` or deeper are written compactly on one line (as `json.dumps(x, default=str)`)."""
    out: list[str] = []
    _write(doc, 0, one_line_depth, out)
    return "".join(out)


def _write(value: Any, depth: int, one_line_depth: int, out: list[str]) -> None:
    if depth >= one_line_depth or not isinstance(value, _CONTAINERS) or not value:
        out.append(_ONE_LINE.encode(value))  # scalars and empty containers are one token either way
        return
    inner = "\n" + INDENT * (depth + 1)
    separator = inner
    if isinstance(value, dict):
        out.append("{")
        for key, item in value.items():
            out.append(separator + _key(key) + ": ")
            separator = "," + inner
            _write(item, depth + 1, one_line_depth, out)
        out.append("\n" + INDENT * depth + "}")
        return
    out.append("[")
    for item in value:
        out.append(separator)
        separator = "," + inner
        _write(item, depth + 1, one_line_depth, out)
    out.append("\n" + INDENT * depth + "]")


def _key(key: Any) -> str:
    """A dict key as `json.dumps` writes it (int, float, bool and None keys become strings)."""
    return _ONE_LINE.encode(key) if isinstance(key, str) else _ONE_LINE.encode({key: 0})[1:-4]
