"""Parsed scanner data: what every input form (Trivy JSON, SARIF, attestation) is reduced to."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from imgcheck.record import record

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
"""Trivy's severities, worst first."""

ReportFormat = Literal["trivy-json", "sarif", "cosign-vuln"]


class Vuln(NamedTuple):
    """One vulnerability finding: one ID in one installed package (one Trivy `Vulnerabilities` entry).

    A NamedTuple rather than a frozen dataclass: reports hold tens of thousands of these, and tuple
    construction is several times cheaper (see bench/trivy.py)."""

    id: str
    package: str
    installed: str
    fixed: str
    """Trivy's FixedVersion (may list several versions); empty when no fix is known."""
    severity: str
    """One of SEVERITIES."""
    status: str = ""
    """Trivy's Status (fixed, affected, will_not_fix, ...); empty when the report has none."""
    purl: str = ""
    pkg_path: str = ""
    target: str = ""
    published: str = ""
    """PublishedDate as written (parsed only when grace_days needs it: most runs never do)."""
    cvss: float | None = None
    """Highest CVSS score any source gives (v3 preferred, v2 when no v3)."""
    aliases: tuple[str, ...] = ()

    @property
    def fixable(self) -> bool:
        """Trivy's own definition: a fixed version exists, or the status says fixed."""
        return bool(self.fixed) or self.status == "fixed"


@record
class ScanReport:
    """One scanner report reduced to what the verdict needs."""

    source: str
    """Where it came from (a path, or `attached: <digest>`), for messages."""
    format: ReportFormat
    created_at: datetime | None
    """When the scan ran (timezone-aware); None when the report does not say."""
    created_from: str
    """Which field gave `created_at` (`CreatedAt`, `file time`, `scanFinishedOn`)."""
    artifact_name: str
    digests: tuple[str, ...]
    """Manifest digests (`sha256:…`) the report names for its image (RepoDigests, ArtifactName, subject)."""
    image_id: str | None
    """The image config digest Trivy saw (Metadata.ImageID), when present."""
    findings: tuple[Vuln, ...]
    results_missing: bool = False
    """True when a JSON report had no `Results` (Trivy omits it when it found nothing)."""
    scanner: str = "trivy"

    @property
    def names_an_image(self) -> bool:
        """Whether the report says which image it is about (otherwise: an fs/repo scan)."""
        return bool(self.digests) or bool(self.image_id)
