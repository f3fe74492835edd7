"""Which tags are releases, and how they order.

One definition shared by the labels and tags rules (and usable by the gatherer for `previous_release`),
so "the semver tag" means the same thing everywhere: `[v]MAJOR.MINOR.PATCH[-pre][+build]`, ordered by
`packaging.version`. docker/metadata-action also pushes `1.4` and `1` next to `1.4.1`; those are
aliases, not releases, so they are not semver tags here.

Parsing is memoised: an audit asks about the same few hundred tags once per digest and rule, and
`packaging.version.Version` is the expensive part. Results are immutable, so sharing them is safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from packaging.version import InvalidVersion, Version

from imgcheck.record import record

_SEMVER_RE = re.compile(
    r"v?(?P<core>(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*))"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?"
)
_TAG_CACHE = 1 << 16
"""Distinct tags remembered (a repository is capped at 100,000 tags; most have a few hundred)."""
_LIST_CACHE = 64
"""Distinct tag lists remembered: one per repository of the run is what repeats."""


@record
class Release:
    """A tag that names a semver release."""

    tag: str
    """The tag as pushed (`v1.4.1`)."""
    name: str
    """The tag without its leading `v` (`1.4.1`): what a version label is compared with."""
    version: Version
    prerelease: bool
    """A semver pre-release (`1.5.0-rc.1`); never "the highest release"."""


@lru_cache(maxsize=_TAG_CACHE)
def parse_release(tag: str) -> Release | None:
    """The release a tag names, or None for anything else (`latest`, `main-1a2b3c4`, `1.4`, `1.2.3-foo`)."""
    m = _SEMVER_RE.fullmatch(tag)
    if not m:
        return None
    try:
        version = Version(tag)
    except InvalidVersion:
        return None
    prerelease = m.group("pre") is not None or version.is_prerelease
    return Release(tag=tag, name=tag[1:] if tag.startswith("v") else tag, version=version, prerelease=prerelease)


def releases(tags: Iterable[str]) -> list[Release]:
    """The semver tags among `tags`, lowest first (ties keep their input order)."""
    return list(_sorted_releases(tuple(tags)))


@lru_cache(maxsize=_LIST_CACHE)
def _sorted_releases(tags: tuple[str, ...]) -> tuple[Release, ...]:
    found = [r for r in (parse_release(t) for t in tags) if r is not None]
    return tuple(sorted(found, key=lambda r: r.version))


def highest(tags: Iterable[str], *, include_prereleases: bool = False) -> Release | None:
    """The highest release among `tags` (pre-releases only when asked), or None."""
    candidates = [r for r in releases(tags) if include_prereleases or not r.prerelease]
    return candidates[-1] if candidates else None


def strip_v(text: str) -> str:
    """`v1.4.1` -> `1.4.1`: a leading `v` is not part of the version."""
    return text[1:] if text.startswith("v") else text
