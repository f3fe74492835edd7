"""The default report: one row per check and a one-line summary.

On a terminal, a rich table with coloured verdicts that wraps to the window. Anywhere else (a pipe, a CI
log, `--report table=FILE`) plain columns, one line per check with the image on every line: greppable,
no box drawing for log viewers to mangle, and no rich import or layout (~40 ms of a metadata run).
`gh` and `ls` make the same split between people and pipes.
"""

from __future__ import annotations

import io
import os

from imgcheck.report.model import Report
from imgcheck.report.text import one_line as _one_line
from imgcheck.verdict import Verdict

STYLES = {
    Verdict.PASS: "green",
    Verdict.WARN: "yellow",
    Verdict.SKIP: "dim",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
}


HEADINGS = ("image", "digest", "rule", "verdict", "message")


def render(report: Report, *, color: bool | None = None, width: int | None = None, terminal: bool = False) -> str:
    """The table for a terminal (rich) or for anything else (plain); the CLI says which stdout is."""
    if not terminal:
        return render_plain(report)
    return render_rich(report, color=color, width=width)


def render_plain(report: Report) -> str:
    """Aligned columns, one line per check; the message is last and never cut or folded."""
    rows: list[tuple[str, ...]] = [HEADINGS]
    for image in report.images:
        digest = _short(image.digest)
        if image.error is not None:
            rows.append((image.name, digest, "-", Verdict.ERROR.value, _one_line(image.error)))
            continue
        for check in image.checks:
            rows.append(
                (image.name, digest, _rule(check.rule, check.platform), check.verdict.value, _one_line(check.message))
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows
    ]
    lines.append(_summary(report))
    return "\n".join(lines) + "\n"


def render_rich(report: Report, *, color: bool | None = None, width: int | None = None) -> str:
    """Render with rich into a string; colour only when asked (the CLI decides from the terminal)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=bool(color),
        no_color=not color,
        width=width or int(os.environ.get("COLUMNS", "0") or 0) or 160,
        highlight=False,
    )
    table = Table(show_lines=False, expand=False, pad_edge=False)
    table.add_column("image", overflow="fold", max_width=32)
    table.add_column("digest", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("message", overflow="fold", min_width=48)  # the message is the point: never squeezed out
    for image in report.images:
        digest = _short(image.digest)
        if image.error is not None:
            table.add_row(
                image.name, digest, "-", Text("error", style=STYLES[Verdict.ERROR]), Text(_one_line(image.error))
            )
            continue
        for i, check in enumerate(image.checks):
            table.add_row(
                image.name if i == 0 else "",
                digest if i == 0 else "",
                _rule(check.rule, check.platform),
                Text(check.verdict.value, style=STYLES[check.verdict]),
                Text(_one_line(check.message)),
            )
        table.add_section()
    console.print(table)
    verdict = report.verdict
    line = Text()
    line.append(f"{verdict.value.upper()}", style=STYLES[verdict])
    line.append(":" + _summary(report).split(":", 1)[1])
    console.print(line)
    return buffer.getvalue()


def _summary(report: Report) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in report.counts().items() if n)
    return f"{report.verdict.value.upper()}: {len(report.images)} image(s), {counts or 'no checks'}"


def _short(digest: str | None) -> str:
    return digest.split(":", 1)[-1][:12] if digest else "-"


def _rule(rule: str, platform: str | None) -> str:
    return rule + (f" ({platform})" if platform else "")
