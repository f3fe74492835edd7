"""Small helpers the metadata rules share: platform names, tag sets, per-platform findings."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from imgcheck.checks.interface import Finding
from imgcheck.facts import ImageFacts, PlatformFacts

T = TypeVar("T")

# cosign stores signatures, attestations and SBOMs as tags `sha256-<hex>.sig|.att|.sbom`: not images.
_COSIGN_TAG_RE = re.compile(r"sha256-[0-9a-f]{64}(?:\.[A-Za-z0-9_-]+)?")


def short(digest: str) -> str:
    """`sha256:abcdef…` -> `abcdef123456`: enough to tell digests apart in a message."""
    return digest.split(":", 1)[-1][:12]


def is_cosign_tag(tag: str) -> bool:
    return _COSIGN_TAG_RE.fullmatch(tag) is not None


def tags_of(facts: ImageFacts) -> list[str]:
    """Tags on the image's digest; the tag the user asked for resolved to it, so it counts even if the
    gatherer's listing missed it (a tag pushed after the listing)."""
    tags = list(facts.tags_on_digest)
    if facts.tag and facts.tag not in tags:
        tags.append(facts.tag)
    return tags


def quoted(items: Iterable[str], *, empty: str = "none") -> str:
    """`a, b, c` in a stable order, or `empty`."""
    values = sorted(set(items))
    return ", ".join(values) if values else empty


def split_platform(platform: str) -> tuple[str, str, str | None]:
    """`linux/arm64/v8` -> (`linux`, `arm64`, `v8`); a malformed name keeps its parts in order."""
    parts = platform.split("/")
    os_ = parts[0] if parts else ""
    arch = parts[1] if len(parts) > 1 else ""
    variant = parts[2] if len(parts) > 2 and parts[2] else None
    return os_, arch, variant


def platform_matches(required: str, actual: str) -> bool:
    """os and arch must be equal; the variant only counts when the requirement names one."""
    r_os, r_arch, r_variant = split_platform(required)
    a_os, a_arch, a_variant = split_platform(actual)
    if (r_os, r_arch) != (a_os, a_arch):
        return False
    return r_variant is None or r_variant == a_variant


def lookup_platform(sizes: Mapping[str, T], platform: str) -> T | None:
    """`sizes[platform]`, or the one entry with the same os/arch when the variant is spelled differently."""
    if platform in sizes:
        return sizes[platform]
    os_, arch, _ = split_platform(platform)
    close = [v for k, v in sizes.items() if split_platform(k)[:2] == (os_, arch)]
    return close[0] if len(close) == 1 else None


def per_platform(platforms: Iterable[PlatformFacts], judge: Callable[[PlatformFacts], Finding]) -> list[Finding]:
    """Judge each platform; one finding when they all agree (buildx writes one config per platform,
    usually identical), else one finding per platform so the odd platform is named."""
    judged = [(p.platform, judge(p)) for p in platforms]
    if not judged:
        return []
    first = judged[0][1]
    if all(f == first for _, f in judged[1:]):
        return [first]
    return [Finding(f.verdict, f.message, platform=name, details=f.details) for name, f in judged]
