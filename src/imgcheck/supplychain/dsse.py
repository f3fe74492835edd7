"""DSSE envelopes and the in-toto statements inside them (cosign `.att`, buildx, Sigstore bundles).

The signature covers the PAE encoding of (payloadType, payload), never the JSON envelope, so a
re-serialised envelope still verifies and a changed payload never does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from imgcheck import jsontext
from imgcheck.record import record
from imgcheck.supplychain.keys import PublicKey, verify_bytes

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")


class MalformedError(ValueError):
    """Evidence that does not have the shape its format requires (corrupt, truncated, missing field)."""


@record
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedError(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise MalformedError(f"{what} is not base64") from None


def parse_envelope(content: bytes) -> Envelope:
    try:
        doc = jsontext.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"DSSE envelope is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MalformedError("DSSE envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise MalformedError("DSSE envelope has no payloadType")
    payload = _b64(doc.get("payload"), "DSSE payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise MalformedError("DSSE envelope has no signatures")
    decoded = tuple(_b64(s.get("sig") if isinstance(s, dict) else None, "DSSE signature") for s in sigs)
    return Envelope(payload_type, payload, decoded)


def verify_envelope(envelope: Envelope, keys: Iterable[PublicKey]) -> PublicKey | None:
    """The first key that verifies any of the envelope's signatures, else None."""
    message = pae(envelope.payload_type, envelope.payload)
    for key in keys:
        for sig in envelope.signatures:
            if sig and verify_bytes(key, sig, message):
                return key
    return None


def parse_statement(payload: bytes) -> Mapping[str, Any]:
    """An in-toto Statement (v0.1 or v1) with a subject list and a predicate type."""
    try:
        doc = jsontext.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"in-toto statement is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MalformedError("in-toto statement is not a JSON object")
    if doc.get("_type") not in STATEMENT_TYPES:
        raise MalformedError(f"not an in-toto statement (_type {doc.get('_type')!r})")
    if not isinstance(doc.get("subject"), list) or not doc["subject"]:
        raise MalformedError("in-toto statement has no subject")
    if not isinstance(doc.get("predicateType"), str):
        raise MalformedError("in-toto statement has no predicateType")
    return doc


def subject_digests(statement: Mapping[str, Any]) -> list[str]:
    """Every `algo:hex` digest the statement's subjects name (lower-case hex)."""
    out: list[str] = []
    for subject in statement.get("subject") or []:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(digests, dict):
            out.extend(f"{algo}:{str(value).lower()}" for algo, value in digests.items())
    return out


def matching_subject(statement: Mapping[str, Any], digests: Iterable[str]) -> str | None:
    """The first of `digests` that the statement names as a subject (what binds it to the image)."""
    named = set(subject_digests(statement))
    for digest in digests:
        if digest.lower() in named:
            return digest
    return None
