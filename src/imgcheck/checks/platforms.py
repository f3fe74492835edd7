"""platforms: a multi-platform index holds every required platform."""

from __future__ import annotations

from dataclasses import dataclass

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    required: tuple[str, ...] = ()


RULE = RuleSpec(
    id="platforms",
    summary="a multi-platform index holds every required platform",
    config=Config,
    check=not_implemented("platforms"),
)
