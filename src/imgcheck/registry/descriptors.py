"""OCI descriptors from untrusted JSON: a malformed entry is an error, never silently skipped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from imgcheck.errors import RegistryError
from imgcheck.facts import Descriptor

SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")


def check_digest(digest: str, where: str) -> None:
    """imgcheck verifies sha256 only; anything else cannot be verified, so it is refused."""
    if not SHA256_RE.fullmatch(digest):
        raise RegistryError(f"{where}: unsupported or malformed digest {digest[:80]!r} (expected sha256:<64 hex>)")


def parse_descriptor(entry: Any, where: str) -> Descriptor:
    if not isinstance(entry, Mapping):
        raise RegistryError(f"{where}: a descriptor is not a JSON object")
    digest, size, media_type = entry.get("digest"), entry.get("size"), entry.get("mediaType")
    if not isinstance(digest, str):
        raise RegistryError(f"{where}: a descriptor has no digest")
    check_digest(digest, where)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{where}: descriptor {digest} has no valid size")
    platform = entry.get("platform")
    platform_text = None
    if isinstance(platform, Mapping) and platform.get("os") and platform.get("architecture"):
        parts = [str(platform["os"]), str(platform["architecture"])]
        if platform.get("variant"):
            parts.append(str(platform["variant"]))
        platform_text = "/".join(parts)
    raw_annotations = entry.get("annotations")
    annotations = {str(k): str(v) for k, v in raw_annotations.items()} if isinstance(raw_annotations, Mapping) else {}
    artifact_type = entry.get("artifactType")
    return Descriptor(
        media_type=media_type if isinstance(media_type, str) else "",
        digest=digest,
        size=size,
        platform=platform_text,
        annotations=annotations,
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )


def index_entries(index: Mapping[str, Any], where: str) -> list[Descriptor]:
    """The `manifests` of an index (an empty list when it has none)."""
    entries = index.get("manifests")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise RegistryError(f"{where}: `manifests` is not a list")
    return [parse_descriptor(entry, where) for entry in entries]
