"""vulnerabilities: Trivy results for this digest turned into a verdict (issue: Trivy verdicts)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]


@dataclass(frozen=True)
class Waiver:
    id: str
    reason: str
    expires: dt.date


@dataclass(frozen=True)
class Config(RuleConfig):
    report: str | None = None
    fail_on: tuple[Severity, ...] = ("CRITICAL",)
    warn_on: tuple[Severity, ...] = ()
    fixable_only: bool = False
    max_age: timedelta | None = None
    ignore: tuple[Waiver, ...] = ()


RULE = RuleSpec(
    id="vulnerabilities",
    summary="the Trivy report for this digest is fresh and holds no finding of a fail_on severity",
    config=Config,
    check=not_implemented("vulnerabilities"),
)
