"""What changed since the previous complete run (audit/causes.py groups it by cause, worst first).

Tags: a release or build tag (`v1.4.2`, `sha-…`, `main-<sha>`) that moved is a failure (they must be
immutable); `latest`/`main` moving is expected and shown. A release tag that disappeared fails; a
build tag that disappeared warns (pruning old builds is normal). Verdicts, per digest: a signature,
SBOM or provenance attestation that used to verify and no longer does; any other rule that went from
passing to failing, with the new message; a fail-level CVE that the last run did not report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from imgcheck.audit.inventory import is_immutable_tag
from imgcheck.audit.model import DriftItem, DriftKind, ImageInventory, Release, Severity
from imgcheck.audit.store import PreviousRun
from imgcheck.semver import parse_release

ATTACHMENT_RULES = ("signature", "sbom", "provenance")
_GOOD = ("pass", "warn", "skip")
_BAD = ("fail", "error")
FAIL_OUTCOMES = ("fail", "denied")


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _named(digest: str, tags: Mapping[str, str], moved: str) -> str:
    """`3f2a9c1d8e4b (v1.4.2)`: a digest with the release it carries, so a move reads as one."""
    from imgcheck.semver import highest

    top = highest([t for t, d in tags.items() if d == digest and t != moved], include_prereleases=True)
    return f"{_short(digest)} ({top.tag})" if top else _short(digest)


def tag_drift(image: str, before: Mapping[str, str], now: Mapping[str, str]) -> list[DriftItem]:
    items: list[DriftItem] = []
    for tag in sorted(set(before) | set(now)):
        old, new = before.get(tag), now.get(tag)
        if old == new:
            continue
        if old is not None and new is not None:
            bad = is_immutable_tag(tag)
            why = "; release and build tags must never move: find out who re-pushed it" if bad else ""
            items.append(
                DriftItem(
                    "tag-moved",
                    "fail" if bad else "info",
                    image,
                    tag,
                    f"{image}:{tag} moved from {_named(old, before, tag)} to {_named(new, now, tag)}{why}",
                    {"from": old, "to": new},
                )
            )
        elif old is not None:
            severity: Severity = "fail" if parse_release(tag) else "warn" if is_immutable_tag(tag) else "info"
            items.append(
                DriftItem(
                    "tag-disappeared",
                    severity,
                    image,
                    tag,
                    f"{image}:{tag} (was {_short(old)}) disappeared from the registry",
                    {"from": old},
                )
            )
        elif new is not None:
            items.append(
                DriftItem("tag-appeared", "info", image, tag, f"{image}:{tag} is new ({_short(new)})", {"to": new})
            )
    return items


def _worst(rows: Iterable[tuple[str, str, Mapping[str, Any]]]) -> tuple[str, str]:
    """A rule's verdict over its findings (several per rule when per platform) and its first bad message."""
    rows = list(rows)
    for verdict in ("error", "fail"):
        for row in rows:
            if row[0] == verdict:
                return verdict, row[1]
    return (rows[0][0], rows[0][1]) if rows else ("skip", "")


def _fail_cves(details: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for detail in details:
        findings = detail.get("findings")
        for row in findings if isinstance(findings, list) else []:  # a shard is outside input
            if isinstance(row, Mapping) and row.get("outcome") in FAIL_OUTCOMES:
                out[(str(row.get("id")), str(row.get("package")))] = row
    return out


def _scan_db(details: Iterable[Mapping[str, Any]]) -> str | None:
    """The newest Trivy DB (UpdatedAt) of the scans a vulnerabilities verdict judged (`--scan`), if any."""
    found = []
    for detail in details:
        scans = detail.get("scans")
        for scan in scans if isinstance(scans, list) else []:  # a shard is outside input
            if isinstance(scan, Mapping) and scan.get("db_updated_at"):
                found.append(str(scan["db_updated_at"]))
    return max(found) if found else None


def _db_text(now: str | None, before: str | None) -> str:
    """`; scanned with the DB of 2026-11-21, previous run's DB of 2026-11-20` (trivy's DB dates, day only)."""
    if not now:
        return ""
    return f"; scanned with the DB of {now[:10]}" + (f", previous run's DB of {before[:10]}" if before else "")


def release_drift(release: Release, before: Mapping[str, list[tuple[str, str, Mapping[str, Any]]]]) -> list[DriftItem]:
    """A digest verified last night too: what got worse."""
    items: list[DriftItem] = []
    where = f"{release.image} {release.label} ({_short(release.digest)})"
    now_rules: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for check in release.checks:
        now_rules.setdefault(check.rule, []).append((check.verdict.value, check.message, check.details))
    for rule, rows in now_rules.items():
        if rule not in before:
            continue
        old_verdict, _ = _worst(before[rule])
        new_verdict, message = _worst(rows)
        new_cves = {}
        if rule == "vulnerabilities":
            old_cves = _fail_cves(r[2] for r in before[rule])
            new_cves = {k: v for k, v in _fail_cves(r[2] for r in rows).items() if k not in old_cves}
            dbs = _scan_db(r[2] for r in rows), _scan_db(r[2] for r in before[rule])
            for (cve, package), row in sorted(new_cves.items()):
                items.append(
                    DriftItem(
                        "new-cve",
                        "fail",
                        release.image,
                        release.digest,
                        f"{where}: new {row.get('severity', '')} {cve} in {package} {row.get('installed', '')}"
                        f" (fixed in {row.get('fixed') or 'no release yet'}){_db_text(*dbs)}",
                        {
                            "id": cve,
                            "package": package,
                            "tags": list(release.tags),
                            "release": release.label,
                            "finding": dict(row),
                        }
                        | ({"scan_db": dbs[0], "previous_scan_db": dbs[1]} if dbs[0] else {}),
                    )
                )
        if old_verdict not in _GOOD or new_verdict not in _BAD or new_cves:
            continue
        kind: DriftKind = "attachment-vanished" if rule in ATTACHMENT_RULES else "verdict-regressed"
        what = f"the {rule} no longer verifies" if kind == "attachment-vanished" else f"{rule} regressed"
        items.append(
            DriftItem(
                kind,
                "fail",
                release.image,
                release.digest,
                f"{where}: {what} ({old_verdict} → {new_verdict}): {message}",
                {
                    "rule": rule,
                    "from": old_verdict,
                    "to": new_verdict,
                    "tags": list(release.tags),
                    "release": release.label,
                    "message": message,
                },
            )
        )
    return items


def compute_drift(
    previous: PreviousRun, images: Iterable[ImageInventory], releases: Iterable[Release]
) -> tuple[DriftItem, ...]:
    items: list[DriftItem] = []
    images = list(images)
    for image in images:
        if image.error is None and image.image in previous.tags:
            items += tag_drift(image.image, previous.tags[image.image], image.tags)
    for release in releases:
        before = previous.verdicts.get((release.image, release.digest))
        if before:
            items += release_drift(release, before)
    from imgcheck.audit.causes import group_causes

    return group_causes(items, {i.image: f"{i.registry}/{i.repository}" for i in images})
