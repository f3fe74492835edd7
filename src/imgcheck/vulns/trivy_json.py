"""Trivy's JSON report (SchemaVersion 2) into a ScanReport.

Type-checks every field the verdict reads and fails closed: a wrong type, an unknown severity or
another SchemaVersion is an InputError, never a guess. Only `VulnerabilityID`, `PkgName`,
`InstalledVersion` and `Severity` are guaranteed by Trivy; everything else is optional.

`Results` may be absent: Trivy declares it `omitempty`, so a scan that found nothing (e.g. a
static binary on scratch) is written without it. We accept that only when the rest of the report is
valid, and mark the report so the message can say so.
"""

from __future__ import annotations

import re
from typing import Any

from imgcheck.errors import InputError
from imgcheck.vulns.model import SEVERITIES, ScanReport, Vuln
from imgcheck.vulns.timeparse import parse_timestamp

SUPPORTED_SCHEMA = 2
_DIGEST_IN_REF = re.compile(r"@(sha256:[0-9a-f]{64})\b")
_SEVERITY_SET = frozenset(SEVERITIES)
_OPTIONAL_STR = ("FixedVersion", "Status", "PkgPath", "PublishedDate")


def _bad(source: str, where: str, expected: str, found: object) -> InputError:
    kind = type(found).__name__ if found is not None else "null"
    return InputError(
        f"{source}: {where} should be {expected}, found {kind}",
        hint="the report is not valid Trivy JSON; re-run `trivy image --format json` on the digest",
    )


def looks_like_trivy_json(doc: object) -> bool:
    """Whether a decoded document claims to be a Trivy JSON report (it may still be invalid)."""
    return isinstance(doc, dict) and "SchemaVersion" in doc


def parse_trivy_json(doc: object, source: str, *, digests: tuple[str, ...] = ()) -> ScanReport:
    """Validate and reduce one decoded Trivy JSON report. `digests` adds bindings known from outside
    (e.g. the subject of the attestation that carried it)."""
    if isinstance(doc, list):
        raise InputError(
            f"{source}: a JSON list, not a Trivy report object (Trivy before 0.20 wrote this; no SchemaVersion)",
            hint="re-scan with a current trivy: `trivy image --format json`",
        )
    if not isinstance(doc, dict):
        raise _bad(source, "the document", "a JSON object", doc)
    version = doc.get("SchemaVersion")
    if type(version) is not int or version != SUPPORTED_SCHEMA:
        raise InputError(
            f"{source}: Trivy SchemaVersion {version!r} is not supported (expected {SUPPORTED_SCHEMA})",
            hint="use a trivy release that writes SchemaVersion 2, or upgrade imgcheck",
        )
    created_raw = doc.get("CreatedAt")
    created = None
    if created_raw is not None:
        if not isinstance(created_raw, str):
            raise _bad(source, "CreatedAt", "an RFC 3339 string", created_raw)
        try:
            created = parse_timestamp(created_raw)
        except ValueError:
            raise InputError(f"{source}: CreatedAt {created_raw!r} is not an RFC 3339 timestamp") from None
    name = doc.get("ArtifactName", "")
    if not isinstance(name, str):
        raise _bad(source, "ArtifactName", "a string", name)
    metadata = doc.get("Metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise _bad(source, "Metadata", "an object", metadata)
    found = list(digests)
    found += _DIGEST_IN_REF.findall(name)
    repo_digests = metadata.get("RepoDigests") or []
    if not isinstance(repo_digests, list) or not all(isinstance(d, str) for d in repo_digests):
        raise _bad(source, "Metadata.RepoDigests", "a list of strings", repo_digests)
    for ref in repo_digests:
        found += _DIGEST_IN_REF.findall(ref)
    image_id = metadata.get("ImageID")
    if image_id is not None and not isinstance(image_id, str):
        raise _bad(source, "Metadata.ImageID", "a string", image_id)
    results = doc.get("Results")
    findings: list[Vuln] = []
    if results is not None:
        if not isinstance(results, list):
            raise _bad(source, "Results", "a list", results)
        for i, result in enumerate(results):
            _parse_result(result, source, i, findings)
    return ScanReport(
        source=source,
        format="trivy-json",
        created_at=created,
        created_from="CreatedAt",
        artifact_name=name,
        digests=tuple(dict.fromkeys(found)),
        image_id=image_id or None,
        findings=tuple(findings),
        results_missing=results is None,
    )


def _parse_result(result: object, source: str, index: int, out: list[Vuln]) -> None:
    if not isinstance(result, dict):
        raise _bad(source, f"Results[{index}]", "an object", result)
    target = result.get("Target", "")
    if not isinstance(target, str):
        raise _bad(source, f"Results[{index}].Target", "a string", target)
    vulns = result.get("Vulnerabilities")
    if vulns is None:
        return
    if not isinstance(vulns, list):
        raise _bad(source, f"Results[{index}].Vulnerabilities", "a list", vulns)
    append = out.append
    new = tuple.__new__  # Vuln's fields in order, without NamedTuple's Python-level __new__ per finding
    severities = _SEVERITY_SET
    for j, v in enumerate(vulns):
        if type(v) is not dict:
            raise _bad(source, f"Results[{index}].Vulnerabilities[{j}]", "an object", v)
        get = v.get
        vid: Any = get("VulnerabilityID")  # checked below, with the other fields, in one condition
        pkg = get("PkgName")
        installed = get("InstalledVersion", "")
        severity = get("Severity")
        fixed = get("FixedVersion")
        status = get("Status")
        pkg_path = get("PkgPath")
        published = get("PublishedDate")
        if (
            type(vid) is not str
            or not vid
            or type(pkg) is not str
            or type(installed) is not str
            or type(severity) is not str
            or severity not in severities
            or (fixed is not None and type(fixed) is not str)
            or (status is not None and type(status) is not str)
            or (pkg_path is not None and type(pkg_path) is not str)
            or (published is not None and type(published) is not str)
        ):
            _reject(v, source, index, j)
        identifier = get("PkgIdentifier")
        if identifier is None:
            purl = ""
        elif type(identifier) is dict and type(found := identifier.get("PURL") or "") is str:
            purl = found
        else:
            purl = _purl(identifier, source, vid)  # raises: the precise message
        cvss = get("CVSS")
        ids = get("VendorIDs")
        append(
            new(
                Vuln,
                (
                    vid,
                    pkg,
                    installed,
                    fixed or "",
                    severity,
                    status or "",
                    purl,
                    pkg_path or "",
                    target,
                    published or "",
                    _cvss(cvss, source, vid) if cvss else None,
                    _aliases(ids, source, vid) if ids else (),
                ),
            )
        )


def _reject(v: dict[str, Any], source: str, index: int, j: int) -> None:
    """The precise error for a finding the fast path found wrong (checked in the order Trivy documents)."""
    vid = v.get("VulnerabilityID")
    pkg = v.get("PkgName")
    installed = v.get("InstalledVersion", "")
    severity = v.get("Severity")
    if type(vid) is not str or not vid:
        raise _bad(source, f"Results[{index}].Vulnerabilities[{j}].VulnerabilityID", "a non-empty string", vid)
    if type(pkg) is not str:
        raise _bad(source, f"{vid}.PkgName", "a string", pkg)
    if type(installed) is not str:
        raise _bad(source, f"{vid}.InstalledVersion", "a string", installed)
    if type(severity) is not str or severity not in _SEVERITY_SET:
        raise InputError(
            f"{source}: {vid} has Severity {severity!r}, expected one of {', '.join(SEVERITIES)}",
            hint="the report is not valid Trivy JSON; re-scan the digest",
        )
    for key in _OPTIONAL_STR:
        value = v.get(key)
        if value is not None and type(value) is not str:
            raise _bad(source, f"{vid}.{key}", "a string", value)
    raise AssertionError("_reject called on a valid finding")


def _purl(identifier: Any, source: str, vid: str) -> str:
    if identifier is None:
        return ""
    if type(identifier) is not dict:
        raise _bad(source, f"{vid}.PkgIdentifier", "an object", identifier)
    purl = identifier.get("PURL") or ""
    if type(purl) is not str:
        raise _bad(source, f"{vid}.PkgIdentifier.PURL", "a string", purl)
    return purl


def _cvss(cvss: Any, source: str, vid: str) -> float | None:
    """The highest score any source gives; v3 wins over v2 within a source."""
    if not cvss:
        return None
    if type(cvss) is not dict:
        raise _bad(source, f"{vid}.CVSS", "an object", cvss)
    best: float | None = None
    for vendor in cvss.values():
        if type(vendor) is not dict:
            raise _bad(source, f"{vid}.CVSS", "an object of objects", vendor)
        score = vendor.get("V3Score")
        if score is None:
            score = vendor.get("V40Score", vendor.get("V2Score"))
        if score is None:
            continue
        if type(score) not in (int, float):
            raise _bad(source, f"{vid}.CVSS score", "a number", score)
        if best is None or score > best:
            best = float(score)
    return best


def _aliases(ids: Any, source: str, vid: str) -> tuple[str, ...]:
    if not ids:
        return ()
    if type(ids) is not list or not all(type(i) is str for i in ids):
        raise _bad(source, f"{vid}.VendorIDs", "a list of strings", ids)
    return tuple(ids)
