"""The pure verdict over bound reports: deny list, VEX, waivers, severities, fixable-only, CVSS, grace.

Order per finding, and why:
1. `deny` first: a denied ID fails whatever its severity, fix state, waiver or VEX (KEV-style).
2. Severity (`fail_on`/`warn_on`), `fixable_only` and `min_cvss` decide whether it would count.
3. VEX, then waivers, may suppress it (both are matched against every finding, so a waiver that
   matched only uncounted findings is still in use, not stale).
4. `grace_days` turns a would-fail finding published less than N days ago into a warning.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from imgcheck.record import record
from imgcheck.vulns.model import Vuln
from imgcheck.vulns.timeparse import parse_timestamp
from imgcheck.vulns.vex import SUPPRESSING, ImageIdentity, VexStatement, deciding_statement
from imgcheck.vulns.waivers import Waiver

Outcome = Literal["fail", "warn", "grace", "denied", "waived", "vex"]


@record
class Rules:
    """The policy knobs the evaluation needs (decoupled from the policy's Config type)."""

    fail_on: frozenset[str]
    warn_on: frozenset[str] = frozenset()
    fixable_only: bool = False
    min_cvss: float | None = None
    grace_days: int | None = None
    deny: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Judged:
    """A finding that counts, or would count but for a waiver or VEX statement."""

    vuln: Vuln
    outcome: Outcome
    level: Literal["fail", "warn"]
    """What the finding's severity alone would make it."""
    waiver: Waiver | None = None
    vex: VexStatement | None = None
    grace_until: date | None = None
    report: str = ""


@dataclass
class Evaluation:
    judged: list[Judged] = field(default_factory=list)
    total: int = 0
    by_severity: Counter[str] = field(default_factory=Counter)
    not_fixable: int = 0
    """Findings of a counted severity left out by fixable_only."""
    below_min_cvss: int = 0
    waiver_hits: Counter[Waiver] = field(default_factory=Counter)
    expired_hits: Counter[Waiver] = field(default_factory=Counter)
    vex_hits: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for j in self.judged if j.outcome == outcome)


def _index_waivers(waivers: list[Waiver]) -> dict[str, list[Waiver]]:
    index: dict[str, list[Waiver]] = {}
    for w in waivers:
        index.setdefault(w.id, []).append(w)
    return index


def _index_vex(statements: list[VexStatement]) -> dict[str, list[VexStatement]]:
    index: dict[str, list[VexStatement]] = {}
    for st in statements:
        for vid in st.vuln_ids:
            index.setdefault(vid, []).append(st)
    return index


def _candidates(index: dict[str, list[Waiver]], v: Vuln) -> list[Waiver]:
    found = list(index.get(v.id, ()))
    for alias in v.aliases:
        found += index.get(alias, ())
    return found


def _grace_until(v: Vuln, days: int, now: datetime) -> date | None:
    if not v.published:
        return None
    try:
        published = parse_timestamp(v.published)
    except ValueError:
        return None  # no usable date: no grace (fail closed)
    until = published + timedelta(days=days)
    return until.date() if until > now else None


def evaluate(
    findings: list[tuple[str, Vuln]],
    rules: Rules,
    waivers: list[Waiver],
    statements: list[VexStatement],
    image: ImageIdentity,
    now: datetime,
) -> Evaluation:
    """Judge `(report source, finding)` pairs. Pure: the clock is `now`.

    The loop runs once per finding (tens of thousands per report), so the policy knobs are locals, the
    common case (no waiver, no VEX index, no aliases) takes no call, and counts are added up once."""
    ev = Evaluation()
    w_index = _index_waivers(waivers)
    v_index = _index_vex(statements)
    deny, fail_on, warn_on = rules.deny, rules.fail_on, rules.warn_on
    fixable_only, min_cvss, grace_days = rules.fixable_only, rules.min_cvss, rules.grace_days
    judged = ev.judged
    add = judged.append
    not_fixable = below_min_cvss = vex_hits = 0
    for source, v in findings:
        active: Waiver | None = None
        if w_index and (v.id in w_index or v.aliases):
            for w in _candidates(w_index, v):
                if not w.matches(v):
                    continue
                if w.expired(now):
                    ev.expired_hits[w] += 1
                else:
                    ev.waiver_hits[w] += 1
                    active = active or w
        statement = None
        if v_index:
            relevant = [s for vid in (v.id, *v.aliases) for s in v_index.get(vid, ())]
            statement = deciding_statement(relevant, v, image) if relevant else None
            if statement is not None and statement.status not in SUPPRESSING:
                statement = None
        if deny and (v.id in deny or (v.aliases and deny.intersection(v.aliases))):
            add(Judged(v, "denied", "fail", active, statement, report=source))
            continue
        severity = v.severity
        if severity in fail_on:
            level: Literal["fail", "warn"] = "fail"
        elif severity in warn_on:
            level = "warn"
        else:
            continue
        if fixable_only and not (v.fixed or v.status == "fixed"):  # Vuln.fixable, inlined
            not_fixable += 1
            continue
        if min_cvss is not None and v.cvss is not None and v.cvss < min_cvss:
            below_min_cvss += 1
            continue
        if statement is not None:
            vex_hits += 1
            add(Judged(v, "vex", level, vex=statement, report=source))
        elif active is not None:
            add(Judged(v, "waived", level, waiver=active, report=source))
        elif level == "fail" and grace_days and (until := _grace_until(v, grace_days, now)):
            add(Judged(v, "grace", level, grace_until=until, report=source))
        else:
            add(Judged(v, level, level, report=source))
    ev.total = len(findings)
    ev.by_severity.update(v.severity for _, v in findings)
    ev.not_fixable, ev.below_min_cvss, ev.vex_hits = not_fixable, below_min_cvss, vex_hits
    return ev
