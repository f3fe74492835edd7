"""One-line registry errors with the next step (the ghcr.io runbook the release team used by hand)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from imgcheck.errors import RegistryError

GHCR = "ghcr.io"
SHOWN_TAGS = 8


def registry_error_code(body: bytes) -> str | None:
    """The first `errors[].code` of a distribution-spec error body (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`)."""
    try:
        errors = json.loads(body).get("errors")
        code = errors[0].get("code")
    except (ValueError, AttributeError, IndexError, KeyError, TypeError, RecursionError):
        return None
    return code if isinstance(code, str) and code.isascii() and len(code) < 64 else None


def _hint(status: int, registry: str, repository: str, code: str | None, authenticated: str | None) -> str | None:
    ghcr = registry == GHCR
    if status == 401:
        if authenticated:
            return f"the {authenticated} were refused; log in again (docker login {registry})"
        if ghcr:
            return "log in: set GITHUB_TOKEN or run docker login ghcr.io"
        return f"log in: run docker login {registry}"
    if status == 403:
        if ghcr:
            return "no access: the package is private or the token lacks read:packages"
        return f"no access: your credentials cannot pull {repository}"
    if status == 404:
        if code == "NAME_UNKNOWN" or ghcr:
            what = "the package may be private or the name wrong" if ghcr else "check the repository name"
            return what
        return None
    if status == 429:
        return "rate limited: wait and retry, or log in for a higher limit"
    if status >= 500:
        return "the registry is failing; retry later"
    return None


def status_error(
    status: int,
    body: bytes,
    *,
    registry: str,
    repository: str,
    what: str,
    authenticated: str | None = None,
) -> RegistryError:
    """`<what>: HTTP 404 MANIFEST_UNKNOWN (hint)`; `what` names host, repository and reference."""
    code = registry_error_code(body)
    suffix = f" {code}" if code else ""
    return RegistryError(
        f"{what}: HTTP {status}{suffix}",
        hint=_hint(status, registry, repository, code, authenticated),
        status=status,
    )


def unknown_tag_error(registry: str, repository: str, tag: str, existing: Sequence[str]) -> RegistryError:
    shown = ", ".join(existing[:SHOWN_TAGS]) + (", ..." if len(existing) > SHOWN_TAGS else "")
    hint = f"existing tags: {shown}" if existing else "the repository has no tags"
    return RegistryError(f"tag {tag!r} not found in {registry}/{repository}", hint=hint, status=404)


def unknown_repository_error(registry: str, repository: str, status: int) -> RegistryError:
    hint = (
        "the package may be private or the name wrong"
        if registry == GHCR
        else "check the repository name (and that you are logged in, if it is private)"
    )
    return RegistryError(f"repository {repository!r} not found in {registry}", hint=hint, status=status)
