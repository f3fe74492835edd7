"""tags: required tag patterns on this digest; `latest` is the highest (or newest) release."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    required: tuple[re.Pattern[str], ...] = ()
    latest_is_highest: bool = False
    latest_is_newest: bool = False
    consistent_across_images: bool = False


RULE = RuleSpec(
    id="tags",
    summary="required tag patterns point at this digest and latest is the newest release",
    config=Config,
    check=not_implemented("tags"),
    needs_tags=True,
)
