"""platforms: a multi-platform index holds every required platform.

Only runnable platforms count: buildx's attestation manifests (`unknown/unknown`) are not images.
"""

from __future__ import annotations

from imgcheck.checks._common import platform_matches
from imgcheck.checks.interface import Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts
from imgcheck.record import record
from imgcheck.verdict import Verdict


@record
class Config(RuleConfig):
    required: tuple[str, ...] = ()


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    present = [p.platform for p in facts.platforms]
    details = {"required": list(config.required), "present": present, "index": facts.is_index}
    if not present:
        return [Finding(Verdict.ERROR, "no runnable platform manifest found for this digest", details=details)]
    missing = [r for r in config.required if not any(platform_matches(r, p) for p in present)]
    details["missing"] = missing
    if not missing:
        shown = ", ".join(config.required) if config.required else "none required"
        return [Finding(Verdict.PASS, f"platforms present: {shown} (image has {', '.join(present)})", details=details)]
    if not facts.is_index:
        return [
            Finding(
                Verdict.FAIL,
                f"expected platforms {', '.join(config.required)}; the image is single-platform ({present[0]}), "
                f"so {', '.join(missing)} is missing; build a multi-platform index (docker buildx --platform "
                f"{','.join(config.required)})",
                details=details,
            )
        ]
    return [
        Finding(
            Verdict.FAIL,
            f"expected platforms {', '.join(config.required)}; the index lacks {', '.join(missing)} "
            f"(has {', '.join(present)}); add them to the buildx --platform list",
            details=details,
        )
    ]


def describe(config: Config) -> str:
    if not config.required:
        return "no platform required"
    return "the image offers " + ", ".join(config.required)


RULE = RuleSpec(
    id="platforms",
    summary="a multi-platform index holds every required platform",
    config=Config,
    check=check,
    describe=describe,
)
