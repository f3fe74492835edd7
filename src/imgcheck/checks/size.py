"""size: compressed size from the manifest, uncompressed after a pull, growth against the last release."""

from __future__ import annotations

from dataclasses import dataclass

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented
from imgcheck.policy.types import ByteSize, Percent


@dataclass(frozen=True)
class Config(RuleConfig):
    max_compressed: ByteSize | None = None
    max_uncompressed: ByteSize | None = None
    max_growth: Percent | None = None


RULE = RuleSpec(
    id="size",
    summary="each platform's sizes are within budget and growth against the previous release is bounded",
    config=Config,
    check=not_implemented("size"),
    needs_tags=True,
)
