"""provenance: a signed SLSA provenance for this digest (issue: supply chain)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    builder: re.Pattern[str] | None = None
    source: re.Pattern[str] | None = None


RULE = RuleSpec(
    id="provenance",
    summary="a signed SLSA provenance attestation for this digest names a matching builder and source",
    config=Config,
    check=not_implemented("provenance"),
)
