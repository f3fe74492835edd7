"""A RegistryClient that never fetches immutable content twice, and pins the run's tag snapshot.

Manifests and configs are content-addressed: once read and verified under a digest they are kept
(in memory for the run, and in the history database across runs) and re-hashed when read back.
What can change between nights is never cached across runs: tag lists, what a tag points at,
referrers and cosign attachment tags. Within one run, the tags listed and resolved at the start are
pinned, so every rule sees the same snapshot and 300 tags are not resolved once per digest.

The gatherer reads tags, manifests and configs on worker threads: the store serialises its own access
(one lock around each statement and transaction), the in-memory maps hold immutable values, and the
read counter is guarded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from imgcheck.audit.store import HistoryStore
from imgcheck.errors import DigestMismatchError
from imgcheck.registry.client import MAX_CONFIG_BYTES, Manifest, RegistryClient, TagState
from imgcheck.registry.reference import Reference

MAX_CACHED_BLOB = 1024 * 1024
"""Configs and small documents are cached; anything bigger is fetched when needed."""
MANIFEST_KIND = "manifest:"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class CachingClient(RegistryClient):
    """RegistryClient plus a content-addressed cache and a pinned tag snapshot (see the module doc)."""

    def __init__(self, store: HistoryStore | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._store = store
        self._manifests: dict[str, Manifest] = {}
        self._blobs: dict[str, bytes] = {}
        self._tag_lists: dict[tuple[str, str], list[str]] = {}
        self._pinned: dict[tuple[str, str, str], str] = {}
        self.network_reads = 0
        """Manifests and blobs read from the registry by digest (what the cache saves)."""
        self._count_lock = threading.Lock()

    # --- the run's snapshot ----------------------------------------------------------------------------

    def pin_tags(self, registry: str, repository: str, tags: list[str], resolved: dict[str, Manifest]) -> None:
        """The tag list and tag -> manifest map read at the start of the run, served for the rest of it."""
        self._tag_lists[(registry, repository)] = list(tags)
        for tag, manifest in resolved.items():
            self.remember(manifest)
            self._pinned[(registry, repository, tag)] = manifest.digest

    def remember(self, manifest: Manifest) -> None:
        """Keep a verified manifest under its digest (memory and, when there is one, the store)."""
        if manifest.digest in self._manifests:
            return
        self._manifests[manifest.digest] = manifest
        if self._store is not None:
            self._store.put_blob(manifest.digest, MANIFEST_KIND + manifest.media_type, manifest.raw)

    def cached_manifest(self, digest: str) -> Manifest | None:
        """The verified manifest under `digest` if this client or its store holds it (never the network)."""
        return self._manifests.get(digest) or self._from_store_manifest(digest)

    def held_manifests(self, last: Mapping[str, str]) -> dict[str, Manifest]:
        """tag -> the cached, verified manifest of the digest it pointed at last time. Tags whose content
        is not held are left out, to be read in full: a 304 may only ever confirm content already held."""
        held: dict[str, Manifest] = {}
        for tag, digest in last.items():
            manifest = self.cached_manifest(digest)
            if manifest is not None:
                held[tag] = manifest
        return held

    # --- RegistryClient overrides ------------------------------------------------------------------------

    def list_tags(self, registry: str, repository: str, **kwargs: Any) -> list[str]:
        pinned = self._tag_lists.get((registry, repository))
        if pinned is not None and not kwargs:
            return list(pinned)
        return super().list_tags(registry, repository, **kwargs)

    def resolve(self, ref: Reference) -> Manifest:
        if ref.digest:
            return self.get_manifest(ref.registry, ref.repository, ref.digest)
        digest = self._pinned.get((ref.registry, ref.repository, ref.identifier))
        if digest is not None:
            return self.get_manifest(ref.registry, ref.repository, digest)
        manifest = super().resolve(ref)
        self.remember(manifest)
        return manifest

    def find_manifest(self, registry: str, repository: str, tag: str) -> Manifest | None:
        digest = self._pinned.get((registry, repository, tag))
        if digest is not None:
            return self.get_manifest(registry, repository, digest)
        return super().find_manifest(registry, repository, tag)

    def pinned_digest(self, registry: str, repository: str, tag: str) -> str | None:
        return self._pinned.get((registry, repository, tag))

    def revalidate_tag(self, registry: str, repository: str, tag: str, known: str) -> TagState | None:
        digest = self._pinned.get((registry, repository, tag))
        if digest is not None:
            return TagState(digest, None)  # the run's snapshot; the content is read by digest (cached)
        return super().revalidate_tag(registry, repository, tag, known)

    def get_manifest(self, registry: str, repository: str, digest: str) -> Manifest:
        cached = self.cached_manifest(digest)
        if cached is not None:
            return cached
        manifest = super().get_manifest(registry, repository, digest)
        self._count_read()
        self.remember(manifest)
        return manifest

    def get_blob(self, registry: str, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
        cached = self._blobs.get(digest)
        if cached is None and self._store is not None:
            row = self._store.get_blob(digest)
            if row is not None and not row[0].startswith(MANIFEST_KIND):
                cached = self._verified(digest, row[1])
        if cached is not None and len(cached) <= max_bytes:
            self._blobs[digest] = cached
            return cached
        body = super().get_blob(registry, repository, digest, max_bytes=max_bytes)
        self._count_read()
        if len(body) <= MAX_CACHED_BLOB:
            self._blobs[digest] = body
            if self._store is not None:
                self._store.put_blob(digest, "blob", body)
        return body

    def _count_read(self) -> None:
        with self._count_lock:
            self.network_reads += 1

    def _from_store_manifest(self, digest: str) -> Manifest | None:
        if self._store is None:
            return None
        row = self._store.get_blob(digest)
        if row is None or not row[0].startswith(MANIFEST_KIND):
            return None
        body = self._verified(digest, row[1])
        manifest = Manifest(digest, row[0][len(MANIFEST_KIND) :], body, json.loads(body))
        self._manifests[digest] = manifest
        return manifest

    def _verified(self, digest: str, body: bytes) -> bytes:
        """A cached body is re-hashed: a damaged cache is an error, never silently trusted."""
        actual = _sha256(body)
        if actual != digest:
            where = self._store.path if self._store is not None else "memory"
            raise DigestMismatchError(
                f"cached content for {digest} in {where} hashes to {actual}",
                hint="the history database is damaged; move it away to start a new one",
            )
        return body
