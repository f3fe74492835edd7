"""signature: a cosign / Sigstore signature over this exact digest.

Key-based cosign `.sig` signatures (and their Rekor SET when present) and legacy keyless ones (Fulcio
certificate + Rekor SET) are verified offline with `cryptography`; Sigstore bundles (cosign v3
referrers) offline with sigstore-python; keyless needs issuer AND identity. A multi-platform index is
signed on the index digest (cosign signs the index unless --recursive), so that is what is checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imgcheck.checks.interface import CollectContext, Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts
from imgcheck.policy.patterns import Pattern
from imgcheck.record import record
from imgcheck.verdict import Verdict

if TYPE_CHECKING:
    from imgcheck.supplychain.outcome import Trust


@record
class Keyless:
    issuer: str
    """OIDC issuer, exact (e.g. https://token.actions.githubusercontent.com)."""
    identity: Pattern
    """Full match against the certificate SAN (the workflow URI for GitHub Actions)."""
    require_sct: bool = True
    """The certificate must carry an SCT that verifies with a CT log of the trusted root (false: a
    private Sigstore without CT, as cosign's --insecure-ignore-sct)."""


@record
class TrustConfig(RuleConfig):
    """Who must have signed: keys, or a keyless issuer + identity (shared by signature and provenance)."""

    keys: tuple[str, ...] = ()
    keyless: Keyless | None = None
    trusted_root: str | None = None


def collect_signed(
    ctx: CollectContext, facts: ImageFacts, config: TrustConfig, rule_id: Literal["signature", "provenance"]
) -> object:
    """Discover what is attached to the digest and load the trust material the config names."""
    from imgcheck.supplychain import evidence

    return evidence.collect(ctx, facts, rule_id, build_trust(config, ctx.options.policy_dir))


def build_trust(config: TrustConfig, policy_dir: Path) -> Trust:
    """The trust material a signature / provenance / vulnerabilities config names, files read."""
    from imgcheck.supplychain import evidence

    keyless = config.keyless
    return evidence.build_trust(
        config.keys,
        keyless.issuer if keyless else None,
        keyless.identity.pattern if keyless else None,
        config.trusted_root,
        policy_dir,
        require_sct=keyless.require_sct if keyless else True,
    )


@record
class Config(TrustConfig):
    pass


def collect(ctx: CollectContext, facts: ImageFacts, config: Config) -> object:
    return collect_signed(ctx, facts, config, "signature")


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    from imgcheck.supplychain.attestations import check_attestation
    from imgcheck.supplychain.evidence import Evidence
    from imgcheck.supplychain.outcome import Outcome
    from imgcheck.supplychain.simplesigning import verify_simplesigning

    ev = facts.extras.get("signature")
    if not isinstance(ev, Evidence):
        return [Finding(Verdict.ERROR, "signature evidence was not collected for this image")]
    if ev.trust.empty:
        return [Finding(Verdict.ERROR, "the signature rule names neither keys nor keyless issuer + identity")]
    digests = [facts.digest]
    outcomes: list[Outcome] = []
    for att in ev.found.attachments:
        if att.kind == "simplesigning":
            outcomes.append(verify_simplesigning(att, facts.digest, ev.trust))
        elif att.kind in ("bundle", "dsse"):
            outcomes.append(check_attestation(att, digests, ev.trust))
    return [judge(outcomes, ev.found.looked, facts.digest)]


def judge(outcomes: Sequence[object], looked: tuple[str, ...], digest: str) -> Finding:
    """Any verified signature passes; a known limit is an error; otherwise the reasons it failed."""
    from imgcheck.supplychain.outcome import Outcome

    results = [o for o in outcomes if isinstance(o, Outcome)]
    details = {
        "checked": [{"origin": o.origin, "status": o.status, "message": o.message, **o.details} for o in results]
    }
    verified = [o for o in results if o.verified]
    if verified:
        return Finding(Verdict.PASS, verified[0].message, details=details)
    unsupported = [o for o in results if o.status == "unsupported"]
    if unsupported:
        return Finding(Verdict.ERROR, f"{unsupported[0].origin}: {unsupported[0].message}", details=details)
    if results:
        reasons = "; ".join(f"{o.origin}: {o.message}" for o in results[:3])
        return Finding(Verdict.FAIL, f"no signature over {digest[:19]}… verifies: {reasons}", details=details)
    return Finding(
        Verdict.FAIL,
        f"no signature found for {digest[:19]}… (looked at {', '.join(looked)}); sign it with "
        f"`cosign sign --key …` or keyless in CI",
        details=details,
    )


def describe(config: Config) -> str:
    parts = []
    if config.keys:
        parts.append(f"cosign keys {', '.join(config.keys)}")
    if config.keyless:
        sct = "" if config.keyless.require_sct else " (no SCT required)"
        parts.append(f"keyless issuer {config.keyless.issuer} + identity /{config.keyless.identity.pattern}/{sct}")
    root = f", trusted root {config.trusted_root}" if config.trusted_root else ""
    return f"signature over the digest by {' or '.join(parts) or 'NOTHING (configure keys or keyless)'}{root}"


RULE = RuleSpec(
    id="signature",
    summary="a signature over this exact digest verifies with a policy key or the keyless identity",
    config=Config,
    check=check,
    collect=collect,
    describe=describe,
)
