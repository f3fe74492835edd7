"""sbom: an SBOM attached to this digest that parses, validates, describes it, and lists no denied licence.

SBOMs are read from OCI referrers, cosign's `.sbom`/`.att` tags and buildx attestation manifests. For a
multi-platform index, an SBOM of the index passes; otherwise every platform needs its own (buildx
writes one per platform).
"""

from __future__ import annotations

from typing import Literal

from imgcheck.checks.interface import CollectContext, Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts
from imgcheck.record import record
from imgcheck.verdict import Verdict


@record
class Config(RuleConfig):
    formats: tuple[Literal["cyclonedx", "spdx"], ...] = ("cyclonedx", "spdx")
    min_components: int = 1
    deny_licenses: tuple[str, ...] = ()


def collect(ctx: CollectContext, facts: ImageFacts, config: Config) -> object:
    from imgcheck.supplychain import evidence
    from imgcheck.supplychain.outcome import Trust

    return evidence.collect(ctx, facts, "sbom", Trust())


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    from imgcheck.supplychain.evidence import Evidence, image_digests
    from imgcheck.supplychain.sbomcheck import judge_sbom

    ev = facts.extras.get("sbom")
    if not isinstance(ev, Evidence):
        return [Finding(Verdict.ERROR, "sbom evidence was not collected for this image")]
    digests = image_digests(facts)
    results = [
        judge_sbom(att, digests, config.formats, config.min_components, config.deny_licenses)
        for att in ev.found.attachments
    ]
    checked = [{"origin": r.origin, "ok": r.ok, "message": r.message, **r.details} for r in results]
    passing = [r for r in results if r.ok]
    if not results:
        return [
            Finding(
                Verdict.FAIL,
                f"no SBOM attached to {facts.digest[:19]}… (looked at {', '.join(ev.found.looked)}); "
                f"generate one with syft and attach it (`cosign attach sbom`, `oras attach`, or buildx --sbom)",
            )
        ]
    own = {facts.digest} | {p.config_digest for p in facts.platforms if not facts.is_index}
    whole = [r for r in passing if r.target in own or not facts.is_index]
    if whole:
        return [Finding(Verdict.PASS, whole[0].message, details={"checked": checked})]
    if facts.is_index and passing:
        findings = []
        for p in facts.platforms:
            mine = [r for r in passing if r.target in (p.manifest_digest, p.config_digest)]
            if mine:
                findings.append(Finding(Verdict.PASS, mine[0].message, platform=p.platform))
            else:
                findings.append(
                    Finding(
                        Verdict.FAIL,
                        f"no valid SBOM for platform {p.platform} ({p.manifest_digest[:19]}…) nor for the index",
                        platform=p.platform,
                        details={"checked": checked},
                    )
                )
        return findings
    reasons = "; ".join(f"{r.origin}: {r.message}" for r in results[:3])
    return [Finding(Verdict.FAIL, f"no attached SBOM passes: {reasons}", details={"checked": checked})]


def describe(config: Config) -> str:
    deny = f"; denies {', '.join(config.deny_licenses)}" if config.deny_licenses else ""
    return (
        f"an attached {' or '.join(config.formats)} SBOM of this digest with at least "
        f"{config.min_components} component(s){deny}"
    )


RULE = RuleSpec(
    id="sbom",
    summary="an attached SBOM parses, describes this digest, and lists no denied licence",
    config=Config,
    check=check,
    collect=collect,
    describe=describe,
)
