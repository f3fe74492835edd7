"""The default terminal report: one row per check, coloured verdicts, a one-line summary."""

from __future__ import annotations

import io
import os

from imgcheck.report.model import Report
from imgcheck.verdict import Verdict

STYLES = {
    Verdict.PASS: "green",
    Verdict.WARN: "yellow",
    Verdict.SKIP: "dim",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
}


def render(report: Report, *, color: bool | None = None, width: int | None = None) -> str:
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
        digest = image.digest.split(":", 1)[-1][:12] if image.digest else "-"
        if image.error is not None:
            table.add_row(image.name, digest, "-", Text("error", style=STYLES[Verdict.ERROR]), image.error)
            continue
        for i, check in enumerate(image.checks):
            rule = check.rule + (f" ({check.platform})" if check.platform else "")
            table.add_row(
                image.name if i == 0 else "",
                digest if i == 0 else "",
                rule,
                Text(check.verdict.value, style=STYLES[check.verdict]),
                check.message,
            )
        table.add_section()
    console.print(table)
    counts = report.counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    verdict = report.verdict
    line = Text()
    line.append(f"{verdict.value.upper()}", style=STYLES[verdict])
    line.append(f": {len(report.images)} image(s), {summary or 'no checks'}")
    console.print(line)
    return buffer.getvalue()
