"""Binding, freshness, evaluation and waiver hygiene into one verdict, message and details.

Pure: everything read from disk is in `Evidence` (built by the rule's collect), the clock is `now`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from imgcheck.facts import ImageFacts
from imgcheck.record import record
from imgcheck.verdict import Verdict
from imgcheck.vulns import message as msg
from imgcheck.vulns.binding import BindResult, bind_reports
from imgcheck.vulns.evaluate import Evaluation, Rules, evaluate
from imgcheck.vulns.fromregistry import AttachmentNote
from imgcheck.vulns.model import ScanReport
from imgcheck.vulns.vex import ImageIdentity, VexStatement
from imgcheck.vulns.waivers import Waiver

if TYPE_CHECKING:
    from imgcheck.vulns.scan import Scan

EXPIRY_WARNING = timedelta(days=14)
"""A waiver in use that ends sooner than this makes the rule warn."""
CLOCK_SKEW = timedelta(minutes=5)


@record
class Evidence:
    """What collect read from disk for one image (the check is pure over it)."""

    reports: tuple[ScanReport, ...] = ()
    searched: tuple[str, ...] = ()
    """The files/folders looked in, for the "no report" message."""
    skipped: tuple[str, ...] = ()
    """Files in report folders that are no scanner reports."""
    waivers: tuple[Waiver, ...] = ()
    vex: tuple[VexStatement, ...] = ()
    no_source: bool = False
    """Neither --trivy-report nor the policy's `report:` says where reports are."""
    attachments: tuple[AttachmentNote, ...] = ()
    """Every vulnerability attachment found in the registry (`attached:`), used or not, and why."""
    scans: tuple[Scan, ...] = ()
    """Trivy scans of this digest (`--scan`, `scan: true`), run now or reused; their reports are in `reports`."""


@record
class Judgement:
    verdict: Verdict
    message: str
    details: dict[str, Any]


def judge(
    evidence: Evidence,
    facts: ImageFacts,
    rules: Rules,
    *,
    max_age: timedelta | None,
    allow_unbound: bool,
    now: datetime,
) -> Judgement:
    if evidence.no_source:
        return Judgement(
            Verdict.ERROR,
            "no Trivy report source: set `report:` in the vulnerabilities rule or pass --trivy-report",
            {},
        )
    bound = bind_reports(list(evidence.reports), facts, allow_unbound=allow_unbound)
    details: dict[str, Any] = {
        "reports": [msg.report_row(b.report, b.how) for b in bound.used],
        "ignored_reports": [{**msg.report_row(r), "why": "for another image"} for r in bound.other]
        + [{**msg.report_row(r), "why": "names no image (set bind: none to accept)"} for r in bound.unbound_refused]
        + [{**msg.report_row(b.report, b.how), "why": "superseded by a newer report"} for b in bound.superseded],
        "skipped_files": list(evidence.skipped),
    }
    if evidence.attachments:
        details["attachments"] = [n.as_detail() for n in evidence.attachments]
    if evidence.scans:
        details["scans"] = [s.as_detail() for s in evidence.scans]
    broken = [n for n in evidence.attachments if n.status == "invalid"]
    if broken:
        return Judgement(
            Verdict.ERROR,
            f"attached report cannot be read: {_with_origin(broken[0])}; re-attach a valid report",
            details,
        )
    if not bound.used:
        unsupported = [n for n in evidence.attachments if n.status == "unsupported"]
        if unsupported:
            return Judgement(
                Verdict.ERROR, f"{unsupported[0].origin}: {unsupported[0].message}; no other report to use", details
            )
        return Judgement(Verdict.FAIL, _unbound_message(facts, evidence, bound), details)
    reports = [b.report for b in bound.used]
    age_problems, undated = _freshness(reports, max_age, now)
    if undated:
        return Judgement(
            Verdict.ERROR,
            f"{undated[0].source}: the report has no scan time, so max_age cannot be checked; "
            "re-scan with a current trivy",
            details,
        )
    ev = evaluate(
        [(b.report.source, v) for b in bound.used for v in b.report.findings],
        rules,
        list(evidence.waivers),
        list(evidence.vex),
        ImageIdentity.of(facts),
        now,
    )
    fail_parts, warn_parts, info_parts, waiver_details, expiring = _parts(ev, rules, evidence.waivers, now)
    verdict = Verdict.PASS
    if age_problems or fail_parts:
        verdict = Verdict.FAIL
    elif warn_parts or expiring:
        verdict = Verdict.WARN
    parts = age_problems + fail_parts + warn_parts + info_parts + _attachment_parts(evidence.attachments, bound)
    extra = [b.how for b in bound.used if b.key == "unbound" or b.platform]
    if extra:
        parts.append("bound by " + ", ".join(extra))
    if any(r.results_missing for r in reports):
        parts.append("report has no Results (Trivy writes none when it finds nothing)")
    just_scanned = [s.report for s in evidence.scans if s.ran]  # "scanned with trivy" says their age
    age = msg.age_text([r for r in reports if r not in just_scanned], now)
    if age and not age_problems:
        parts.append(age)
    parts += [s.describe() for s in evidence.scans]
    rows, left_out = msg.finding_rows(ev.judged)
    details.update(
        findings=rows,
        findings_not_listed=left_out,
        counts={
            "total": ev.total,
            "by_severity": dict(ev.by_severity),
            **{o: ev.count(o) for o in ("fail", "denied", "grace", "warn", "waived", "vex")},
            "not_fixable": ev.not_fixable,
            "below_min_cvss": ev.below_min_cvss,
        },
        waivers=waiver_details,
    )
    return Judgement(verdict, "; ".join(parts), details)


def _unbound_message(facts: ImageFacts, evidence: Evidence, bound: BindResult) -> str:
    text = f"no Trivy report for {facts.digest}; scan this digest"
    if evidence.searched:
        text += f" (looked in {', '.join(evidence.searched[:3])})"
    if bound.other:
        text += f"; ignored {len(bound.other)} report(s) for other images"
    if bound.unbound_refused:
        text += f"; {len(bound.unbound_refused)} report(s) name no image (fs scan?): set `bind: none` to accept them"
    ignored = [n for n in evidence.attachments if n.status == "ignored"]
    if ignored:
        text += f"; ignored {len(ignored)} attachment(s): " + "; ".join(f"{n.origin}: {n.message}" for n in ignored[:2])
    return text


def _with_origin(note: AttachmentNote) -> str:
    return note.message if note.origin in note.message else f"{note.origin}: {note.message}"


def _attachment_parts(notes: tuple[AttachmentNote, ...], bound: BindResult) -> list[str]:
    """Which attached reports spoke for the image (unsigned ones said so) and which were refused."""
    used = {b.report.source for b in bound.used}
    parts = []
    unsigned = [n for n in notes if n.status == "unsigned" and any(n.origin in s for s in used)]
    if unsigned:
        parts.append("UNSIGNED attached report used (attached: unsigned): " + ", ".join(n.origin for n in unsigned))
    signed = [n for n in notes if n.status == "signed" and any(n.origin in s for s in used)]
    if signed:
        parts.append("signed attached report: " + ", ".join(n.origin for n in signed))
    ignored = [n for n in notes if n.status in ("ignored", "unsupported")]
    if ignored:
        parts.append(
            f"ignored {len(ignored)} attachment(s): " + "; ".join(f"{n.origin}: {n.message}" for n in ignored[:2])
        )
    return parts


def _freshness(
    reports: list[ScanReport], max_age: timedelta | None, now: datetime
) -> tuple[list[str], list[ScanReport]]:
    problems: list[str] = []
    undated: list[ScanReport] = []
    for r in reports:
        if r.created_at is None:
            if max_age is not None:
                undated.append(r)
            continue
        age = now - r.created_at
        if max_age is not None and age < -CLOCK_SKEW:
            problems.append(
                f"report {r.source} is dated {r.created_at.isoformat()}, in the future; check the scanner clock"
            )
        elif max_age is not None and age > max_age:
            via = " (file time)" if r.created_from == "file time" else ""
            problems.append(
                f"report is {msg.age_words(age.total_seconds())} old{via}, max {msg.limit_text(max_age)}; re-scan"
            )
    return problems, undated


def _parts(
    ev: Evaluation, rules: Rules, waivers: tuple[Waiver, ...], now: datetime
) -> tuple[list[str], list[str], list[str], dict[str, Any], list[Waiver]]:
    by = {o: [j for j in ev.judged if j.outcome == o] for o in ("denied", "fail", "grace", "warn", "waived", "vex")}
    fail_parts: list[str] = []
    if by["denied"]:
        fail_parts.append(f"{len(by['denied'])} denied ({msg.examples(by['denied'])})")
    fail_parts += msg.by_severity(by["fail"], " fixable" if rules.fixable_only else "")
    warn_parts = msg.by_severity(by["warn"], " (warn)")
    if by["grace"]:
        until = min(j.grace_until for j in by["grace"] if j.grace_until)
        warn_parts.append(f"{len(by['grace'])} in grace until {until.isoformat()} ({msg.examples(by['grace'])})")
    info: list[str] = []
    if not fail_parts and not warn_parts:
        label = "/".join(sorted(rules.fail_on | rules.warn_on)) or "counted"
        info.append(f"no {label}{' fixable' if rules.fixable_only else ''} findings (of {ev.total})")
    if by["waived"]:
        first = min(
            (j.waiver for j in by["waived"] if j.waiver),
            key=lambda w: w.ends or datetime.max.replace(tzinfo=now.tzinfo),
        )
        info.append(f"{len(by['waived'])} waived ({'expires ' if first.expires else ''}{msg.waiver_date(first)})")
    if by["vex"]:
        sources = sorted({j.vex.source for j in by["vex"] if j.vex})
        info.append(f"{len(by['vex'])} suppressed by VEX ({sources[0]}{' +more' if len(sources) > 1 else ''})")
    in_use = {j.waiver for j in by["waived"] if j.waiver}
    expiring = [w for w in in_use if w.ends is not None and w.ends - now <= EXPIRY_WARNING]
    for w in sorted(expiring, key=lambda w: w.ends or now)[:3]:
        left = ((w.ends or now) - now).total_seconds()
        warn_parts.append(f"waiver {w.id} expires {msg.waiver_date(w)} (in {msg.age_words(left)}); renew or fix")
    for w in list(ev.expired_hits)[:3]:
        info.append(f"waiver {w.id} expired {msg.waiver_date(w)} and no longer applies")
    stale = [w for w in waivers if not ev.waiver_hits[w] and not ev.expired_hits[w]]
    if stale:
        ids = ", ".join(w.id for w in stale[:5]) + (f" +{len(stale) - 5}" if len(stale) > 5 else "")
        info.append(f"{len(stale)} stale waiver{'s' if len(stale) > 1 else ''} ({ids}) matched nothing")
    details = {
        "active": [{**w.as_detail(), "matched": n} for w, n in ev.waiver_hits.items()],
        "expired": [{**w.as_detail(), "matched": n} for w, n in ev.expired_hits.items()],
        "expiring_soon": [w.as_detail() for w in expiring],
        "stale": [w.as_detail() for w in stale],
        "without_expiry": [w.as_detail() for w in waivers if w.expires is None],
    }
    return fail_parts, warn_parts, info, details, expiring
