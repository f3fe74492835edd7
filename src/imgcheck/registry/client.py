"""The registry client imgcheck trusts: every manifest and blob read is sha256-verified and size-capped.

Written on requests rather than oras-py because oras-py 0.2.x verifies no digest, has no referrers
API, no timeouts, and keeps one bearer token per client (a second repository gets 401).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imgcheck.facts import Descriptor
from imgcheck.registry.reference import Reference

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index whose bytes hashed to `digest` (verified)."""

    digest: str
    media_type: str
    raw: bytes
    json: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


class RegistryClient:
    """One client for a whole run: many registries, one token per (registry, repository scope).

    Contract (implemented in this module):
    - `resolve(ref)`: one GET of the manifest by tag (or digest); the digest is the sha256 of the
      bytes received; a `Docker-Content-Digest` header that disagrees, or a digest reference the
      bytes do not hash to, raises DigestMismatchError.
    - `get_manifest(registry, repo, digest)`, `get_blob(registry, repo, digest, max_bytes=...)`:
      verified and capped (RegistryError when over the cap).
    - `find_manifest(registry, repo, tag)`: like resolve but None on 404 (cosign `sha256-<hex>.sig`).
    - `list_tags(registry, repo)`: every tag, following `Link` pagination (bounded).
    - `referrers(registry, repo, digest, artifact_type=None)`: the OCI 1.1 referrers API, else the
      `sha256-<hex>` fallback tag index; `Descriptor`s with artifact_type and annotations.
    - Loopback registries (localhost, 127.0.0.0/8, ::1) use plain HTTP; others HTTPS unless insecure.
    - Retries with jittered backoff on 429/5xx/resets (Retry-After honoured), per-request timeouts
      and an overall deadline; RegistryError with a one-line message and the ghcr.io runbook hints.
    """

    def __init__(
        self,
        *,
        insecure: bool = False,
        timeout: float = 90.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        raise NotImplementedError

    def resolve(self, ref: Reference) -> Manifest:
        raise NotImplementedError

    def find_manifest(self, registry: str, repository: str, tag: str) -> Manifest | None:
        raise NotImplementedError

    def get_manifest(self, registry: str, repository: str, digest: str) -> Manifest:
        raise NotImplementedError

    def get_blob(
        self, registry: str, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES
    ) -> bytes:
        raise NotImplementedError

    def list_tags(self, registry: str, repository: str) -> list[str]:
        raise NotImplementedError

    def referrers(
        self, registry: str, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
