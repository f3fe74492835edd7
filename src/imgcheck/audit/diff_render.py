"""`imgcheck diff` output: JSON (`imgcheck.diff/v1`), Markdown for a review, and a plain-text table."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from imgcheck.audit.diff import DIFF_SCHEMA, Change, DiffReport, ImageDiff, build_diff
from imgcheck.audit.render_markdown import human_size
from imgcheck.checks.interface import VerifyOptions
from imgcheck.errors import UsageError
from imgcheck.policy.model import Policy
from imgcheck.report.markdown import escape_cell
from imgcheck.report.text import one_line

FORMATS = ("table", "json", "markdown")


def _change(c: Change) -> dict[str, Any]:
    return {"name": c.name, "change": c.kind, "old": c.old, "new": c.new}


def to_dict(report: DiffReport) -> dict[str, Any]:
    return {
        "schema": DIFF_SCHEMA,
        "old": report.old,
        "new": report.new,
        "images": [
            {
                "name": i.name,
                "old": {"reference": i.old_reference, "digest": i.old_digest},
                "new": {"reference": i.new_reference, "digest": i.new_digest},
                "error": i.error,
                "platforms": [
                    {
                        "platform": p.platform,
                        "old_compressed": p.old_total,
                        "new_compressed": p.new_total,
                        "shared_layers": p.shared_layers,
                        "layers": [_change(c) for c in p.layers],
                    }
                    for p in i.platforms
                ],
                "growth": [{"verdict": v, "message": m, "platform": p} for v, m, p in i.growth],
                "labels": [_change(c) for c in i.labels],
                "config": [_change(c) for c in i.config],
                "env_names": [_change(c) for c in i.env_names],
                "packages": None if i.packages is None else [_change(c) for c in i.packages],
                "vulnerabilities": None
                if i.vulns_fixed is None
                else {"fixed": list(i.vulns_fixed), "introduced": list(i.vulns_introduced or ())},
                "notes": list(i.notes),
            }
            for i in report.images
        ],
    }


def _delta(old: int | None, new: int | None) -> str:
    if old is None or new is None:
        return f"{human_size(old) if old is not None else '—'} → {human_size(new) if new is not None else '—'}"
    change = (new - old) / old * 100 if old else 0.0
    return f"{human_size(old)} → {human_size(new)} ({change:+.1f}%)"


def _show(value: Any) -> str:
    return "—" if value is None else json.dumps(value) if not isinstance(value, str) else value


def _image_lines(i: ImageDiff, bullet: str) -> Iterable[str]:
    if i.error:
        yield f"{bullet}could not compare: {i.error}"
        return
    for p in i.platforms:
        layers = ", ".join(
            f"{'+' if c.kind == 'added' else '-'}{c.name} ({human_size(c.new if c.kind == 'added' else c.old)})"
            for c in p.layers
        )
        yield f"{bullet}size {p.platform}: {_delta(p.old_total, p.new_total)}; {p.shared_layers} layers shared" + (
            f"; layers {layers}" if layers else ""
        )
    for verdict, message, platform in i.growth:
        yield f"{bullet}growth{' ' + platform if platform else ''}: {verdict}: {message}"
    for title, changes in (("label", i.labels), ("config", i.config), ("env", i.env_names)):
        for c in changes:
            yield f"{bullet}{title} {c.name}: {c.kind} ({_show(c.old)} → {_show(c.new)})"
    if i.packages is not None:
        added = [c for c in i.packages if c.kind == "added"]
        removed = [c for c in i.packages if c.kind == "removed"]
        changed = [c for c in i.packages if c.kind == "changed"]
        yield (f"{bullet}packages: {len(added)} added, {len(removed)} removed, {len(changed)} upgraded/downgraded")
        for c in changed:
            yield f"{bullet}  {c.name} {c.old} → {c.new}"
        for c in added:
            yield f"{bullet}  + {c.name} {c.new}"
        for c in removed:
            yield f"{bullet}  - {c.name} {c.old}"
    if i.vulns_fixed is not None:
        yield f"{bullet}vulnerabilities: {len(i.vulns_fixed)} fixed, {len(i.vulns_introduced or ())} introduced"
        for v in i.vulns_introduced or ():
            yield f"{bullet}  introduced {v}"
        for v in i.vulns_fixed:
            yield f"{bullet}  fixed {v}"
    for note in i.notes:
        yield f"{bullet}note: {note}"


def render_table(report: DiffReport) -> str:
    lines = [f"imgcheck diff {report.old} → {report.new}"]
    for i in report.images:
        lines.append("")
        lines.append(f"{i.name}  {(i.old_digest or '?')[7:19]} → {(i.new_digest or '?')[7:19]}")
        lines.extend(_image_lines(i, "  "))
    return "\n".join(one_line(line) for line in lines) + "\n"


def render_markdown(report: DiffReport) -> str:
    lines = [f"# imgcheck diff `{report.old}` → `{report.new}`"]
    for i in report.images:
        lines += ["", f"## {i.name}", "", f"`{i.old_reference}` → `{i.new_reference}`", ""]
        lines.extend(_markdown_safe(line, "- ") for line in _image_lines(i, "- "))
    return "\n".join(lines) + "\n"


def _markdown_safe(line: str, bullet: str) -> str:
    """The text after the bullet escaped: label values and env names come from the images, and a
    reviewer reads this rendered (no HTML, no emphasis, controls shown as `\\xNN`)."""
    rest = line[len(bullet) :]
    text = rest.lstrip(" ")
    return bullet + rest[: len(rest) - len(text)] + escape_cell(text)


def render(report: DiffReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(report), indent=2, default=str) + "\n"
    if fmt == "markdown":
        return render_markdown(report)
    return render_table(report)


def run_diff(
    policy: Policy,
    options: VerifyOptions,
    old: str,
    new: str,
    *,
    output_format: str = "table",
    out: TextIO | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """`imgcheck diff OLD NEW`: 0 compared, 1 the new release fails the growth budget, 2 could not compare."""
    from imgcheck.registry.client import RegistryClient

    if output_format not in FORMATS:
        raise UsageError(f"--format {output_format!r}: unknown for diff (known: {', '.join(FORMATS)})")
    with RegistryClient(
        insecure=options.insecure,
        timeout=options.timeout,
        progress=progress,
        schemes=options.schemes,
        deadline=options.deadline,
    ) as client:
        report = build_diff(policy, options, old, new, client)
    stream = out or sys.stdout
    stream.write(render(report, output_format))
    stream.flush()
    return report.exit_code
