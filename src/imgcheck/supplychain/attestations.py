"""Attestations in every envelope real tools use: cosign `.att` DSSE layers (key, or Fulcio cert + Rekor
SET verified offline by `legacy_keyless`), Sigstore bundles (referrers), and unsigned buildx in-toto
statements.

Each comes back as an Outcome carrying the in-toto statement once its signature (if any) and its
subject binding to the image hold; the SBOM and provenance rules judge the predicate.
"""

from __future__ import annotations

from collections.abc import Sequence

from imgcheck import jsontext
from imgcheck.errors import InputError
from imgcheck.supplychain.attachments import ANN_CERTIFICATE, Attachment
from imgcheck.supplychain.bundles import verify_bundle
from imgcheck.supplychain.dsse import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    MalformedError,
    matching_subject,
    pae,
    parse_envelope,
    parse_statement,
    subject_digests,
    verify_envelope,
)
from imgcheck.supplychain.keys import PublicKey, load_public_key, verify_bytes
from imgcheck.supplychain.legacy_keyless import key_set, verify_keyless
from imgcheck.supplychain.outcome import Outcome, Trust


def check_attestation(att: Attachment, digests: Sequence[str], trust: Trust) -> Outcome:
    """Signature (when the attachment has one) and subject binding of one attestation."""
    if att.kind == "bundle":
        return verify_bundle(att.content, att.origin, digests, trust)
    if att.kind == "statement":
        return _unsigned(att, digests)
    if att.kind == "dsse":
        return _cosign_dsse(att, digests, trust)
    return Outcome("rejected", f"{att.kind} is not an attestation", att.origin)


def _bind(statement_payload: bytes, digests: Sequence[str], origin: str, how: str, signed: bool) -> Outcome:
    try:
        statement = parse_statement(statement_payload)
    except MalformedError as exc:
        return Outcome("rejected", str(exc), origin)
    matched = matching_subject(statement, digests)
    predicate = str(statement["predicateType"])
    if matched is None:
        named = ", ".join(d[:19] + "…" for d in subject_digests(statement)[:3]) or "none"
        return Outcome(
            "rejected",
            f"{predicate} attestation is about {named}, not {digests[0][:19]}…",
            origin,
            {"predicate_type": predicate},
        )
    return Outcome(
        "verified" if signed else "unsigned",
        f"{predicate} attestation on {matched[:19]}… ({how})",
        origin,
        {"predicate_type": predicate, "subject": matched, "signature": how},
        statement,
    )


def _unsigned(att: Attachment, digests: Sequence[str]) -> Outcome:
    return _bind(att.content, digests, att.origin, "unsigned buildx attestation", signed=False)


def _cosign_dsse(att: Attachment, digests: Sequence[str], trust: Trust) -> Outcome:
    try:
        envelope = parse_envelope(att.content)
    except MalformedError as exc:
        return Outcome("rejected", f"corrupt attestation: {exc}", att.origin)
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        return Outcome("rejected", f"DSSE payload type {envelope.payload_type!r} is not in-toto", att.origin)
    if ANN_CERTIFICATE in att.annotations:
        if not trust.keyless:
            return Outcome("rejected", "keyless (certificate) attestation, but the policy trusts only keys", att.origin)
        proof = verify_keyless(att, trust, envelope=envelope)
        if isinstance(proof, Outcome):
            return proof
        bound = _bind(envelope.payload, digests, att.origin, f"cosign keyless: {proof.summary}", signed=True)
        return Outcome(bound.status, bound.message, bound.origin, {**proof.details, **bound.details}, bound.statement)
    if not trust.keys:
        return Outcome("rejected", "key-signed attestation, but the policy names no keys", att.origin)
    keys: list[PublicKey] = []
    for name, pem in trust.keys:
        try:
            keys.append(load_public_key(name, pem))
        except InputError as exc:
            return Outcome("unsupported", str(exc), att.origin)
    key = verify_envelope(envelope, keys)
    if key is None:
        names = ", ".join(name for name, _ in trust.keys)
        return Outcome("rejected", f"attestation signature does not verify with {names}", att.origin)
    try:
        rekor = _key_set(att, key, envelope, trust)
    except MalformedError as exc:
        return Outcome("rejected", f"attestation signed by {key.name} verifies, but {exc}", att.origin)
    bound = _bind(envelope.payload, digests, att.origin, f"signed, verified with {key.name}", signed=True)
    return Outcome(bound.status, bound.message, bound.origin, {**bound.details, "rekor_set": rekor}, bound.statement)


def _key_set(att: Attachment, key: PublicKey, envelope: Envelope, trust: Trust) -> str:
    """The key-signed envelope's Rekor SET, checked against the signature that verified."""
    message = pae(envelope.payload_type, envelope.payload)
    signature = next(s for s in envelope.signatures if s and verify_bytes(key, s, message))
    return key_set(att, key, signature, trust, envelope)


def unverified_statement(att: Attachment) -> bytes:
    """The in-toto payload of an attestation without checking its signature (the sbom rule reads
    SBOMs from attestations; signatures are the signature and provenance rules' business)."""
    import json

    if att.kind == "statement":
        return att.content
    if att.kind == "dsse":
        return parse_envelope(att.content).payload
    if att.kind == "bundle":
        try:
            doc = jsontext.loads(att.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedError(f"Sigstore bundle is not JSON ({exc})") from None
        envelope = doc.get("dsseEnvelope") if isinstance(doc, dict) else None
        if not isinstance(envelope, dict):
            raise MalformedError("Sigstore bundle holds no DSSE envelope")
        return parse_envelope(json.dumps(envelope).encode()).payload
    raise MalformedError(f"{att.kind} is not an attestation")
