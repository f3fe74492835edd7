"""The registry client imgcheck trusts: every manifest and blob read is sha256-verified and size-capped.

Written on the standard library's http.client (transport.py) rather than oras-py, because oras-py 0.2.x
verifies no digest, has no referrers API, no timeouts, and keeps one bearer token per client (a second
repository gets 401).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from imgcheck.errors import DigestMismatchError, RegistryError
from imgcheck.facts import Descriptor
from imgcheck.record import record
from imgcheck.registry import hints
from imgcheck.registry.descriptors import check_digest, index_entries
from imgcheck.registry.reference import Reference
from imgcheck.registry.transport import Reply, Transport

if TYPE_CHECKING:
    from imgcheck.deadline import Deadline
    from imgcheck.registry.auth import Authenticator
    from imgcheck.registry.credentials import CredentialStore

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
MAX_TAGS = 100_000
MAX_TAG_PAGES = 2_000
MAX_REFERRER_PAGES = 100
TAG_LIST_BYTES = 16 * 1024 * 1024
_GENERIC_TYPES = ("", "application/json", "text/plain", "application/octet-stream")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?')
INDEX_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@record
class Manifest:
    """A manifest or index whose bytes hashed to `digest` (verified)."""

    digest: str
    media_type: str
    raw: bytes
    json: Mapping[str, Any]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@record
class TagState:
    """Where a tag points, from `RegistryClient.revalidate_tag`."""

    digest: str
    manifest: Manifest | None
    """The verified manifest; None when no content came with the answer (a 304: the tag is still on
    the digest the caller named, whose content the caller holds verified): read it by `digest`."""


class RegistryClient:
    """One client for a whole run: many registries, one token per (registry, repository scope).

    Contract (implemented in this module):
    - `resolve(ref)`: one GET of the manifest by tag (or digest); the digest is the sha256 of the
      bytes received; a `Docker-Content-Digest` header that disagrees, or a digest reference the
      bytes do not hash to, raises DigestMismatchError.
    - `get_manifest(registry, repo, digest)`, `get_blob(registry, repo, digest, max_bytes=...)`:
      verified and capped (RegistryError when over the cap).
    - `find_manifest(registry, repo, tag)`: like resolve but None on 404 (cosign `sha256-<hex>.sig`).
    - `revalidate_tag(registry, repo, tag, known)`: the same GET with `If-None-Match: "<known>"`; a 304
      says the tag is still on `known` (content is never taken from it), anything else is resolved.
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
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        docker_config: Path | None = None,
        env: Mapping[str, str] | None = None,
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        schemes: Mapping[str, str] | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        """`timeout` bounds the whole run of this client (`deadline`: the run's own clock, when given);
        `docker_config`/`env` override where credentials are looked up (default: $DOCKER_CONFIG or
        ~/.docker/config.json, os.environ); `schemes` maps a registry host to `http` or `https` as
        `--registry` asked."""
        self._max_manifest_bytes = max_manifest_bytes
        self._transport = Transport(
            insecure=insecure,
            schemes=schemes,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_attempts=max_attempts,
            backoff=backoff,
            progress=progress,
            deadline=deadline,
        )
        self._env, self._docker_config = env, docker_config
        self._auth_lock = threading.Lock()
        self._credentials: CredentialStore | None = None
        self._authenticator: Authenticator | None = None

    def __repr__(self) -> str:
        return f"RegistryClient(insecure={self._transport.insecure}, timeout={self._transport.timeout:g})"

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def auth(self) -> Authenticator:
        """The token cache (one token per registry and repository scope), made at the first 401: a run
        against a registry that never asks reads no credentials and imports no auth code (~2 ms)."""
        return self._auth_parts()[0]

    def _auth_parts(self) -> tuple[Authenticator, CredentialStore]:
        with self._auth_lock:
            if self._authenticator is None or self._credentials is None:
                from imgcheck.registry.auth import Authenticator
                from imgcheck.registry.credentials import CredentialStore

                self._credentials = CredentialStore(
                    env=self._env,
                    config_path=self._docker_config,
                    note=self._transport.note,
                    deadline=self._transport.deadline,
                )
                self._authenticator = Authenticator(self._transport, self._credentials)
            return self._authenticator, self._credentials

    def time_left(self) -> float:
        """Seconds before this client's overall deadline."""
        return self._transport.remaining()

    def credentials_for(self, registry: str) -> tuple[str, str] | None:
        """The username and secret imgcheck resolved for `registry` (to hand to trivy), if any."""
        found = self._auth_parts()[1].get(registry)
        if found is None or not found.password:
            return None
        return found.username or "imgcheck", found.password

    def resolve(self, ref: Reference) -> Manifest:
        if ref.digest:
            check_digest(ref.digest, f"reference {ref}")
        manifest = self._fetch_manifest(ref.registry, ref.repository, ref.identifier, expected=ref.digest)
        if manifest is None:
            raise self._manifest_not_found(ref.registry, ref.repository, ref.identifier)
        return manifest

    def find_manifest(self, registry: str, repository: str, tag: str) -> Manifest | None:
        return self._fetch_manifest(registry, repository, tag, expected=None)

    def pinned_digest(self, registry: str, repository: str, tag: str) -> str | None:
        """The digest this client has already fixed `tag` to for the run, if any (no I/O). Always None
        here; a client that snapshots tags (the audit's) answers from its snapshot, so callers can
        skip the network (and the thread pool) for those tags."""
        return None

    def revalidate_tag(self, registry: str, repository: str, tag: str, known: str) -> TagState | None:
        """Where `tag` points now, without its body when that is still `known` (None on 404).

        Why: re-resolving hundreds of tags whose content is cached by digest need not move the
        manifests again. A 304 is the registry asserting the tag -> digest mapping, exactly what the
        `Docker-Content-Digest` of a GET asserts; the caller must already hold `known`'s content,
        verified, because a 304 carries none. Registries that ignore the header answer 200: resolved.
        """
        check_digest(known, f"known digest of tag {_name(registry, repository, tag)}")
        what = f"manifest {_name(registry, repository, tag)}"
        reply = self._get(
            registry,
            repository,
            f"manifests/{tag}",
            accept=ACCEPT_MANIFESTS,
            max_bytes=self._max_manifest_bytes,
            what=what,
            extra={"If-None-Match": f'"{known}"'},
        )
        if reply.status == 304:
            return TagState(known, None)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self._fail(reply, registry, repository, what)
        manifest = _verified_manifest(reply, None, what)
        return TagState(manifest.digest, manifest)

    def get_manifest(self, registry: str, repository: str, digest: str) -> Manifest:
        check_digest(digest, f"manifest {_name(registry, repository, digest)}")
        manifest = self._fetch_manifest(registry, repository, digest, expected=digest)
        if manifest is None:
            raise self._manifest_not_found(registry, repository, digest)
        return manifest

    def get_blob(self, registry: str, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
        what = f"blob {_name(registry, repository, digest)}"
        check_digest(digest, what)
        reply = self._get(registry, repository, f"blobs/{digest}", accept="*/*", max_bytes=max_bytes, what=what)
        if reply.status != 200:
            raise self._fail(reply, registry, repository, what)
        actual = _sha256(reply.body)
        if actual != digest:
            raise DigestMismatchError(
                f"{what}: the {len(reply.body)} bytes received hash to {actual}",
                hint="the registry or something between altered the content; do not trust this image",
            )
        return reply.body

    def list_tags(
        self,
        registry: str,
        repository: str,
        *,
        page_size: int | None = None,
        max_tags: int = MAX_TAGS,
        max_pages: int = MAX_TAG_PAGES,
    ) -> list[str]:
        """Every tag, following `Link` pages; `page_size` asks for `?n=` (a registry may ignore it)."""
        url = f"{self._transport.base_url(registry)}/v2/{repository}/tags/list"
        return self._paginate(
            registry, repository, url, "tags", page_size=page_size, max_items=max_tags, max_pages=max_pages
        )

    def list_repositories(
        self,
        registry: str,
        *,
        page_size: int | None = None,
        max_repositories: int = MAX_TAGS,
        max_pages: int = MAX_TAG_PAGES,
    ) -> list[str]:
        """The `/v2/_catalog` (registries that allow it): repositories, following `Link` pages."""
        url = f"{self._transport.base_url(registry)}/v2/_catalog"
        return self._paginate(
            registry,
            None,
            url,
            "repositories",
            page_size=page_size,
            max_items=max_repositories,
            max_pages=max_pages,
        )

    def _paginate(
        self,
        registry: str,
        repository: str | None,
        url: str,
        key: str,
        *,
        page_size: int | None,
        max_items: int,
        max_pages: int,
    ) -> list[str]:
        """A distribution-spec list (`tags`, `repositories`) across `Link: <...>; rel="next"` pages,
        bounded in items and pages so a registry that pages forever cannot hold the run."""
        what = f"{key} of {registry}/{repository}" if repository else f"{key} of {registry}"
        scope = f"repository:{repository}:pull" if repository else "registry:catalog:*"
        if page_size:
            url += "?" + urlencode({"n": page_size})
        items: list[str] = []
        seen = {url}
        for _page in range(max_pages):
            reply = self._get(
                registry,
                repository or "",
                "",
                url=url,
                accept="application/json",
                max_bytes=TAG_LIST_BYTES,
                what=what,
                scope=scope,
            )
            if (
                repository
                and reply.status == 404
                and (registry == hints.GHCR or hints.registry_error_code(reply.body) == "NAME_UNKNOWN")
            ):
                raise hints.unknown_repository_error(registry, repository, reply.status)
            if reply.status != 200:
                raise self._fail(reply, registry, repository or "", what)
            page = _json_object(reply.body, what).get(key) or []
            if not isinstance(page, list) or not all(isinstance(item, str) for item in page):
                raise RegistryError(f"{what}: malformed list (`{key}` is not a list of strings)")
            items.extend(page)
            if len(items) > max_items:
                raise RegistryError(
                    f"{what}: more than {max_items} {key}; refusing to read them all",
                    hint="prune old tags or audit only the newest N",
                )
            nxt = _next_link(reply.headers.get("Link"), reply.url)
            if nxt is None:
                return list(dict.fromkeys(items))
            if urlsplit(nxt).netloc != urlsplit(url).netloc or nxt in seen:
                raise RegistryError(f"{what}: the registry's next-page link is unusable ({urlsplit(nxt).path})")
            seen.add(nxt)
            url = nxt
        raise RegistryError(f"{what}: more than {max_pages} pages of {key}; refusing to read them all")

    def referrers(
        self, registry: str, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """OCI 1.1 referrers of `digest`; without the API (404/405), the `sha256-<hex>` tag's index."""
        what = f"referrers of {_name(registry, repository, digest)}"
        check_digest(digest, what)
        url = f"{self._transport.base_url(registry)}/v2/{repository}/referrers/{digest}"
        if artifact_type:
            url += "?" + urlencode({"artifactType": artifact_type})
        found: list[Descriptor] = []
        seen = {url}
        for page in range(MAX_REFERRER_PAGES):
            reply = self._get(
                registry,
                repository,
                "",
                url=url,
                accept=INDEX_MEDIA_TYPES[0],
                max_bytes=MAX_MANIFEST_BYTES,
                what=what,
            )
            if reply.status in (404, 405) and page == 0:
                found = self._referrers_from_tag(registry, repository, digest)
                break
            if reply.status != 200:
                raise self._fail(reply, registry, repository, what)
            found.extend(index_entries(_json_object(reply.body, what), what))
            nxt = _next_link(reply.headers.get("Link"), reply.url)
            if nxt is None:
                break
            if urlsplit(nxt).netloc != urlsplit(url).netloc or nxt in seen:
                raise RegistryError(f"{what}: the registry's next-page link is unusable ({urlsplit(nxt).path})")
            seen.add(nxt)
            url = nxt
        else:
            raise RegistryError(f"{what}: more than {MAX_REFERRER_PAGES} pages of referrers")
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def close(self) -> None:
        self._transport.close()

    def _referrers_from_tag(self, registry: str, repository: str, digest: str) -> list[Descriptor]:
        """The OCI 1.1 fallback tag; a non-index there (some other tool's tag) means no referrers."""
        tag = "sha256-" + digest.split(":", 1)[1]
        manifest = self.find_manifest(registry, repository, tag)
        if manifest is None or not manifest.is_index:
            return []
        return index_entries(manifest.json, f"referrers tag {_name(registry, repository, tag)}")

    def _get(
        self,
        registry: str,
        repository: str,
        path: str,
        *,
        accept: str,
        max_bytes: int,
        what: str,
        url: str | None = None,
        scope: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Reply:
        """GET with this repository's credentials; a 401 challenge is answered once, then retried."""
        target = url or f"{self._transport.base_url(registry)}/v2/{repository}/{path}"
        scope = scope or f"repository:{repository}:pull"
        for attempt in range(2):
            # before any 401 there is nothing to send: no token, no realm, no Basic registry (see `auth`)
            known = self._authenticator
            headers = {"Accept": accept, **(extra or {}), **(known.headers(registry, scope) if known else {})}
            reply = self._transport.fetch("GET", target, headers=headers, max_bytes=max_bytes, what=what)
            if reply.status != 401 or attempt == 1:
                return reply
            if not self.auth.answer(registry, scope, reply.headers.get("WWW-Authenticate"), sent=headers):
                return reply
        raise AssertionError("unreachable")

    def _fetch_manifest(
        self, registry: str, repository: str, identifier: str, *, expected: str | None
    ) -> Manifest | None:
        what = f"manifest {_name(registry, repository, identifier)}"
        reply = self._get(
            registry,
            repository,
            f"manifests/{identifier}",
            accept=ACCEPT_MANIFESTS,
            max_bytes=self._max_manifest_bytes,
            what=what,
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self._fail(reply, registry, repository, what)
        return _verified_manifest(reply, expected, what)

    def _fail(self, reply: Reply, registry: str, repository: str, what: str) -> RegistryError:
        creds = self._auth_parts()[1].get(registry) if reply.status in (401, 403) else None
        return hints.status_error(
            reply.status,
            reply.body,
            registry=registry,
            repository=repository,
            what=what,
            authenticated=str(creds) if creds else None,
        )

    def _manifest_not_found(self, registry: str, repository: str, identifier: str) -> RegistryError:
        """Say whether the tag or the whole repository is missing, listing a few tags when cheap."""
        if identifier.startswith("sha256:"):
            return RegistryError(
                f"manifest {_name(registry, repository, identifier)} not found",
                hint="the digest was deleted, or belongs to another repository",
                status=404,
            )
        try:
            existing = self.list_tags(registry, repository, page_size=50, max_pages=1, max_tags=50)
        except RegistryError as exc:
            if "not found" in exc.message or exc.status in (401, 403, 404):
                return hints.unknown_repository_error(registry, repository, 404)
            existing = None
        if existing is None:
            return RegistryError(f"tag {identifier!r} not found in {registry}/{repository}", status=404)
        return hints.unknown_tag_error(registry, repository, identifier, existing)


def _name(registry: str, repository: str, identifier: str) -> str:
    sep = "@" if identifier.startswith("sha256:") else ":"
    return f"{registry}/{repository}{sep}{identifier}"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json_object(body: bytes, what: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise RegistryError(f"{what}: the registry's answer is not JSON (or nested too deep)") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: the registry's answer is not a JSON object")
    return doc


def _next_link(header: str | None, current: str) -> str | None:
    match = _LINK_NEXT_RE.search(header or "")
    return urljoin(current, match.group(1)) if match else None


def _verified_manifest(reply: Reply, expected: str | None, what: str) -> Manifest:
    """The digest is the hash of the bytes received; any disagreeing claim is a mismatch, not a pass."""
    digest = _sha256(reply.body)
    claimed = reply.headers.get("Docker-Content-Digest")
    if claimed and claimed.startswith("sha256:") and claimed != digest:
        raise DigestMismatchError(
            f"{what}: the registry says {claimed} but the bytes received hash to {digest}",
            hint="the registry or something between altered the content; do not trust this image",
        )
    if expected and expected != digest:
        raise DigestMismatchError(
            f"{what}: expected {expected}, the bytes received hash to {digest}",
            hint="the registry or something between altered the content; do not trust this image",
        )
    try:
        doc = json.loads(reply.body)
    except (ValueError, RecursionError):
        raise RegistryError(f"malformed manifest {what}: not JSON (or nested too deep)") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"malformed manifest {what}: not a JSON object")
    return Manifest(digest, _media_type(reply.headers.get("Content-Type"), doc), reply.body, doc)


def _media_type(content_type: str | None, doc: Mapping[str, Any]) -> str:
    """Content-Type unless it is generic; then the JSON `mediaType`; then the OCI type its shape implies."""
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header not in _GENERIC_TYPES:
        return header
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if "manifests" in doc:
        return INDEX_MEDIA_TYPES[0]
    return MANIFEST_MEDIA_TYPES[1]
