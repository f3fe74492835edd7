"""`--format markdown`: a summary fit for a PR comment, the job summary or the nightly audit issue.

A heading with the overall verdict and counts, then a table per image (rule, verdict, message).
Verdicts are plain words (bad ones in bold), so the text reads the same in a terminal, an e-mail or
a screen reader. Cells are escaped so a message can never break the table or inject HTML; long
messages and the details of every non-passing check are folded into `<details>` blocks.
"""

from __future__ import annotations

import html
import json
import re

from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

MARKERS = {
    Verdict.PASS: "pass",
    Verdict.SKIP: "skip",
    Verdict.WARN: "**WARN**",
    Verdict.FAIL: "**FAIL**",
    Verdict.ERROR: "**ERROR**",
}
CELL_LIMIT = 300
"""Characters of a message shown in its table cell; the rest goes into its details block."""
DETAILS_LIMIT = 4000
"""Characters of one check's details JSON; GitHub caps a comment at 65,536 characters."""

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def escape_cell(text: str) -> str:
    """Text safe inside a table cell: no HTML, no Markdown emphasis, no column breaks, one line.

    Control characters (ANSI colour codes from smoke output) become visible `\\xNN` text.
    """
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = html.escape(text, quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\n", "<br>")


def _code(text: str) -> str:
    """An inline code span that survives backticks inside the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fenced(text: str, lang: str = "") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _label(check: CheckResult) -> str:
    return check.rule + (f" ({check.platform})" if check.platform else "")


def _cell(message: str) -> str:
    if len(message) <= CELL_LIMIT:
        return escape_cell(message)
    return escape_cell(message[: CELL_LIMIT - 1]) + "… (see details)"


def _details(image: ImageResult, check: CheckResult) -> str | None:
    """A folded block with the full message and the details, for checks a reader must act on."""
    if check.verdict in (Verdict.PASS, Verdict.SKIP):
        return None
    parts = []
    if len(check.message) > CELL_LIMIT:
        parts.append(_fenced(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", check.message), "text"))
    if check.details:
        body = json.dumps(dict(check.details), indent=2, default=str, ensure_ascii=False)
        if len(body) > DETAILS_LIMIT:
            body = body[:DETAILS_LIMIT] + f"\n… ({len(body) - DETAILS_LIMIT} more characters in the JSON report)"
        parts.append(_fenced(body, "json"))
    if not parts:
        return None
    summary = html.escape(f"{image.name}: {_label(check)} ({check.verdict.value})")
    return "<details><summary>" + summary + "</summary>\n\n" + "\n\n".join(parts) + "\n\n</details>"


def _image_section(image: ImageResult) -> list[str]:
    lines = [f"### {escape_cell(image.name)}: {MARKERS[image.verdict]}", ""]
    where = _code(image.reference) + (f" @ {_code(image.digest)}" if image.digest else "")
    lines += [where, ""]
    if image.error is not None:
        lines += [f"**ERROR**: could not verify this image: {escape_cell(image.error)}", ""]
    if image.checks:
        lines += ["| rule | verdict | message |", "|---|---|---|"]
        lines += [f"| {escape_cell(_label(c))} | {MARKERS[c.verdict]} | {_cell(c.message)} |" for c in image.checks]
        lines.append("")
    folded = [block for c in image.checks if (block := _details(image, c)) is not None]
    for block in folded:
        lines += [block, ""]
    return lines


def summary_line(report: Report) -> str:
    """`3 image(s): 2 pass, 1 fail · checks: 12 pass, 1 warn, 1 fail`: the numbers every format shows."""
    images = {v: sum(1 for i in report.images if i.verdict is v) for v in (Verdict.PASS, Verdict.FAIL, Verdict.ERROR)}
    image_part = ", ".join(f"{n} {v.value}" for v, n in images.items() if n) or "none verified"
    checks = ", ".join(f"{n} {v}" for v, n in report.counts().items() if n) or "none"
    return f"{len(report.images)} image(s): {image_part} · checks: {checks}"


def render(report: Report) -> str:
    lines = [f"## imgcheck: {MARKERS[report.verdict]}", "", summary_line(report), ""]
    meta = [f"policy {_code(report.policy)}"]
    if report.target:
        meta.append(f"target {_code(report.target)}")
    meta += [f"started {report.started_at}", f"imgcheck {report.imgcheck_version}"]
    lines += [" · ".join(meta), ""]
    if not report.images:
        lines += [
            "**ERROR**: the run verified no image; name images in the policy (nothing checked is never a pass).",
            "",
        ]
    for image in report.images:
        lines += _image_section(image)
    return "\n".join(lines).rstrip("\n") + "\n"
