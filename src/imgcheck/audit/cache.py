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
from collections.abc import Iterable, Mapping
from typing import Any

from imgcheck.audit.store import HistoryStore
from imgcheck.errors import DigestMismatchError, ImgcheckError
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
        is not held are left out, to be read in full: a 304 may only ever confirm content already held.
        The store is read in a few queries, not one per digest; a damaged entry is an error, as before."""
        self._load_manifests(last.values(), strict=True)
        held: dict[str, Manifest] = {}
        for tag, digest in last.items():
            manifest = self._manifests.get(digest)
            if manifest is not None:
                held[tag] = manifest
        return held

    def prefetch(self, manifests: Iterable[Manifest]) -> None:
        """Bring into memory, in a few queries, the stored content verifying `manifests` will read: an
        index's platform manifests and every image manifest's config (a warm run verifies hundreds of
        digests, each read one query at a time otherwise). Only an optimisation: what is missing or fails
        its hash is left out, for the read that needs it to fetch or to report, exactly as without it."""
        if self._store is None:
            return
        tops = list({m.digest: m for m in manifests}.values())
        children = [d for m in tops if m.is_index for d in _child_digests(m)]
        try:
            self._load_manifests(children, strict=False)
            platforms = [self._manifests[d] for d in children if d in self._manifests]
            images = [m for m in tops if not m.is_index] + platforms
            configs = [d for m in images if (d := _config_digest(m)) is not None and d not in self._blobs]
            rows = self._store.get_blobs(configs)
        except ImgcheckError:
            return  # the store could not be read now: each read will try it again and say why
        for digest in configs:
            row = rows.get(digest)
            if row is not None and not row[0].startswith(MANIFEST_KIND) and _sha256(row[1]) == digest:
                self._blobs[digest] = row[1]

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
        return self._keep_stored_manifest(digest, row)

    def _load_manifests(self, digests: Iterable[str], *, strict: bool) -> None:
        """Stored manifests not yet in memory, in one query per few hundred. `strict`: a damaged entry
        raises (the first in `digests` order, as reading them one by one would); else it is left out."""
        missing = [d for d in dict.fromkeys(digests) if d not in self._manifests]
        if self._store is None or not missing:
            return
        rows = self._store.get_blobs(missing)
        for digest in missing:
            row = rows.get(digest)
            if row is None or not row[0].startswith(MANIFEST_KIND):
                continue
            if strict or _sha256(row[1]) == digest:
                self._keep_stored_manifest(digest, row)

    def _keep_stored_manifest(self, digest: str, row: tuple[str, bytes]) -> Manifest:
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


def _child_digests(index: Manifest) -> list[str]:
    entries = index.json.get("manifests")
    if not isinstance(entries, list):
        return []
    return [e["digest"] for e in entries if isinstance(e, Mapping) and isinstance(e.get("digest"), str)]


def _config_digest(manifest: Manifest) -> str | None:
    config = manifest.json.get("config")
    digest = config.get("digest") if isinstance(config, Mapping) else None
    return digest if isinstance(digest, str) else None
