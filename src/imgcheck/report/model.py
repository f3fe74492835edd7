"""The Report: what a verify run found, independent of how it is rendered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from imgcheck.record import record
from imgcheck.verdict import Verdict, worst

SCHEMA_ID = "imgcheck.report/v1"


@record
class CheckResult:
    """One rule's verdict for one image (and platform)."""

    rule: str
    verdict: Verdict
    message: str
    platform: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@record
class ImageResult:
    """Every check of one image, all against the one digest its reference resolved to."""

    name: str
    reference: str
    digest: str | None
    """None when the reference could not be resolved (then `error` says why)."""
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None
    """Why the image could not be verified at all (unreachable, unknown tag, tampered)."""

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return Verdict.ERROR
        return worst([c.verdict for c in self.checks])


@record
class Report:
    """A whole run: the verdict is the worst of its images."""

    imgcheck_version: str
    policy: str
    started_at: str
    """RFC 3339 UTC, second precision (`2026-11-23T23:00:00Z`)."""
    images: tuple[ImageResult, ...]
    target: str | None = None

    @property
    def verdict(self) -> Verdict:
        if not self.images:
            return Verdict.ERROR
        return worst([i.verdict for i in self.images])

    def counts(self) -> dict[str, int]:
        """How many checks ended in each verdict (every renderer shows the same numbers)."""
        result = {v.value: 0 for v in Verdict}
        for image in self.images:
            for check in image.checks:
                result[check.verdict.value] += 1
        return result
