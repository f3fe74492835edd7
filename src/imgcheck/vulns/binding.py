"""Which reports are about this image: by manifest digest, never by file name.

A report binds when it names the resolved digest (RepoDigests / ArtifactName / subject), or one
platform manifest of an index (Trivy scans one platform per run), or when its ImageID equals a
platform's config digest (a config digest pins the layers, so this is as strong). A report that
names no image at all (an `fs` scan) binds only under `bind: none`. Reports for other digests are
ignored, and the result says which.
"""

from __future__ import annotations

from imgcheck.facts import ImageFacts
from imgcheck.record import record
from imgcheck.vulns.model import ScanReport


@record
class Bound:
    report: ScanReport
    how: str
    """For messages: `RepoDigests sha256:…`, `linux/arm64 manifest sha256:…`, `unbound (bind: none)`."""
    key: str
    """What it bound to (a digest, or `unbound`): the newest report per key is used."""
    platform: str | None = None


@record
class BindResult:
    used: tuple[Bound, ...]
    superseded: tuple[Bound, ...]
    """Older reports for the same digest as a newer one."""
    other: tuple[ScanReport, ...]
    """Reports about other images (ignored for this one)."""
    unbound_refused: tuple[ScanReport, ...]
    """Reports that name no image, refused because the policy does not say `bind: none`."""


def _short(digest: str) -> str:
    return digest[:19] + "…"


def _bind_one(report: ScanReport, facts: ImageFacts, allow_unbound: bool) -> Bound | None:
    if facts.digest in report.digests:
        return Bound(report, f"digest {_short(facts.digest)}", facts.digest)
    for p in facts.platforms:
        if facts.is_index and p.manifest_digest in report.digests:
            return Bound(report, f"{p.platform} manifest {_short(p.manifest_digest)}", p.manifest_digest, p.platform)
    for p in facts.platforms:
        if report.image_id and report.image_id == p.config_digest:
            if not facts.is_index:
                return Bound(report, f"ImageID (config {_short(p.config_digest)})", p.manifest_digest)
            return Bound(
                report, f"{p.platform} ImageID (config {_short(p.config_digest)})", p.manifest_digest, p.platform
            )
    if allow_unbound and not report.names_an_image:
        return Bound(report, "unbound (bind: none)", "unbound")
    return None


def bind_reports(reports: list[ScanReport], facts: ImageFacts, *, allow_unbound: bool) -> BindResult:
    newest: dict[str, Bound] = {}
    superseded: list[Bound] = []
    other: list[ScanReport] = []
    refused: list[ScanReport] = []
    for report in reports:
        bound = _bind_one(report, facts, allow_unbound)
        if bound is None:
            (other if report.names_an_image else refused).append(report)
            continue
        current = newest.get(bound.key)
        if current is None:
            newest[bound.key] = bound
        elif _newer(bound.report, current.report):
            superseded.append(current)
            newest[bound.key] = bound
        else:
            superseded.append(bound)
    return BindResult(tuple(newest.values()), tuple(superseded), tuple(other), tuple(refused))


def _newer(a: ScanReport, b: ScanReport) -> bool:
    if a.created_at is None:
        return False
    return b.created_at is None or a.created_at > b.created_at
