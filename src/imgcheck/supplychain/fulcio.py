"""A Fulcio leaf certificate: its chain to a root of the trusted root at the entry's integrated time,
its use (code signing), and the identity and OIDC issuer it records.

Fulcio leaves live ten minutes, so the chain is always validated at the Rekor entry's integrated time.
Only the trusted root's self-signed certificates are anchors; a chain annotation (`dev.sigstore.cosign/
chain`) contributes untrusted intermediates at most, so an attacker's root named like Fulcio's anchors
nothing. EKU is left to this module (web-PKI defaults want serverAuth/clientAuth).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from imgcheck.supplychain.trustroot import TrustedRoot

OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
OID_CODE_SIGNING = "1.3.6.1.5.5.7.3.3"


class ChainError(ValueError):
    """The certificate does not chain to the trusted root, or may not sign code."""


def load_pem_chain(text: str) -> list[Any]:
    """Every certificate in a PEM text (ValueError when there is none or one is corrupt)."""
    from cryptography import x509

    certs = x509.load_pem_x509_certificates(text.encode())
    if not certs:
        raise ValueError("no PEM certificate")
    return list(certs)


def _self_signed(cert: Any) -> bool:
    return bool(cert.issuer == cert.subject)


def verify_chain(leaf: Any, annotated: Sequence[Any], root: TrustedRoot, when: datetime) -> list[Any]:
    """The verified chain (leaf first) at `when`; ChainError naming the trusted root otherwise."""
    from cryptography import x509
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    anchors: list[Any] = []
    intermediates: list[Any] = []
    for ca in root.authorities:
        if not ca.valid.contains(when):
            continue
        for cert in ca.certificates:
            (anchors if _self_signed(cert) else intermediates).append(cert)
    if not anchors:
        raise ChainError(f"trusted root {root.name} has no certificate authority valid at {when:%Y-%m-%dT%H:%M:%SZ}")
    intermediates.extend(c for c in annotated if not _self_signed(c))
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, intermediates)
    except (VerificationError, ValueError, TypeError) as exc:
        reason = re.sub(r"\s*\(encountered processing .*\)$", "", str(exc)).removeprefix("validation failed: ")
        raise ChainError(
            f"the certificate does not chain to trusted root {root.name} at {when:%Y-%m-%dT%H:%M:%SZ}: {reason}"
        ) from None
    _check_usage(leaf)
    return list(verified.chain)


def _check_usage(leaf: Any) -> None:
    from cryptography import x509

    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise ChainError(f"the certificate lacks {exc.oid.dotted_string} (not a Fulcio code-signing leaf)") from None
    if not usage.digital_signature:
        raise ChainError("the certificate's key usage does not allow digital signatures")
    if not any(oid.dotted_string == OID_CODE_SIGNING for oid in eku):
        raise ChainError("the certificate's extended key usage is not code signing")


def _der_utf8(value: bytes) -> str | None:
    """The text of a DER UTF8String (tag 0x0c, short or long length), else None."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    length, offset = value[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(value[2 : 2 + count], "big"), 2 + count
    body = value[offset : offset + length]
    return body.decode(errors="replace") if len(body) == length else None


def issuer(cert: Any) -> str | None:
    """The OIDC issuer Fulcio recorded: the v2 extension (a DER UTF8String), else v1 (raw bytes)."""
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    for oid in (OID_ISSUER_V2, OID_ISSUER_V1):
        try:
            value = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value.value
        except ExtensionNotFound:
            continue
        text = _der_utf8(value) if oid == OID_ISSUER_V2 else value.decode(errors="replace")
        if text is not None:
            return text
    return None


def identity_problem(cert: Any, want_issuer: str, want_identity: str) -> str | None:
    """Why the certificate's issuer or identity is not the policy's (None when both match)."""
    from imgcheck.policy.patterns import compile_pattern
    from imgcheck.supplychain.bundles import certificate_sans

    found = issuer(cert)
    if found != want_issuer:
        return f"certificate issuer is {found!r}, policy wants {want_issuer!r}"
    sans = certificate_sans(cert)
    pattern = compile_pattern(want_identity)  # RE2: the SAN is the signer's text
    if not any(pattern.fullmatch(san) for san in sans):
        return f"certificate identity {sorted(sans)} does not fully match {want_identity!r}"
    return None
