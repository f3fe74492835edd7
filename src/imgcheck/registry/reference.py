"""Image reference parsing, separate from transport (as go-containerregistry's pkg/name)."""

from __future__ import annotations

import ipaddress
import re

from imgcheck.errors import UsageError
from imgcheck.record import record

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_TAG_RE = re.compile(r"\w[\w.-]{0,127}", re.ASCII)  # ASCII: \w alone admits any Unicode letter
_REPO_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


@record
class Reference:
    """`registry/repository[:tag][@digest]`, with the registry always explicit."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def identifier(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_registry(self, registry: str) -> Reference:
        return Reference(registry, self.repository, self.tag, self.digest)


def is_digest(text: str) -> bool:
    return _DIGEST_RE.fullmatch(text) is not None


def is_tag(text: str) -> bool:
    return _TAG_RE.fullmatch(text) is not None


def looks_like_reference(text: str) -> bool:
    """A full reference names a repository (`host/repo:tag`, `repo@sha256:...`); a bare tag does not."""
    return "/" in text or "@" in text


def _is_registry_host(part: str) -> bool:
    if part == "localhost" or "." in part or ":" in part:
        return True
    try:
        ipaddress.ip_address(part.strip("[]"))
    except ValueError:
        return False
    return True


def parse_reference(text: str, default_registry: str = "docker.io") -> Reference:
    """Parse a reference; a first path component with a dot, a port or `localhost` is the registry
    (unlike oras-py, `localhost/x` and `127.0.0.1:5000/x` are not Docker Hub paths)."""
    raw = text.strip()
    if not raw:
        raise UsageError("empty image reference")
    digest = None
    if "@" in raw:
        raw, digest = raw.split("@", 1)
        if not is_digest(digest):
            raise UsageError(f"bad digest in {text!r}: expected sha256: and 64 lowercase hex characters")
    tag = None
    last = raw.rsplit("/", 1)[-1]
    if ":" in last:
        raw, tag = raw.rsplit(":", 1)
        if not is_tag(tag):
            raise UsageError(f"bad tag in {text!r}: tags are up to 128 of [A-Za-z0-9_.-]")
    parts = raw.split("/")
    if len(parts) > 1 and _is_registry_host(parts[0]):
        registry, repository = parts[0], "/".join(parts[1:])
    else:
        registry, repository = default_registry, raw
    if registry in ("docker.io", "index.docker.io") and "/" not in repository:
        registry, repository = "docker.io", f"library/{repository}"  # as docker does for `docker.io/ubuntu`
    if not _REPO_RE.fullmatch(repository):
        raise UsageError(f"bad repository name in {text!r}: lowercase letters, digits and . _ - / only")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)
