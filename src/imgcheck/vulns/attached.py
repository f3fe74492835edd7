"""The seam for reports attached to the image in the registry.

The supply-chain discovery module finds and downloads (and, for attestations, verifies) the
attachments; this module only turns the already-downloaded documents into ScanReports bound to the
digest they are attached to. Two forms:

- a cosign vulnerability attestation (in-toto Statement, predicateType
  `https://cosign.sigstore.dev/attestation/vuln/v1`, Trivy's `--format cosign-vuln`): the Trivy
  report is `predicate.scanner.result`, the scan time `predicate.metadata.scanFinishedOn`;
- a Trivy SARIF log attached as a referrer (Ratify's layout), bound to the referrer's subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from imgcheck.errors import InputError
from imgcheck.vulns.model import ScanReport
from imgcheck.vulns.sarif import looks_like_sarif, parse_sarif
from imgcheck.vulns.timeparse import parse_timestamp
from imgcheck.vulns.trivy_json import parse_trivy_json

COSIGN_VULN_PREDICATE = "https://cosign.sigstore.dev/attestation/vuln/v1"


@dataclass(frozen=True)
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


def report_from_attachment(doc: AttachedDocument) -> ScanReport | None:
    """A ScanReport bound to the attachment's subject, or None if it is no vulnerability report."""
    body = doc.document
    source = f"attached: {doc.origin}"
    if isinstance(body, dict) and body.get("predicateType") == COSIGN_VULN_PREDICATE:
        return _cosign_vuln(body, source, doc.subject_digest)
    if looks_like_sarif(body):
        return parse_sarif(body, source, file_time=doc.created, digests=(doc.subject_digest,))
    return None


def _cosign_vuln(statement: dict[str, object], source: str, subject: str) -> ScanReport:
    predicate = statement.get("predicate")
    scanner = predicate.get("scanner") if isinstance(predicate, dict) else None
    result = scanner.get("result") if isinstance(scanner, dict) else None
    if not isinstance(result, dict):
        raise InputError(f"{source}: vuln attestation has no predicate.scanner.result (the Trivy report)")
    report = parse_trivy_json(result, source, digests=(subject,))
    metadata = predicate.get("metadata") if isinstance(predicate, dict) else None
    finished = metadata.get("scanFinishedOn") if isinstance(metadata, dict) else None
    if isinstance(finished, str):
        try:
            created = parse_timestamp(finished)
        except ValueError:
            raise InputError(f"{source}: scanFinishedOn {finished!r} is not RFC 3339") from None
        return ScanReport(
            source=source,
            format="cosign-vuln",
            created_at=created,
            created_from="scanFinishedOn",
            artifact_name=report.artifact_name,
            digests=report.digests,
            image_id=report.image_id,
            findings=report.findings,
            results_missing=report.results_missing,
        )
    return report
