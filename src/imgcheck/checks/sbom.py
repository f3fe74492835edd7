"""sbom: an SBOM attached to this digest that parses and describes it (issue: supply chain)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    formats: tuple[Literal["cyclonedx", "spdx"], ...] = ("cyclonedx", "spdx")
    min_components: int = 1
    deny_licenses: tuple[str, ...] = ()


RULE = RuleSpec(
    id="sbom",
    summary="an attached SBOM parses, describes this digest, and lists no denied licence",
    config=Config,
    check=not_implemented("sbom"),
)
