"""The audit as Markdown: what the nightly workflow posts as an issue or job summary. Drift first."""

from __future__ import annotations

from collections.abc import Iterable

from imgcheck.audit.model import AuditReport, Release
from imgcheck.report.markdown import escape_cell
from imgcheck.verdict import Verdict

_ICON = {"pass": "✅", "fail": "❌", "error": "⛔", "warn": "⚠️", "skip": "➖", "info": "ℹ️"}


def cell(text: object) -> str:
    """A table cell, escaped like verify's Markdown (no HTML, no emphasis, no column breaks, controls shown
    as `\\xNN`): the nightly job posts this as an issue, and messages quote registry data. Long ones are cut."""
    value = " ".join(str(text).split())
    return escape_cell(value if len(value) <= 300 else value[:297] + "…")


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def summary_line(report: AuditReport) -> str:
    counts = report.release_counts()
    drift = report.drift_counts()
    parts = [f"**{report.verdict.value.upper()}**", f"{len(report.releases)} releases verified"]
    parts.append(", ".join(f"{n} {v}" for v, n in counts.items() if n))
    if report.drift_checked:
        parts.append(f"drift: {drift['fail']} failing, {drift['warn']} warnings, {drift['info']} changes")
    return " · ".join(p for p in parts if p)


def _failing(release: Release) -> str:
    bad = [c.rule for c in release.checks if c.verdict in (Verdict.FAIL, Verdict.ERROR)]
    return ", ".join(dict.fromkeys(bad)) or ("could not verify" if release.error else "")


def _lines(report: AuditReport) -> Iterable[str]:
    yield f"# imgcheck audit — {report.started_at}"
    yield ""
    yield summary_line(report)
    yield ""
    if report.shard:
        yield f"Shard {report.shard}: a partial report; `imgcheck audit merge` builds the whole one and its drift."
        yield ""
    yield "## Drift"
    yield ""
    if not report.drift_checked:
        yield "Not checked (no history for this run)."
    elif report.previous_run is None:
        yield "First run in this history: nothing to compare with yet."
    elif not report.drift:
        yield f"Nothing changed since the run of {report.previous_run}."
    else:
        yield f"Since the run of {report.previous_run}:"
        yield ""
        yield "| | image | change | what |"
        yield "|---|---|---|---|"
        for d in report.drift:
            yield f"| {_ICON[d.severity]} {d.severity} | {cell(d.image)} | {d.kind} | {cell(d.message)} |"
    yield ""
    yield "## Releases"
    for image in report.images:
        yield ""
        yield f"### {image.image} (`{image.registry}/{image.repository}`)"
        yield ""
        if image.error:
            yield f"⛔ could not list tags: {cell(image.error)}"
            continue
        digests = len(set(image.tags.values()))
        note = f"; {image.not_selected} left out by --tags/--since" if image.not_selected else ""
        yield f"{len(image.tags)} tags on {digests} digests; {len(image.verified)} verified{note}."
        yield ""
        yield "| release | tags | digest | created | compressed | verdict | failing rules |"
        yield "|---|---|---|---|---|---|---|"
        for r in (r for r in report.releases if r.image == image.image):
            verdict = r.verdict.value
            yield (
                f"| {cell(r.label)} | {cell(', '.join(r.tags))} | `{short(r.digest)}` | {cell(r.created or '?')}"
                f" | {human_size(r.compressed_size)} | {_ICON[verdict]} {verdict} | {cell(_failing(r))} |"
            )
    problems = [
        (r, c) for r in report.releases for c in r.checks if c.verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.WARN)
    ]
    errors = [r for r in report.releases if r.error]
    if problems or errors:
        yield ""
        yield "## Findings"
        yield ""
        for r in errors:
            yield f"- ⛔ **{r.image} {r.label}** could not be verified: {cell(r.error)}"
        for r, c in problems:
            yield f"- {_ICON[c.verdict.value]} **{r.image} {r.label}** `{c.rule}` {c.verdict.value}: {cell(c.message)}"
    yield ""


def render_markdown(report: AuditReport) -> str:
    return "\n".join(_lines(report))
