"""signature rule: key-based cosign signatures end to end against the real registry, the real
containers/image cosign signatures rebuilt into the registry, and Sigstore bundles offline."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
from test_supplychain_support import (
    containers_image_signature,
    facts_for_digest,
    gather_facts,
    push_bundle_in_fallback_index,
    push_tiny_image,
    run_rule,
)

from imgcheck.checks.signature import RULE, Config, Keyless
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
DEMO_PUB = ROOT / "fixtures" / "keys" / "demo-cosign.pub"
DEMO_KEY = ROOT / "fixtures" / "keys" / "demo-cosign.key"
GITHUB = "https://token.actions.githubusercontent.com"


def _keypair(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    key = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }[kind]()
    priv = tmp_path / f"{kind}.key"
    pub = tmp_path / f"{kind}.pub"
    priv.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa"])
def test_key_signature_verifies_for_each_key_type(
    kind: str, tmp_path: Path, pusher: Pusher, registry: RegistryServer
) -> None:
    from fixtures.supplychain import sign_image

    repo = f"sig/keys-{kind}"
    digest = push_tiny_image(pusher, repo, marker=kind)
    priv, pub = _keypair(tmp_path, kind)
    sign_image(pusher, registry.host, repo, digest, priv)
    facts = gather_facts(registry, repo, ":v1")
    [finding] = run_rule(RULE, facts, Config(keys=(pub.name,)), policy_dir=tmp_path)
    assert finding.verdict is Verdict.PASS, finding.message
    assert pub.name in finding.message
    assert f"{registry.host}/{repo}" in finding.message  # docker-reference reported


def test_demo_key_signature_passes_and_other_key_fails(
    tmp_path: Path, pusher: Pusher, registry: RegistryServer
) -> None:
    from fixtures.supplychain import sign_image

    repo = "sig/demo"
    digest = push_tiny_image(pusher, repo)
    sign_image(pusher, registry.host, repo, digest, DEMO_KEY)
    facts = gather_facts(registry, repo, ":v1")
    [ok] = run_rule(RULE, facts, Config(keys=(str(DEMO_PUB),)))
    assert ok.verdict is Verdict.PASS
    _, other_pub = _keypair(tmp_path, "p256")
    [bad] = run_rule(RULE, facts, Config(keys=(str(other_pub),)))
    assert bad.verdict is Verdict.FAIL
    assert "does not verify" in bad.message
    # any one key verifying is enough
    [either] = run_rule(RULE, facts, Config(keys=(str(other_pub), str(DEMO_PUB))))
    assert either.verdict is Verdict.PASS


def test_replayed_signature_from_another_image_fails(pusher: Pusher, registry: RegistryServer) -> None:
    """A valid signature over image A copied to image B's .sig tag must not pass for B."""
    from fixtures.supplychain import (
        cosign_tag,
        load_private_key,
        push_layers_manifest,
        sign_bytes,
        signature_layer,
        simplesigning_payload,
    )

    repo = "sig/replay"
    a = push_tiny_image(pusher, repo, tag="a", marker="a")
    b = push_tiny_image(pusher, repo, tag="b", marker="b")
    payload = simplesigning_payload(f"{registry.host}/{repo}", a)
    layer = signature_layer(payload, sign_bytes(load_private_key(DEMO_KEY), payload))
    push_layers_manifest(pusher, repo, cosign_tag(b, "sig"), [layer])
    [finding] = run_rule(RULE, gather_facts(registry, repo, ":b"), Config(keys=(str(DEMO_PUB),)))
    assert finding.verdict is Verdict.FAIL
    assert "replayed" in finding.message


def test_corrupt_signature_and_tampered_payload_fail(pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.supplychain import (
        cosign_tag,
        load_private_key,
        push_layers_manifest,
        sign_bytes,
        simplesigning_payload,
    )

    repo = "sig/corrupt"
    digest = push_tiny_image(pusher, repo)
    payload = simplesigning_payload(f"{registry.host}/{repo}", digest)
    good_sig = sign_bytes(load_private_key(DEMO_KEY), payload)
    import base64

    cases = {
        "not base64": (payload, "!!not-base64!!"),
        "flipped byte": (payload, base64.b64encode(good_sig[:-1] + bytes([good_sig[-1] ^ 1])).decode()),
        "tampered payload": (
            payload.replace(b"cosign container image signature", b"cosign container image signaturf"),
            base64.b64encode(good_sig).decode(),
        ),
        "payload not json": (b"{", base64.b64encode(good_sig).decode()),
        "missing annotation": (payload, ""),
    }
    for name, (body, sig) in cases.items():
        annotations = {"dev.cosignproject.cosign/signature": sig} if sig else {}
        push_layers_manifest(
            pusher,
            repo,
            cosign_tag(digest, "sig"),
            [(body, "application/vnd.dev.cosign.simplesigning.v1+json", annotations)],
        )
        [finding] = run_rule(RULE, gather_facts(registry, repo, ":v1"), Config(keys=(str(DEMO_PUB),)))
        assert finding.verdict is Verdict.FAIL, (name, finding)


def test_unsigned_image_fails_and_says_where_it_looked(pusher: Pusher, registry: RegistryServer) -> None:
    repo = "sig/unsigned"
    push_tiny_image(pusher, repo)
    [finding] = run_rule(RULE, gather_facts(registry, repo, ":v1"), Config(keys=(str(DEMO_PUB),)))
    assert finding.verdict is Verdict.FAIL
    assert "no signature found" in finding.message and ".sig" in finding.message


def test_missing_key_file_is_an_input_error(pusher: Pusher, registry: RegistryServer, tmp_path: Path) -> None:
    from imgcheck.errors import InputError

    repo = "sig/nokey"
    push_tiny_image(pusher, repo)
    with pytest.raises(InputError, match="cannot read public key"):
        run_rule(RULE, gather_facts(registry, repo, ":v1"), Config(keys=("missing.pub",)), policy_dir=tmp_path)


def test_not_a_key_is_an_error_not_a_pass(pusher: Pusher, registry: RegistryServer, tmp_path: Path) -> None:
    from fixtures.supplychain import sign_image

    repo = "sig/badkey"
    digest = push_tiny_image(pusher, repo)
    sign_image(pusher, registry.host, repo, digest, DEMO_KEY)
    (tmp_path / "bad.pub").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    [finding] = run_rule(RULE, gather_facts(registry, repo, ":v1"), Config(keys=("bad.pub",)), policy_dir=tmp_path)
    assert finding.verdict is Verdict.ERROR
    assert "not a PEM public key" in finding.message


def test_index_signature_is_on_the_index_digest(pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_image, push_index
    from fixtures.supplychain import sign_image

    repo = "sig/index"
    amd = push_image(pusher, repo, [build_layer({"a": FileEntry(b"amd")})], ImageConfig(architecture="amd64"))
    arm = push_image(pusher, repo, [build_layer({"a": FileEntry(b"arm")})], ImageConfig(architecture="arm64"))
    index = push_index(pusher, repo, [amd, arm], tags=["multi"])
    facts = gather_facts(registry, repo, ":multi")
    [unsigned] = run_rule(RULE, facts, Config(keys=(str(DEMO_PUB),)))
    assert unsigned.verdict is Verdict.FAIL
    sign_image(pusher, registry.host, repo, amd.digest, DEMO_KEY)  # a platform signature is not the index's
    [still] = run_rule(RULE, facts, Config(keys=(str(DEMO_PUB),)))
    assert still.verdict is Verdict.FAIL
    sign_image(pusher, registry.host, repo, index.digest, DEMO_KEY)
    [signed] = run_rule(RULE, facts, Config(keys=(str(DEMO_PUB),)))
    assert signed.verdict is Verdict.PASS


# ---- real cosign signatures from containers/image, rebuilt into the registry ---------------------


def _push_corpus_signature(pusher: Pusher, repo: str, corpus: Path, manifest: str, signature: str) -> str:
    from fixtures.supplychain import SIMPLESIGNING, cosign_tag, push_layers_manifest

    digest = "sha256:" + hashlib.sha256((corpus / manifest).read_bytes()).hexdigest()
    payload, annotations = containers_image_signature(corpus / signature)
    push_layers_manifest(pusher, repo, cosign_tag(digest, "sig"), [(payload, SIMPLESIGNING, annotations)])
    return digest


@pytest.mark.parametrize(
    ("manifest", "signature", "key", "expected"),
    [
        ("dir-img-cosign-valid__manifest.json", "dir-img-cosign-valid__signature-1", "cosign.pub", Verdict.PASS),
        (
            "dir-img-cosign-key-rekor-valid__manifest.json",
            "dir-img-cosign-key-rekor-valid__signature-1",
            "cosign2.pub",
            Verdict.PASS,
        ),
        # NEGATIVE: signed with a key that is not cosign.pub
        ("dir-img-cosign-valid__manifest.json", "unknown-cosign-key.signature", "cosign.pub", Verdict.FAIL),
        # right signature, wrong key
        ("dir-img-cosign-valid__manifest.json", "dir-img-cosign-valid__signature-1", "cosign2.pub", Verdict.FAIL),
        # a valid signature replayed onto another image's digest
        (
            "dir-img-cosign-key-rekor-valid__manifest.json",
            "dir-img-cosign-valid__signature-1",
            "cosign.pub",
            Verdict.FAIL,
        ),
    ],
)
def test_containers_image_cosign_signatures(
    manifest: str,
    signature: str,
    key: str,
    expected: Verdict,
    corpus: Path,
    pusher: Pusher,
    registry: RegistryServer,
    tmp_path: Path,
) -> None:
    repo = "sig/corpus-" + re.sub(r"[^a-z0-9]+", "-", (manifest + signature + key).lower())[:80].strip("-")
    digest = _push_corpus_signature(
        pusher, repo, corpus, f"containers-image__{manifest}", f"containers-image__{signature}"
    )
    shutil.copy(corpus / f"containers-image__{key}", tmp_path / key)
    [finding] = run_rule(RULE, facts_for_digest(registry.host, repo, digest), Config(keys=(key,)), tmp_path)
    assert finding.verdict is expected, finding.message


def test_legacy_keyless_signature_verifies_offline(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    """cosign v2 keyless (.sig with Fulcio cert + Rekor SET), read back from the registry: verified offline,
    issuer AND identity required; a keys-only policy never accepts it."""
    repo = "sig/corpus-keyless"
    digest = _push_corpus_signature(
        pusher,
        repo,
        corpus,
        "containers-image__dir-img-cosign-fulcio-rekor-valid__manifest.json",
        "containers-image__dir-img-cosign-fulcio-rekor-valid__signature-1",
    )
    facts = facts_for_digest(registry.host, repo, digest)
    oauth = "https://github.com/login/oauth"
    [keyless] = run_rule(RULE, facts, Config(keyless=Keyless(oauth, re.compile(r"mitr@redhat\.com"))))
    assert keyless.verdict is Verdict.PASS, keyless.message
    assert "mitr@redhat.com" in keyless.message and "log index 11605770" in keyless.message
    [wrong_identity] = run_rule(RULE, facts, Config(keyless=Keyless(oauth, re.compile(r"someone@redhat\.com"))))
    assert wrong_identity.verdict is Verdict.FAIL and "identity" in wrong_identity.message
    [wrong_issuer] = run_rule(RULE, facts, Config(keyless=Keyless(GITHUB, re.compile(r"mitr@redhat\.com"))))
    assert wrong_issuer.verdict is Verdict.FAIL and "issuer" in wrong_issuer.message
    [keys_only] = run_rule(RULE, facts, Config(keys=(str(DEMO_PUB),)))
    assert keys_only.verdict is Verdict.FAIL


# ---- Sigstore bundles as cosign v3 referrers ------------------------------------------------------


def test_cosign_v3_bundle_attestation_on_oci_digest(corpus: Path, pusher: Pusher, registry: RegistryServer) -> None:
    """cosign's real new-format bundle whose in-toto subject is an OCI digest, stored as a referrer."""
    repo = "sig/bundle-cosign"
    digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    bundle = (corpus / "sigstore-cosign__oci-attestation.sigstore.json").read_bytes()
    push_bundle_in_fallback_index(pusher, repo, digest, bundle)
    facts = facts_for_digest(registry.host, repo, digest)
    sans = ".*"
    root = str(corpus / "sigstore-cosign__trusted_root_pgi.json")
    [ok] = run_rule(
        RULE, facts, Config(keyless=Keyless("https://github.com/login/oauth", re.compile(sans)), trusted_root=root)
    )
    assert ok.verdict is Verdict.PASS, ok.message
    [wrong_issuer] = run_rule(RULE, facts, Config(keyless=Keyless(GITHUB, re.compile(sans)), trusted_root=root))
    assert wrong_issuer.verdict is Verdict.FAIL and "issuer" in wrong_issuer.message
    [wrong_identity] = run_rule(
        RULE,
        facts,
        Config(
            keyless=Keyless("https://github.com/login/oauth", re.compile("nobody@example\\.com")), trusted_root=root
        ),
    )
    assert wrong_identity.verdict is Verdict.FAIL and "identity" in wrong_identity.message
    [other_image] = run_rule(
        RULE,
        facts_for_digest(registry.host, repo, "sha256:" + "1" * 64),
        Config(keyless=Keyless("https://github.com/login/oauth", re.compile(sans)), trusted_root=root),
    )
    assert other_image.verdict is Verdict.FAIL
