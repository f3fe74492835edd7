"""Vulnerability reports attached to the image in the registry, verified and bound, as ScanReports.

Discovery (`imgcheck.supplychain.discovery`) reads the attachments; this module decides which of them
may speak for the image: a cosign vuln attestation whose signature verifies with the policy's keys or
keyless identity and whose subject is this image; unsigned evidence (SARIF referrers, buildx's unsigned
attestations) only when the policy opts in with `attached: unsigned`; a signed attestation that cannot
be verified is never used. Every attachment
considered leaves a note, so a refused one is said, never silently dropped. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from imgcheck import jsontext
from imgcheck.errors import InputError
from imgcheck.record import record
from imgcheck.supplychain.attachments import Attachment
from imgcheck.supplychain.discovery import ANN_CREATED, is_sarif
from imgcheck.supplychain.outcome import Trust
from imgcheck.vulns.attached import (
    COSIGN_VULN_PREDICATE,
    AttachedDocument,
    ImageDigests,
    NotThisImage,
    report_from_attachment,
)
from imgcheck.vulns.model import ScanReport
from imgcheck.vulns.timeparse import parse_timestamp

NoteStatus = Literal["signed", "unsigned", "ignored", "invalid", "unsupported"]
"""signed / unsigned: its report is used; ignored: not trusted or not about this image; invalid: a
trusted report that cannot be read; unsupported: a known limit stopped verification."""

OPT_IN = "attached: unsigned"
_PREDICATE_ANNOTATIONS = ("predicateType", "dev.sigstore.bundle.predicateType", "in-toto.io/predicate-type")


@record
class AttachmentNote:
    origin: str
    status: NoteStatus
    message: str

    def as_detail(self) -> dict[str, str]:
        return {"origin": self.origin, "status": self.status, "message": self.message}


@record
class Attached:
    reports: tuple[ScanReport, ...]
    notes: tuple[AttachmentNote, ...]
    looked: tuple[str, ...] = ()
    """Where discovery looked (referrers, cosign tags), for the "no report" message."""


def attached_reports(
    attachments: Sequence[Attachment], image: ImageDigests, trust: Trust, *, accept_unsigned: bool
) -> Attached:
    """The reports the policy may use, and a note for every vulnerability attachment considered."""
    reports: list[ScanReport] = []
    notes: list[AttachmentNote] = []
    for att in attachments:
        note: AttachmentNote | None
        report: ScanReport | None
        if is_sarif(att):
            note, report = _sarif(att, image, accept_unsigned)
        else:
            note, report = _attestation(att, image, trust, accept_unsigned)
        if note is not None:
            notes.append(note)
        if report is not None:
            reports.append(report)
    return Attached(tuple(reports), tuple(notes))


def _sarif(att: Attachment, image: ImageDigests, accept_unsigned: bool) -> tuple[AttachmentNote, ScanReport | None]:
    if not accept_unsigned:
        return AttachmentNote(att.origin, "ignored", f"unsigned SARIF referrer: set `{OPT_IN}` to use it"), None
    try:
        doc = jsontext.loads(att.content)
    except (ValueError, UnicodeDecodeError) as exc:
        return AttachmentNote(att.origin, "invalid", f"SARIF referrer is not JSON ({exc})"), None
    tool = _sarif_tool(doc)
    if tool is not None and tool != "Trivy":
        return AttachmentNote(att.origin, "ignored", f"SARIF from {tool!r}: imgcheck reads Trivy's SARIF only"), None
    created = _created(att.annotations)
    origin = f"{att.origin} (unsigned SARIF, {OPT_IN})"
    return _parse(AttachedDocument(att.target, doc, origin, created), att.origin, image, "unsigned")


def _sarif_tool(doc: object) -> str | None:
    """The scanner that wrote a SARIF log (Ratify also carries Grype's), when the log says."""
    runs = doc.get("runs") if isinstance(doc, dict) else None
    run = runs[0] if isinstance(runs, list) and runs else None
    tool = run.get("tool") if isinstance(run, dict) else None
    driver = tool.get("driver") if isinstance(tool, dict) else None
    name = driver.get("name") if isinstance(driver, dict) else None
    return name if isinstance(name, str) else None


def _created(annotations: Mapping[str, str]) -> datetime | None:
    raw = annotations.get(ANN_CREATED)
    if not raw:
        return None
    try:
        return parse_timestamp(raw)
    except ValueError:
        return None  # no usable time: max_age then says the report is undated


def _attestation(
    att: Attachment, image: ImageDigests, trust: Trust, accept_unsigned: bool
) -> tuple[AttachmentNote | None, ScanReport | None]:
    """A signed attestation is used only when its signature verifies (a signature nobody can check is
    no better than a forged one); an unsigned one (buildx) only with the opt-in."""
    from imgcheck.supplychain.attestations import check_attestation

    outcome = check_attestation(att, list(image.manifests), trust)
    predicate = outcome.details.get("predicate_type")
    if predicate is not None and predicate != COSIGN_VULN_PREDICATE:
        return None, None  # a provenance or SBOM attestation on the same tag: not ours to judge
    if outcome.verified and outcome.statement is None:
        return None, None  # a signature over the digest, not an attestation
    if outcome.status == "unsupported":
        return _if_vuln_annotated(att, "unsupported", outcome.message), None
    if outcome.status == "rejected" or outcome.statement is None:
        return _if_vuln_annotated(att, "ignored", outcome.message, known=predicate is not None), None
    if outcome.status == "unsigned" and not accept_unsigned:
        return AttachmentNote(att.origin, "ignored", f"unsigned attestation: set `{OPT_IN}` to use it"), None
    subject = str(outcome.details["subject"])
    how = str(outcome.details.get("signature", "signed"))
    used: NoteStatus = "signed" if outcome.verified else "unsigned"
    origin = f"{att.origin} ({how}{'' if outcome.verified else f', {OPT_IN}'})"
    return _parse(AttachedDocument(subject, dict(outcome.statement), origin), att.origin, image, used)


def _if_vuln_annotated(
    att: Attachment, status: NoteStatus, message: str, *, known: bool = False
) -> AttachmentNote | None:
    """A note for an attachment that failed before its predicate could be read, when it claims to be
    a vuln attestation (or discovery could not tell): other attestations on the same tag are not ours."""
    claimed = next((att.annotations[k] for k in _PREDICATE_ANNOTATIONS if k in att.annotations), None)
    if known or claimed in (None, COSIGN_VULN_PREDICATE):
        return AttachmentNote(att.origin, status, message)
    return None


def _parse(
    doc: AttachedDocument, origin: str, image: ImageDigests, status: NoteStatus
) -> tuple[AttachmentNote, ScanReport | None]:
    try:
        report = report_from_attachment(doc, image)
    except NotThisImage as exc:
        return AttachmentNote(origin, "ignored", str(exc)), None
    except InputError as exc:
        return AttachmentNote(origin, "invalid", exc.message), None
    if report is None:
        return AttachmentNote(origin, "ignored", "not a Trivy report (neither cosign vuln attestation nor SARIF)"), None
    used = "signed" if status == "signed" else f"unsigned, used because of `{OPT_IN}`"
    return AttachmentNote(origin, status, f"{report.format} report, {len(report.findings)} findings ({used})"), report
