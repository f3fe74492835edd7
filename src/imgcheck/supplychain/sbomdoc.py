"""SBOM documents: CycloneDX JSON (1.2–1.7, schema-validated by cyclonedx-python-lib's strict JSON
validator, then deserialised with `Bom.from_json`) and SPDX 2.2/2.3 JSON (required fields checked).

`describes` holds the image digests a document names for the image it describes (CycloneDX
`metadata.component` version/purl/bom-ref/hashes/ImageID properties; SPDX described packages'
versionInfo/checksums/purl/ImageID attribution), so the rule can refuse an SBOM of another image.
Layer DiffIDs are deliberately not taken: layers are shared between images.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from imgcheck import jsontext
from imgcheck.record import record
from imgcheck.supplychain.dsse import MalformedError

Format = Literal["cyclonedx", "spdx"]

_DIGEST = re.compile(r"sha256(?::|%3A|%3a)([0-9a-fA-F]{64})")
_BINDING_PROPERTIES = re.compile(r"(?i).*(imageid|repodigest|manifestdigest|manifest-digest)$")
SPDX_VERSIONS = ("SPDX-2.2", "SPDX-2.3")


@record
class SbomDocument:
    format: Format
    spec_version: str
    components: int
    """Packages/components listed (nested CycloneDX components included; the described image excluded)."""
    licenses: tuple[tuple[str, str], ...]
    """(component name@version, licence expression) for every licence the document declares."""
    describes: frozenset[str]
    """`sha256:<hex>` digests that the document names for the image it describes."""
    subject_name: str | None


def sbom_format(doc: Mapping[str, Any]) -> Format | None:
    if doc.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    if isinstance(doc.get("spdxVersion"), str):
        return "spdx"
    return None


def _digests(values: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for value in values:
        if isinstance(value, str):
            out.update("sha256:" + m.lower() for m in _DIGEST.findall(value))
    return out


def load(content: bytes) -> SbomDocument:
    """Parse and validate an SBOM; MalformedError (one line) when it is not a valid one."""
    try:
        doc = jsontext.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"SBOM is not JSON ({exc}); truncated or not a JSON SBOM") from None
    if not isinstance(doc, dict):
        raise MalformedError("SBOM is not a JSON object")
    return load_document(doc, content)


def load_document(doc: Mapping[str, Any], raw: bytes | None = None) -> SbomDocument:
    fmt = sbom_format(doc)
    if fmt == "cyclonedx":
        return _cyclonedx(doc, raw)
    if fmt == "spdx":
        return _spdx(doc)
    raise MalformedError("document is neither CycloneDX (bomFormat) nor SPDX (spdxVersion) JSON")


def _cyclonedx(doc: Mapping[str, Any], raw: bytes | None) -> SbomDocument:
    from cyclonedx.exception import CycloneDxException
    from cyclonedx.model.bom import Bom
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    spec = str(doc.get("specVersion", ""))
    try:
        version = SchemaVersion.from_version(spec)
    except (ValueError, KeyError):
        raise MalformedError(f"CycloneDX specVersion {spec!r} is not one imgcheck knows (1.2–1.7)") from None
    text = raw.decode() if raw is not None else json.dumps(doc)
    error = JsonStrictValidator(version).validate_str(text)
    if error is not None:
        first = str(error).strip().splitlines()[0]
        raise MalformedError(f"CycloneDX {spec} does not validate against its schema: {first[:200]}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the library's deprecation notes are not the user's business
            Bom.from_json(doc)  # type: ignore[attr-defined]
    except (CycloneDxException, ValueError, TypeError, KeyError) as exc:
        raise MalformedError(f"CycloneDX {spec} does not deserialise: {str(exc)[:200]}") from None

    metadata = doc.get("metadata") or {}
    component = metadata.get("component") or {}
    values: list[Any] = [component.get("version"), component.get("purl"), component.get("bom-ref")]
    for h in component.get("hashes") or []:
        if isinstance(h, dict) and str(h.get("alg", "")).upper() == "SHA-256":
            values.append(f"sha256:{h.get('content', '')}")
    for prop in component.get("properties") or []:
        if isinstance(prop, dict) and _BINDING_PROPERTIES.fullmatch(str(prop.get("name", ""))):
            values.append(prop.get("value"))

    components = 0
    licenses: list[tuple[str, str]] = []
    stack = list(doc.get("components") or [])
    while stack:
        comp = stack.pop()
        if not isinstance(comp, dict):
            continue
        components += 1
        label = f"{comp.get('name', '?')}@{comp.get('version', '?')}"
        for entry in comp.get("licenses") or []:
            if not isinstance(entry, dict):
                continue
            lic = entry.get("license")
            texts = [entry.get("expression")]
            if isinstance(lic, dict):
                texts.append(lic.get("id") or lic.get("name"))
            licenses.extend((label, t) for t in texts if isinstance(t, str))
        stack.extend(comp.get("components") or [])
    name = component.get("name")
    return SbomDocument(
        "cyclonedx",
        spec,
        components,
        tuple(licenses),
        frozenset(_digests(values)),
        name if isinstance(name, str) else None,
    )


def _spdx(doc: Mapping[str, Any]) -> SbomDocument:
    version = str(doc.get("spdxVersion"))
    if version not in SPDX_VERSIONS:
        raise MalformedError(f"SPDX version {version!r} is not supported (SPDX-2.2 or SPDX-2.3 JSON)")
    missing = [k for k in ("SPDXID", "name", "dataLicense", "documentNamespace", "creationInfo") if not doc.get(k)]
    creation = doc.get("creationInfo")
    if isinstance(creation, dict):
        missing += [f"creationInfo.{k}" for k in ("created", "creators") if not creation.get(k)]
    packages = doc.get("packages", [])
    if not isinstance(packages, list):
        missing.append("packages (a list)")
        packages = []
    for i, pkg in enumerate(packages):
        if not isinstance(pkg, dict):
            missing.append(f"packages[{i}] (an object)")
            continue
        missing += [f"packages[{i}].{k}" for k in ("SPDXID", "name") if not isinstance(pkg.get(k), str) or not pkg[k]]
    if missing:
        raise MalformedError(f"{version} document lacks required fields: {', '.join(missing[:5])}")

    by_id = {p["SPDXID"]: p for p in packages}
    described = set(_list_of(doc, "documentDescribes", str, version))
    for rel in _list_of(doc, "relationships", dict, version):
        kind = rel.get("relationshipType")
        if kind == "DESCRIBES" and rel.get("spdxElementId") == doc.get("SPDXID"):
            described.add(str(rel.get("relatedSpdxElement")))
        elif kind == "DESCRIBED_BY" and rel.get("relatedSpdxElement") == doc.get("SPDXID"):
            described.add(str(rel.get("spdxElementId")))
    values: list[Any] = []
    subject_name = None
    for spdx_id in described:
        pkg = by_id.get(spdx_id)
        if not pkg:
            continue
        subject_name = subject_name or pkg.get("name")
        values.append(pkg.get("versionInfo"))
        for c in _list_of(pkg, "checksums", dict, version):
            if str(c.get("algorithm", "")).upper() == "SHA256":
                values.append(f"sha256:{c.get('checksumValue', '')}")
        for ref in _list_of(pkg, "externalRefs", dict, version):
            if ref.get("referenceType") == "purl":
                values.append(ref.get("referenceLocator"))
        for text in _list_of(pkg, "attributionTexts", str, version):
            if re.match(r"(?i)(ImageID|RepoDigest):", text):
                values.append(text)
    licenses: list[tuple[str, str]] = []
    count = 0
    for pkg in packages:
        if pkg.get("SPDXID") in described:
            continue
        count += 1
        label = f"{pkg.get('name', '?')}@{pkg.get('versionInfo', '?')}"
        for key in ("licenseConcluded", "licenseDeclared"):
            value = pkg.get(key)
            if isinstance(value, str) and value not in ("NOASSERTION", "NONE", ""):
                licenses.append((label, value))
    return SbomDocument(
        "spdx", version, count, tuple(dict.fromkeys(licenses)), frozenset(_digests(values)), subject_name
    )


def _list_of(obj: Mapping[str, Any], key: str, kind: type, version: str) -> list[Any]:
    """`obj[key]` as a list of `kind` (absent or null: empty). SPDX JSON is not schema-validated here, so a
    field of the wrong shape is a MalformedError naming it, never a crash or a silently skipped entry."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, kind) for item in value):
        raise MalformedError(f"{version} document: `{key}` must be a list of {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES: dict[type, str] = {str: "strings", dict: "objects"}
