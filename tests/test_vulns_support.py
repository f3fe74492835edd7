"""Helpers shared by the test_vulns_* files: minimal ImageFacts, Trivy-schema report writers, and a
runner that goes through the rule's real collect + check (no pytest tests live here)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imgcheck.checks.interface import CollectContext, Finding, RunContext, VerifyOptions
from imgcheck.checks.vulnerabilities import RULE, Config
from imgcheck.facts import ImageFacts, PlatformFacts

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REPO = "acme/producer"


def digest_of(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def platform(name: str, manifest_digest: str, config_digest: str) -> PlatformFacts:
    return PlatformFacts(
        platform=name,
        manifest_digest=manifest_digest,
        manifest={},
        config_digest=config_digest,
        config={},
        layers=(),
        config_size=0,
    )


def make_facts(
    digest: str | None = None,
    *,
    config_digest: str | None = None,
    platforms: tuple[tuple[str, str, str], ...] | None = None,
    tag: str | None = "v1.0.0",
    name: str = "producer",
) -> ImageFacts:
    """A plain image (one platform whose manifest is `digest`) or, with `platforms`, an index."""
    digest = digest or digest_of("image")
    if platforms is None:
        plats = (platform("linux/amd64", digest, config_digest or digest_of("config")),)
        index = None
    else:
        plats = tuple(platform(*p) for p in platforms)
        index = {"schemaVersion": 2, "manifests": []}
    return ImageFacts(
        name=name,
        registry="ghcr.io",
        repository=REPO,
        reference=f"ghcr.io/{REPO}:{tag}" if tag else f"ghcr.io/{REPO}@{digest}",
        tag=tag,
        digest=digest,
        media_type="application/vnd.oci.image.manifest.v1+json",
        platforms=plats,
        index_manifest=index,
    )


def vuln(
    vid: str,
    pkg: str = "openssl",
    installed: str = "3.0.1",
    fixed: str = "3.0.2",
    severity: str = "CRITICAL",
    *,
    status: str | None = None,
    purl: str | None = None,
    published: str | None = None,
    cvss: float | None = None,
) -> dict[str, Any]:
    """One `Vulnerabilities` entry in Trivy's schema (field names and shapes as Trivy writes them)."""
    v: dict[str, Any] = {
        "VulnerabilityID": vid,
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": purl or f"pkg:deb/debian/{pkg}@{installed}?arch=amd64&distro=debian-12"},
        "InstalledVersion": installed,
        "Status": status or ("fixed" if fixed else "affected"),
        "Severity": severity,
    }
    if fixed:
        v["FixedVersion"] = fixed
    if published:
        v["PublishedDate"] = published
    if cvss is not None:
        v["CVSS"] = {"nvd": {"V3Score": cvss, "V3Vector": "CVSS:3.1/AV:N"}}
    return v


def trivy_report(
    digest: str | None,
    vulns: list[dict[str, Any]],
    *,
    created: datetime = NOW,
    repo: str = f"ghcr.io/{REPO}",
    image_id: str | None = None,
) -> dict[str, Any]:
    """A whole Trivy JSON report (SchemaVersion 2) for an image scanned by digest."""
    metadata: dict[str, Any] = {"OS": {"Family": "debian", "Name": "12.5"}, "RepoTags": [f"{repo}:v1.0.0"]}
    if digest:
        metadata["RepoDigests"] = [f"{repo}@{digest}"]
    if image_id:
        metadata["ImageID"] = image_id
    return {
        "SchemaVersion": 2,
        "CreatedAt": created.isoformat().replace("+00:00", "Z"),
        "ArtifactName": f"{repo}@{digest}" if digest else "/src",
        "ArtifactType": "container_image" if digest else "filesystem",
        "Metadata": metadata,
        "Results": [
            {"Target": f"{repo} (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}
        ],
    }


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def run_rule(
    facts: ImageFacts,
    config: Config,
    *,
    reports: tuple[Path, ...] = (),
    policy_dir: Path = Path("."),
    now: datetime = NOW,
) -> Finding:
    """The rule as the pipeline runs it: collect (file I/O), store in extras, then the pure check."""
    options = VerifyOptions(trivy_reports=reports, policy_dir=policy_dir)
    assert RULE.collect is not None
    evidence = RULE.collect(CollectContext(registry=None, options=options), facts, config)  # type: ignore[arg-type]
    facts = dataclasses.replace(facts, extras={RULE.id: evidence})
    findings = RULE.check(facts, config, RunContext(now=now, options=options))
    assert len(findings) == 1
    return findings[0]
