"""size: compressed size from the manifest, uncompressed after a pull, growth against the last release.

Compressed sizes come from the manifest (no pull). The uncompressed size only exists after the engine
pulled the image, so without that evidence the budget is skipped, never passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgcheck.checks._common import lookup_platform
from imgcheck.checks.interface import CollectContext, Finding, RuleConfig, RuleSpec, RunContext, VerifyOptions
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.policy.types import ByteSize, Percent, format_bytes
from imgcheck.record import record
from imgcheck.verdict import Verdict

UNCOMPRESSED_KEY = "uncompressed_sizes"
"""`facts.extras[UNCOMPRESSED_KEY]`: platform -> bytes, as the engine reports them after a pull."""


@record
class Config(RuleConfig):
    max_compressed: ByteSize | None = None
    max_uncompressed: ByteSize | None = None
    max_growth: Percent | None = None


def collect(ctx: CollectContext, facts: ImageFacts, config: Config) -> Mapping[str, int] | None:
    """Pull to measure `max_uncompressed` when no smoke run already did (never with --no-smoke)."""
    if config.max_uncompressed is None or UNCOMPRESSED_KEY in facts.extras or ctx.options.no_smoke:
        return None
    from imgcheck.checks.smoke import measure_uncompressed

    return measure_uncompressed(ctx, facts)


def collect_bound(config: Config, options: VerifyOptions) -> int | None:
    """A pull to measure uses the engine: as many at once as a smoke run's pulls (engine_jobs)."""
    if config.max_uncompressed is None or options.no_smoke:
        return None
    from imgcheck.engine.client import engine_jobs

    return engine_jobs()


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    if not facts.platforms:
        return [Finding(Verdict.ERROR, "no runnable platform manifest to measure; check the image reference")]
    if config.max_compressed is None and config.max_uncompressed is None and config.max_growth is None:
        return [Finding(Verdict.PASS, "no size budget configured (set max_compressed, max_uncompressed or max_growth)")]
    findings: list[Finding] = []
    for platform in facts.platforms:
        if config.max_compressed is not None:
            findings.append(_compressed(platform, config.max_compressed))
        if config.max_growth is not None:
            findings.append(_growth(facts, platform, config.max_growth))
    if config.max_uncompressed is not None:
        findings.extend(_uncompressed(facts, config.max_uncompressed))
    return findings


def _layer_details(platform: PlatformFacts) -> dict[str, Any]:
    largest = max((layer.size for layer in platform.layers), default=0)
    return {"layers": len(platform.layers), "largest_layer_bytes": largest}


def _compressed(platform: PlatformFacts, budget: ByteSize) -> Finding:
    size = platform.compressed_size
    details = {"check": "max_compressed", "bytes": size, "budget": int(budget), **_layer_details(platform)}
    if size <= budget:
        return Finding(
            Verdict.PASS,
            f"compressed size {format_bytes(size)} ≤ {format_bytes(budget)}",
            platform=platform.platform,
            details=details,
        )
    return Finding(
        Verdict.FAIL,
        f"compressed size {format_bytes(size)} > {format_bytes(budget)} budget (layers: {len(platform.layers)}, "
        f"largest {format_bytes(details['largest_layer_bytes'])}); slim the image or raise size.max_compressed",
        platform=platform.platform,
        details=details,
    )


def _growth(facts: ImageFacts, platform: PlatformFacts, limit: Percent) -> Finding:
    previous = facts.previous_release
    size = platform.compressed_size
    details: dict[str, Any] = {"check": "max_growth", "bytes": size, "max_growth": float(limit)}
    if previous is None:
        return Finding(
            Verdict.PASS,
            "no previous semver release to compare growth with (first release, or no semver tags)",
            platform=platform.platform,
            details=details,
        )
    before = lookup_platform(previous.compressed_sizes, platform.platform)
    details.update(previous_tag=previous.tag, previous_bytes=before)
    if before is None or before <= 0:
        return Finding(
            Verdict.PASS,
            f"{previous.tag} has no {platform.platform} image to compare growth with (new platform)",
            platform=platform.platform,
            details=details,
        )
    growth = (size - before) / before
    details["growth"] = growth
    change = f"{previous.tag} ({format_bytes(before)} → {format_bytes(size)})"
    if growth <= limit:
        verb = "grew" if growth >= 0 else "shrank"
        return Finding(
            Verdict.PASS,
            f"{verb} {abs(growth) * 100:.1f}% since {change}, max {limit.human()}",
            platform=platform.platform,
            details=details,
        )
    return Finding(
        Verdict.FAIL,
        f"grew {growth * 100:.1f}% since {change}, max {limit.human()}; "
        "find the layer that grew or raise size.max_growth",
        platform=platform.platform,
        details=details,
    )


def _uncompressed(facts: ImageFacts, budget: ByteSize) -> list[Finding]:
    sizes = facts.extras.get(UNCOMPRESSED_KEY)
    if not isinstance(sizes, Mapping):
        return [
            Finding(
                Verdict.SKIP,
                f"max_uncompressed {format_bytes(budget)} not checked: uncompressed size needs a pull (smoke run); "
                "run with the smoke rule or a Docker engine",
                details={"check": "max_uncompressed", "budget": int(budget)},
            )
        ]
    findings = []
    for platform in facts.platforms:
        size = lookup_platform(sizes, platform.platform)
        details: dict[str, Any] = {"check": "max_uncompressed", "bytes": size, "budget": int(budget)}
        if not isinstance(size, int):
            findings.append(
                Finding(
                    Verdict.SKIP,
                    f"uncompressed size of {platform.platform} unknown: the smoke run did not pull this platform",
                    platform=platform.platform,
                    details=details,
                )
            )
        elif size <= budget:
            findings.append(
                Finding(
                    Verdict.PASS,
                    f"uncompressed size {format_bytes(size)} ≤ {format_bytes(budget)}",
                    platform=platform.platform,
                    details=details,
                )
            )
        else:
            findings.append(
                Finding(
                    Verdict.FAIL,
                    f"uncompressed size {format_bytes(size)} > {format_bytes(budget)} budget; "
                    "slim the image or raise size.max_uncompressed",
                    platform=platform.platform,
                    details=details,
                )
            )
    return findings


def describe(config: Config) -> str:
    parts = []
    if config.max_compressed is not None:
        parts.append(f"compressed ≤ {format_bytes(config.max_compressed)}")
    if config.max_uncompressed is not None:
        parts.append(f"uncompressed ≤ {format_bytes(config.max_uncompressed)} (after a pull)")
    if config.max_growth is not None:
        parts.append(f"growth ≤ {config.max_growth.human()} since the previous release")
    return "per platform: " + ", ".join(parts) if parts else "no size budget"


RULE = RuleSpec(
    id="size",
    summary="each platform's sizes are within budget and growth against the previous release is bounded",
    config=Config,
    check=check,
    collect=collect,
    collect_bound=collect_bound,
    describe=describe,
    needs_tags=True,
)
