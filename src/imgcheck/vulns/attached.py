"""The seam for reports attached to the image in the registry.

The supply-chain discovery module finds and downloads (and, for attestations, verifies) the
attachments; this module only turns the already-downloaded documents into ScanReports bound to the
digest they are attached to. Two forms:

- a cosign vulnerability attestation (in-toto Statement, predicateType
  `https://cosign.sigstore.dev/attestation/vuln/v1`, Trivy's `--format cosign-vuln`): the Trivy
  report is `predicate.scanner.result`, the scan time `predicate.metadata.scanFinishedOn`;
- a Trivy SARIF log attached as a referrer (Ratify's layout), bound to the referrer's subject.

The subject binds, but the document may name the image it scanned too (RepoDigests, imageName,
ImageID): when it names only other images, the attachment was copied from another digest and is
refused (`NotThisImage`), so a clean scan of one image cannot vouch for another.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

from imgcheck.errors import InputError
from imgcheck.record import record
from imgcheck.vulns.model import ScanReport
from imgcheck.vulns.sarif import looks_like_sarif, parse_sarif
from imgcheck.vulns.timeparse import parse_timestamp
from imgcheck.vulns.trivy_json import parse_trivy_json

COSIGN_VULN_PREDICATE = "https://cosign.sigstore.dev/attestation/vuln/v1"


class NotThisImage(ValueError):
    """The attachment's own report names another image than the one it is attached to."""


@record
class ImageDigests:
    """What the image is known by: manifest digests (index and platforms) and config digests."""

    manifests: Collection[str]
    configs: Collection[str] = ()


@record
class AttachedDocument:
    """One downloaded attachment, as the discovery module hands it over."""

    subject_digest: str
    """The manifest digest the attachment is attached to (and, for attestations, signed over)."""
    document: object
    """The decoded JSON: an in-toto Statement (attestation) or a SARIF log."""
    origin: str
    """For messages: e.g. `referrer sha256:… (application/sarif+json)`."""
    created: datetime | None = None
    """`org.opencontainers.image.created` of the referrer manifest, if any (SARIF has no scan time)."""


def report_from_attachment(doc: AttachedDocument, image: ImageDigests | None = None) -> ScanReport | None:
    """A ScanReport bound to the attachment's subject, or None if it is no vulnerability report.

    With `image`, a report whose content names only other images raises NotThisImage."""
    body = doc.document
    source = f"attached: {doc.origin}"
    if isinstance(body, dict) and body.get("predicateType") == COSIGN_VULN_PREDICATE:
        report = _cosign_vuln(body, source)
    elif looks_like_sarif(body):
        report = parse_sarif(body, source, file_time=doc.created)
    else:
        return None
    if image is not None:
        conflict = _names_other_image(report, image)
        if conflict:
            raise NotThisImage(f"its report scanned {conflict}, not this image (copied from another digest?)")
    return replace(report, digests=tuple(dict.fromkeys((doc.subject_digest, *report.digests))))


def _names_other_image(report: ScanReport, image: ImageDigests) -> str | None:
    """What the report names instead of this image, or None when it names this image or nothing."""
    if not report.names_an_image:
        return None
    if any(d in image.manifests for d in report.digests) or report.image_id in image.configs:
        return None
    named = [f"{d[:19]}…" for d in report.digests[:2]]
    if report.image_id:
        named.append(f"ImageID {report.image_id[:19]}…")
    return " and ".join(named)


def _cosign_vuln(statement: dict[str, object], source: str) -> ScanReport:
    predicate = statement.get("predicate")
    scanner = predicate.get("scanner") if isinstance(predicate, dict) else None
    result = scanner.get("result") if isinstance(scanner, dict) else None
    if not isinstance(result, dict):
        raise InputError(f"{source}: vuln attestation has no predicate.scanner.result (the Trivy report)")
    report = parse_trivy_json(result, source)
    metadata = predicate.get("metadata") if isinstance(predicate, dict) else None
    finished = metadata.get("scanFinishedOn") if isinstance(metadata, dict) else None
    if isinstance(finished, str):
        try:
            created = parse_timestamp(finished)
        except ValueError:
            raise InputError(f"{source}: scanFinishedOn {finished!r} is not RFC 3339") from None
        return replace(report, format="cosign-vuln", created_at=created, created_from="scanFinishedOn")
    return replace(report, format="cosign-vuln")
