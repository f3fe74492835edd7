"""Judge the SBOMs found for an image: parse + validate, bind to the image, count, licences.

A bare SBOM (cosign `.sbom` tag, OCI referrer) must name the image's digest itself; an SBOM inside
an in-toto statement (cosign attestation, buildx) is bound by the statement's subject instead,
because buildx writes the SBOM before the image digest exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any

from imgcheck import jsontext
from imgcheck.record import record
from imgcheck.supplychain.attachments import Attachment
from imgcheck.supplychain.attestations import unverified_statement
from imgcheck.supplychain.dsse import MalformedError, matching_subject, parse_statement, subject_digests
from imgcheck.supplychain.licenses import allowed
from imgcheck.supplychain.sbomdoc import SbomDocument, load, load_document


@record
class SbomResult:
    origin: str
    ok: bool
    message: str
    target: str | None = None
    """The image digest the SBOM is bound to (the image, a platform manifest or config)."""
    details: dict[str, Any] = field(default_factory=dict)


def _document(att: Attachment, digests: Sequence[str]) -> tuple[SbomDocument, str | None, str]:
    """(document, digest bound by an in-toto subject or None, how it was carried)."""
    if att.kind == "sbom":
        return load(att.content), None, "attached SBOM"
    statement = parse_statement(unverified_statement(att))
    predicate = statement.get("predicate")
    if isinstance(predicate, str):
        try:
            predicate = jsontext.loads(predicate)
        except ValueError:
            raise MalformedError("attestation predicate is a string that is not JSON") from None
    if not isinstance(predicate, dict):
        raise MalformedError(f"{statement['predicateType']} attestation has no SBOM predicate")
    bound = matching_subject(statement, digests)
    if bound is None:
        named = ", ".join(d[:19] + "…" for d in subject_digests(statement)[:3]) or "none"
        raise MalformedError(f"SBOM attestation is about {named}, not this image")
    return load_document(predicate), bound, f"in-toto {statement['predicateType']}"


def judge_sbom(
    att: Attachment,
    digests: Sequence[str],
    formats: Sequence[str],
    min_components: int,
    deny: Sequence[str],
) -> SbomResult:
    try:
        doc, bound, carrier = _document(att, digests)
    except MalformedError as exc:
        return SbomResult(att.origin, False, str(exc))
    label = f"{doc.format} {doc.spec_version}"
    details: dict[str, Any] = {"format": doc.format, "spec_version": doc.spec_version, "components": doc.components}
    if doc.format not in formats:
        return SbomResult(att.origin, False, f"{label} is not an accepted format ({', '.join(formats)})", None, details)
    if bound is None:
        bound = next((d for d in digests if d in doc.describes), None)
        if bound is None:
            named = ", ".join(sorted(d[:19] + "…" for d in doc.describes)) or "no digest"
            return SbomResult(
                att.origin,
                False,
                f"{label} SBOM describes {doc.subject_name or 'an image'} ({named}), not this image "
                f"({digests[0][:19]}…)",
                None,
                details,
            )
    details["bound_to"] = bound
    if doc.components < min_components:
        return SbomResult(
            att.origin,
            False,
            f"{label} SBOM lists {doc.components} components, fewer than {min_components}",
            bound,
            details,
        )
    denied = [(who, expr) for who, expr in doc.licenses if deny and not allowed(expr, deny)]
    if denied:
        details["denied"] = [f"{who}: {expr}" for who, expr in denied]
        shown = "; ".join(f"{who} ({expr})" for who, expr in denied[:3])
        more = f" and {len(denied) - 3} more" if len(denied) > 3 else ""
        return SbomResult(att.origin, False, f"{label} SBOM lists denied licences: {shown}{more}", bound, details)
    return SbomResult(
        att.origin,
        True,
        f"{label} SBOM ({carrier}, {doc.components} components) bound to {bound[:19]}…",
        bound,
        details,
    )
