"""Find what is attached to a digest, in every place real tools put it.

- OCI 1.1 referrers (the API, else the `sha256-<hex>` fallback tag): cosign v3 Sigstore bundles,
  `oras attach`-style SBOMs, cosign OCI 1.1 signatures;
- cosign's tag layout: `sha256-<hex>.sig` (simplesigning), `.att` (DSSE), `.sbom` (bare SBOMs);
- buildx attestation manifests inside an index (unsigned in-toto statements per platform);
- for vulnerability reports: cosign vuln attestations (`.att`, bundles) and SARIF referrers (Ratify's layout).

Every read goes through `RegistryClient` (digest-verified, size-capped). Cheap metadata (media types,
annotations) decides what is worth reading, so a big unrelated referrer is never downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from imgcheck.errors import RegistryError
from imgcheck.facts import Descriptor
from imgcheck.supplychain.attachments import (
    ANN_BUILDX_REF_DIGEST,
    ANN_BUNDLE_PREDICATE,
    ANN_INTOTO_PREDICATE,
    DSSE_ENVELOPE,
    IN_TOTO,
    SBOM_MEDIA_TYPES,
    SIGSTORE_BUNDLE_TYPES,
    SIMPLESIGNING,
    Attachment,
    Discovered,
    Kind,
)

if TYPE_CHECKING:
    from imgcheck.registry.client import RegistryClient

Purpose = Literal["signature", "sbom", "provenance", "vulnerabilities"]

SARIF_JSON = "application/sarif+json"
"""`oras attach --artifact-type application/sarif+json`: a scanner's SARIF log as a referrer (Ratify)."""
SARIF_KIND: Kind = "sarif"
"""The attachment kind of a SARIF referrer layer (until `attachments.Kind` lists "sarif")."""
ANN_CREATED = "org.opencontainers.image.created"
UNTELLING_CONFIG_TYPES = (
    "application/vnd.oci.empty.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.unknown.config.v1+json",  # oras-py's default config
)
"""Config media types that say nothing about what an artifact holds."""

MAX_SIGNATURE_BYTES = 1024 * 1024
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
"""SBOMs and attestations of big images run to several MB; more than this is refused, not truncated."""
MAX_ATTACHMENTS = 64
"""An image with more attachments than this is suspicious; reading them all would be a DoS."""

SBOM_PREDICATE_MARKERS = ("cyclonedx", "spdx")
PROVENANCE_PREDICATE_MARKERS = ("slsa.dev/provenance",)
VULN_PREDICATE_MARKERS = ("cosign.sigstore.dev/attestation/vuln",)


def cosign_tag(digest: str, suffix: str) -> str:
    """cosign's tag for an attachment of `digest`: `sha256:abc` + `sig` -> `sha256-abc.sig`."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.{suffix}"


def predicate_wanted(purpose: Purpose, predicate_type: str | None) -> bool:
    """Whether an attestation with this predicate type (None: unknown yet) can serve `purpose`."""
    if purpose == "signature":
        return True
    if predicate_type is None:
        return True
    markers = {
        "sbom": SBOM_PREDICATE_MARKERS,
        "provenance": PROVENANCE_PREDICATE_MARKERS,
        "vulnerabilities": VULN_PREDICATE_MARKERS,
    }[purpose]
    return any(m in predicate_type.lower() for m in markers)


def discover(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    purpose: Purpose,
    attestation_manifests: Iterable[Descriptor] = (),
) -> Discovered:
    """Everything attached to `digest` that could serve `purpose`, read and digest-verified."""
    found: list[Attachment] = []
    looked: list[str] = []

    looked.append(f"referrers of {digest}")
    for desc in client.referrers(registry, repository, digest):
        found.extend(_from_referrer(client, registry, repository, digest, desc, purpose))

    suffixes = {"signature": ("sig",), "sbom": ("sbom", "att"), "provenance": ("att",), "vulnerabilities": ("att",)}[
        purpose
    ]
    for suffix in suffixes:
        tag = cosign_tag(digest, suffix)
        looked.append(f"cosign tag {tag}")
        manifest = client.find_manifest(registry, repository, tag)
        if manifest is not None:
            found.extend(_from_cosign_manifest(client, registry, repository, digest, tag, manifest.json, purpose))

    if purpose != "signature":
        for desc in attestation_manifests:
            looked.append(f"buildx attestation {desc.digest[:19]}")
            found.extend(_from_buildx(client, registry, repository, desc, purpose))

    if len(found) > MAX_ATTACHMENTS:
        raise RegistryError(
            f"{len(found)} attachments on {digest} (more than {MAX_ATTACHMENTS})",
            hint="prune old signatures/attestations; imgcheck refuses to read unbounded evidence",
        )
    return Discovered(tuple(found), tuple(looked))


def _layers(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        return []
    return [layer for layer in layers if isinstance(layer, dict) and isinstance(layer.get("digest"), str)]


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    raw = obj.get("annotations")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _layer_kind(media_type: str, purpose: Purpose, annotations: Mapping[str, str]) -> Kind | None:
    """What a layer holds, or None when it cannot serve `purpose`."""
    base = media_type.split(";")[0].strip() if "sigstore" not in media_type else media_type
    if base == SIMPLESIGNING:
        return "simplesigning" if purpose == "signature" else None
    if base == DSSE_ENVELOPE:
        return "dsse" if predicate_wanted(purpose, annotations.get("predicateType")) else None
    if media_type in SIGSTORE_BUNDLE_TYPES:
        return "bundle" if predicate_wanted(purpose, annotations.get(ANN_BUNDLE_PREDICATE)) else None
    if base in SBOM_MEDIA_TYPES:
        return "sbom" if purpose == "sbom" else None
    if base == SARIF_JSON:
        return SARIF_KIND if purpose == "vulnerabilities" else None
    return None


def effective_artifact_type(manifest: Mapping[str, Any]) -> str:
    """A referrer's type per OCI 1.1: its `artifactType`, else its config's media type (oras-py writes
    no `artifactType`; the config carries the type). "" when neither tells what the artifact holds."""
    declared = manifest.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    config = manifest.get("config")
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(media_type, str) and media_type not in UNTELLING_CONFIG_TYPES:
        return media_type
    return ""


def is_sarif(att: Attachment) -> bool:
    """Whether discovery read this attachment as a SARIF referrer layer."""
    return att.kind == SARIF_KIND


def _read_layers(
    client: RegistryClient,
    registry: str,
    repository: str,
    manifest: Mapping[str, Any],
    *,
    origin: str,
    target: str,
    purpose: Purpose,
    extra_annotations: Mapping[str, str] | None = None,
) -> list[Attachment]:
    out: list[Attachment] = []
    for layer in _layers(manifest):
        media_type = str(layer.get("mediaType", ""))
        annotations = {**(extra_annotations or {}), **_annotations(layer)}
        kind = _layer_kind(media_type, purpose, annotations)
        if kind is None:
            continue
        cap = MAX_SIGNATURE_BYTES if kind == "simplesigning" else MAX_DOCUMENT_BYTES
        content = client.get_blob(registry, repository, str(layer["digest"]), max_bytes=cap)
        out.append(Attachment(kind, origin, target, media_type, content, annotations))
    return out


def _from_cosign_manifest(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    tag: str,
    manifest: Mapping[str, Any],
    purpose: Purpose,
) -> list[Attachment]:
    return _read_layers(
        client, registry, repository, manifest, origin=f"cosign tag {tag}", target=digest, purpose=purpose
    )


def _from_referrer(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    desc: Descriptor,
    purpose: Purpose,
) -> list[Attachment]:
    artifact_type = desc.artifact_type or ""
    annotations = dict(desc.annotations)
    manifest: Mapping[str, Any] | None = None
    if not artifact_type:
        # A fallback-index entry without `artifactType` (its writer copied the manifest's, absent in
        # oras-py's layout): the type is in the manifest, which is read anyway.
        manifest = client.get_manifest(registry, repository, desc.digest).json
        artifact_type = effective_artifact_type(manifest)
    # Decide from the descriptor alone whether the referrer is worth a manifest read.
    if artifact_type in SIGSTORE_BUNDLE_TYPES:
        if not predicate_wanted(purpose, annotations.get(ANN_BUNDLE_PREDICATE)):
            return []
    elif artifact_type.split(";")[0] in SBOM_MEDIA_TYPES:
        if purpose != "sbom":
            return []
    elif artifact_type.split(";")[0] == SARIF_JSON:
        if purpose != "vulnerabilities":
            return []
        return _sarif_referrer(client, registry, repository, digest, desc, manifest)
    elif artifact_type and purpose != "signature" and "cosign" in artifact_type and "sig" in artifact_type:
        return []
    elif purpose == "vulnerabilities" and artifact_type and artifact_type.split(";")[0] not in (DSSE_ENVELOPE, IN_TOTO):
        return []  # an SBOM, a signature, an unknown artifact: not worth a manifest read
    if manifest is None:
        manifest = client.get_manifest(registry, repository, desc.digest).json
    out = _read_layers(
        client,
        registry,
        repository,
        manifest,
        origin=f"referrer {desc.digest[:19]}",
        target=digest,
        purpose=purpose,
        extra_annotations=annotations,
    )
    # A referrer whose artifactType names the content but whose layer has a generic media type
    # (`oras attach --artifact-type application/spdx+json file.json`).
    if not out and artifact_type.split(";")[0] in SBOM_MEDIA_TYPES and purpose == "sbom":
        for layer in _layers(manifest)[:1]:
            content = client.get_blob(registry, repository, str(layer["digest"]), max_bytes=MAX_DOCUMENT_BYTES)
            out.append(Attachment("sbom", f"referrer {desc.digest[:19]}", digest, artifact_type, content, annotations))
    if not out and artifact_type in SIGSTORE_BUNDLE_TYPES:
        for layer in _layers(manifest)[:1]:
            content = client.get_blob(registry, repository, str(layer["digest"]), max_bytes=MAX_DOCUMENT_BYTES)
            out.append(
                Attachment("bundle", f"referrer {desc.digest[:19]}", digest, artifact_type, content, annotations)
            )
    return out


def _sarif_referrer(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    desc: Descriptor,
    manifest: Mapping[str, Any] | None = None,
) -> list[Attachment]:
    """A SARIF referrer's report layer, with the referrer manifest's annotations (its `created` is the
    only scan time a SARIF referrer has). `oras attach` without `:application/sarif+json` gives the
    file a generic layer type, so the first layer is taken when none says SARIF."""
    if manifest is None:
        manifest = client.get_manifest(registry, repository, desc.digest).json
    layers = _layers(manifest)
    chosen = [layer for layer in layers if str(layer.get("mediaType", "")).split(";")[0] == SARIF_JSON] or layers[:1]
    annotations = {**dict(desc.annotations), **_annotations(manifest)}
    out: list[Attachment] = []
    for layer in chosen:
        content = client.get_blob(registry, repository, str(layer["digest"]), max_bytes=MAX_DOCUMENT_BYTES)
        out.append(
            Attachment(
                SARIF_KIND,
                f"referrer {desc.digest[:19]}",
                digest,
                str(layer.get("mediaType", "")),
                content,
                {**annotations, **_annotations(layer)},
            )
        )
    return out


def _from_buildx(
    client: RegistryClient, registry: str, repository: str, desc: Descriptor, purpose: Purpose
) -> list[Attachment]:
    target = desc.annotations.get(ANN_BUILDX_REF_DIGEST)
    if not target:
        return []
    manifest = client.get_manifest(registry, repository, desc.digest).json
    out: list[Attachment] = []
    for layer in _layers(manifest):
        media_type = str(layer.get("mediaType", ""))
        annotations = _annotations(layer)
        if media_type.split(";")[0] != IN_TOTO:
            continue
        predicate = annotations.get(ANN_INTOTO_PREDICATE)
        if purpose == "signature" or predicate is None or not predicate_wanted(purpose, predicate):
            continue
        content = client.get_blob(registry, repository, str(layer["digest"]), max_bytes=MAX_DOCUMENT_BYTES)
        out.append(
            Attachment("statement", f"buildx attestation {desc.digest[:19]}", target, media_type, content, annotations)
        )
    return out
