"""PEM public keys (cosign key pairs) and raw signature checks with `cryptography`.

cosign signs with ECDSA (P-256/P-384, SHA-256/384), Ed25519 or RSA (PKCS#1 v1.5 or PSS, SHA-256);
one function answers "does this key verify these bytes" for all of them.
"""

from __future__ import annotations

from typing import Any

from imgcheck.errors import InputError
from imgcheck.record import record


@record
class PublicKey:
    """A loaded public key and where it came from (for messages)."""

    name: str
    key: Any
    """A `cryptography` public key object (EC, Ed25519 or RSA)."""

    @property
    def kind(self) -> str:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        if isinstance(self.key, ec.EllipticCurvePublicKey):
            return f"ECDSA {self.key.curve.name}"
        if isinstance(self.key, ed25519.Ed25519PublicKey):
            return "Ed25519"
        if isinstance(self.key, rsa.RSAPublicKey):
            return f"RSA {self.key.key_size}"
        return type(self.key).__name__


def load_public_key(name: str, pem: bytes) -> PublicKey:
    """Parse a PEM public key (or a certificate, whose key is used); InputError when it is neither."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        if b"BEGIN CERTIFICATE" in pem:
            key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = load_pem_public_key(pem)
    except ValueError as exc:
        raise InputError(
            f"key {name} is not a PEM public key ({exc})",
            hint="give the cosign.pub written by `cosign generate-key-pair`",
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise InputError(f"key {name} is a {type(key).__name__}; expected ECDSA, Ed25519 or RSA")
    return PublicKey(name, key)


def verify_bytes(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when `signature` over `data` verifies with `key` (the hash cosign uses for that key type)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    k = key.key
    try:
        if isinstance(k, ec.EllipticCurvePublicKey):
            algo: hashes.HashAlgorithm = {384: hashes.SHA384(), 521: hashes.SHA512()}.get(
                k.curve.key_size, hashes.SHA256()
            )
            k.verify(signature, data, ec.ECDSA(algo))
            return True
        if isinstance(k, ed25519.Ed25519PublicKey):
            k.verify(signature, data)
            return True
        if isinstance(k, rsa.RSAPublicKey):
            for pad in (
                padding.PKCS1v15(),
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
            ):
                try:
                    k.verify(signature, data, pad, hashes.SHA256())
                    return True
                except InvalidSignature:
                    continue
            return False
    except InvalidSignature:
        return False
    return False
