"""provenance rule: key-signed SLSA v1 in cosign's `.att` layout end to end, buildx's unsigned
provenance, cli/cli's real GitHub attestations (Sigstore bundles) and slsa-verifier's real v0.2
provenance (legacy keyless, verified offline), plus negatives that must never pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_supplychain_support import (
    facts_for_digest,
    gather_facts,
    push_bundle_in_fallback_index,
    push_tiny_image,
    run_rule,
)

from imgcheck.checks.provenance import RULE, Config
from imgcheck.checks.signature import Keyless
from imgcheck.supplychain.attachments import Attachment
from imgcheck.supplychain.attestations import check_attestation
from imgcheck.supplychain.outcome import Trust
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
DEMO_PUB = str(ROOT / "fixtures" / "keys" / "demo-cosign.pub")
GITHUB = "https://token.actions.githubusercontent.com"
K2 = "https://github.com/rjdscott/k2-market-data-platform"
BUILDER = re.compile(r"https://github\.com/.+")
SOURCE = re.compile(r"github\.com/rjdscott/k2-market-data-platform")


def test_key_signed_slsa_v1_att_passes_and_mismatches_fail(pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.supplychain import attach_provenance

    repo = "prov/key"
    digest = push_tiny_image(pusher, repo)
    attach_provenance(
        pusher,
        registry.host,
        repo,
        digest,
        builder_id="https://github.com/actions/runner/github-hosted",
        source_repository=K2,
    )
    facts = gather_facts(registry, repo, ":v1")
    [ok] = run_rule(RULE, facts, Config(builder=BUILDER, source=SOURCE, keys=(DEMO_PUB,)))
    assert ok.verdict is Verdict.PASS, ok.message
    [builder] = run_rule(RULE, facts, Config(builder=re.compile(r"https://gitlab\.com/.+"), keys=(DEMO_PUB,)))
    assert builder.verdict is Verdict.FAIL and "builder" in builder.message
    [source] = run_rule(RULE, facts, Config(source=re.compile(r"github\.com/someone/else"), keys=(DEMO_PUB,)))
    assert source.verdict is Verdict.FAIL and "source" in source.message
    [no_trust] = run_rule(RULE, facts, Config(builder=BUILDER))
    assert no_trust.verdict is Verdict.ERROR


def test_wrong_key_and_foreign_subject_fail(tmp_path: Path, pusher: Pusher, registry: RegistryServer) -> None:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec

    from fixtures.supplychain import attach_provenance

    repo = "prov/neg"
    a = push_tiny_image(pusher, repo, tag="a", marker="a")
    b = push_tiny_image(pusher, repo, tag="b", marker="b")
    attach_provenance(pusher, registry.host, repo, a, builder_id="https://github.com/x", source_repository=K2)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "other.pub").write_bytes(other.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    [wrong_key] = run_rule(RULE, gather_facts(registry, repo, ":a"), Config(keys=("other.pub",)), tmp_path)
    assert wrong_key.verdict is Verdict.FAIL and "does not verify" in wrong_key.message
    # A's valid attestation copied under B's .att tag: signature fine, subject is A
    from fixtures.supplychain import cosign_tag

    assert pusher.session is not None
    body = pusher.session.get(
        f"http://{registry.host}/v2/{repo}/manifests/{cosign_tag(a, 'att')}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).content
    pusher.manifest(repo, cosign_tag(b, "att"), body, "application/vnd.oci.image.manifest.v1+json")
    [foreign] = run_rule(RULE, gather_facts(registry, repo, ":b"), Config(keys=(DEMO_PUB,)))
    assert foreign.verdict is Verdict.FAIL and "not sha256:" in foreign.message


def test_buildx_unsigned_provenance_needs_require_signed_false(pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_attestation_manifest, push_image, push_index

    repo = "prov/buildx"
    amd = push_image(pusher, repo, [build_layer({"a": FileEntry(b"p")})], ImageConfig())
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": "x", "digest": {"sha256": amd.digest.split(":")[1]}}],
        "predicate": {
            "builder": {"id": "https://github.com/rjdscott/k2-market-data-platform/actions/runs/1"},
            "invocation": {"configSource": {"uri": f"{K2}.git@refs/heads/main"}},
        },
    }
    att = push_attestation_manifest(pusher, repo, amd, [json.dumps(statement).encode()])
    push_index(pusher, repo, [amd], {amd.digest: att}, tags=["v1"])
    facts = gather_facts(registry, repo, ":v1")
    [signed_required] = run_rule(RULE, facts, Config(builder=BUILDER, source=SOURCE, keys=(DEMO_PUB,)))
    assert signed_required.verdict is Verdict.FAIL and "unsigned" in signed_required.message
    [accepted] = run_rule(RULE, facts, Config(builder=BUILDER, source=SOURCE, require_signed=False))
    assert accepted.verdict is Verdict.PASS, accepted.message


# ---- cli/cli's real GitHub artifact attestations (SLSA v1 in Sigstore bundles) --------------------

REUSABLE = "sha256:49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25"
REUSABLE_ID = re.compile(
    r"https://github\.com/github/artifact-attestations-workflows/\.github/workflows/attest\.yml@.+"
)


def _bundle_facts(pusher: Pusher, registry: RegistryServer, repo: str, digest: str, bundle: bytes):  # type: ignore[no-untyped-def]
    push_bundle_in_fallback_index(pusher, repo, digest, bundle)
    return facts_for_digest(registry.host, repo, digest)


def test_github_attestation_bundle_verifies_offline(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    bundle = (corpus / "cli-cli__reusable-workflow-attestation.sigstore.json").read_bytes()
    facts = _bundle_facts(pusher, registry, "prov/gh", REUSABLE, bundle)
    root = str(corpus / "cli-cli__trusted_root.json")
    good = Config(
        builder=re.compile(r"https://github\.com/actions/runner/github-hosted"),
        source=re.compile(r"github\.com/malancas/attest-demo"),
        keyless=Keyless(GITHUB, REUSABLE_ID),
        trusted_root=root,
    )
    [ok] = run_rule(RULE, facts, good)
    assert ok.verdict is Verdict.PASS, ok.message
    # default: sigstore-python's embedded public-good root, offline
    [default_root] = run_rule(RULE, facts, Config(builder=good.builder, keyless=good.keyless))
    assert default_root.verdict is Verdict.PASS, default_root.message
    [identity] = run_rule(
        RULE, facts, Config(keyless=Keyless(GITHUB, re.compile(r"https://github\.com/rjdscott/.+")), trusted_root=root)
    )
    assert identity.verdict is Verdict.FAIL and "identity" in identity.message
    [issuer] = run_rule(
        RULE, facts, Config(keyless=Keyless("https://accounts.google.com", REUSABLE_ID), trusted_root=root)
    )
    assert issuer.verdict is Verdict.FAIL and "issuer" in issuer.message
    [source] = run_rule(RULE, facts, Config(source=SOURCE, keyless=good.keyless, trusted_root=root))
    assert source.verdict is Verdict.FAIL


def test_custom_issuer_attestation_needs_its_issuer(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    digest = "sha256:afa27b44d43b02a9fea41d13cedc2e4016cfcf87c5dbf990e593669aa8ce286d"
    bundle = (corpus / "cli-cli__custom-issuer.sigstore.json").read_bytes()
    facts = _bundle_facts(pusher, registry, "prov/custom", digest, bundle)
    any_id = re.compile(r"https://github\.com/.+")
    [plain] = run_rule(RULE, facts, Config(keyless=Keyless(GITHUB, any_id)))
    assert plain.verdict is Verdict.FAIL
    [custom] = run_rule(RULE, facts, Config(keyless=Keyless(f"{GITHUB}/hammer-time", any_id)))
    assert custom.verdict is Verdict.PASS, custom.message


@pytest.mark.parametrize(
    ("name", "digest", "expected", "says"),
    [
        # GitHub private instance: no tlog entry -> named sigstore-python limit
        (
            "cli-cli__github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl",
            "sha256:ae57936def59bc4c75edd3a837d89bcefc6d3a5e31d55a6fa7a71624f92c3c3b",
            Verdict.ERROR,
            "transparency-log",
        ),
        # npm provenance: Rekor intoto entry -> named limit
        ("cli-cli__sigstore-js-2.1.0-bundle.json", "sha256:" + "5" * 64, Verdict.ERROR, "intoto"),
        # NEGATIVE: DSSE signature differs from the one in Rekor
        (
            "sigstore-sigstore-conformance__dsse-mismatch-sig_fail__bundle.sigstore.json",
            "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf",
            Verdict.FAIL,
            "did not verify",
        ),
    ],
)
def test_bundles_that_must_not_pass(
    name: str, digest: str, expected: Verdict, says: str, corpus: Path, pusher: Pusher, registry: RegistryServer
) -> None:
    repo = "prov/neg-" + re.sub(r"[^a-z0-9]+", "-", name.lower())[:60].strip("-")
    facts = _bundle_facts(
        pusher,
        registry,
        repo,
        digest,
        (corpus / name).read_bytes().splitlines()[0] if name.endswith(".jsonl") else (corpus / name).read_bytes(),
    )
    [finding] = run_rule(RULE, facts, Config(keyless=Keyless(GITHUB, re.compile(".*"))))
    assert finding.verdict is expected, finding.message
    assert says in finding.message


def test_bundle_with_missing_field_fails(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    doc = json.loads((corpus / "cli-cli__reusable-workflow-attestation.sigstore.json").read_bytes())
    del doc["verificationMaterial"]["certificate"]
    facts = _bundle_facts(pusher, registry, "prov/missing", REUSABLE, json.dumps(doc).encode())
    [finding] = run_rule(RULE, facts, Config(keyless=Keyless(GITHUB, REUSABLE_ID)))
    assert finding.verdict in (Verdict.FAIL, Verdict.ERROR)
    assert "Traceback" not in finding.message


def test_modified_artifact_digest_fails(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    """The same valid attestation checked against another digest (a modified artifact)."""
    bundle = (corpus / "cli-cli__reusable-workflow-attestation.sigstore.json").read_bytes()
    facts = _bundle_facts(pusher, registry, "prov/modified", "sha256:" + "6" * 64, bundle)
    [finding] = run_rule(RULE, facts, Config(keyless=Keyless(GITHUB, REUSABLE_ID)))
    assert finding.verdict is Verdict.FAIL and "another artifact" in finding.message


# ---- slsa-verifier's real SLSA v0.2 provenance of a ghcr.io index (cosign .att, Fulcio + Rekor SET) --

SLSA_PREFIX = "slsa-framework-slsa-verifier__gha_generic_container-v1.10.0__"
SLSA_SUBJECT = "sha256:e0a0a765d690a5104331cfbac88ebbbf01736c1f87aaa3cd455c516a5ea586a5"


def test_legacy_keyless_att_verifies_offline(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    """slsa-verifier's layout pushed as far as the registry allows: the `.att` manifest (its config is
    rebuilt: that blob is not in the corpus) with the real DSSE layer and annotations under cosign's tag
    of the index digest; the index itself cannot be pushed (its platform manifests are not in the corpus)."""
    from fixtures.supplychain import cosign_tag, push_layers_manifest

    manifest = json.loads(
        (corpus / f"{SLSA_PREFIX}31cc4fb663c8d34e2e6a0bd5f183d576c2811ee286e0998b4c2965e3b35a0d86").read_bytes()
    )
    [layer] = manifest["layers"]
    envelope = (corpus / f"{SLSA_PREFIX}{layer['digest'].split(':')[1]}").read_bytes()
    repo = "prov/slsa-verifier"
    push_layers_manifest(
        pusher, repo, cosign_tag(SLSA_SUBJECT, "att"), [(envelope, layer["mediaType"], layer["annotations"])]
    )
    # the original manifest needs its config blob, which the corpus does not hold: the registry says so
    with pytest.raises(RuntimeError, match="MANIFEST_BLOB_UNKNOWN"):
        pusher.manifest(repo, "original-att", json.dumps(manifest).encode(), manifest["mediaType"])
    facts = facts_for_digest(registry.host, repo, SLSA_SUBJECT)
    identity = re.compile(r"https://github\.com/slsa-framework/slsa-github-generator/.+")
    generator = re.compile(r"https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/.+")
    [finding] = run_rule(RULE, facts, Config(builder=generator, keyless=Keyless(GITHUB, identity)))
    assert finding.verdict is Verdict.PASS, finding.message
    assert "log index 80008005" in finding.message and "v0.2" in finding.message
    [other_builder] = run_rule(
        RULE, facts, Config(builder=re.compile("https://gitlab.com/.+"), keyless=Keyless(GITHUB, identity))
    )
    assert other_builder.verdict is Verdict.FAIL and "builder" in other_builder.message
    [other_identity] = run_rule(
        RULE, facts, Config(keyless=Keyless(GITHUB, re.compile(r"https://github\.com/evil/.+")))
    )
    assert other_identity.verdict is Verdict.FAIL and "identity" in other_identity.message
    [keys_only] = run_rule(RULE, facts, Config(keys=(DEMO_PUB,)))
    assert keys_only.verdict is Verdict.FAIL


def test_grype_key_signed_attestation_and_tampered_copy(corpus: Path) -> None:
    subject = "sha256:4edbd2beb5f78b1014028f4fbb99f3237d9561100b6881aabbf5acce2c4f9454"
    trust = Trust(keys=(("grype.pub", (corpus / "anchore-grype__cosign.pub").read_bytes()),))
    good = Attachment(
        "dsse",
        "grype",
        subject,
        "application/vnd.dsse.envelope.v1+json",
        (corpus / "anchore-grype__alpine.cdx.att.json").read_bytes(),
    )
    assert check_attestation(good, [subject], trust).status == "verified"
    assert check_attestation(good, ["sha256:" + "7" * 64], trust).status == "rejected"
    tampered = Attachment(
        "dsse", "grype", subject, good.media_type, (corpus / "anchore-grype__alpine-tampered.cdx.att.json").read_bytes()
    )
    assert check_attestation(tampered, [subject], trust).status == "rejected"
