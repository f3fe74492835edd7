"""signature: a cosign / Sigstore signature over this exact digest (issue: supply chain)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Keyless:
    issuer: str
    identity: re.Pattern[str]


@dataclass(frozen=True)
class Config(RuleConfig):
    keys: tuple[str, ...] = ()
    keyless: Keyless | None = None
    trusted_root: str | None = None


RULE = RuleSpec(
    id="signature",
    summary="a signature over this exact digest verifies with a policy key or the keyless identity",
    config=Config,
    check=not_implemented("signature"),
)
