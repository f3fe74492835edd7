"""The audit as Markdown: what the nightly workflow posts as an issue or job summary.

Order: the verdict, a "no baseline" warning when drift could not be checked, a short to-do list, the
drift grouped by cause (worst first), the failing releases, then what passed and the details folded
into `<details>`. A GitHub comment holds 65,536 characters, so the text never exceeds `LIMIT`: what
does not fit is left out in whole rows, and the report says so and where the full report is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from imgcheck.audit.model import AuditReport, DriftItem, Release
from imgcheck.report.text import one_line
from imgcheck.verdict import Verdict

LIMIT = 60_000
"""Characters of Markdown at most: under GitHub's 65,536 per comment, with room for a note."""
DRIFT_SHARE = 0.6
"""Of what is left after the to-do list, the drift table may take at most this much."""
_ICON = {"pass": "✅", "fail": "❌", "error": "⛔", "warn": "⚠️", "skip": "➖", "info": "ℹ️"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#|[A-Za-z][A-Za-z0-9]*;)")
FULL_REPORT = (
    "the full report is the JSON or HTML one (`--report json=audit.json --report html=audit.html`; "
    "in the nightly workflow, the `audit-report` artifact)"
)


def cell(text: object) -> str:
    """A table cell: one line, terminal controls shown as `\\xNN`, no HTML tag or entity and no emphasis
    or column break can form (the nightly job posts this, and messages quote registry data). Only what
    could form a tag or an entity is escaped, so the same text read on a terminal (Markdown is the default
    stdout format) shows no `&gt;`. Long messages are cut."""
    value = one_line(" ".join(str(text).split()))
    value = value if len(value) <= 300 else value[:297] + "…"
    value = _TAG_START.sub("&lt;", _ENTITY.sub("&amp;", value))
    return _MD_SPECIAL.sub(r"\\\1", value)


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def summary_line(report: AuditReport) -> str:
    counts = report.release_counts()
    drift = report.drift_counts()
    parts = [f"**{report.verdict.value.upper()}**", f"{len(report.releases)} releases verified"]
    parts.append(", ".join(f"{n} {v}" for v, n in counts.items() if n))
    if report.drift_checked and report.previous_run is not None:
        parts.append(
            f"drift: {drift['fail']} failing, {plural(drift['warn'], 'warning')}, {plural(drift['info'], 'change')}"
        )
    return " · ".join(p for p in parts if p)


def todo_lines(report: AuditReport) -> list[str]:
    """At most 5 lines: what, which image and release, and the command or fix (shared with HTML)."""
    from imgcheck.audit.causes import headline

    lines = [f"{headline(d)}: {d.fix}" for d in report.todo()]
    more = len(report.actionable()) - len(lines)
    if more > 0:
        lines.append(f"{plural(more, 'more cause')} in the drift table below")
    failing = [r for r in report.releases if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
    if failing:
        images = ", ".join(dict.fromkeys(r.image for r in failing))
        verb = "fails" if len(failing) == 1 else "fail"
        lines.append(f"{plural(len(failing), 'release')} {verb} their rules ({images}): see the failing releases below")
    return lines


def failing_rules(release: Release) -> str:
    bad = [c.rule for c in release.checks if c.verdict in (Verdict.FAIL, Verdict.ERROR)]
    return ", ".join(dict.fromkeys(bad)) or ("could not verify" if release.error else "")


def _head(report: AuditReport) -> list[str]:
    lines = [f"# imgcheck audit — {report.started_at}", "", summary_line(report), ""]
    if report.baseline_note:
        lines += [f"> ⚠️ **{report.baseline_note[0].upper()}{report.baseline_note[1:]}.**", ""]
    if report.shard:
        lines += [
            f"Shard {report.shard}: a partial report; `imgcheck audit merge` builds the whole one and its drift.",
            "",
        ]
    todo = todo_lines(report)
    lines += ["## To do", ""]
    lines += [f"{n}. {cell_keep_code(line)}" for n, line in enumerate(todo, 1)] or ["Nothing to do."]
    lines.append("")
    return lines


def cell_keep_code(text: str) -> str:
    """A to-do line: escaped like a cell, except the `command` spans imgcheck wrote, kept as code."""
    parts = text.split("`")
    return "".join(f"`{p}`" if n % 2 else _spaced(p) for n, p in enumerate(parts))


def _spaced(text: str) -> str:
    """A cell that keeps the spaces around it (between it and a code span)."""
    if not text.strip():
        return text
    lead = " " if text[0].isspace() else ""
    return lead + cell(text) + (" " if text[-1].isspace() else "")


def _drift_rows(report: AuditReport) -> tuple[list[str], list[str]]:
    """(heading lines, one row per cause)."""
    head = ["## Drift", ""]
    if report.baseline_note:
        return [*head, report.baseline_note[0].upper() + report.baseline_note[1:] + ".", ""], []
    if not report.drift:
        return [*head, f"Nothing changed since the run of {report.previous_run}.", ""], []
    head += [
        f"Since the run of {report.previous_run}, one row per cause, worst first:",
        "",
        "| | cause | releases | what |",
        "|---|---|---|---|",
    ]
    return head, [_drift_row(d) for d in report.drift]


def _drift_row(d: DriftItem) -> str:
    releases = ", ".join(d.releases[:8]) + (f" and {len(d.releases) - 8} more" if len(d.releases) > 8 else "")
    return f"| {_ICON[d.severity]} {d.severity} | {d.kind} | {cell(d.image)} {cell(releases)} | {cell(d.message)} |"


_TABLE = [
    "| release | tags | digest | created | compressed | verdict | failing rules |",
    "|---|---|---|---|---|---|---|",
]


def _release_row(r: Release) -> str:
    verdict = r.verdict.value
    return (
        f"| {cell(r.label)} | {cell(', '.join(r.tags))} | `{short(r.digest)}` | {cell(r.created or '?')}"
        f" | {human_size(r.compressed_size)} | {_ICON[verdict]} {verdict} | {cell(failing_rules(r))} |"
    )


class _Budget:
    """Whole lines while they fit; counts what was left out, so the report can say so."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.dropped = 0

    def take(self, lines: Iterable[str], share: int | None = None) -> list[str]:
        room = min(self.left, share) if share is not None else self.left
        out: list[str] = []
        pending = list(lines)
        for n, line in enumerate(pending):
            if len(line) + 1 > room:  # in order: the rest goes too (a list is worst first)
                self.dropped += len(pending) - n
                break
            out.append(line)
            room -= len(line) + 1
            self.left -= len(line) + 1
        return out

    def fits(self, lines: list[str]) -> bool:
        return sum(len(line) + 1 for line in lines) <= self.left


def _lines(report: AuditReport, limit: int) -> list[str]:
    note_room = 1_000  # the two notes about what was left out
    budget = _Budget(limit - note_room)
    out = budget.take(_head(report))
    head, rows = _drift_rows(report)
    out += budget.take(head)
    kept = budget.take(rows, share=int(budget.left * DRIFT_SHARE))
    out += kept
    if len(kept) < len(rows):
        out.append(f"… {len(rows) - len(kept)} more causes do not fit here: {FULL_REPORT}.")
    out += budget.take([""])
    out += budget.take(["## Releases", ""])
    passing_blocks: list[list[str]] = []
    for number, image in enumerate(report.images):
        share = (budget.left - 2_000) // (len(report.images) - number)  # each image its fair part; findings last
        section = [f"### {image.image} (`{image.registry}/{image.repository}`)", ""]
        if image.error:
            out += budget.take([*section, f"⛔ could not list tags: {cell(image.error)}", ""])
            continue
        mine = [r for r in report.releases if r.image == image.image]
        bad = [r for r in mine if r.verdict in (Verdict.FAIL, Verdict.ERROR)]
        note = f"; {image.not_selected} left out by --tags/--since" if image.not_selected else ""
        section.append(
            f"{len(image.tags)} tags on {len(set(image.tags.values()))} digests; {len(image.verified)} verified"
            f"{note}; {len(bad)} failing."
        )
        section.append("")
        out += budget.take(section)
        if bad:
            shown = budget.take([*_TABLE, *(_release_row(r) for r in bad)], share=share)
            out += shown
            if len(shown) < len(bad) + 2:
                out.append(
                    f"… {len(bad) + 2 - len(shown)} more failing releases of {image.image} are in the full report."
                )
            out += budget.take([""])
        good = [r for r in mine if r not in bad]
        if good:
            passing_blocks.append(
                [
                    f"<details><summary>{image.image}: {plural(len(good), 'passing release')}</summary>",
                    "",
                    *_TABLE,
                    *(_release_row(r) for r in good),
                    "",
                    "</details>",
                    "",
                ]
            )
    for block in passing_blocks:  # after every image's failures: passing releases are the first to go
        if budget.fits(block):
            out += budget.take(block)
        else:
            budget.dropped += len(block) - 5
    out += _findings(report, budget)
    if budget.dropped:
        out.append(f"*{budget.dropped} lines of this report do not fit in a GitHub comment: {FULL_REPORT}.*")
        out.append("")
    return out


def _findings(report: AuditReport, budget: _Budget) -> list[str]:
    problems = [
        (r, c) for r in report.releases for c in r.checks if c.verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.WARN)
    ]
    errors = [r for r in report.releases if r.error]
    if not (problems or errors):
        return []
    rows = [f"- ⛔ **{r.image} {cell(r.label)}** could not be verified: {cell(r.error)}" for r in errors]
    rows += [
        f"- {_ICON[c.verdict.value]} **{r.image} {cell(r.label)}** `{c.rule}` {c.verdict.value}: {cell(c.message)}"
        for r, c in problems
    ]
    opening = ["## Findings", "", f"<details><summary>{len(rows)} findings</summary>", ""]
    closing = ["", "</details>", ""]
    frame = sum(len(line) + 1 for line in opening + closing)
    if budget.left < frame + 200:
        budget.dropped += len(rows)
        return []
    budget.left -= frame
    return [*opening, *budget.take(rows), *closing]


def render_markdown(report: AuditReport, limit: int = LIMIT) -> str:
    return "\n".join(_lines(report, limit))
