"""labels: required OCI labels present, matching, consistent with the tag and the clock."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    required: tuple[str, ...] = ()
    match: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    version_matches_tag: bool = False
    created_not_in_future: bool = False


RULE = RuleSpec(
    id="labels",
    summary="required labels are present and match; the version label equals the semver tag",
    config=Config,
    check=not_implemented("labels"),
    needs_tags=True,
)
