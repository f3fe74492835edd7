"""ImageFacts: everything known about one resolved digest, gathered once from the registry.

Checks read these and nothing else from the registry, so every check of an image sees the
same digest, even if its tag moves while imgcheck runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Any

from imgcheck.record import record


@record
class Descriptor:
    """An OCI content descriptor as found in a manifest or index."""

    media_type: str
    digest: str
    size: int
    platform: str | None = None
    """`os/arch[/variant]` for index entries that declare one."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None


@record
class PlatformFacts:
    """One runnable image manifest (the only one of a plain image, or one entry of an index)."""

    platform: str
    """`os/arch[/variant]` from the config (or the index entry)."""
    manifest_digest: str
    manifest: Mapping[str, Any]
    config_digest: str
    config: Mapping[str, Any]
    """The whole image config JSON (`config.Labels`, `config.User`, `created`, ...)."""
    layers: tuple[Descriptor, ...]
    config_size: int

    @property
    def compressed_size(self) -> int:
        """Layers plus config, as the manifest declares them: what a pull transfers."""
        return self.config_size + sum(layer.size for layer in self.layers)

    @property
    def labels(self) -> Mapping[str, str]:
        labels = (self.config.get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    @property
    def created(self) -> str | None:
        value = self.config.get("created")
        return value if isinstance(value, str) else None


@record
class TagFacts:
    """What one other tag of the same repository points at (for tag and release rules)."""

    tag: str
    digest: str
    created: datetime | None = None
    """The image config's `created` (first platform), when it was needed and read."""
    created_label: datetime | None = None
    """The `org.opencontainers.image.created` label when it is valid RFC 3339 (metadata-action's build time)."""
    compressed_sizes: Mapping[str, int] = field(default_factory=dict)
    """platform -> compressed size, when it was needed (previous release for max_growth)."""
    version_label: str | None = None


@record
class ImageFacts:
    """One image of the policy, resolved to one digest."""

    name: str
    """The policy's name for the image (`producer`)."""
    registry: str
    """Host[:port] actually contacted (after --registry)."""
    repository: str
    """Repository path inside the registry (`rjdscott/k2-market-data-platform-producer`)."""
    reference: str
    """What the user asked for, as a full reference (`host/repo:tag` or `host/repo@sha256:...`)."""
    tag: str | None
    digest: str
    """The digest the reference resolved to, once, at the start. Everything is checked against it."""
    media_type: str
    platforms: tuple[PlatformFacts, ...]
    """Runnable platforms; an index's attestation manifests are not among them."""
    index_manifest: Mapping[str, Any] | None = None
    """The image index, when the digest is one."""
    attestation_manifests: tuple[Descriptor, ...] = ()
    """buildx attestation manifests (`vnd.docker.reference.type: attestation-manifest`)."""
    tags_on_digest: tuple[str, ...] = ()
    """Every tag of the repository that points at `digest` (when the tags rule asked)."""
    repo_tags: tuple[TagFacts, ...] = ()
    """Other tags that the rules needed to look at (semver releases, latest, branch builds)."""
    previous_release: TagFacts | None = None
    """The next-lower semver release, for `size.max_growth`."""
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Evidence gathered at the edges by rules that need more than the registry metadata
    (smoke runs, attachments, vulnerability reports), keyed by rule id."""

    @property
    def is_index(self) -> bool:
        return self.index_manifest is not None

    @property
    def labels(self) -> Mapping[str, str]:
        """Labels of the first platform (buildx writes the same labels on every platform)."""
        return self.platforms[0].labels if self.platforms else {}

    @property
    def short_digest(self) -> str:
        return self.digest.split(":", 1)[-1][:12]
