"""VEX documents (OpenVEX and CycloneDX VEX) reduced to statements that can suppress a finding.

A statement suppresses a finding when it names the finding's vulnerability, its product is this
image (by digest, or by repository when it names no digest), its subcomponents (if any) include the
finding's package, and its status is `not_affected` or `fixed`. When several statements speak about
the same finding, the latest one wins (OpenVEX's rule), so a later `affected` revokes an earlier
`not_affected`.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote

from imgcheck.errors import InputError
from imgcheck.facts import ImageFacts
from imgcheck.record import record
from imgcheck.vulns.model import Vuln
from imgcheck.vulns.purl import parse_purl, purl_matches
from imgcheck.vulns.timeparse import parse_timestamp

SUPPRESSING = frozenset({"not_affected", "fixed"})
_CDX_STATE = {
    "not_affected": "not_affected",
    "false_positive": "not_affected",
    "resolved": "fixed",
    "resolved_with_pedigree": "fixed",
    "exploitable": "affected",
    "in_triage": "under_investigation",
}


@record
class VexStatement:
    vuln_ids: frozenset[str]
    status: str
    """OpenVEX vocabulary: not_affected, fixed, affected, under_investigation."""
    products: tuple[str, ...]
    subcomponents: tuple[str, ...]
    """Package purls or names; empty means the whole product."""
    justification: str
    timestamp: datetime | None
    order: int
    """Position across all loaded documents: the tie-breaker for equal timestamps."""
    source: str
    """`file statement N` / `file vulnerabilities[N]`, as shown in reports."""

    def as_detail(self) -> dict[str, object]:
        return {"source": self.source, "status": self.status, "justification": self.justification}


@record
class ImageIdentity:
    """What a VEX product identifier may name: a manifest digest of this image or its repository."""

    digests: frozenset[str]
    repositories: frozenset[str]
    tag: str | None

    @classmethod
    def of(cls, facts: ImageFacts) -> ImageIdentity:
        digests = {facts.digest, *(p.manifest_digest for p in facts.platforms)}
        repos = {facts.repository, f"{facts.registry}/{facts.repository}"}
        return cls(frozenset(digests), frozenset(r.lower() for r in repos), facts.tag)

    def is_product(self, identifier: str) -> bool:
        text = unquote(identifier)
        if "sha256:" in text:
            return any(d in text for d in self.digests)
        purl = parse_purl(text)
        if purl is not None:
            if purl.type != "oci":
                return False
            repo_url = purl.qualifiers.get("repository_url", "").lower()
            if repo_url:
                return repo_url in self.repositories
            return any(r.rsplit("/", 1)[-1] == purl.name.lower() for r in self.repositories)
        name, tag = text.lower(), None
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
        return name in self.repositories and (tag is None or tag == (self.tag or "").lower())


def _applies(st: VexStatement, v: Vuln, image: ImageIdentity) -> bool:
    if v.id not in st.vuln_ids and not st.vuln_ids.intersection(v.aliases):
        return False
    if not any(image.is_product(p) for p in st.products):
        return False
    return not st.subcomponents or any(
        purl_matches(s, v.purl) if s.startswith("pkg:") else s == v.package for s in st.subcomponents
    )


def deciding_statement(statements: list[VexStatement], v: Vuln, image: ImageIdentity) -> VexStatement | None:
    """The statement that decides this finding (the latest that applies), or None."""
    best: VexStatement | None = None
    for st in statements:
        if _applies(st, v, image) and (best is None or _later(st, best)):
            best = st
    return best


def _later(a: VexStatement, b: VexStatement) -> bool:
    if a.timestamp and b.timestamp and a.timestamp != b.timestamp:
        return a.timestamp > b.timestamp
    return a.order > b.order


def parse_vex(doc: object, source: str, start: int = 0) -> list[VexStatement]:
    """Statements of one VEX document: OpenVEX (`@context` openvex.dev) or CycloneDX (`bomFormat`)."""
    if isinstance(doc, dict) and str(doc.get("@context", "")).startswith("https://openvex.dev/ns"):
        return _openvex(doc, source, start)
    if isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX":
        return _cyclonedx(doc, source, start)
    raise InputError(
        f"{source}: not an OpenVEX or CycloneDX VEX document",
        hint="give `vex:` OpenVEX JSON (@context https://openvex.dev/ns) or CycloneDX JSON with vulnerabilities",
    )


def _time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: timestamp should be an RFC 3339 string")
    try:
        return parse_timestamp(value)
    except ValueError:
        raise InputError(f"{where}: timestamp {value!r} is not RFC 3339") from None


def _ids(item: object) -> list[str]:
    """Identifiers of an OpenVEX product/subcomponent: `@id` and any purl identifier."""
    if isinstance(item, str):
        return [item]
    if not isinstance(item, dict):
        return []
    out = [item["@id"]] if isinstance(item.get("@id"), str) else []
    idents = item.get("identifiers")
    if isinstance(idents, dict):
        out += [v for v in idents.values() if isinstance(v, str)]
    return out


def _openvex(doc: dict[str, object], source: str, start: int) -> list[VexStatement]:
    statements = doc.get("statements")
    if not isinstance(statements, list):
        raise InputError(f"{source}: OpenVEX document has no `statements` list")
    doc_time = _time(doc.get("timestamp"), source)
    out = []
    for i, st in enumerate(statements):
        where = f"{source} statement {i + 1}"
        if not isinstance(st, dict):
            raise InputError(f"{where}: should be an object")
        vuln = st.get("vulnerability")
        ids: list[str] = []
        if isinstance(vuln, str):
            ids = [vuln]
        elif isinstance(vuln, dict):
            ids = [x for x in (vuln.get("name"), vuln.get("@id")) if isinstance(x, str)]
            aliases = vuln.get("aliases")
            ids += [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []
        status = st.get("status")
        if not ids or not isinstance(status, str):
            raise InputError(f"{where}: needs a vulnerability and a status")
        products_raw = st.get("products") or []
        if not isinstance(products_raw, list):
            raise InputError(f"{where}: `products` should be a list")
        products: list[str] = []
        subs: list[str] = [s for s in st.get("subcomponents") or [] if isinstance(s, str)]
        for p in products_raw:
            products += _ids(p)
            if isinstance(p, dict) and isinstance(p.get("subcomponents"), list):
                for sub in p["subcomponents"]:
                    subs += _ids(sub)
        out.append(
            VexStatement(
                vuln_ids=frozenset(ids),
                status=status,
                products=tuple(products),
                subcomponents=tuple(subs),
                justification=str(st.get("justification") or st.get("impact_statement") or ""),
                timestamp=_time(st.get("timestamp"), where) or doc_time,
                order=start + i,
                source=where,
            )
        )
    return out


def _cyclonedx(doc: dict[str, object], source: str, start: int) -> list[VexStatement]:
    vulns = doc.get("vulnerabilities")
    if not isinstance(vulns, list):
        raise InputError(f"{source}: CycloneDX document has no `vulnerabilities` list (not a VEX)")
    refs: dict[str, list[str]] = {}
    components = doc.get("components")
    for comp in components if isinstance(components, list) else []:
        if isinstance(comp, dict) and isinstance(comp.get("bom-ref"), str):
            refs[comp["bom-ref"]] = [x for x in (comp.get("purl"), comp.get("name")) if isinstance(x, str)]
    metadata = doc.get("metadata")
    main = metadata.get("component") if isinstance(metadata, dict) else None
    product_ids: list[str] = []
    main_ref = None
    if isinstance(main, dict):
        main_ref = main.get("bom-ref")
        product_ids = [x for x in (main.get("purl"), main.get("bom-ref")) if isinstance(x, str)]
        if isinstance(main.get("name"), str):
            version = main.get("version")
            product_ids.append(f"{main['name']}@{version}" if isinstance(version, str) else main["name"])
    doc_time = _time(metadata.get("timestamp") if isinstance(metadata, dict) else None, source)
    out = []
    for i, v in enumerate(vulns):
        where = f"{source} vulnerabilities[{i}]"
        if not isinstance(v, dict) or not isinstance(v.get("id"), str):
            raise InputError(f"{where}: needs an `id`")
        analysis = v.get("analysis")
        state = analysis.get("state") if isinstance(analysis, dict) else None
        if state is None:
            continue  # a plain vulnerability listing, not a VEX statement
        if state not in _CDX_STATE:
            raise InputError(f"{where}: analysis.state {state!r} is not a CycloneDX state")
        ids = [v["id"]] + [
            r["id"] for r in v.get("references") or [] if isinstance(r, dict) and isinstance(r.get("id"), str)
        ]
        products, subs = list(product_ids), []
        affects = v.get("affects") or []
        if not isinstance(affects, list):
            raise InputError(f"{where}: `affects` should be a list")
        for affect in affects:
            ref = affect.get("ref") if isinstance(affect, dict) else None
            if not isinstance(ref, str):
                raise InputError(f"{where}: affects[].ref should be a string")
            ref = ref.split("#", 1)[1] if ref.startswith("urn:cdx:") and "#" in ref else ref
            if ref == main_ref:
                continue
            targets = refs.get(ref, [ref])
            if not product_ids or any(t.startswith("pkg:oci/") or "sha256:" in t for t in targets):
                products += targets
            else:
                subs += targets
        out.append(
            VexStatement(
                vuln_ids=frozenset(ids),
                status=_CDX_STATE[state],
                products=tuple(products),
                subcomponents=tuple(subs),
                justification=str(analysis.get("justification") or analysis.get("detail") or "")
                if isinstance(analysis, dict)
                else "",
                timestamp=_time(v.get("updated") or v.get("published"), where) or doc_time,
                order=start + i,
                source=where,
            )
        )
    return out
