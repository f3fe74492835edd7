"""config: non-root user, healthcheck, no secrets baked into the environment.

Env values may be the very secrets this rule hunts for, so findings name variables and never carry
a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgcheck.checks._common import per_platform
from imgcheck.checks.interface import Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.policy.patterns import Pattern
from imgcheck.record import record
from imgcheck.verdict import Verdict


@record
class Config(RuleConfig):
    non_root: bool = False
    healthcheck: bool = False
    forbid_env: tuple[Pattern, ...] = ()


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    if not facts.platforms:
        return [Finding(Verdict.ERROR, "no runnable platform manifest, so no image config to check")]
    findings: list[Finding] = []
    if config.non_root:
        findings += per_platform(facts.platforms, _non_root)
    if config.healthcheck:
        findings += per_platform(facts.platforms, _healthcheck)
    if config.forbid_env:
        findings += per_platform(facts.platforms, lambda p: _forbid_env(p, config.forbid_env))
    return findings or [Finding(Verdict.PASS, "no config checks configured")]


def _container_config(platform: PlatformFacts) -> Mapping[str, Any]:
    section = platform.config.get("config")
    return section if isinstance(section, Mapping) else {}


def is_root_user(user: str) -> bool:
    """Docker's `User` is `user[:group]`; the user part decides. Empty means the default: root."""
    name = user.split(":", 1)[0].strip()
    return name == "" or name == "root" or (name.isdigit() and int(name) == 0)


def _non_root(platform: PlatformFacts) -> Finding:
    raw = _container_config(platform).get("User")
    user = raw if isinstance(raw, str) else ""
    details = {"check": "non_root", "user": user}
    if not is_root_user(user):
        return Finding(Verdict.PASS, f"runs as user {user!r}", details=details)
    found = "no User is set, so it runs as root" if not user.split(":", 1)[0].strip() else f"User is {user!r} (root)"
    return Finding(
        Verdict.FAIL,
        f"expected a non-root user; {found}; add `USER <uid>` (e.g. USER 10001) to the Dockerfile",
        details=details,
    )


def _healthcheck(platform: PlatformFacts) -> Finding:
    health = _container_config(platform).get("Healthcheck")
    test = health.get("Test") if isinstance(health, Mapping) else None
    kind = test[0] if isinstance(test, list) and test and isinstance(test[0], str) else None
    # The command itself is not echoed: it may embed a URL with credentials.
    details = {"check": "healthcheck", "kind": kind}
    if kind is None:
        return Finding(
            Verdict.FAIL,
            "expected a healthcheck; the config has none; add a HEALTHCHECK instruction to the Dockerfile",
            details=details,
        )
    if kind == "NONE":
        return Finding(
            Verdict.FAIL,
            "expected a healthcheck; it is disabled (HEALTHCHECK NONE); replace it with a real HEALTHCHECK",
            details=details,
        )
    return Finding(Verdict.PASS, f"healthcheck set ({kind})", details=details)


def _forbid_env(platform: PlatformFacts, patterns: tuple[Pattern, ...]) -> Finding:
    env = _container_config(platform).get("Env")
    entries = [e for e in env if isinstance(e, str)] if isinstance(env, list) else []
    baked: dict[str, str] = {}
    for entry in entries:
        name, _, value = entry.partition("=")
        if not value:
            continue
        hit = next((p for p in patterns if p.fullmatch(name)), None)
        if hit is not None:
            baked[name] = hit.pattern
    details = {"check": "forbid_env", "variables": sorted(baked), "patterns": [p.pattern for p in patterns]}
    if not baked:
        return Finding(
            Verdict.PASS,
            f"none of the {len(entries)} env vars baked into the image has a forbidden name and a value",
            details=details,
        )
    names = ", ".join(sorted(baked))
    return Finding(
        Verdict.FAIL,
        f"expected no value for env vars matching {', '.join(sorted(set(baked.values())))}; the image bakes in "
        f"{names} (values withheld); remove them from the Dockerfile (ENV/ARG) and pass them at run time",
        details=details,
    )


def describe(config: Config) -> str:
    parts = []
    if config.non_root:
        parts.append("runs as a non-root user")
    if config.healthcheck:
        parts.append("has a healthcheck")
    if config.forbid_env:
        parts.append("no env var with a value whose name matches " + ", ".join(p.pattern for p in config.forbid_env))
    return "; ".join(parts) if parts else "no config checks"


RULE = RuleSpec(
    id="config",
    summary="the image runs as non-root, has a healthcheck, and bakes in no forbidden env var",
    config=Config,
    check=check,
    describe=describe,
)
