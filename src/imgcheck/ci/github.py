"""GitHub Actions: the job summary and annotations, so one run feeds the run page as well as the reports.

`publish` does nothing outside Actions. Inside (`GITHUB_ACTIONS=true`) it appends the Markdown report
to `$GITHUB_STEP_SUMMARY` and prints `::error` / `::warning` workflow commands on stderr: the runner
reads commands on both streams, and stdout must stay a pure report (`--format json > report.json`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

from imgcheck.ci.workflow_commands import command
from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

SUMMARY_LIMIT = 1_000_000
"""Bytes: GitHub rejects a step summary over 1 MiB, so a longer one is cut with a note."""
_COMMANDS = {Verdict.FAIL: "error", Verdict.ERROR: "error", Verdict.WARN: "warning"}


def annotation_file(policy: str, workspace: str | None, cwd: Path | None = None) -> str | None:
    """The policy path relative to the workspace, or None when it lies outside (e.g. the bundled one)."""
    if not workspace:
        return None
    path = Path(policy)
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    try:
        return path.resolve().relative_to(Path(workspace).resolve()).as_posix()
    except ValueError:
        return None


def _title(image: ImageResult, check: CheckResult) -> str:
    where = f"{check.rule} ({check.platform})" if check.platform else check.rule
    return f"imgcheck {check.verdict.value}: {image.name} {where}"


def annotation_lines(report: Report, file: str | None = None) -> Iterator[str]:
    """Errors first, then warnings (GitHub shows only the first 10 of each per step), then one notice."""
    failing: list[str] = []
    warning: list[str] = []
    for image in report.images:
        qualified = f"{image.reference}@{image.digest}" if image.digest else image.reference
        if image.error is not None:
            title = f"imgcheck error: {image.name} could not be verified"
            failing.append(command("error", f"{image.error} [{qualified}]", {"file": file, "title": title}))
        for check in image.checks:
            name = _COMMANDS.get(check.verdict)
            if name is None:
                continue
            line = command(name, f"{check.message} [{qualified}]", {"file": file, "title": _title(image, check)})
            (failing if name == "error" else warning).append(line)
    if not report.images:
        failing.append(command("error", "the run verified no image: name images in the policy", {"file": file}))
    yield from failing
    yield from warning
    from imgcheck.report.markdown import summary_line

    yield command("notice", summary_line(report), {"title": f"imgcheck: {report.verdict.value.upper()}"})


def _fit(markdown: str) -> str:
    data = markdown.encode("utf-8")
    if len(data) <= SUMMARY_LIMIT:
        return markdown
    note = "\n\n**Summary cut at GitHub's 1 MiB limit: see the JSON, JUnit or SARIF report for the rest.**\n"
    return data[: SUMMARY_LIMIT - len(note.encode())].decode("utf-8", errors="ignore") + note


def append_summary(report: Report, path: str) -> None:
    """Append (never overwrite: earlier steps' summaries share the file) the Markdown report."""
    from imgcheck.report.markdown import render

    with open(path, "a", encoding="utf-8") as handle:
        handle.write(_fit(render(report)) + "\n")


def publish(report: Report, env: Mapping[str, str] | None = None, stderr: TextIO | None = None) -> bool:
    """Summary and annotations when running in GitHub Actions; returns whether it did anything.

    A summary that cannot be written is a warning, not an error: the verdict is already decided and
    the reports carry it; hiding it behind a file-system problem would help no one.
    """
    env = os.environ if env is None else env
    out = sys.stderr if stderr is None else stderr
    if env.get("GITHUB_ACTIONS") != "true":
        return False
    for line in annotation_lines(report, annotation_file(report.policy, env.get("GITHUB_WORKSPACE"))):
        print(line, file=out)
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            append_summary(report, summary)
        except OSError as err:
            print(command("warning", f"imgcheck: cannot append the job summary to {summary}: {err}"), file=out)
    out.flush()
    return True
