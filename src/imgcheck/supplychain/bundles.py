"""Sigstore bundles verified offline with sigstore-python: certificate chain, SCT, transparency log,
signature, then issuer AND identity (a full-match regex on the certificate SAN).

sigstore-python does not compare an in-toto subject with anything (`verify_dsse` returns the payload),
and Identity() matches SANs exactly; both are done here. Known limits of sigstore-python are reported
as `unsupported` outcomes that name the limit, so the rule says `error`, never `pass`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from imgcheck import jsontext
from imgcheck.policy.patterns import compile_pattern
from imgcheck.supplychain.dsse import INTOTO_PAYLOAD_TYPE, MalformedError, matching_subject, parse_statement
from imgcheck.supplychain.outcome import Outcome, Trust

_SAN_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"


def sigstore_version() -> str:
    from importlib.metadata import version

    return version("sigstore")


class IdentityPolicy:
    """A sigstore VerificationPolicy: issuer equal (v1 or v2 extension) and some SAN fully matching."""

    def __init__(self, issuer: str, identity: str) -> None:
        self.issuer = issuer
        self.identity = compile_pattern(identity)

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify.policy import AnyOf, OIDCIssuer, OIDCIssuerV2

        try:
            AnyOf([OIDCIssuer(self.issuer), OIDCIssuerV2(self.issuer)]).verify(cert)
        except VerificationError:
            raise VerificationError(
                f"certificate issuer is {certificate_issuer(cert)!r}, policy wants {self.issuer!r}"
            ) from None
        sans = certificate_sans(cert)
        if not any(self.identity.fullmatch(san) for san in sans):
            raise VerificationError(
                f"certificate identity {sorted(sans)} does not fully match {self.identity.pattern!r}"
            )


def certificate_sans(cert: Any) -> set[str]:
    """Emails, URIs and Sigstore other-names of a Fulcio certificate."""
    from cryptography.x509 import (
        ExtensionNotFound,
        OtherName,
        RFC822Name,
        SubjectAlternativeName,
        UniformResourceIdentifier,
    )

    try:
        ext = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return set()
    sans = set(ext.get_values_for_type(RFC822Name)) | set(ext.get_values_for_type(UniformResourceIdentifier))
    for other in ext.get_values_for_type(OtherName):
        if other.type_id.dotted_string == _SAN_OTHERNAME_OID:
            sans.add(other.value.decode(errors="replace").lstrip("\x0c\x13\x16").strip())
    return sans


def certificate_issuer(cert: Any) -> str | None:
    """The OIDC issuer Fulcio recorded (v2 extension, else v1)."""
    from imgcheck.supplychain.fulcio import issuer

    return issuer(cert)


@lru_cache(maxsize=8)
def _trusted_root(raw: bytes | None) -> Any:
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    if raw is None:
        raw = embedded_public_root()
    return TrustedRoot(trustroot_v1.TrustedRoot.from_json(raw))


def embedded_public_root() -> bytes:
    """The public-good trusted_root.json shipped inside sigstore-python: offline, no TUF refresh."""
    store = resources.files("sigstore") / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
    return store.read_bytes()


def _limit(raw: Mapping[str, Any]) -> str | None:
    """A known sigstore-python limit this bundle hits, named, or None."""
    material = raw.get("verificationMaterial") or {}
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    version = sigstore_version()
    if not entries:
        return (
            f"the bundle has no transparency-log entry (as GitHub private-repository attestations); "
            f"sigstore-python {version} cannot verify such bundles offline"
        )
    if not isinstance(entries, list):
        return None  # malformed: sigstore-python's own parsing rejects it with a message
    kinds = {
        str(e["kindVersion"].get("kind"))
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("kindVersion"), dict)
    }
    if "intoto" in kinds:
        return (
            f"the bundle's Rekor entry is of kind 'intoto' (as npm provenance); sigstore-python {version} "
            f"refuses intoto entries"
        )
    if not (material.get("certificate") or material.get("x509CertificateChain")):
        return (
            f"the bundle is signed with a public key, not a certificate; sigstore-python {version} needs a certificate"
        )
    return None


def verify_bundle(content: bytes, origin: str, digests: Iterable[str], trust: Trust) -> Outcome:
    """Verify a Sigstore bundle attached to an image: signature, identity, and binding to `digests`.

    `digests[0]` is the image digest; the others are digests that also stand for it (platform manifests).
    A message-signature bundle binds by its message digest; a DSSE bundle by its in-toto subject.
    """
    digests = list(digests)
    try:
        raw = jsontext.loads(content)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        return Outcome("rejected", f"Sigstore bundle is not JSON ({exc})", origin)
    limit = _limit(raw)
    if limit:
        return Outcome("unsupported", limit, origin)
    if not trust.keyless:
        return Outcome(
            "rejected",
            "Sigstore (keyless) bundle found, but the policy names no keyless issuer + identity to trust",
            origin,
        )
    assert trust.issuer is not None and trust.identity is not None

    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(content)
        verifier = Verifier(trusted_root=_trusted_root(trust.trusted_root))
    except SigstoreError as exc:
        return Outcome("rejected", f"Sigstore bundle is malformed: {_first_line(exc)}", origin)
    except ValueError as exc:
        return Outcome("unsupported", f"trusted root is unusable: {_first_line(exc)}", origin)
    policy = IdentityPolicy(trust.issuer, trust.identity)
    sans = sorted(certificate_sans(bundle.signing_certificate))
    signer = ", ".join(sans) or "no identity"
    identity: dict[str, Any] = {"issuer": certificate_issuer(bundle.signing_certificate), "identity": sans}
    try:
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
        else:
            algo, hexpart = digests[0].split(":", 1)
            if algo != "sha256":
                return Outcome("unsupported", f"image digest algorithm {algo} is not supported", origin)
            verifier.verify_artifact(
                Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(hexpart)), bundle, policy
            )
            return Outcome(
                "verified",
                f"Sigstore bundle over {digests[0][:19]}… signed by {signer}",
                origin,
                {**identity, "binding": "message digest"},
            )
    except SigstoreError as exc:
        text = _first_line(exc)
        if "Integrated time only supported" in text or "Unsupported DSSE log entry" in text:
            return Outcome("unsupported", f"sigstore-python {sigstore_version()} limit: {text}", origin, identity)
        return Outcome("rejected", f"Sigstore bundle did not verify: {text}", origin, identity)
    if payload_type != INTOTO_PAYLOAD_TYPE:
        return Outcome("rejected", f"DSSE payload type is {payload_type!r}, not an in-toto statement", origin, identity)
    try:
        statement = parse_statement(payload)
    except MalformedError as exc:
        return Outcome("rejected", str(exc), origin, identity)
    matched = matching_subject(statement, digests)
    if matched is None:
        return Outcome(
            "rejected",
            f"attestation signed by {signer} is about another artifact "
            f"(subject {_subjects(statement)}), not {digests[0][:19]}…",
            origin,
            identity,
        )
    return Outcome(
        "verified",
        f"Sigstore attestation ({statement['predicateType']}) on {matched[:19]}… signed by {signer}",
        origin,
        {**identity, "binding": "in-toto subject", "subject": matched, "predicate_type": statement["predicateType"]},
        statement,
    )


def _subjects(statement: Mapping[str, Any]) -> str:
    from imgcheck.supplychain.dsse import subject_digests

    return ", ".join(d[:19] + "…" for d in subject_digests(statement)[:3]) or "none"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
