"""Bind a Rekor entry body to the evidence in hand: the SET proves the log signed *a* body; only this
check proves the body is about *this* blob, signature and signer (else a valid SET could be moved
onto any other signature).

- hashedrekord 0.0.1: `data.hash` = sha256(signed blob), `signature.content` = the signature,
  `signature.publicKey.content` = base64(PEM) of the signer;
- dsse 0.0.1: `envelopeHash` = sha256(envelope blob), `payloadHash` = sha256(payload), exactly one
  signature, equal to the envelope's, whose `verifier` is the signer;
- intoto 0.0.1 / 0.0.2: `content.hash` = sha256(envelope blob) (what cosign compares), `payloadHash`
  = sha256(payload) when given; the signer is `publicKey` (0.0.1) or an envelope signature's (0.0.2).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

from imgcheck.record import record
from imgcheck.supplychain.dsse import Envelope


class BodyError(ValueError):
    """The log entry is about another blob, signature or signer."""


class UnknownKind(BodyError):
    """A Rekor entry kind this module does not read (a limit, not a forgery)."""


@record
class Signed:
    """What was verified: the blob as stored, the signature that verified, and the signer's key."""

    blob: bytes
    signature: bytes
    signer_spki: bytes
    """DER SubjectPublicKeyInfo of the verifying key (the certificate's, for keyless)."""
    envelope: Envelope | None = None


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, Mapping) else None
    return doc


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BodyError(f"the Rekor entry has no {what}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BodyError(f"the Rekor entry's {what} is not base64") from None


def _hash(doc: Any, data: bytes, what: str) -> None:
    if not isinstance(doc, Mapping) or doc.get("algorithm") != "sha256" or not isinstance(doc.get("value"), str):
        raise BodyError(f"the Rekor entry's {what} is not a sha256 hash")
    if doc["value"].lower() != hashlib.sha256(data).hexdigest():
        raise BodyError(f"the Rekor entry's {what} is of another {what.split()[0]} (not this one)")


def _signer(value: Any, signed: Signed, what: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    pem = _b64(value, what)
    try:
        if b"BEGIN CERTIFICATE" in pem:
            key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = load_pem_public_key(pem)
        spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError):
        raise BodyError(f"the Rekor entry's {what} is not a PEM certificate or key") from None
    if spki != signed.signer_spki:
        raise BodyError(f"the Rekor entry's {what} is another signer's")


def _signature(value: Any, signed: Signed, what: str) -> None:
    sig = _b64(value, what)
    if sig != signed.signature:
        with contextlib.suppress(binascii.Error, ValueError):  # intoto 0.0.2: base64 of the base64 text
            sig = base64.b64decode(sig, validate=True)
    if sig != signed.signature:
        raise BodyError(f"the Rekor entry's {what} is another signature (the bundle was moved from another one)")


def _intoto(spec: Mapping[str, Any], signed: Signed, version: str) -> None:
    assert signed.envelope is not None
    content = spec.get("content")
    _hash(_get(content, "hash"), signed.blob, "envelope hash")
    if _get(content, "payloadHash") is not None or version == "0.0.2":
        _hash(_get(content, "payloadHash"), signed.envelope.payload, "payload hash")
    if version == "0.0.1":
        _signer(spec.get("publicKey"), signed, "publicKey")
        return
    sigs = _get(content, "envelope", "signatures")
    if not isinstance(sigs, list) or not sigs:
        raise BodyError("the Rekor entry's envelope has no signatures")
    problems = []
    for entry in sigs:
        try:
            _signature(_get(entry, "sig"), signed, "signature")
            _signer(_get(entry, "publicKey"), signed, "signature publicKey")
            return
        except BodyError as exc:
            problems.append(str(exc))
    raise BodyError(problems[0])


def check(body: Mapping[str, Any], signed: Signed) -> str:
    """`kind version` of a body that describes `signed`; BodyError naming the first mismatch."""
    kind, version, spec = body.get("kind"), body.get("apiVersion"), body.get("spec")
    if not isinstance(spec, Mapping):
        raise BodyError("the Rekor entry body has no spec")
    name = f"{kind} {version}"
    if (kind, version) == ("hashedrekord", "0.0.1"):
        if signed.envelope is not None:
            raise BodyError("a hashedrekord entry does not describe a DSSE attestation")
        _hash(_get(spec, "data", "hash"), signed.blob, "payload hash")
        _signature(_get(spec, "signature", "content"), signed, "signature")
        _signer(_get(spec, "signature", "publicKey", "content"), signed, "publicKey")
    elif (kind, version) == ("dsse", "0.0.1"):
        if signed.envelope is None:
            raise BodyError("a dsse entry does not describe a simple-signing signature")
        _hash(spec.get("envelopeHash"), signed.blob, "envelope hash")
        _hash(spec.get("payloadHash"), signed.envelope.payload, "payload hash")
        sigs = spec.get("signatures")
        if not isinstance(sigs, list) or len(sigs) != 1:
            raise BodyError("the Rekor dsse entry does not hold exactly one signature")
        _signature(_get(sigs[0], "signature"), signed, "signature")
        _signer(_get(sigs[0], "verifier"), signed, "verifier")
    elif kind == "intoto" and version in ("0.0.1", "0.0.2"):
        if signed.envelope is None:
            raise BodyError("an intoto entry does not describe a simple-signing signature")
        _intoto(spec, signed, str(version))
    else:
        raise UnknownKind(f"Rekor entries of kind {name} are not supported (hashedrekord, dsse, intoto are)")
    return name
