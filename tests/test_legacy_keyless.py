"""Legacy cosign keyless `.sig` / `.att` (Fulcio certificate + Rekor SET), verified offline: the real
public-good vectors (containers/image, slsa-verifier) and each tamper, a private Sigstore made here
(attacker CA named like Fulcio, SCT policy, intoto kinds), and key-based signatures' SETs.

Each negative asserts the reason, so a check failing for an unrelated cause cannot hide a hole."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_supplychain_support import containers_image_signature

from fixtures.sigstore_private import ANN_BUNDLE, ANN_CERTIFICATE, ANN_CHAIN, ANN_SIGNATURE, Logs, PrivateSigstore
from fixtures.supplychain import intoto_statement, simplesigning_payload
from imgcheck.supplychain.attachments import DSSE_ENVELOPE, SIMPLESIGNING, Attachment
from imgcheck.supplychain.attestations import check_attestation
from imgcheck.supplychain.outcome import Outcome, Trust
from imgcheck.supplychain.simplesigning import verify_simplesigning

CORPUS = Path(__file__).parent / "data" / "corpus"
OAUTH = "https://github.com/login/oauth"
GITHUB = "https://token.actions.githubusercontent.com"
SLSA = "slsa-framework-slsa-verifier__gha_generic_container-v1.10.0__"
SLSA_SUBJECT = "sha256:e0a0a765d690a5104331cfbac88ebbbf01736c1f87aaa3cd455c516a5ea586a5"
SLSA_IDENTITY = r"https://github\.com/slsa-framework/slsa-github-generator/\.github/workflows/generator_container_slsa3\.yml@refs/tags/v1\.10\.0"
ROOTS = (
    None,
    "sigstore-sigstore-python__trusted_root.prod.json",
    "cli-cli__trusted_root.json",
    "sigstore-cosign__trusted_root_pgi.json",
)


def trust(issuer: str, identity: str, root: str | None = None, **extra: object) -> Trust:
    raw = (CORPUS / root).read_bytes() if root else None
    return Trust(issuer=issuer, identity=identity, trusted_root=raw, trusted_root_name=root, **extra)  # type: ignore[arg-type]


def fulcio_sig() -> tuple[Attachment, str]:
    """containers/image's keyless `.sig` layer (with chain annotation) and the digest it signs."""
    payload, annotations = containers_image_signature(
        CORPUS / "containers-image__dir-img-cosign-fulcio-rekor-valid__signature-1"
    )
    manifest = (CORPUS / "containers-image__dir-img-cosign-fulcio-rekor-valid__manifest.json").read_bytes()
    return Attachment("simplesigning", "fulcio-rekor", "", SIMPLESIGNING, payload, annotations), (
        "sha256:" + hashlib.sha256(manifest).hexdigest()
    )


def rekor_sig() -> tuple[Attachment, str]:
    """containers/image's rekor-{payload,sig,cert,set}: no chain annotation (the intermediate comes
    from the trusted root)."""
    payload = (CORPUS / "containers-image__rekor-payload").read_bytes()
    annotations = {
        ANN_SIGNATURE: (CORPUS / "containers-image__rekor-sig").read_text().strip(),
        ANN_CERTIFICATE: (CORPUS / "containers-image__rekor-cert").read_text(),
        ANN_BUNDLE: (CORPUS / "containers-image__rekor-set").read_text(),
    }
    digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    return Attachment("simplesigning", "rekor", "", SIMPLESIGNING, payload, annotations), digest


def slsa_att() -> Attachment:
    """slsa-verifier's `.att` manifest 31cc4fb6…: its DSSE layer 20b16d58… and the layer annotations."""
    manifest = json.loads(
        (CORPUS / f"{SLSA}31cc4fb663c8d34e2e6a0bd5f183d576c2811ee286e0998b4c2965e3b35a0d86").read_bytes()
    )
    [layer] = manifest["layers"]
    envelope = (CORPUS / f"{SLSA}{layer['digest'].split(':')[1]}").read_bytes()
    return Attachment("dsse", "slsa-verifier", SLSA_SUBJECT, layer["mediaType"], envelope, layer["annotations"])


def with_annotations(att: Attachment, **changes: str | None) -> Attachment:
    keys = {"signature": ANN_SIGNATURE, "certificate": ANN_CERTIFICATE, "chain": ANN_CHAIN, "bundle": ANN_BUNDLE}
    annotations = dict(att.annotations)
    for name, value in changes.items():
        if value is None:
            annotations.pop(keys[name], None)
        else:
            annotations[keys[name]] = value
    return Attachment(att.kind, att.origin, att.target, att.media_type, att.content, annotations)


def with_content(att: Attachment, content: bytes) -> Attachment:
    return Attachment(att.kind, att.origin, att.target, att.media_type, content, att.annotations)


def flip_b64(text: str, at: int = 10) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def edit_bundle(att: Attachment, edit: Callable[[dict[str, object]], None]) -> Attachment:
    doc = json.loads(att.annotations[ANN_BUNDLE])
    edit(doc)
    return with_annotations(att, bundle=json.dumps(doc))


def flip_cert(pem_text: str) -> str:
    """The leaf with one byte of its DER changed (inside the SAN): a forged certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = bytearray(x509.load_pem_x509_certificate(pem_text.encode()).public_bytes(Encoding.DER))
    at = der.find(b"redhat.com")
    at = at if at > 0 else len(der) // 2
    der[at] ^= 0x20
    b64 = base64.b64encode(bytes(der)).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def assert_rejected(outcome: Outcome, *words: str) -> None:
    assert outcome.status == "rejected", outcome
    for word in words:
        assert word in outcome.message, (word, outcome.message)


# ---- the real public-good vectors --------------------------------------------------------------------


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("vector", ["fulcio-rekor", "rekor"])
def test_real_keyless_signatures_verify_offline(vector: str, root: str | None) -> None:
    att, digest = fulcio_sig() if vector == "fulcio-rekor" else rekor_sig()
    outcome = verify_simplesigning(att, digest, trust(OAUTH, r"mitr@redhat\.com", root))
    assert outcome.status == "verified", outcome.message
    log_index = json.loads(att.annotations[ANN_BUNDLE])["Payload"]["logIndex"]
    for said in ("mitr@redhat.com", OAUTH, f"log index {log_index}", "integrated 20", root or "public-good"):
        assert said in outcome.message, said
    assert outcome.details["rekor"]["kind"] == "hashedrekord 0.0.1"
    assert outcome.details["ct_log"] == "https://ctfe.sigstore.dev/2022"
    unverifiable = " ".join(outcome.details["not_verified_offline"])
    assert "inclusion" in unverifiable and "TUF" in unverifiable and "SCT" in unverifiable


@pytest.mark.parametrize("root", ROOTS)
def test_real_slsa_provenance_att_verifies_offline(root: str | None) -> None:
    outcome = check_attestation(slsa_att(), [SLSA_SUBJECT], trust(GITHUB, SLSA_IDENTITY, root))
    assert outcome.status == "verified", outcome.message
    assert outcome.statement is not None and outcome.statement["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert outcome.details["rekor"] == {
        "log": "https://rekor.sigstore.dev",
        "log_index": 80008005,
        "integrated_time": "2024-03-21T10:34:04Z",
        "kind": "dsse 0.0.1",
    }
    assert "generator_container_slsa3.yml@refs/tags/v1.10.0" in outcome.message


def _other_bundle() -> str:
    return rekor_sig()[0].annotations[ANN_BUNDLE]


SIG_TAMPERS: dict[str, tuple[Callable[[Attachment], Attachment], tuple[str, ...]]] = {
    "signature": (lambda a: with_annotations(a, signature=flip_b64(a.annotations[ANN_SIGNATURE])), ("signature",)),
    "payload": (lambda a: with_content(a, a.content.replace(b"fulcio-rekor-1", b"fulcio-rekor-2")), ("signature",)),
    "SET": (
        lambda a: edit_bundle(a, lambda d: d.update(SignedEntryTimestamp=flip_b64(str(d["SignedEntryTimestamp"])))),
        ("SET does not verify",),
    ),
    "body": (
        lambda a: edit_bundle(
            a,
            lambda d: d["Payload"].update(  # type: ignore[union-attr]
                body=base64.b64encode(
                    base64.b64decode(d["Payload"]["body"]).replace(b'"sha256"', b'"SHA256"')  # type: ignore[index]
                ).decode()
            ),
        ),
        ("SET does not verify",),
    ),
    "integrated time": (
        lambda a: edit_bundle(a, lambda d: d["Payload"].update(integratedTime=d["Payload"]["integratedTime"] + 1)),  # type: ignore[index, union-attr]
        ("SET does not verify",),
    ),
    "certificate bytes": (
        lambda a: with_annotations(a, certificate=flip_cert(a.annotations[ANN_CERTIFICATE])),
        ("chain",),
    ),
    "body of another entry": (
        lambda a: edit_bundle(a, lambda d: d["Payload"].update(body=json.loads(_other_bundle())["Payload"]["body"])),  # type: ignore[union-attr]
        ("SET does not verify",),
    ),
    "bundle moved onto another signature": (lambda a: with_annotations(a, bundle=_other_bundle()), ("another",)),
    "no bundle": (lambda a: with_annotations(a, bundle=None), ("without a Rekor bundle",)),
    "certificate not PEM": (lambda a: with_annotations(a, certificate="not a certificate"), ("corrupt",)),
    "chain not PEM": (lambda a: with_annotations(a, chain="-----BEGIN CERTIFICATE-----\nAAAA\n"), ("corrupt",)),
    "body not base64": (lambda a: edit_bundle(a, lambda d: d["Payload"].update(body="%%%")), ("SET does not verify",)),  # type: ignore[union-attr]
    "absurd integrated time": (
        lambda a: edit_bundle(a, lambda d: d["Payload"].update(integratedTime=10**30)),  # type: ignore[union-attr]
        ("corrupt", "integratedTime"),
    ),
    "bundle not JSON": (lambda a: with_annotations(a, bundle="{"), ("corrupt",)),
}


@pytest.mark.parametrize("tamper", sorted(SIG_TAMPERS))
def test_real_keyless_signature_tampers_are_rejected(tamper: str) -> None:
    att, digest = fulcio_sig()
    change, words = SIG_TAMPERS[tamper]
    assert_rejected(verify_simplesigning(change(att), digest, trust(OAUTH, r"mitr@redhat\.com")), *words)


def test_real_keyless_identity_issuer_digest_and_staging_root_are_rejected() -> None:
    att, digest = fulcio_sig()
    assert_rejected(verify_simplesigning(att, digest, trust(OAUTH, r"someone@redhat\.com")), "identity")
    assert_rejected(verify_simplesigning(att, digest, trust(GITHUB, r"mitr@redhat\.com")), "issuer")
    assert_rejected(verify_simplesigning(att, "sha256:" + "1" * 64, trust(OAUTH, r"mitr@redhat\.com")), "replayed")
    staging = trust(OAUTH, r"mitr@redhat\.com", "sigstore-sigstore-python__trusted_root.staging.json")
    assert_rejected(verify_simplesigning(att, digest, staging), "does not name", "staging")
    # keys-only policies never accept a keyless signature
    keys_only = Trust(keys=(("cosign.pub", (CORPUS / "containers-image__cosign.pub").read_bytes()),))
    assert_rejected(verify_simplesigning(att, digest, keys_only), "trusts only keys")


def test_real_slsa_provenance_tampers_are_rejected() -> None:
    att = slsa_att()
    good = trust(GITHUB, SLSA_IDENTITY)
    envelope = json.loads(att.content)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["builder"]["id"] = "https://example.com/evil"
    forged = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    assert_rejected(check_attestation(with_content(att, json.dumps(forged).encode()), [SLSA_SUBJECT], good), "DSSE")
    reserialised = json.dumps(envelope, indent=1).encode()  # the signature holds, the logged envelope hash does not
    assert_rejected(check_attestation(with_content(att, reserialised), [SLSA_SUBJECT], good), "envelope hash")
    assert_rejected(check_attestation(att, ["sha256:" + "2" * 64], good), "is about")
    assert_rejected(check_attestation(att, [SLSA_SUBJECT], trust(GITHUB, r"https://github\.com/evil/.+")), "identity")
    assert_rejected(check_attestation(att, [SLSA_SUBJECT], trust(OAUTH, SLSA_IDENTITY)), "issuer")
    moved = with_annotations(att, bundle=fulcio_sig()[0].annotations[ANN_BUNDLE])
    assert_rejected(check_attestation(moved, [SLSA_SUBJECT], good), "hashedrekord")
    staging = trust(GITHUB, SLSA_IDENTITY, "sigstore-sigstore-python__trusted_root.staging.json")
    assert_rejected(check_attestation(att, [SLSA_SUBJECT], staging), "does not name")


# ---- key-based signatures' Rekor SET -------------------------------------------------------------------


def test_key_signature_set_is_checked_when_present_and_said_when_absent() -> None:
    key = (("cosign2.pub", (CORPUS / "containers-image__cosign2.pub").read_bytes()),)
    payload, annotations = containers_image_signature(
        CORPUS / "containers-image__dir-img-cosign-key-rekor-valid__signature-1"
    )
    manifest = (CORPUS / "containers-image__dir-img-cosign-key-rekor-valid__manifest.json").read_bytes()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    att = Attachment("simplesigning", "key-rekor", digest, SIMPLESIGNING, payload, annotations)
    ok = verify_simplesigning(att, digest, Trust(keys=key))
    assert ok.status == "verified", ok.message
    assert str(ok.details["rekor_set"]).startswith("verified: hashedrekord 0.0.1 entry, https://rekor.sigstore.dev")
    bad_set = edit_bundle(att, lambda d: d.update(SignedEntryTimestamp=flip_b64(str(d["SignedEntryTimestamp"]))))
    assert_rejected(verify_simplesigning(bad_set, digest, Trust(keys=key)), "SET does not verify")
    moved = with_annotations(att, bundle=fulcio_sig()[0].annotations[ANN_BUNDLE])
    assert_rejected(verify_simplesigning(moved, digest, Trust(keys=key)), "Rekor SET does not hold")
    staging = Trust(
        keys=key, trusted_root=(CORPUS / "sigstore-sigstore-python__trusted_root.staging.json").read_bytes()
    )
    assert_rejected(verify_simplesigning(att, digest, staging), "does not name")
    absent = verify_simplesigning(with_annotations(att, bundle=None), digest, Trust(keys=key))
    assert absent.status == "verified" and str(absent.details["rekor_set"]).startswith("absent")


# ---- a private Sigstore made here ------------------------------------------------------------------------

IDENTITY = "https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main"
DIGEST = "sha256:" + "ab" * 32


def private_trust(root: bytes, **extra: object) -> Trust:
    return Trust(
        issuer=GITHUB,
        identity=r"https://github\.com/o/r/.+",
        trusted_root=root,
        trusted_root_name="private.json",
        **extra,
    )  # type: ignore[arg-type]


def private_sig(signer: PrivateSigstore, **options: bool) -> Attachment:
    payload = simplesigning_payload("registry.test/o/r", DIGEST)
    return Attachment(
        "simplesigning",
        "private",
        DIGEST,
        SIMPLESIGNING,
        payload,
        signer.sign_payload(payload, IDENTITY, GITHUB, **options),
    )


def test_attacker_root_named_like_fulcio_is_rejected_unless_pinned() -> None:
    logs = Logs()
    fulcio = PrivateSigstore(logs, org="sigstore.dev", names=("sigstore", "sigstore-intermediate"))
    attacker = PrivateSigstore(logs, org="sigstore.dev", names=("sigstore", "sigstore-intermediate"))
    att = private_sig(attacker)  # its chain annotation carries the attacker's intermediate and root
    assert attacker.root.subject == fulcio.root.subject
    assert_rejected(verify_simplesigning(att, DIGEST, private_trust(fulcio.trusted_root())), "does not chain")
    pinned = verify_simplesigning(att, DIGEST, private_trust(fulcio.trusted_root(cas=(fulcio, attacker))))
    assert pinned.status == "verified", pinned.message
    assert "private.json" in pinned.message


def test_sct_is_required_by_default_and_optional_for_private_sigstore() -> None:
    signer = PrivateSigstore()
    no_ct_root = signer.trusted_root(ct=False)
    error = verify_simplesigning(private_sig(signer), DIGEST, private_trust(no_ct_root))
    assert error.status == "unsupported" and "keyless.require_sct" in error.message, error
    relaxed = verify_simplesigning(private_sig(signer, sct=False), DIGEST, private_trust(no_ct_root, require_sct=False))
    assert relaxed.status == "verified", relaxed.message
    assert "keyless.require_sct: false" in " ".join(relaxed.details["not_verified_offline"])
    assert_rejected(
        verify_simplesigning(private_sig(signer, sct=False), DIGEST, private_trust(signer.trusted_root())),
        "no embedded SCT",
    )
    other_ct = PrivateSigstore(Logs(rekor=signer.logs.rekor))  # same Rekor, another CT log signed the SCT
    att = private_sig(other_ct)
    assert_rejected(
        verify_simplesigning(att, DIGEST, private_trust(signer.trusted_root(cas=(other_ct,)))),
        "not in the trusted root",
    )


def test_leaf_outside_its_ten_minutes_at_integrated_time_is_rejected() -> None:
    from datetime import UTC, datetime, timedelta

    signer = PrivateSigstore()
    att = private_sig(signer)
    body = json.loads(base64.b64decode(json.loads(att.annotations[ANN_BUNDLE])["Payload"]["body"]))
    late = signer.rekor_bundle(body, datetime.now(UTC) + timedelta(minutes=30))
    assert_rejected(
        verify_simplesigning(with_annotations(att, bundle=late), DIGEST, private_trust(signer.trusted_root())), "chain"
    )


@pytest.mark.parametrize("kind", ["dsse 0.0.1", "intoto 0.0.1", "intoto 0.0.2"])
def test_private_keyless_attestation_of_each_rekor_kind(kind: str) -> None:
    signer = PrivateSigstore()
    statement = intoto_statement(DIGEST, "registry.test/o/r", "https://slsa.dev/provenance/v1", {"x": 1})
    envelope, annotations = signer.sign_statement(statement, IDENTITY, GITHUB, kind=kind)
    att = Attachment("dsse", "private", DIGEST, DSSE_ENVELOPE, envelope, annotations)
    ok = check_attestation(att, [DIGEST], private_trust(signer.trusted_root()))
    assert ok.status == "verified", ok.message
    assert ok.details["rekor"]["kind"] == kind
    other_envelope, _ = signer.sign_statement(statement, IDENTITY, GITHUB, kind=kind)
    swapped = with_content(att, other_envelope)  # a valid envelope of the same identity, not the logged one
    assert check_attestation(swapped, [DIGEST], private_trust(signer.trusted_root())).status == "rejected"


def test_long_issuer_is_read_from_its_der_utf8_string() -> None:
    """An issuer of 128 bytes or more has a long-form DER length (a private OIDC provider's long URL)."""
    signer = PrivateSigstore()
    issuer = "https://oidc.example.com/" + "tenant/" * 20
    payload = simplesigning_payload("registry.test/o/r", DIGEST)
    att = Attachment(
        "simplesigning", "long", DIGEST, SIMPLESIGNING, payload, signer.sign_payload(payload, IDENTITY, issuer)
    )
    policy = Trust(issuer=issuer, identity=r"https://github\.com/o/r/.+", trusted_root=signer.trusted_root())
    outcome = verify_simplesigning(att, DIGEST, policy)
    assert outcome.status == "verified" and outcome.details["issuer"] == issuer, outcome.message


def test_key_signed_attestation_set_is_checked_when_present(tmp_path: Path) -> None:
    """`cosign attest --key` with a Rekor upload: the dsse entry must name this envelope and this key."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec

    from fixtures.supplychain import dsse_envelope

    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.key").write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    pub = key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    statement = intoto_statement(DIGEST, "registry.test/o/r", "https://slsa.dev/provenance/v1", {"x": 1})
    envelope = dsse_envelope(statement, tmp_path / "k.key")
    doc = json.loads(envelope)
    signer = PrivateSigstore()

    def sha(data: bytes) -> dict[str, str]:
        return {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest()}

    body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": sha(envelope),
            "payloadHash": sha(base64.b64decode(doc["payload"])),
            "signatures": [{"signature": doc["signatures"][0]["sig"], "verifier": base64.b64encode(pub).decode()}],
        },
    }
    bundle = signer.rekor_bundle(body, datetime.now(UTC))
    policy = Trust(keys=(("k.pub", pub),), trusted_root=signer.trusted_root(), trusted_root_name="private.json")
    att = Attachment("dsse", "key-att", DIGEST, DSSE_ENVELOPE, envelope, {ANN_BUNDLE: bundle})
    ok = check_attestation(att, [DIGEST], policy)
    assert ok.status == "verified", ok.message
    assert str(ok.details["rekor_set"]).startswith("verified: dsse 0.0.1 entry, https://rekor.imgcheck.test")
    bad = edit_bundle(att, lambda d: d.update(SignedEntryTimestamp=flip_b64(str(d["SignedEntryTimestamp"]))))
    assert_rejected(check_attestation(bad, [DIGEST], policy), "SET does not verify")
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pub = other_key.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
    body["spec"]["signatures"][0]["verifier"] = base64.b64encode(other_pub).decode()  # type: ignore[index]
    wrong_signer = with_annotations(att, bundle=signer.rekor_bundle(body, datetime.now(UTC)))
    assert_rejected(check_attestation(wrong_signer, [DIGEST], policy), "another signer")
    absent = check_attestation(with_annotations(att, bundle=None), [DIGEST], policy)
    assert absent.status == "verified" and str(absent.details["rekor_set"]).startswith("absent")


def test_an_unread_rekor_kind_is_a_named_error_not_a_pass() -> None:
    from datetime import UTC, datetime

    signer = PrivateSigstore()
    att = private_sig(signer)
    rekord = signer.rekor_bundle({"apiVersion": "0.0.1", "kind": "rekord", "spec": {"data": {}}}, datetime.now(UTC))
    outcome = verify_simplesigning(with_annotations(att, bundle=rekord), DIGEST, private_trust(signer.trusted_root()))
    assert outcome.status == "unsupported" and "rekord 0.0.1 are not supported" in outcome.message, outcome
