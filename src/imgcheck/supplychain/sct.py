"""A Fulcio leaf's embedded Signed Certificate Timestamp (RFC 6962 §3.2), checked with the trusted
root's CT log keys.

The log signed the precertificate: its TBS without the SCT list, bound to the issuer's key hash. An SCT
is the log's promise to publish the certificate; that it was published is not verifiable offline.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from imgcheck.supplychain.trustroot import TrustedRoot, log_id_hex


class SctError(ValueError):
    """No SCT of a trusted CT log verifies."""


def _signed_data(sct: Any, leaf: Any, issuer: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    when = sct.timestamp if sct.timestamp.tzinfo else sct.timestamp.replace(tzinfo=UTC)
    millis = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    tbs: bytes = leaf.tbs_precertificate_bytes
    ext: bytes = sct.extension_bytes
    return (
        struct.pack(">BBQH", 0, 0, millis, 1)
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + struct.pack(">H", len(ext))
        + ext
    )


def _verify_one(key: Any, sct: Any, data: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sct.signature, data, ec.ECDSA(sct.signature_hash_algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sct.signature, data, padding.PKCS1v15(), sct.signature_hash_algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def verify_embedded(leaf: Any, issuer: Any, root: TrustedRoot) -> str:
    """The URL of a trusted CT log whose embedded SCT verifies; SctError otherwise."""
    from cryptography import x509

    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise SctError("the certificate carries no embedded SCT") from None
    seen = []
    for sct in scts:
        log = next((c for c in root.ctlogs if c.log_id == sct.log_id), None)
        if log is None:
            seen.append(f"{log_id_hex(sct.log_id)[:16]}… (not in the trusted root)")
            continue
        when = sct.timestamp if sct.timestamp.tzinfo else sct.timestamp.replace(tzinfo=UTC)
        if not log.valid.contains(when):
            seen.append(f"{log.url} (SCT time outside the log key's validity)")
        elif _verify_one(log.key, sct, _signed_data(sct, leaf, issuer)):
            return log.url
        else:
            seen.append(f"{log.url} (signature does not verify)")
    raise SctError(f"no embedded SCT verifies with trusted root {root.name}: {', '.join(seen) or 'none found'}")
