"""Wording: the one-line message parts and the bounded `details` rows of the vulnerabilities rule."""

from __future__ import annotations

from datetime import datetime, timedelta

from imgcheck.policy.types import format_duration
from imgcheck.vulns.evaluate import Judged
from imgcheck.vulns.model import SEVERITIES, ScanReport
from imgcheck.vulns.waivers import Waiver

MAX_DETAIL_FINDINGS = 200
"""Findings listed in `details`; the counts always cover all of them."""
_DETAIL_ORDER = {"denied": 0, "fail": 1, "grace": 2, "warn": 3, "waived": 4, "vex": 5}


def examples(items: list[Judged], max_ids: int = 3) -> str:
    """`CVE-1, CVE-2 in openssl 3.0.1 → 3.0.2; +2 more packages` (the first package, then a count)."""
    groups: dict[str, list[Judged]] = {}
    for j in items:
        groups.setdefault(j.vuln.package, []).append(j)
    package, group = next(iter(groups.items()))
    ids = list(dict.fromkeys(j.vuln.id for j in group))
    installed = list(dict.fromkeys(j.vuln.installed for j in group if j.vuln.installed))
    fixed = list(dict.fromkeys(j.vuln.fixed for j in group if j.vuln.fixed))
    text = ", ".join(ids[:max_ids]) + (f" +{len(ids) - max_ids}" if len(ids) > max_ids else "")
    text += f" in {package} {'/'.join(installed[:2])}".rstrip()
    text += f" → {'/'.join(fixed[:2])}{'/…' if len(fixed) > 2 else ''}" if fixed else ", no fix yet"
    if len(groups) > 1:
        text += f"; +{len(groups) - 1} more package{'s' if len(groups) > 2 else ''}"
    return text


def age_words(seconds: float) -> str:
    """A report's age, rounded the way people say it: `40 s`, `5 min`, `2 h`, `3 d`; never `0 s`."""
    seconds = max(0.0, seconds)
    for unit, size, threshold in (("d", 86400, 2 * 86400), ("h", 3600, 3600), ("min", 60, 60)):
        if seconds >= threshold:
            return f"{round(seconds / size)} {unit}"
    return f"{round(seconds)} s" if round(seconds) else "under a second"


def by_severity(items: list[Judged], label: str) -> list[str]:
    """One part per severity, worst first: `2 CRITICAL fixable (CVE-… in pkg 1 → 2)`."""
    parts = []
    for sev in SEVERITIES:
        group = [j for j in items if j.vuln.severity == sev]
        if group:
            parts.append(f"{len(group)} {sev}{label} ({examples(group)})")
    return parts


def limit_text(limit: timedelta) -> str:
    """A configured duration as users write it: `24h` reads `24 h`, not `1 d`."""
    seconds = int(limit.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size and (unit != "d" or seconds >= 2 * 86400):
            return f"{seconds // size} {unit}"
    return format_duration(limit.total_seconds())


def waiver_date(w: Waiver) -> str:
    return w.expires.isoformat() if w.expires else "no expiry"


def age_text(reports: list[ScanReport], now: datetime) -> str:
    dated = [r for r in reports if r.created_at is not None]
    if not dated:
        return ""
    seconds = sorted((now - r.created_at).total_seconds() for r in dated if r.created_at)
    ages = [age_words(s) for s in seconds]
    span = ages[0] if len(set(ages)) == 1 else ", ".join(dict.fromkeys(ages))
    noun = "report" if len(dated) == 1 else f"{len(dated)} reports"
    via = " (age from file time)" if any(r.created_from == "file time" for r in dated) else ""
    if span == "under a second":  # "report 0 s old" is no sentence
        return f"{noun} written just now{via}"
    return f"{noun} {span} old{via}"


def finding_row(j: Judged) -> dict[str, object]:
    v = j.vuln
    row: dict[str, object] = {
        "id": v.id,
        "package": v.package,
        "installed": v.installed,
        "fixed": v.fixed,
        "severity": v.severity,
        "status": v.status,
        "target": v.target,
        "cvss": v.cvss,
        "outcome": j.outcome,
        "waiver": j.waiver.as_detail() if j.waiver else None,
        "vex": j.vex.as_detail() if j.vex else None,
        "report": j.report,
    }
    if j.grace_until:
        row["grace_until"] = j.grace_until.isoformat()
    return row


def finding_rows(judged: list[Judged]) -> tuple[list[dict[str, object]], int]:
    """The first MAX_DETAIL_FINDINGS rows, most serious first, and how many were left out."""
    ordered = sorted(judged, key=lambda j: (_DETAIL_ORDER[j.outcome], SEVERITIES.index(j.vuln.severity)))
    return [finding_row(j) for j in ordered[:MAX_DETAIL_FINDINGS]], max(0, len(ordered) - MAX_DETAIL_FINDINGS)


def report_row(r: ScanReport, how: str | None = None) -> dict[str, object]:
    return {
        "source": r.source,
        "format": r.format,
        "artifact": r.artifact_name,
        "digests": list(r.digests),
        "image_id": r.image_id,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "created_from": r.created_from,
        "findings": len(r.findings),
        "bound_by": how,
    }
