"""Minimal OCI push over the distribution API: blobs, manifests, tags, deletes.

For the fixture builder, tests and the demo only (imgcheck itself only reads). It pushes image
indexes, which oras-py cannot, and content with a `subject`, as real tools do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for a manifest (sorted keys, no spaces), so digests are reproducible."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class Pusher:
    """Push to `http://host` (loopback test registries only)."""

    host: str
    session: requests.Session | None = None

    def __post_init__(self) -> None:
        self.session = self.session or requests.Session()

    @property
    def _s(self) -> requests.Session:
        assert self.session is not None
        return self.session

    def _url(self, repo: str, suffix: str) -> str:
        return f"http://{self.host}/v2/{repo}/{suffix}"

    def blob(self, repo: str, data: bytes) -> dict[str, Any]:
        """Upload a blob (monolithic POST+PUT) and return its descriptor fields."""
        digest = sha256_digest(data)
        head = self._s.head(self._url(repo, f"blobs/{digest}"), timeout=30)
        if head.status_code != 200:
            start = self._s.post(self._url(repo, "blobs/uploads/"), timeout=30)
            start.raise_for_status()
            location = start.headers["Location"]
            if location.startswith("/"):
                location = f"http://{self.host}{location}"
            sep = "&" if "?" in location else "?"
            put = self._s.put(
                f"{location}{sep}digest={digest}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                timeout=120,
            )
            put.raise_for_status()
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns its digest."""
        resp = self._s.put(
            self._url(repo, f"manifests/{reference}"),
            data=body,
            headers={"Content-Type": media_type},
            timeout=30,
        )
        if resp.status_code >= 400:
            raise RuntimeError(f"push {repo}:{reference} failed: {resp.status_code} {resp.text[:300]}")
        return sha256_digest(body)

    def tag(self, repo: str, digest: str, tag: str) -> None:
        """Point `tag` at an existing manifest (re-PUT its bytes under the tag)."""
        resp = self._s.get(
            self._url(repo, f"manifests/{digest}"),
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
            timeout=30,
        )
        resp.raise_for_status()
        self.manifest(repo, tag, resp.content, resp.headers["Content-Type"])

    def delete_manifest(self, repo: str, digest: str) -> None:
        resp = self._s.delete(self._url(repo, f"manifests/{digest}"), timeout=30)
        if resp.status_code not in (202, 404):
            raise RuntimeError(f"delete {repo}@{digest} failed: {resp.status_code}")
