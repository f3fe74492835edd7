"""vulnerabilities: Trivy results for this digest turned into a verdict.

`collect` reads the report files (and ignore/VEX files) at the edge; `check` is pure over them.
With `attached:`, collect also discovers what is attached to the digest (the supply-chain discovery
module) and turns cosign vuln attestations and SARIF referrers into reports (`imgcheck.vulns.fromregistry`):
`attached: true` uses only attestations whose signature verifies with `keys` / `keyless`;
`attached: unsigned` also uses unsigned evidence, and the message says so.
With `scan: true` (or `--scan`), collect runs the real trivy on the digest (`imgcheck.vulns.scan`, one
scan per platform of an index, reused while trivy's DB is unchanged) and its reports are judged like
given ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imgcheck.checks.interface import CollectContext, Finding, RuleSpec, RunContext, VerifyOptions
from imgcheck.checks.signature import TrustConfig, build_trust
from imgcheck.facts import ImageFacts
from imgcheck.policy.fields import FieldError
from imgcheck.record import record
from imgcheck.vulns.message import limit_text

if TYPE_CHECKING:
    from imgcheck.vulns import fromregistry as vulns_fromregistry
    from imgcheck.vulns import scan as vulns_scan
    from imgcheck.vulns import waivers as vulns_waivers

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
RULE_ID = "vulnerabilities"
SCAN_WORKERS = 2
"""Platforms of one index scanned at once (trivy is mostly waiting on the registry and its own start-up)."""


@record
class Waiver:
    """A policy `ignore:` entry: a reason and an expiry are required, so no waiver is forever."""

    id: str
    reason: str
    expires: dt.date
    packages: tuple[str, ...] = ()
    """Package names or purls (`pkg:deb/debian/libssl3`); empty: every package."""

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise FieldError("id", "a waiver needs an `id` (e.g. CVE-2024-1234)")
        if not self.reason.strip():
            raise FieldError("reason", f"waiver {self.id} needs a non-empty `reason`")


@record
class Config(TrustConfig):
    """Trivy report settings; `keys` / `keyless` / `trusted_root` (as in the signature rule) are who
    must have signed an attached vuln attestation."""

    report: str | None = None
    """Path template of the Trivy report (`{name}`, `{tag}`, `{digest_hex}`), relative to the policy."""
    bind: Literal["digest", "none"] = "digest"
    """`none` also accepts reports that name no image (fs scans); the message says so."""
    fail_on: tuple[Severity, ...] = ("CRITICAL",)
    warn_on: tuple[Severity, ...] = ()
    fixable_only: bool = False
    max_age: timedelta | None = None
    min_cvss: float | None = None
    """Findings scored below this (highest CVSS of any source) do not count; unscored ones do."""
    grace_days: int | None = None
    """A would-fail finding published fewer than N days ago only warns."""
    deny: tuple[str, ...] = ()
    """IDs that fail whatever their severity, fix state, waiver or VEX statement."""
    ignore: tuple[Waiver, ...] = ()
    ignore_files: tuple[str, ...] = ()
    """`.trivyignore` / `.trivyignore.yaml` files imported as waivers."""
    vex: tuple[str, ...] = ()
    """OpenVEX / CycloneDX VEX files; `not_affected` and `fixed` statements for this image suppress."""
    attached: Literal[False, True, "unsigned"] = False
    """Also use reports attached to the digest in the registry: `true` signed cosign vuln attestations
    only; `unsigned` also unsigned ones and SARIF referrers. Off by default: discovery costs requests."""
    scan: bool = False
    """Run trivy on the digest (as `--scan`), in addition to any report given."""

    def __post_init__(self) -> None:
        if self.attached is True and not self.keys and self.keyless is None:
            raise ValueError(
                "attached: true uses only signed vuln attestations: name `keys` or `keyless` to verify them "
                "(or `attached: unsigned` to accept unsigned ones)"
            )
        if not self.attached and (self.keys or self.keyless or self.trusted_root):
            raise ValueError("keys / keyless / trusted_root verify attached reports: set `attached: true` to use them")
        both = set(self.fail_on) & set(self.warn_on)
        if both:
            raise ValueError(f"severities {sorted(both)} are in both fail_on and warn_on; pick one")
        if self.min_cvss is not None and not 0 <= self.min_cvss <= 10:
            raise FieldError("min_cvss", f"min_cvss must be between 0 and 10, got {self.min_cvss}")
        if self.grace_days is not None and self.grace_days < 0:
            raise FieldError("grace_days", "grace_days cannot be negative")


def collect(ctx: CollectContext, facts: ImageFacts, config: Config) -> object:
    """Read this image's candidate reports plus the ignore and VEX files (bounded, fail closed), and,
    with `attached:`, the vulnerability reports attached to the digest."""
    from imgcheck.vulns import files, vex, waivers
    from imgcheck.vulns.fromregistry import Attached
    from imgcheck.vulns.verdict import Evidence

    base = ctx.options.policy_dir
    scanning = config.scan or ctx.options.scan
    paths: tuple[Path, ...] = ()
    missing: tuple[str, ...] = ()
    if ctx.options.trivy_reports:
        paths = tuple(ctx.options.trivy_reports)
    elif config.report:
        path = base / files.expand_template(config.report, name=facts.name, tag=facts.tag, digest=facts.digest)
        if path.exists():
            paths = (path,)
        elif not config.attached and not scanning:
            return Evidence(searched=(str(path),), waivers=_waivers(config))
        else:
            missing = (str(path),)
    elif not config.attached and not scanning:
        return Evidence(no_source=True)
    loaded = files.load_reports(paths) if paths else files.Loaded((), ())
    statements: list[vex.VexStatement] = []
    for name in config.vex:
        vpath = _resolve(base, name)
        doc = files.decode_json(files.read_bytes(vpath, files.MAX_SIDE_FILE_BYTES, "VEX"), str(vpath), "VEX")
        statements += vex.parse_vex(doc, str(vpath), start=len(statements))
    imported: list[waivers.Waiver] = []
    for name in config.ignore_files:
        ipath = _resolve(base, name)
        imported += waivers.load_ignore_file(ipath, files.read_text(ipath, "ignore file"))
    attached = _attached(ctx, facts, config) if config.attached else Attached((), ())
    scans = _scans(ctx, facts, config) if scanning else ()
    return Evidence(
        reports=(*loaded.reports, *attached.reports, *(s.report for s in scans)),
        searched=(*(str(p) for p in paths), *missing, *attached.looked),
        skipped=loaded.skipped,
        waivers=(*_waivers(config), *imported),
        vex=tuple(statements),
        attachments=attached.notes,
        scans=scans,
    )


def _scans(ctx: CollectContext, facts: ImageFacts, config: Config) -> tuple[vulns_scan.Scan, ...]:
    """Trivy on the digest, or on each platform manifest of an index (a report per platform binds to it)."""
    import os
    from datetime import UTC, datetime

    from imgcheck.gather import parallel_map
    from imgcheck.vulns import scan

    host = f"{facts.registry}/{facts.repository}"
    if facts.is_index:
        targets = [scan.Target(f"{host}@{p.manifest_digest}", p.manifest_digest, p.platform) for p in facts.platforms]
    else:
        targets = [scan.Target(f"{host}@{facts.digest}", facts.digest, None)]
    creds = ctx.registry.credentials_for(facts.registry)

    def one(target: vulns_scan.Target) -> vulns_scan.Scan:
        return scan.scan(
            target,
            env=os.environ,
            time_left=scan_time_left(ctx),
            now=datetime.now(UTC),
            max_age=config.max_age,
            insecure=ctx.options.insecure or ctx.options.schemes.get(facts.registry) == "http",
            credentials=creds,
            progress=lambda m: ctx.progress(f"{facts.name}: {m}"),
        )

    # an index's platforms side by side: once the DB is current, trivy only reads it (scan.py serialises
    # a scan that may download it)
    return tuple(parallel_map(one, targets, SCAN_WORKERS))


def scan_time_left(ctx: CollectContext) -> float:
    """Seconds the run's deadline (`--timeout`, imgcheck.deadline) leaves a scan; else the registry's."""
    if ctx.options.deadline is not None:
        return ctx.options.deadline.remaining()
    return ctx.registry.time_left()


def _attached(ctx: CollectContext, facts: ImageFacts, config: Config) -> vulns_fromregistry.Attached:
    """Discover the digest's attachments (registry I/O) and keep the vulnerability reports the policy trusts."""
    from imgcheck.supplychain import evidence
    from imgcheck.vulns.attached import ImageDigests
    from imgcheck.vulns.fromregistry import attached_reports

    trust = build_trust(config, ctx.options.policy_dir)
    found = evidence.collect(ctx, facts, "vulnerabilities", trust).found
    image = ImageDigests(
        manifests=tuple(dict.fromkeys((facts.digest, *(p.manifest_digest for p in facts.platforms)))),
        configs=tuple(p.config_digest for p in facts.platforms),
    )
    result = attached_reports(found.attachments, image, trust, accept_unsigned=config.attached == "unsigned")
    return replace(result, looked=found.looked)


def _resolve(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def _waivers(config: Config) -> tuple[vulns_waivers.Waiver, ...]:
    from imgcheck.vulns.waivers import policy_waiver

    return tuple(policy_waiver(w.id, w.reason, w.expires, w.packages) for w in config.ignore)


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    from imgcheck.verdict import Verdict
    from imgcheck.vulns.evaluate import Rules
    from imgcheck.vulns.verdict import Evidence, judge

    evidence = facts.extras.get(RULE_ID)
    if not isinstance(evidence, Evidence):
        return [Finding(Verdict.ERROR, "vulnerability reports were not collected for this image (internal error)")]
    rules = Rules(
        fail_on=frozenset(config.fail_on),
        warn_on=frozenset(config.warn_on),
        fixable_only=config.fixable_only,
        min_cvss=config.min_cvss,
        grace_days=config.grace_days,
        deny=frozenset(config.deny),
    )
    result = judge(evidence, facts, rules, max_age=config.max_age, allow_unbound=config.bind == "none", now=run.now)
    return [Finding(result.verdict, result.message, details=result.details)]


def describe(config: Config) -> str:
    parts = [f"fail on {'/'.join(config.fail_on) or 'nothing'}"]
    if config.warn_on:
        parts.append(f"warn on {'/'.join(config.warn_on)}")
    if config.fixable_only:
        parts.append("fixable only")
    if config.min_cvss is not None:
        parts.append(f"CVSS ≥ {config.min_cvss:g}")
    if config.grace_days:
        parts.append(f"{config.grace_days} d grace")
    if config.deny:
        parts.append(f"{len(config.deny)} denied IDs")
    if config.max_age is not None:
        parts.append(f"report max {limit_text(config.max_age)} old")
    if config.ignore or config.ignore_files:
        parts.append(f"{len(config.ignore)} waivers + {len(config.ignore_files)} ignore files")
    if config.vex:
        parts.append(f"{len(config.vex)} VEX files")
    source = "Trivy report " + (config.report or "--trivy-report")
    if config.scan:
        source = "a trivy scan of the digest and any " + source
    if config.attached:
        signed = "signed or unsigned" if config.attached == "unsigned" else "signed"
        source += f" and {signed} reports attached to the digest"
    bind = "any report naming no image too (bind: none)" if config.bind == "none" else "bound by digest"
    return f"{source}, {bind}: " + ", ".join(parts)


def collect_bound(config: Config, options: VerifyOptions) -> int | None:
    """Images scanned at once by default: one per CPU here, where trivy runs (no bound without a scan)."""
    import os

    return (os.cpu_count() or 1) if config.scan or options.scan else None


RULE = RuleSpec(
    id=RULE_ID,
    summary="the Trivy report for this digest is fresh and holds no finding of a fail_on severity",
    config=Config,
    check=check,
    collect=collect,
    describe=describe,
    collect_bound=collect_bound,
)
