"""config: non-root user, healthcheck, no secrets baked into the environment."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    non_root: bool = False
    healthcheck: bool = False
    forbid_env: tuple[re.Pattern[str], ...] = ()


RULE = RuleSpec(
    id="config",
    summary="the image runs as non-root, has a healthcheck, and bakes in no forbidden env var",
    config=Config,
    check=not_implemented("config"),
)
