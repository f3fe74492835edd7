"""The audit as one self-contained HTML page: inline CSS, the chart as an embedded PNG, no scripts,
nothing fetched, so it can be mailed, attached to a workflow run, or opened from disk."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from html import escape

from imgcheck.audit.chart import render_png
from imgcheck.audit.model import AuditReport
from imgcheck.audit.render_markdown import human_size, short, todo_lines
from imgcheck.verdict import Verdict

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1b1b1b;max-width:1280px}
h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}code{font-size:.85rem}
.pass{color:#2e7d32}.fail{color:#c62828;font-weight:600}.error{color:#6a1b9a;font-weight:600}
.warn{color:#ef6c00}.info{color:#455a64}.skip{color:#777}
.verdict{font-size:1.2rem;font-weight:700}
img.chart{max-width:100%;border:1px solid #eee}
td{overflow-wrap:anywhere}.nw{white-space:nowrap;overflow-wrap:normal}
.baseline{background:#fff3e0;border-left:4px solid #ef6c00;padding:.5rem 1rem;font-weight:600}
#todo{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem 1rem .5rem 2.5rem}#todo li{margin:.2rem 0}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _badge(verdict: str) -> str:
    return f'<span class="{_e(verdict)}">{_e(verdict)}</span>'


def _todo(report: AuditReport) -> Iterable[str]:
    """The same lines as the Markdown's to-do list; a fix's `command` shown as code."""
    if report.baseline_note:
        note = report.baseline_note
        yield f'<p class="baseline" id="baseline">{_e(note[0].upper() + note[1:])}.</p>'
    yield '<h2>To do</h2><ol id="todo">'
    lines = todo_lines(report)
    for line in lines:
        parts = line.split("`")
        yield "<li>" + "".join(f"<code>{_e(p)}</code>" if n % 2 else _e(p) for n, p in enumerate(parts)) + "</li>"
    yield "</ol>" if lines else "</ol><p>Nothing to do.</p>"


def _drift(report: AuditReport) -> Iterable[str]:
    yield "<h2>Drift</h2>"
    if report.baseline_note:
        yield f"<p>{_e(report.baseline_note[0].upper() + report.baseline_note[1:])}.</p>"
        return
    if not report.drift:
        yield f"<p>Nothing changed since the run of {_e(report.previous_run)}.</p>"
        return
    yield f"<p>Since the run of {_e(report.previous_run)}, one row per cause, worst first:</p>"
    yield '<table id="drift"><tr><th>severity</th><th>cause</th><th>image</th><th>releases</th><th>what</th></tr>'
    for d in report.drift:
        releases = ", ".join(f'<span class="nw">{_e(r)}</span>' for r in d.releases)
        yield (
            f'<tr><td>{_badge(d.severity)}</td><td class="nw kind">{_e(d.kind)}</td><td class="nw">{_e(d.image)}</td>'
            f"<td>{releases}</td><td>{_e(d.message)}</td></tr>"
        )
    yield "</table>"


def _releases(report: AuditReport) -> Iterable[str]:
    yield "<h2>Releases</h2>"
    for image in report.images:
        yield f"<h3>{_e(image.image)} <code>{_e(image.registry)}/{_e(image.repository)}</code></h3>"
        if image.error:
            yield f'<p class="error">could not list tags: {_e(image.error)}</p>'
            continue
        yield (
            f"<p>{len(image.tags)} tags on {len(set(image.tags.values()))} digests; {len(image.verified)} verified.</p>"
        )
        yield (
            '<table class="releases"><tr><th>release</th><th>tags</th><th>digest</th><th>created</th>'
            "<th>compressed</th><th>verdict</th><th>findings</th></tr>"
        )
        for r in (r for r in report.releases if r.image == image.image):
            notes = [f"{c.rule}: {c.message}" for c in r.checks if c.verdict in (Verdict.FAIL, Verdict.ERROR)]
            if r.error:
                notes.insert(0, r.error)
            tags = ", ".join(f'<span class="nw">{_e(t)}</span>' for t in r.tags)
            yield (
                f'<tr><td class="nw">{_e(r.label)}</td><td>{tags}</td><td><code>{_e(short(r.digest))}</code></td>'
                f'<td class="nw">{_e(r.created or "?")}</td><td class="nw">{_e(human_size(r.compressed_size))}</td>'
                f"<td>{_badge(r.verdict.value)}</td><td>{'<br>'.join(_e(n) for n in notes)}</td></tr>"
            )
        yield "</table>"


def render_html(report: AuditReport) -> str:
    png = base64.b64encode(render_png(report)).decode("ascii")
    counts = report.release_counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>imgcheck audit {_e(report.started_at)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>imgcheck audit — {_e(report.started_at)}</h1>",
        f'<p class="verdict">Verdict: {_badge(report.verdict.value)}</p>',
        f"<p>{len(report.releases)} releases verified ({_e(summary)}); policy <code>{_e(report.policy)}</code>"
        + (f"; shard {_e(report.shard)}" if report.shard else "")
        + "</p>",
        *_todo(report),
        *_drift(report),
        "<h2>Trends</h2>",
        f'<img class="chart" id="chart" alt="compressed size per release and verdicts per night" '
        f'src="data:image/png;base64,{png}">',
        *_releases(report),
        f"<footer><p>imgcheck {_e(report.imgcheck_version)}</p></footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
