"""The five verdicts a check can give, and how they combine."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A check's outcome. Images and reports only ever end as pass, fail or error."""

    PASS = "pass"
    WARN = "warn"
    SKIP = "skip"
    FAIL = "fail"
    ERROR = "error"

    @property
    def severity(self) -> int:
        """Rank for "the worst wins": error > fail > warn > skip > pass."""
        return _RANK[self]

    def rollup(self) -> Verdict:
        """What this verdict means for an image: warn and skip do not fail it."""
        if self in (Verdict.ERROR, Verdict.FAIL):
            return self
        return Verdict.PASS


_RANK = {Verdict.PASS: 0, Verdict.SKIP: 1, Verdict.WARN: 2, Verdict.FAIL: 3, Verdict.ERROR: 4}


def worst(verdicts: list[Verdict] | tuple[Verdict, ...]) -> Verdict:
    """The worst of several verdicts, rolled up to pass/fail/error; no verdicts is a pass."""
    result = Verdict.PASS
    for v in verdicts:
        rolled = v.rollup()
        if rolled.severity > result.severity:
            result = rolled
    return result


def exit_code(verdict: Verdict) -> int:
    """The CLI contract: 0 pass (warnings allowed), 1 fail, 2 could not verify."""
    return {Verdict.ERROR: 2, Verdict.FAIL: 1}.get(verdict.rollup(), 0)
