"""What the CLI calls for `imgcheck audit` and `imgcheck audit merge`: run, compare, record, render.

Each returns the exit code (0 nothing fails and nothing drifted badly, 1 a failing release or bad
drift, 2 something could not be audited) and raises ImgcheckError when it cannot audit at all
(the CLI prints that on one line and exits 2).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from imgcheck import __version__
from imgcheck.audit.model import AuditReport, ImageInventory, Night, Release, from_dict
from imgcheck.audit.store import HistoryStore, default_history_path
from imgcheck.checks.interface import VerifyOptions
from imgcheck.errors import InputError, UsageError
from imgcheck.jsontext import loads
from imgcheck.policy.model import Policy

Progress = Callable[[str], None]
FORMATS = ("markdown", "json", "html")
SMOKE_MODES = ("none", "latest", "all")


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_since(text: str | None) -> datetime | None:
    """`2026-11-01` (midnight UTC) or an RFC 3339 time."""
    if text is None:
        return None
    from imgcheck.gather import parse_time

    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00Z"
    when = parse_time(value)
    if when is None:
        raise UsageError(f"--since {text!r}: expected a date (2026-11-01) or an RFC 3339 time (2026-11-01T12:00:00Z)")
    return when


def check_formats(output_format: str, report_files: Sequence[tuple[str, Path]]) -> None:
    for fmt in [output_format, *(f for f, _ in report_files)]:
        if fmt not in FORMATS:
            raise UsageError(f"audit format {fmt!r} is unknown (known: {', '.join(FORMATS)})")


def preflight(output_format: str, report_files: Sequence[tuple[str, Path]]) -> None:
    """Everything the reports need, checked before any registry work: a run that would fail to write its
    report must not audit for minutes first (and must never record a night nobody saw)."""
    check_formats(output_format, report_files)
    if "html" in (output_format, *(f for f, _ in report_files)):
        from imgcheck.audit.chart import require_pyplot

        require_pyplot()
    for fmt, path in report_files:
        check_writable(f"--report {fmt}={path}", path)


def check_writable(what: str, path: Path) -> None:
    """The report's folder exists (or is created now) and the file can be written there."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = err.strerror or err
        raise UsageError(f"cannot write {what}: its folder {path.parent} cannot be created ({why})") from None
    if path.is_dir():
        raise UsageError(f"cannot write {what}: it is a folder")
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise UsageError(f"cannot write {what}: {target} is not writable")


def render(report: AuditReport, fmt: str) -> str:
    if fmt == "json":
        from imgcheck.audit.render_json import render_json

        return render_json(report)
    if fmt == "html":
        from imgcheck.audit.render_html import render_html

        return render_html(report)
    from imgcheck.audit.render_markdown import render_markdown

    return render_markdown(report)


def emit(report: AuditReport, output_format: str, report_files: Sequence[tuple[str, Path]], out: TextIO | None) -> None:
    """Files first, then stdout: a failed write is an error before any verdict prints."""
    for fmt, path in report_files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(report, fmt), encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write --report {fmt}={path}: {err.strerror or err}") from None
    stream = out or sys.stdout
    stream.write(render(report, output_format))
    stream.flush()


def _open_history(history: Path | None, no_history: bool) -> HistoryStore | None:
    if no_history:
        return None
    return HistoryStore.open(history or default_history_path())


def _compare(report: AuditReport, store: HistoryStore | None, run_id: int | None) -> AuditReport:
    """Drift against the previous complete run and this run's row in the trend (nothing written yet)."""
    if store is None or run_id is None:
        return report
    from imgcheck.audit.drift import compute_drift

    previous = store.previous_run(before=run_id)
    if previous is not None:
        drift = compute_drift(previous, report.images, report.releases)
        report = replace(report, drift=drift, previous_run=previous.started_at)
    report = replace(report, drift_checked=True)
    nights = [*store.nights(), Night(report.started_at, report.release_counts())]
    return replace(report, history=tuple(nights))


def _publish(
    report: AuditReport,
    store: HistoryStore | None,
    run_id: int | None,
    output_format: str,
    report_files: Sequence[tuple[str, Path]],
    out: TextIO | None,
) -> None:
    """Every report first, the history last: a run whose report was not written (full disk, a killed
    job) stays `running`, so the next night still compares with the last night somebody saw."""
    emit(report, output_format, report_files, out)
    if store is not None and run_id is not None:
        store.finish_run(run_id, report, _stamp(datetime.now(UTC)))


def _ordered(images: Sequence[ImageInventory], releases: Sequence[Release]) -> tuple[Release, ...]:
    """Per image in policy order, newest release first."""
    position = {i.image: n for n, i in enumerate(images)}
    by_created = sorted(releases, key=lambda r: r.created or "", reverse=True)
    return tuple(sorted(by_created, key=lambda r: position.get(r.image, len(position))))


def run_audit(
    policy: Policy,
    options: VerifyOptions,
    *,
    tags: int | None = None,
    since: str | None = None,
    smoke: str | None = None,
    history: Path | None = None,
    no_history: bool = False,
    shard: str | None = None,
    output_format: str = "markdown",
    report_files: Sequence[tuple[str, Path]] = (),
    progress: Progress | None = None,
    now: datetime | None = None,
    out: TextIO | None = None,
) -> int:
    """`imgcheck audit`: verify every digest of every policy image once; drift and history unless sharded."""
    from imgcheck.audit.cache import CachingClient
    from imgcheck.audit.inventory import parse_shard
    from imgcheck.audit.runner import AuditOptions, audit_images

    preflight(output_format, report_files)
    if tags is not None and tags < 1:
        raise UsageError(f"--tags {tags}: expected a positive number of releases")
    mode = smoke or "none"
    if mode not in SMOKE_MODES:
        raise UsageError(f"--smoke {smoke!r}: expected one of {', '.join(SMOKE_MODES)}")
    bounds = AuditOptions(newest=tags, since=parse_since(since), smoke=mode, shard=parse_shard(shard))  # type: ignore[arg-type]
    say = progress or (lambda _m: None)
    started = now or datetime.now(UTC)
    store = _open_history(history, no_history)
    try:
        run_id = None
        if store is not None and bounds.shard is None:
            run_id = store.begin_run(_stamp(started), str(policy.path), __version__)
        known = store.last_tags(before=run_id) if store is not None else {}
        client = CachingClient(
            store,
            insecure=options.insecure,
            timeout=options.timeout,
            progress=say,
            schemes=options.schemes,
            deadline=options.deadline,
        )
        try:
            images, releases = audit_images(
                policy, options, bounds, client=client, now=started, progress=say, known_tags=known
            )
        finally:
            client.close()
        report = AuditReport(
            imgcheck_version=__version__,
            policy=str(policy.path),
            started_at=_stamp(started),
            images=tuple(images),
            releases=_ordered(images, releases),
            shard=shard.strip() if shard else None,
        )
        report = _compare(report, store, run_id)
        _publish(report, store, run_id, output_format, report_files, out)
    finally:
        if store is not None:
            store.close()
    return report.exit_code


def merge_reports(reports: Sequence[AuditReport]) -> AuditReport:
    """One report from every shard of one audit; a missing or foreign shard is an error."""
    from imgcheck.audit.inventory import parse_shard

    if not reports:
        raise UsageError("audit merge: no shard reports given (pass shard-*.json)")
    shards = [parse_shard(r.shard) for r in reports]
    if any(s is None for s in shards):
        raise InputError("audit merge: every input must be a shard report (written by `imgcheck audit --shard I/N`)")
    totals = {s[1] for s in shards if s}
    seen = sorted(s[0] for s in shards if s)
    # Counts first: a shard claiming `1/99999999999` must not build that range.
    if len(totals) != 1 or len(seen) != next(iter(totals)) or seen != list(range(1, len(seen) + 1)):
        raise InputError(
            f"audit merge: shards {seen} of {sorted(totals)} given; expected each of 1..N exactly once",
            hint="a shard that failed must be re-run: merging without it would leave digests unaudited",
        )
    if len({r.policy for r in reports}) != 1:
        raise InputError("audit merge: the shards were run with different policies")
    images: dict[str, ImageInventory] = {}
    for report in reports:
        for image in report.images:
            have = images.get(image.image)
            if have is None or have.error is not None:
                images[image.image] = image
            elif image.error is None:
                tags = {**image.tags, **have.tags}
                images[image.image] = replace(have, tags=tags, verified=have.verified + image.verified)
    ordered = [images[name] for name in dict.fromkeys(i.image for r in reports for i in r.images)]
    releases = [r for report in reports for r in report.releases]
    return AuditReport(
        imgcheck_version=__version__,
        policy=reports[0].policy,
        started_at=min(r.started_at for r in reports),
        images=tuple(ordered),
        releases=_ordered(ordered, releases),
    )


def read_report(path: Path) -> AuditReport:
    """A shard report another CI job wrote: JSON of sane depth whose text the history and stdout can hold."""
    try:
        doc = loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read shard report {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise InputError(f"shard report {path} is not JSON ({err})") from None
    _check_text(doc, str(path))
    return from_dict(doc, str(path))


MAX_DEPTH = 64
"""A real shard nests about 10 deep; rendering and recording far deeper details overflows the stack."""
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _check_text(doc: object, where: str) -> None:
    """No absurd nesting and no lone surrogates (`"\\ud800"` is valid JSON, but neither SQLite nor a
    UTF-8 stdout can hold it): each would crash the merge after the report was read."""
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                raise InputError(f"{where}: a string holds a lone UTF-16 surrogate; not a shard report imgcheck wrote")
        elif isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels; not a shard report imgcheck wrote")
            items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)


def run_merge(
    paths: Sequence[Path],
    *,
    history: Path | None = None,
    no_history: bool = False,
    output_format: str = "markdown",
    report_files: Sequence[tuple[str, Path]] = (),
    out: TextIO | None = None,
) -> int:
    """`imgcheck audit merge shard-*.json`: the one report, drift against history, and the history row."""
    preflight(output_format, report_files)
    report = merge_reports([read_report(p) for p in paths])
    store = _open_history(history, no_history)
    try:
        run_id = store.begin_run(report.started_at, report.policy, __version__) if store is not None else None
        report = _compare(report, store, run_id)
        _publish(report, store, run_id, output_format, report_files, out)
    finally:
        if store is not None:
            store.close()
    return report.exit_code
