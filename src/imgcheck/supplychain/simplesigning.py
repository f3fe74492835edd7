"""cosign `.sig` signatures: a simplesigning payload (the layer blob) signed by a key or a Fulcio cert
(keyless: `legacy_keyless`; a key-signed layer's Rekor SET is checked when it has one).

The payload names the image by `critical.image.docker-manifest-digest`; that must be the digest under
test, or the signature was replayed from another image. `docker-reference` is reported, not required,
so the same signature verifies through a mirror.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from imgcheck import jsontext
from imgcheck.errors import InputError
from imgcheck.record import record
from imgcheck.supplychain.attachments import ANN_CERTIFICATE, ANN_SIGNATURE, Attachment
from imgcheck.supplychain.dsse import MalformedError
from imgcheck.supplychain.keys import load_public_key, verify_bytes
from imgcheck.supplychain.legacy_keyless import key_set, verify_keyless
from imgcheck.supplychain.outcome import Outcome, Trust

COSIGN_SIGNATURE_TYPE = "cosign container image signature"


@record
class Payload:
    digest: str
    reference: str | None
    raw: Mapping[str, Any]


def parse_payload(payload: bytes) -> Payload:
    """The simplesigning JSON; MalformedError when it is not a cosign image signature payload."""
    try:
        doc = jsontext.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"simplesigning payload is not JSON ({exc})") from None
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise MalformedError("simplesigning payload has no 'critical' section")
    if str(critical.get("type", "")).lower() != COSIGN_SIGNATURE_TYPE:
        raise MalformedError(f"simplesigning payload type is {critical.get('type')!r}, not {COSIGN_SIGNATURE_TYPE!r}")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise MalformedError("simplesigning payload has no critical.image.docker-manifest-digest")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    return Payload(digest, reference if isinstance(reference, str) else None, doc)


def verify_simplesigning(att: Attachment, digest: str, trust: Trust) -> Outcome:
    """Check one cosign `.sig` layer against the policy's keys, and its payload against `digest`."""
    origin = att.origin
    try:
        payload = parse_payload(att.content)
        sig_text = att.annotations.get(ANN_SIGNATURE, "")
        if not sig_text:
            raise MalformedError(f"layer has no {ANN_SIGNATURE} annotation")
        try:
            signature = base64.b64decode(sig_text, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedError(f"{ANN_SIGNATURE} is not base64") from None
    except MalformedError as exc:
        return Outcome("rejected", f"corrupt cosign signature: {exc}", origin)
    details: dict[str, Any] = {"docker_reference": payload.reference, "signed_digest": payload.digest}
    if ANN_CERTIFICATE in att.annotations:
        if not trust.keyless:
            return Outcome(
                "rejected", "keyless (certificate) signature, but the policy trusts only keys", origin, details
            )
        return _keyless(att, payload, signature, digest, trust, details)
    if not trust.keys:
        return Outcome("rejected", "key-based cosign signature, but the policy names no keys", origin, details)

    verified_by = None
    for name, pem in trust.keys:
        try:
            key = load_public_key(name, pem)
        except InputError as exc:
            return Outcome("unsupported", str(exc), origin, details)
        if verify_bytes(key, signature, att.content):
            verified_by = key
            break
    if verified_by is None:
        names = ", ".join(name for name, _ in trust.keys)
        return Outcome("rejected", f"cosign signature does not verify with {names}", origin, details)
    details["key"] = verified_by.name
    try:
        details["rekor_set"] = key_set(att, verified_by, signature, trust)
    except MalformedError as exc:
        return Outcome("rejected", f"signature by {verified_by.name} verifies, but {exc}", origin, details)
    if payload.digest.lower() != digest.lower():
        return Outcome(
            "rejected",
            f"signature by {verified_by.name} is for {payload.digest[:19]}…, not {digest[:19]}… "
            f"(replayed from another image)",
            origin,
            details,
        )
    return Outcome(
        "verified",
        f"cosign signature verified with {verified_by.name} ({verified_by.kind}); "
        f"reference {payload.reference or 'not given'}",
        origin,
        details,
    )


def _keyless(
    att: Attachment, payload: Payload, signature: bytes, digest: str, trust: Trust, details: dict[str, Any]
) -> Outcome:
    """A cosign keyless `.sig` layer: certificate, SET and identity, then the signed digest."""
    proof = verify_keyless(att, trust, signature=signature)
    if isinstance(proof, Outcome):
        return Outcome(proof.status, proof.message, proof.origin, {**details, **proof.details})
    details.update(proof.details)
    if payload.digest.lower() != digest.lower():
        return Outcome(
            "rejected",
            f"keyless signature by {', '.join(proof.identity)} is for {payload.digest[:19]}…, not {digest[:19]}… "
            f"(replayed from another image)",
            att.origin,
            details,
        )
    return Outcome(
        "verified",
        f"cosign keyless signature verified: {proof.summary}; reference {payload.reference or 'not given'}",
        att.origin,
        details,
    )
