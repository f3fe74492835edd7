"""The audit report: one result per digest (with every tag on it), the tag inventory, drift and trend.

It round-trips through JSON (`imgcheck.audit/v1`) because shards write it and `audit merge` reads it
back; every renderer (Markdown, HTML, JSON) shows the same numbers from this one model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field
from functools import cached_property
from typing import Any, Literal

from imgcheck.errors import InputError
from imgcheck.policy.model import IMAGE_NAME
from imgcheck.record import record
from imgcheck.registry.reference import is_tag
from imgcheck.report.model import CheckResult
from imgcheck.verdict import Verdict, exit_code, worst

AUDIT_SCHEMA = "imgcheck.audit/v1"

DriftKind = Literal[
    "tag-moved", "tag-disappeared", "tag-appeared", "attachment-vanished", "verdict-regressed", "new-cve"
]
Severity = Literal["fail", "warn", "info"]
SEVERITY_ORDER: dict[str, int] = {"fail": 0, "warn": 1, "info": 2}
DriftGroup = Literal["immutable-tag", "new-cve", "regression", "warning", "change"]
GROUP_ORDER: dict[str, int] = {"immutable-tag": 0, "new-cve": 1, "regression": 2, "warning": 3, "change": 4}
"""Worst first: a re-pushed or deleted release needs a person; a new fail-level CVE a rebuild; then what
regressed; then what only changed."""


@record
class Release:
    """One digest of one image, verified once, with every tag that points at it."""

    image: str
    registry: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    created: str | None = None
    """The image config's `created` (first platform)."""
    compressed_size: int | None = None
    """The largest platform's config + layers, as the manifest declares them."""
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None
    """Why the digest could not be verified at all."""
    smoke: bool = False
    """Whether the smoke rule was allowed to run for this digest (`--smoke latest`)."""

    @cached_property
    def verdict(self) -> Verdict:
        """Worked out once (frozen: it cannot change): the report, the history and the exit code ask."""
        if self.error is not None:
            return Verdict.ERROR
        return worst([c.verdict for c in self.checks])

    @property
    def label(self) -> str:
        """The most telling tag: a semver release, else a build tag, else the short digest."""
        from imgcheck.semver import highest

        top = highest(self.tags, include_prereleases=True)
        if top is not None:
            return top.tag
        named = [t for t in self.tags if t not in ("latest", "main")]
        return (named or list(self.tags) or [self.digest.split(":", 1)[-1][:12]])[0]


@record
class ImageInventory:
    """Every tag of one policy image as listed and resolved at the start of the run."""

    image: str
    registry: str
    repository: str
    tags: Mapping[str, str] = field(default_factory=dict)
    """tag -> digest."""
    verified: tuple[str, ...] = ()
    """Digests verified by this run (after --tags/--since/--shard)."""
    not_selected: int = 0
    """Digests left out by --tags/--since (not by --shard)."""
    error: str | None = None
    """Why the tags could not be listed (then nothing of this image was audited)."""


@record
class DriftItem:
    """One change against the previous run; `fail` severity fails the audit."""

    kind: DriftKind
    severity: Severity
    image: str
    subject: str
    """The tag or the digest the change is about."""
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    group: DriftGroup = "change"
    """Which kind of cause this row is; rows are ordered by it (GROUP_ORDER)."""
    releases: tuple[str, ...] = ()
    """Every release this one cause affects (`v1.4.1`, or `consumer v1.4.1` in another image)."""
    fix: str | None = None
    """What a person does about it (a command where there is one): the report's to-do line."""


@record
class Night:
    """One earlier (or this) run, for the trend chart: releases per verdict."""

    started_at: str
    counts: Mapping[str, int]


@record
class AuditReport:
    imgcheck_version: str
    policy: str
    started_at: str
    images: tuple[ImageInventory, ...]
    releases: tuple[Release, ...]
    drift: tuple[DriftItem, ...] = ()
    previous_run: str | None = None
    """`started_at` of the run drift was computed against; None: first run or no history."""
    drift_checked: bool = False
    """False for shards and runs without history: no drift was looked for."""
    shard: str | None = None
    """`i/n` for a shard's partial report; None for a whole audit (or a merge)."""
    history: tuple[Night, ...] = ()

    @cached_property
    def verdict(self) -> Verdict:
        """Worst release; an image whose tags could not be listed is an error; bad drift fails."""
        if not self.images:
            return Verdict.ERROR
        verdicts = [r.verdict for r in self.releases]
        verdicts += [Verdict.ERROR for i in self.images if i.error]
        if any(d.severity == "fail" for d in self.drift):
            verdicts.append(Verdict.FAIL)
        return worst(verdicts)

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict)

    def release_counts(self) -> dict[str, int]:
        """Releases per rolled-up verdict (pass/fail/error)."""
        counts = {"pass": 0, "fail": 0, "error": 0}
        for release in self.releases:
            counts[release.verdict.rollup().value] += 1
        return counts

    @property
    def baseline_note(self) -> str | None:
        """Why drift was not checked, said at the top of every report; None when it was."""
        if self.shard:
            return None  # a shard says so itself; the merge checks drift
        if not self.drift_checked:
            return "no baseline: drift not checked (this run kept no history)"
        if self.previous_run is None:
            return (
                "no baseline: drift not checked (the history holds no earlier complete run;"
                " an empty or lost history looks like this)"
            )
        return None

    def actionable(self) -> list[DriftItem]:
        """Every failing or warning cause with a fix, worst first."""
        return [d for d in self.drift if d.severity != "info" and d.fix]

    def todo(self, lines: int = 5) -> list[DriftItem]:
        """The causes the to-do list names: with its "N more" and "releases fail" lines, `lines` in all."""
        room = lines - (1 if any(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.releases) else 0)
        found = self.actionable()
        return found if len(found) <= room else found[: room - 1]

    def drift_counts(self) -> dict[str, int]:
        counts = {"fail": 0, "warn": 0, "info": 0}
        for item in self.drift:
            counts[item.severity] += 1
        return counts


# --- JSON (imgcheck.audit/v1) --------------------------------------------------------------------------


def check_to_dict(check: CheckResult) -> dict[str, Any]:
    return {
        "rule": check.rule,
        "verdict": check.verdict.value,
        "message": check.message,
        "platform": check.platform,
        "details": dict(check.details),
    }


def to_dict(report: AuditReport) -> dict[str, Any]:
    from imgcheck.audit.causes import headline

    return {
        "schema": AUDIT_SCHEMA,
        "imgcheck_version": report.imgcheck_version,
        "policy": report.policy,
        "started_at": report.started_at,
        "shard": report.shard,
        "verdict": report.verdict.value,
        "counts": {"releases": report.release_counts(), "drift": report.drift_counts()},
        "drift_checked": report.drift_checked,
        "previous_run": report.previous_run,
        "drift": [
            {
                "kind": d.kind,
                "severity": d.severity,
                "image": d.image,
                "subject": d.subject,
                "message": d.message,
                "details": dict(d.details),
                "group": d.group,
                "releases": list(d.releases),
                "fix": d.fix,
            }
            for d in report.drift
        ],
        "no_baseline": report.baseline_note,
        "todo": [
            {"image": d.image, "subject": d.subject, "releases": list(d.releases), "what": headline(d), "fix": d.fix}
            for d in report.todo()
        ],
        "images": [
            {
                "name": i.image,
                "registry": i.registry,
                "repository": i.repository,
                "tags": dict(sorted(i.tags.items())),
                "verified": list(i.verified),
                "not_selected": i.not_selected,
                "error": i.error,
            }
            for i in report.images
        ],
        "releases": [
            {
                "image": r.image,
                "registry": r.registry,
                "repository": r.repository,
                "digest": r.digest,
                "tags": list(r.tags),
                "created": r.created,
                "compressed_size": r.compressed_size,
                "verdict": r.verdict.value,
                "smoke": r.smoke,
                "error": r.error,
                "checks": [check_to_dict(c) for c in r.checks],
            }
            for r in report.releases
        ],
        "history": [{"started_at": n.started_at, "counts": dict(n.counts)} for n in report.history],
    }


SIZE_LIMIT = 2**63 - 1
"""The largest count or size the history's SQLite INTEGER columns hold."""


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise InputError(f"{where}: `{key}` is missing or malformed; expected an {AUDIT_SCHEMA} document")
    return value


def _optional(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """A field that may be absent or null; anything else must be a `kind` (a shard is read from outside:
    a wrong type here would crash the merge's sorting, rendering or history write much later)."""
    value = doc.get(key)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise InputError(f"{where}: `{key}` is malformed; expected an {AUDIT_SCHEMA} document")
    return value


def _count(doc: Mapping[str, Any], key: str, where: str) -> int | None:
    value: int | None = _optional(doc, key, int, where)
    if value is not None and not 0 <= value <= SIZE_LIMIT:
        raise InputError(f"{where}: `{key}` {value} is out of range; expected an {AUDIT_SCHEMA} document")
    return value


def _strings(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _get(doc, key, list, where)
    if not all(isinstance(item, str) for item in items):
        raise InputError(f"{where}: `{key}` must be a list of strings; expected an {AUDIT_SCHEMA} document")
    return tuple(items)


def _image_name(doc: Mapping[str, Any], key: str, where: str) -> str:
    """Names and tags are shown bare (Markdown headings, chart labels): only what a policy and a registry allow."""
    name: str = _get(doc, key, str, where)
    if not IMAGE_NAME.fullmatch(name):
        raise InputError(f"{where}: `{key}` {name[:80]!r} is not an image name a policy allows")
    return name


def _tag_map(doc: Mapping[str, Any], where: str) -> dict[str, str]:
    tags: dict[str, Any] = _get(doc, "tags", dict, where)
    _check_tags(tags, where)
    return {tag: str(digest) for tag, digest in tags.items()}


def _tag_list(doc: Mapping[str, Any], where: str) -> tuple[str, ...]:
    tags = _strings(doc, "tags", where)
    _check_tags(tags, where)
    return tags


def _check_tags(tags: Iterable[str], where: str) -> None:
    bad = next((tag for tag in tags if not is_tag(tag)), None)
    if bad is not None:
        raise InputError(f"{where}: {bad[:80]!r} is not a tag; expected an {AUDIT_SCHEMA} document")


def _objects(doc: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _get(doc, key, list, where)
    if not all(isinstance(item, dict) for item in items):
        raise InputError(f"{where}: `{key}` must be a list of objects; expected an {AUDIT_SCHEMA} document")
    return items


def check_from_dict(doc: Mapping[str, Any], where: str) -> CheckResult:
    try:
        verdict = Verdict(str(doc.get("verdict")))
    except ValueError:
        raise InputError(f"{where}: unknown verdict {doc.get('verdict')!r}") from None
    return CheckResult(
        rule=_get(doc, "rule", str, where),
        verdict=verdict,
        message=_get(doc, "message", str, where),
        platform=doc.get("platform") if isinstance(doc.get("platform"), str) else None,
        details=details if isinstance(details := doc.get("details"), dict) else {},
    )


def from_dict(doc: Any, where: str) -> AuditReport:
    """Read back a report written by `to_dict` (a shard's output); InputError when it is not one."""
    if not isinstance(doc, dict) or doc.get("schema") != AUDIT_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(
            f"{where}: not an {AUDIT_SCHEMA} report (schema: {found!r})", hint="pass `audit --format json` output"
        )
    images = tuple(
        ImageInventory(
            image=_image_name(i, "name", where),
            registry=_get(i, "registry", str, where),
            repository=_get(i, "repository", str, where),
            tags=_tag_map(i, where),
            verified=_strings(i, "verified", where),
            not_selected=_count(i, "not_selected", where) or 0,
            error=_optional(i, "error", str, where),
        )
        for i in _objects(doc, "images", where)
    )
    releases = tuple(
        Release(
            image=_image_name(r, "image", where),
            registry=_get(r, "registry", str, where),
            repository=_get(r, "repository", str, where),
            digest=_get(r, "digest", str, where),
            tags=_tag_list(r, where),
            created=_optional(r, "created", str, where),
            compressed_size=_count(r, "compressed_size", where),
            checks=tuple(check_from_dict(c, where) for c in _objects(r, "checks", where)),
            error=_optional(r, "error", str, where),
            smoke=bool(r.get("smoke")),
        )
        for r in _objects(doc, "releases", where)
    )
    return AuditReport(
        imgcheck_version=_get(doc, "imgcheck_version", str, where),
        policy=_get(doc, "policy", str, where),
        started_at=_get(doc, "started_at", str, where),
        images=images,
        releases=releases,
        shard=_optional(doc, "shard", str, where),
    )
