"""`imgcheck diff OLD NEW`: what changed between two releases of each policy image.

What a reviewer reads before promoting a release: compressed size per layer and in total (with the
size rule's growth verdict, the new release measured against the old one), labels, config (user,
entrypoint, cmd, and env variable NAMES: values can be secrets and never leave the image), SBOM
packages added, removed and upgraded (from the SBOMs attached to each digest, found by the
supply-chain discovery), and vulnerabilities fixed and introduced (from the Trivy reports given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import field
from datetime import UTC, datetime
from typing import Any

from imgcheck import jsontext
from imgcheck.checks.interface import RuleConfig, RunContext, VerifyOptions
from imgcheck.errors import ImgcheckError, UsageError
from imgcheck.facts import ImageFacts, PlatformFacts, TagFacts
from imgcheck.gather import Gatherer
from imgcheck.policy.model import Policy
from imgcheck.record import record
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.reference import Reference, is_tag, looks_like_reference, parse_reference

DIFF_SCHEMA = "imgcheck.diff/v1"


@record
class Change:
    """One named thing that was added, removed or changed (`old`/`new` None when absent)."""

    name: str
    old: Any = None
    new: Any = None

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed"


@record
class PlatformDiff:
    platform: str
    old_total: int | None
    new_total: int | None
    layers: tuple[Change, ...]
    """Layer digest (short) -> compressed size, for layers only in one side."""
    shared_layers: int


@record
class ImageDiff:
    name: str
    old_reference: str
    new_reference: str
    old_digest: str | None = None
    new_digest: str | None = None
    platforms: tuple[PlatformDiff, ...] = ()
    growth: tuple[tuple[str, str, str | None], ...] = ()
    """(verdict, message, platform) of the size rule's growth check per platform, new against old."""
    labels: tuple[Change, ...] = ()
    config: tuple[Change, ...] = ()
    env_names: tuple[Change, ...] = ()
    """Env variable names added, removed, or whose value changed (old/new are never the values)."""
    packages: tuple[Change, ...] | None = None
    """None when an SBOM was missing on one side (`notes` says which)."""
    vulns_fixed: tuple[str, ...] | None = None
    vulns_introduced: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def growth_failed(self) -> bool:
        return any(g[0] in ("fail", "error") for g in self.growth)


@record
class DiffReport:
    old: str
    new: str
    images: tuple[ImageDiff, ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        """2 when a side could not be read, 1 when the new release fails the growth budget, else 0."""
        if any(i.error for i in self.images) or not self.images:
            return 2
        return 1 if any(i.growth_failed for i in self.images) else 0


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[Change, ...]:
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(Change(key, old.get(key), new.get(key)))
    return tuple(out)


def _env(platform: PlatformFacts | None) -> dict[str, str]:
    raw = ((platform.config.get("config") or {}).get("Env") or []) if platform else []
    return {str(e).partition("=")[0]: str(e).partition("=")[2] for e in raw if isinstance(e, str)}


def env_changes(old: PlatformFacts | None, new: PlatformFacts | None) -> tuple[Change, ...]:
    """Names only: `set` / `changed` markers stand in for values, which may be secrets."""
    before, after = _env(old), _env(new)
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            out.append(Change(name, None, "set"))
        elif name not in after:
            out.append(Change(name, "set", None))
        elif before[name] != after[name]:
            out.append(Change(name, "value", "another value"))
    return tuple(out)


def _config_view(platform: PlatformFacts | None) -> dict[str, Any]:
    config = (platform.config.get("config") or {}) if platform else {}
    return {
        "user": config.get("User") or None,
        "entrypoint": config.get("Entrypoint"),
        "cmd": config.get("Cmd"),
        "workdir": config.get("WorkingDir") or None,
        "healthcheck": (config.get("Healthcheck") or {}).get("Test"),
    }


def platform_diffs(old: ImageFacts, new: ImageFacts) -> tuple[PlatformDiff, ...]:
    before = {p.platform: p for p in old.platforms}
    after = {p.platform: p for p in new.platforms}
    out = []
    for name in sorted(set(before) | set(after)):
        o, n = before.get(name), after.get(name)
        old_layers = {layer.digest: layer.size for layer in (o.layers if o else ())}
        new_layers = {layer.digest: layer.size for layer in (n.layers if n else ())}
        changes = [Change(d[7:19], old_layers[d], None) for d in old_layers if d not in new_layers]
        changes += [Change(d[7:19], None, new_layers[d]) for d in new_layers if d not in old_layers]
        out.append(
            PlatformDiff(
                name,
                o.compressed_size if o else None,
                n.compressed_size if n else None,
                tuple(changes),
                len(set(old_layers) & set(new_layers)),
            )
        )
    return tuple(out)


def growth_findings(
    old: ImageFacts, new: ImageFacts, rules: Mapping[str, RuleConfig]
) -> tuple[tuple[str, str, str | None], ...]:
    """The size rule, with OLD as the previous release: the same verdict `verify` would give."""
    from imgcheck.checks import all_rules

    config = rules.get("size")
    if config is None or getattr(config, "max_growth", None) is None:
        return (("skip", "the policy sets no size.max_growth; growth is shown, not judged", None),)
    previous = TagFacts(
        tag=old.tag or old.short_digest,
        digest=old.digest,
        compressed_sizes={p.platform: p.compressed_size for p in old.platforms},
    )
    facts = dataclasses.replace(new, previous_release=previous)
    unset: dict[str, Any] = {"max_compressed": None, "max_uncompressed": None}
    only_growth = dataclasses.replace(config, **unset)
    findings = all_rules()["size"].check(facts, only_growth, RunContext(now=datetime.now(UTC)))
    return tuple((f.verdict.value, f.message, f.platform) for f in findings)


# --- SBOM packages -------------------------------------------------------------------------------------


def sbom_packages(document: Mapping[str, Any]) -> dict[str, str]:
    """name -> version from a CycloneDX (components, nested) or SPDX (packages) document."""
    out: dict[str, str] = {}
    if document.get("bomFormat") == "CycloneDX":
        metadata = document.get("metadata")
        root = metadata.get("component") if isinstance(metadata, Mapping) else None
        root_ref = root.get("bom-ref") if isinstance(root, Mapping) else None
        stack = _listed(document.get("components"))
        while stack:
            comp = stack.pop()
            if isinstance(comp, Mapping):
                if comp.get("name") and not (root_ref and comp.get("bom-ref") == root_ref):
                    out[str(comp["name"])] = str(comp.get("version") or "")
                stack.extend(_listed(comp.get("components")))
    elif isinstance(document.get("spdxVersion"), str):
        roots = _spdx_roots(document)
        for pkg in _listed(document.get("packages")):
            if isinstance(pkg, Mapping) and pkg.get("name") and pkg.get("SPDXID") not in roots:
                out[str(pkg["name"])] = str(pkg.get("versionInfo") or "")
    return out


def _spdx_roots(document: Mapping[str, Any]) -> set[str]:
    """What the document describes (the scanned image itself, its version a digest): not a package of it,
    so a new release is not one "upgraded package"."""
    roots = {str(r) for r in _listed(document.get("documentDescribes"))}
    for rel in _listed(document.get("relationships")):
        if (
            isinstance(rel, Mapping)
            and rel.get("spdxElementId") == document.get("SPDXID", "SPDXRef-DOCUMENT")
            and rel.get("relationshipType") == "DESCRIBES"
        ):
            roots.add(str(rel.get("relatedSpdxElement")))
    return roots


def _listed(value: Any) -> list[Any]:
    """A field that should be a list, as one (anything else in a hand-made or hostile SBOM lists nothing):
    the diff reports what the documents list and must not crash on what they do not."""
    return list(value) if isinstance(value, list) else []


def _documents(content: bytes, kind: str) -> Iterable[Mapping[str, Any]]:
    """SBOM documents in one attachment: bare, an in-toto statement's predicate, or inside DSSE."""
    from imgcheck.supplychain.dsse import MalformedError, parse_envelope

    try:
        if kind == "dsse":
            content = parse_envelope(content).payload
        doc = jsontext.loads(content)  # absurd nesting is ValueError, not a crash
    except (ValueError, UnicodeDecodeError, MalformedError):
        return []
    if isinstance(doc, Mapping) and isinstance(doc.get("predicate"), Mapping):
        doc = doc["predicate"]
    return [doc] if isinstance(doc, Mapping) else []


def attached_packages(client: RegistryClient, facts: ImageFacts) -> dict[str, str] | None:
    """Packages of every SBOM attached to the digest (all platforms merged); None when there is none."""
    from imgcheck.supplychain.discovery import discover

    found = discover(client, facts.registry, facts.repository, facts.digest, "sbom", facts.attestation_manifests)
    packages: dict[str, str] = {}
    seen = False
    for attachment in found.attachments:
        for doc in _documents(attachment.content, attachment.kind):
            listed = sbom_packages(doc)
            if listed or doc.get("bomFormat") or doc.get("spdxVersion"):
                seen = True
                packages.update(listed)
    return packages if seen else None


# --- vulnerabilities -----------------------------------------------------------------------------------


def _vuln_keys(reports: Iterable[Any], facts: ImageFacts) -> set[str] | None:
    from imgcheck.vulns.binding import bind_reports

    bound = bind_reports(list(reports), facts, allow_unbound=False)
    if not bound.used:
        return None
    return {f"{v.id} {v.package} ({v.severity})" for b in bound.used for v in b.report.findings}


# --- the command -----------------------------------------------------------------------------------------


def _pairs(policy: Policy, old: str, new: str, options: VerifyOptions) -> list[tuple[str, Reference, Reference]]:
    """Two tags: every policy image; two full references: that one image."""
    if looks_like_reference(old) or looks_like_reference(new):
        o = parse_reference(old, default_registry=policy.registry)
        n = parse_reference(new, default_registry=policy.registry) if looks_like_reference(new) else None
        if n is None:
            n = Reference(o.registry, o.repository, tag=new) if is_tag(new) else None
        if n is None:
            raise UsageError(f"{new!r} is neither a tag nor an image reference")
        name = next((i.name for i in policy.images if i.repository == o.repository), o.repository.rsplit("/", 1)[-1])
        return [(name, o, n)]
    for text in (old, new):
        if not is_tag(text):
            raise UsageError(f"{text!r} is neither a tag nor an image reference (e.g. v1.4.1, latest)")
    out = []
    for image in policy.images:
        registry = options.registry_override or image.registry
        out.append(
            (image.name, Reference(registry, image.repository, tag=old), Reference(registry, image.repository, tag=new))
        )
    return out


def diff_image(
    client: RegistryClient,
    name: str,
    old_ref: Reference,
    new_ref: Reference,
    rules: Mapping[str, RuleConfig],
    reports: tuple[Any, ...] | None,
    platform: str | None,
) -> ImageDiff:
    gatherer = Gatherer(client)
    try:
        old = gatherer.gather(name, old_ref, need_tags=False, platform_filter=platform)
        new = gatherer.gather(name, new_ref, need_tags=False, platform_filter=platform)
    except ImgcheckError as err:
        return ImageDiff(name, str(old_ref), str(new_ref), error=str(err))
    notes: list[str] = []
    try:
        before, after = attached_packages(client, old), attached_packages(client, new)
    except ImgcheckError as err:
        before = after = None
        notes.append(f"SBOMs could not be read: {err}")
    packages = None
    if before is None or after is None:
        missing = [r for r, p in ((old_ref, before), (new_ref, after)) if p is None]
        if missing and not notes:
            notes.append("no SBOM attached to " + " and ".join(str(m) for m in missing))
    else:
        packages = _changes(before, after)
    fixed = introduced = None
    if reports is None:
        notes.append("no Trivy reports given (--trivy-report): vulnerabilities not compared")
    else:
        old_v, new_v = _vuln_keys(reports, old), _vuln_keys(reports, new)
        if old_v is None or new_v is None:
            missing = [r for r, v in ((old_ref, old_v), (new_ref, new_v)) if v is None]
            notes.append("no Trivy report for " + " and ".join(str(m) for m in missing))
        else:
            fixed, introduced = tuple(sorted(old_v - new_v)), tuple(sorted(new_v - old_v))
    first_old = old.platforms[0] if old.platforms else None
    first_new = new.platforms[0] if new.platforms else None
    return ImageDiff(
        name,
        str(old_ref),
        str(new_ref),
        old.digest,
        new.digest,
        platform_diffs(old, new),
        growth_findings(old, new, rules),
        _changes(old.labels, new.labels),
        _changes(_config_view(first_old), _config_view(first_new)),
        env_changes(first_old, first_new),
        packages,
        fixed,
        introduced,
        tuple(notes),
    )


def build_diff(policy: Policy, options: VerifyOptions, old: str, new: str, client: RegistryClient) -> DiffReport:
    reports = None
    if options.trivy_reports:
        from imgcheck.vulns.files import load_reports

        reports = load_reports(tuple(options.trivy_reports)).reports
    rules = {i.name: i.rules for i in policy.images}
    images = [
        diff_image(client, name, o, n, rules.get(name, policy.defaults), reports, options.platform)
        for name, o, n in _pairs(policy, old, new, options)
    ]
    return DiffReport(old, new, tuple(images))
