"""provenance: a signed SLSA provenance (v0.2 or v1) for this digest names a matching builder and source.

Read from cosign `.att` tags (key-signed DSSE), OCI referrers (Sigstore bundles: GitHub artifact
attestations, cosign v3) and buildx attestation manifests (unsigned: accepted only with
`require_signed: false`). Keys and keyless identity are given as in the signature rule.
"""

from __future__ import annotations

from imgcheck.checks.interface import CollectContext, Finding, RuleSpec, RunContext
from imgcheck.checks.signature import TrustConfig, collect_signed
from imgcheck.facts import ImageFacts
from imgcheck.policy.patterns import Pattern
from imgcheck.record import record
from imgcheck.verdict import Verdict


@record
class Config(TrustConfig):
    builder: Pattern | None = None
    """Full match against the builder id."""
    source: Pattern | None = None
    """Full match against a source URI or its bare `host/owner/repo` form."""
    require_signed: bool = True
    """buildx provenance is unsigned; set false to accept it (its binding is then only the registry's)."""


def collect(ctx: CollectContext, facts: ImageFacts, config: Config) -> object:
    return collect_signed(ctx, facts, config, "provenance")


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    from imgcheck.supplychain import slsa
    from imgcheck.supplychain.attestations import check_attestation
    from imgcheck.supplychain.dsse import MalformedError
    from imgcheck.supplychain.evidence import Evidence, image_digests

    ev = facts.extras.get("provenance")
    if not isinstance(ev, Evidence):
        return [Finding(Verdict.ERROR, "provenance evidence was not collected for this image")]
    if config.require_signed and ev.trust.empty:
        return [
            Finding(
                Verdict.ERROR,
                "the provenance rule needs keys or keyless issuer + identity to verify the attestation "
                "(or require_signed: false to accept unsigned buildx provenance)",
            )
        ]
    digests = image_digests(facts)
    checked: list[dict[str, object]] = []
    passes: list[str] = []
    errors: list[str] = []
    failures: list[str] = []
    for att in ev.found.attachments:
        outcome = check_attestation(att, digests, ev.trust)
        entry: dict[str, object] = {"origin": att.origin, "status": outcome.status, "message": outcome.message}
        checked.append(entry)
        if outcome.status == "unsupported":
            errors.append(f"{att.origin}: {outcome.message}")
            continue
        if outcome.status == "rejected" or outcome.statement is None:
            failures.append(f"{att.origin}: {outcome.message}")
            continue
        if outcome.status == "unsigned" and config.require_signed:
            failures.append(f"{att.origin}: unsigned provenance (sign it, or set require_signed: false)")
            continue
        try:
            prov = slsa.parse(outcome.statement)
        except MalformedError as exc:
            entry["message"] = str(exc)
            continue  # another kind of attestation (SBOM, vuln scan): not provenance
        entry.update(builder=prov.builder, sources=list(prov.sources))
        problem = _mismatch(prov, config)
        if problem:
            failures.append(f"{att.origin}: {problem}")
        else:
            passes.append(
                f"SLSA {prov.predicate_type.rsplit('/', 1)[-1]} provenance ({outcome.message}); builder {prov.builder}"
            )
    details = {"checked": checked}
    if passes:
        return [Finding(Verdict.PASS, passes[0], details=details)]
    if errors:
        return [Finding(Verdict.ERROR, errors[0], details=details)]
    if failures:
        return [Finding(Verdict.FAIL, "; ".join(failures[:3]), details=details)]
    return [
        Finding(
            Verdict.FAIL,
            f"no SLSA provenance for {facts.digest[:19]}… (looked at {', '.join(ev.found.looked)}); "
            f"attest it in CI (actions/attest-build-provenance with push-to-registry, or cosign attest)",
            details=details,
        )
    ]


def _mismatch(prov: object, config: Config) -> str | None:
    from imgcheck.supplychain.slsa import Provenance

    assert isinstance(prov, Provenance)
    if config.builder is not None and not (prov.builder and config.builder.fullmatch(prov.builder)):
        return f"builder {prov.builder!r} does not match {config.builder.pattern!r}"
    if config.source is not None and not any(config.source.fullmatch(s) for s in prov.sources):
        shown = ", ".join(prov.sources[:3]) or "none"
        return f"no source matches {config.source.pattern!r} (found {shown})"
    return None


def describe(config: Config) -> str:
    parts = []
    if config.builder is not None:
        parts.append(f"builder /{config.builder.pattern}/")
    if config.source is not None:
        parts.append(f"source /{config.source.pattern}/")
    signed = "signed " if config.require_signed else ""
    return f"a {signed}SLSA provenance of this digest" + (f" with {' and '.join(parts)}" if parts else "")


RULE = RuleSpec(
    id="provenance",
    summary="a signed SLSA provenance attestation for this digest names a matching builder and source",
    config=Config,
    check=check,
    collect=collect,
    describe=describe,
)
