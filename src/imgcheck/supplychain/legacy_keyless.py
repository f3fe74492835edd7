"""cosign v1/v2 keyless signatures and attestations (`.sig` / `.att` tags), verified offline.

The layer carries a Fulcio leaf (`dev.sigstore.cosign/certificate`), maybe its chain, and a Rekor SET
(`dev.sigstore.cosign/bundle`). In order: the SET with a log of the trusted root; the signature with
the leaf's key; the entry body bound to this blob, signature and leaf; the leaf's chain at the entry's
integrated time; the embedded SCT (`keyless.require_sct`); issuer AND identity. The caller then binds
the payload to the image (docker-manifest-digest or in-toto subject).

Key-based signatures' SETs go through the same SET and body checks (`key_set`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from imgcheck.record import record
from imgcheck.supplychain.attachments import ANN_CERTIFICATE, ANN_CHAIN, ANN_REKOR_BUNDLE, Attachment
from imgcheck.supplychain.dsse import Envelope, MalformedError, pae
from imgcheck.supplychain.keys import PublicKey, verify_bytes
from imgcheck.supplychain.outcome import Outcome, Trust
from imgcheck.supplychain.trustroot import TrustedRoot

UNVERIFIABLE_SET = (
    "inclusion in the transparency log (the SET is the log's signed promise to include the entry; the "
    "annotation carries no inclusion proof and checking one needs the log)"
)
UNVERIFIABLE_SCT = "publication in the CT log (the SCT is the CT log's signed promise)"


def _unverifiable_root(root: TrustedRoot) -> str:
    return f"freshness of the trusted root ({root.name} is read as is, not refreshed over TUF)"


@record
class Proof:
    """A keyless signature that verified, and what it says (the caller binds the payload)."""

    identity: tuple[str, ...]
    details: Mapping[str, Any]
    summary: str


def _spki(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def _load_root(trust: Trust) -> TrustedRoot:
    from imgcheck.supplychain import trustroot

    return trustroot.load(trust.trusted_root, trust.trusted_root_name)


def _verified_signature(key: PublicKey, signature: bytes | None, envelope: Envelope | None, blob: bytes) -> bytes:
    """The signature that verifies with `key` (the layer's, or one of the envelope's)."""
    if envelope is None:
        if signature is not None and verify_bytes(key, signature, blob):
            return signature
        raise MalformedError("the signature does not verify with the certificate's key")
    message = pae(envelope.payload_type, envelope.payload)
    for sig in envelope.signatures:
        if sig and verify_bytes(key, sig, message):
            return sig
    raise MalformedError("no DSSE signature verifies with the certificate's key")


def verify_keyless(
    att: Attachment, trust: Trust, *, signature: bytes | None = None, envelope: Envelope | None = None
) -> Proof | Outcome:
    """Everything but the payload binding; an Outcome (rejected / unsupported) when something fails."""
    from imgcheck.supplychain import fulcio, rekor_body, rekor_set, sct

    origin = att.origin
    assert trust.issuer is not None and trust.identity is not None
    try:
        root = _load_root(trust)
    except MalformedError as exc:
        return Outcome("unsupported", f"trusted root is unusable: {exc}", origin)
    if trust.require_sct and not root.ctlogs:
        return Outcome(
            "unsupported",
            f"keyless.require_sct is true but trusted root {root.name} names no CT logs, so no SCT can be "
            f"checked (set keyless.require_sct: false for a private Sigstore without CT)",
            origin,
        )
    bundle = att.annotations.get(ANN_REKOR_BUNDLE)
    if not bundle:
        return Outcome(
            "rejected",
            f"keyless signature without a Rekor bundle ({ANN_REKOR_BUNDLE}): the certificate expired minutes "
            f"after signing, and without a log entry nothing shows it was valid then",
            origin,
        )
    try:
        entry = rekor_set.parse(bundle)
        leaf = fulcio.load_pem_chain(att.annotations.get(ANN_CERTIFICATE, ""))[0]
        chain_text = att.annotations.get(ANN_CHAIN)
        annotated = fulcio.load_pem_chain(chain_text) if chain_text else []
        key = PublicKey("the certificate", leaf.public_key())
        sans = sorted(_sans(leaf))
        identity: dict[str, Any] = {"issuer": fulcio.issuer(leaf), "identity": sans}
    except (MalformedError, ValueError) as exc:
        return Outcome("rejected", f"corrupt keyless signature: {exc}", origin)
    try:
        log = rekor_set.verify(entry, root)
        sig = _verified_signature(key, signature, envelope, att.content)
        kind = rekor_body.check(
            entry.decoded_body(), rekor_body.Signed(att.content, sig, _spki(leaf.public_key()), envelope)
        )
        chain = fulcio.verify_chain(leaf, annotated, root, entry.time)
        ct_log = sct.verify_embedded(leaf, chain[1], root) if trust.require_sct else None
    except rekor_body.UnknownKind as exc:
        return Outcome("unsupported", str(exc), origin, identity)
    except ValueError as exc:  # SetError, ChainError, MalformedError, BodyError, SctError, a corrupt extension
        return Outcome("rejected", f"keyless signature did not verify: {exc}", origin, identity)
    problem = fulcio.identity_problem(leaf, trust.issuer, trust.identity)
    if problem:
        return Outcome("rejected", problem, origin, identity)
    when = f"{entry.time:%Y-%m-%dT%H:%M:%SZ}"
    not_verified = [UNVERIFIABLE_SET, _unverifiable_root(root)]
    not_verified.append(UNVERIFIABLE_SCT if ct_log else "the certificate's SCT (keyless.require_sct: false)")
    signer = ", ".join(sans) or "no identity"
    details = {
        **identity,
        "rekor": {"log": log.url, "log_index": entry.log_index, "integrated_time": when, "kind": kind},
        "ct_log": ct_log,
        "trusted_root": root.name,
        "not_verified_offline": not_verified,
    }
    summary = (
        f"identity {signer}, issuer {identity['issuer']}; Rekor {log.url} log index {entry.log_index} "
        f"integrated {when}; trusted root {root.name}"
    )
    return Proof(tuple(sans), details, summary)


def _sans(leaf: Any) -> set[str]:
    from imgcheck.supplychain.bundles import certificate_sans

    return certificate_sans(leaf)


def key_set(att: Attachment, key: PublicKey, signature: bytes, trust: Trust, envelope: Envelope | None = None) -> str:
    """Check a key-signed layer's Rekor SET when it has one: the detail line to report.

    MalformedError (a reason) when the SET or its body does not hold: a bad SET fails the signature."""
    from imgcheck.supplychain import rekor_body, rekor_set

    bundle = att.annotations.get(ANN_REKOR_BUNDLE)
    if not bundle:
        return "absent (the signature carries no Rekor SET; nothing shows it was logged)"
    try:
        root = _load_root(trust)
        entry = rekor_set.parse(bundle)
        log = rekor_set.verify(entry, root)
        signed = rekor_body.Signed(att.content, signature, _spki(key.key), envelope)
        kind = rekor_body.check(entry.decoded_body(), signed)
    except (rekor_set.SetError, rekor_body.BodyError) as exc:
        raise MalformedError(f"its Rekor SET does not hold: {exc}") from None
    return (
        f"verified: {kind} entry, {log.url} log index {entry.log_index} integrated "
        f"{entry.time:%Y-%m-%dT%H:%M:%SZ}, trusted root {root.name}; not verified offline: {UNVERIFIABLE_SET}"
    )


def b64_signature(text: str) -> bytes:
    """A `dev.cosignproject.cosign/signature` value (MalformedError when not base64)."""
    import binascii

    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError("the signature annotation is not base64") from None
