"""Benchmark: the vulnerabilities verdict (read + parse + bind + judge) against `json.load` of the same
reports. Target: ratio <= 2.0 in both shapes.

Rich (default): one Trivy-schema report with N findings (default 10,000) shaped like real ones (OS and
language results, descriptions, references, CVSS), bound to a made-up digest, plus waivers and a VEX
document so every stage of the verdict runs; verdict over `json.loads`, in the same process.
    python bench/trivy.py [N] [ROUNDS]

Lean (`--lean`): three reports of 10,000 findings each with no descriptions and no CVSS (~3.9 MB each),
bound to the three k2 sample images in a local registry; one whole `imgcheck verify` process judges all
three. The rule's cost is that verify's time minus the same verify without the rule, over the time a
fresh Python process takes to `json.load` the three files.
    python bench/trivy.py --lean [--reps 9]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from imgcheck.checks.interface import CollectContext, RunContext, VerifyOptions
from imgcheck.checks.vulnerabilities import RULE, Config, Waiver
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.vulns.files import forget_parsed_reports

SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
NOW = datetime(2026, 6, 1, tzinfo=UTC)
DIGEST = "sha256:" + hashlib.sha256(b"bench-image").hexdigest()


def make_vuln(rng: random.Random, i: int) -> dict[str, object]:
    pkg = f"pkg{i % 700}"
    installed = f"1.{i % 13}.{i % 7}"
    fixed = f"1.{i % 13}.{i % 7 + 1}" if rng.random() < 0.8 else ""
    cve = f"CVE-20{10 + i % 15}-{10000 + i}"
    return {
        "VulnerabilityID": cve,
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": f"pkg:deb/debian/{pkg}@{installed}?arch=amd64&distro=debian-12", "UID": f"{i:016x}"},
        "InstalledVersion": installed,
        "FixedVersion": fixed,
        "Status": "fixed" if fixed else "affected",
        "Layer": {"DiffID": "sha256:" + hashlib.sha256(str(i % 9).encode()).hexdigest()},
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
        "DataSource": {"ID": "debian", "Name": "Debian Security Tracker", "URL": "https://salsa.debian.org/"},
        "Title": f"{pkg}: issue number {i} in a parser",
        "Description": "A flaw was found in the parser which allows a remote attacker to crash the service. " * 4,
        "Severity": rng.choice(SEVERITIES),
        "CweIDs": ["CWE-787"],
        "VendorSeverity": {"nvd": 3, "redhat": 2},
        "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": rng.uniform(1, 10)}},
        "References": [f"https://security-tracker.debian.org/tracker/{cve}", f"https://nvd.nist.gov/vuln/detail/{cve}"],
        "PublishedDate": "2024-03-01T12:00:00.123Z",
        "LastModifiedDate": "2025-01-01T00:00:00Z",
    }


def make_report(n: int) -> dict[str, object]:
    rng = random.Random(42)
    vulns = [make_vuln(rng, i) for i in range(n)]
    half = n // 2
    return {
        "SchemaVersion": 2,
        "CreatedAt": (NOW - timedelta(hours=2)).isoformat(),
        "ArtifactName": f"ghcr.io/acme/producer@{DIGEST}",
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": [f"ghcr.io/acme/producer@{DIGEST}"], "ImageID": "sha256:" + "1" * 64},
        "Results": [
            {"Target": "producer (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns[:half]},
            {"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg", "Vulnerabilities": vulns[half:]},
        ],
    }


def main() -> None:
    if "--lean" in sys.argv[1:]:
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 9
        lean(reps)
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = folder / "report.json"
        report.write_text(json.dumps(make_report(n)))
        vex = {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "statements": [
                {
                    "vulnerability": {"name": f"CVE-20{10 + i % 15}-{10000 + i}"},
                    "products": [{"@id": DIGEST}],
                    "status": "not_affected",
                    "justification": "component_not_present",
                }
                for i in range(0, n, 50)
            ],
        }
        (folder / "vex.json").write_text(json.dumps(vex))
        waivers = tuple(Waiver(f"CVE-20{10 + i % 15}-{10000 + i}", "bench", date(2027, 1, 1)) for i in range(0, n, 37))
        config = Config(
            fail_on=("CRITICAL",),
            warn_on=("HIGH",),
            fixable_only=True,
            max_age=timedelta(hours=24),
            min_cvss=4.0,
            grace_days=14,
            deny=("CVE-2014-10001",),
            ignore=waivers,
            vex=("vex.json",),
        )
        platform = PlatformFacts("linux/amd64", DIGEST, {}, "sha256:" + "1" * 64, {}, (), 0)
        facts = ImageFacts(
            "producer",
            "ghcr.io",
            "acme/producer",
            f"ghcr.io/acme/producer@{DIGEST}",
            None,
            DIGEST,
            "application/vnd.oci.image.manifest.v1+json",
            (platform,),
        )
        options = VerifyOptions(trivy_reports=(report,), policy_dir=folder)
        assert RULE.collect is not None

        def verdict() -> str:
            forget_parsed_reports()  # time the parse each round, as a fresh process would pay it
            evidence = RULE.collect(CollectContext(registry=None, options=options), facts, config)  # type: ignore[arg-type]
            judged = dataclasses.replace(facts, extras={RULE.id: evidence})
            return RULE.check(judged, config, RunContext(now=NOW, options=options))[0].message

        def loads() -> object:
            return json.loads(report.read_bytes())

        size = report.stat().st_size
        message = verdict()
        t_loads, t_verdict = [], []
        for _ in range(rounds):  # interleaved so both see the same machine load
            start = time.perf_counter()
            loads()
            t_loads.append(time.perf_counter() - start)
            start = time.perf_counter()
            verdict()
            t_verdict.append(time.perf_counter() - start)
    lo, vo = statistics.median(t_loads), statistics.median(t_verdict)
    print(f"report: {n} findings, {size / 1e6:.1f} MB; {rounds} rounds, medians")
    print(f"json.loads(read):          {lo * 1000:8.1f} ms")
    print(f"verdict (collect + check): {vo * 1000:8.1f} ms")
    print(f"ratio verdict / json.loads: {vo / lo:.2f}  (target <= 2.0)")
    print(f"message: {message[:160]}")


# --- lean shape: three reports, one whole verify process ---------------------------------------------------------

LEAN_POLICY = """\
version: 1
images:
  - {name: producer, repository: bench/k2-market-data-platform-producer}
  - {name: consumer, repository: bench/k2-market-data-platform-consumer}
  - {name: query-engine, repository: bench/k2-market-data-platform-query-engine}
rules:
  size: {max_compressed: 500MB}
"""
LEAN_RULE = """\
  vulnerabilities: {fail_on: [CRITICAL], warn_on: [HIGH], fixable_only: true, max_age: 24h}
"""


def make_lean_vuln(rng: random.Random, i: int) -> dict[str, object]:
    """What Trivy writes for a finding once descriptions, references and CVSS are left out."""
    pkg = f"pkg{i % 700}"
    installed = f"1.{i % 13}.{i % 7}"
    fixed = f"1.{i % 13}.{i % 7 + 1}" if rng.random() < 0.8 else ""
    return {
        "VulnerabilityID": f"CVE-20{10 + i % 15}-{10000 + i}",
        "PkgID": f"{pkg}@{installed}",
        "PkgName": pkg,
        "PkgIdentifier": {"PURL": f"pkg:deb/debian/{pkg}@{installed}?arch=amd64&distro=debian-12"},
        "InstalledVersion": installed,
        "FixedVersion": fixed,
        "Status": "fixed" if fixed else "affected",
        "SeveritySource": "debian",
        "Title": f"{pkg}: issue number {i} in a parser",
        "Severity": rng.choice(SEVERITIES),
        "PublishedDate": "2024-03-01T12:00:00.123Z",
    }


def make_lean_report(reference: str, digest: str, n: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    return {
        "SchemaVersion": 2,
        "CreatedAt": datetime.now(UTC).isoformat(),
        "ArtifactName": f"{reference}@{digest}",
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": [f"{reference}@{digest}"]},
        "Results": [
            {
                "Target": f"{reference}@{digest} (debian 12.8)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": [make_lean_vuln(rng, i) for i in range(n)],
            }
        ],
    }


def lean(reps: int) -> None:
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # the fixture builder lives in ./fixtures
    from bench._installed import imgcheck_base, run_env
    from fixtures.k2 import K2_NAMES, push_k2_image, repository
    from imgcheck.testing.push import Pusher
    from imgcheck.testing.registry_server import start_registry

    def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=run_env())
        elapsed = time.perf_counter() - start
        if done.returncode not in ok:
            raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {done.stderr.strip()[:400]}")
        return elapsed

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        registry = start_registry(folder / "registry")
        try:
            pusher = Pusher(registry.host)
            reports = folder / "reports"
            reports.mkdir()
            for seed, name in enumerate(K2_NAMES):
                image = push_k2_image(pusher, repository(name, "bench"), name=name, tags=("latest",))
                doc = make_lean_report(f"{registry.host}/{image.repository}", image.digest, 10_000, seed)
                (reports / f"{name}.trivy.json").write_text(json.dumps(doc))
            files = sorted(str(p) for p in reports.iterdir())
            sizes = [Path(f).stat().st_size for f in files]
            (folder / "with.yaml").write_text(LEAN_POLICY + LEAN_RULE)
            (folder / "without.yaml").write_text(LEAN_POLICY)
            verify = [*imgcheck_base(), "verify", "latest", "--no-smoke", "--quiet", "--registry", registry.host]
            with_rule = [*verify, "--policy", str(folder / "with.yaml"), "--trivy-report", str(reports)]
            without_rule = [*verify, "--policy", str(folder / "without.yaml"), "--trivy-report", str(reports)]
            loads = [
                sys.executable,
                "-c",
                "import json, sys\nfor f in sys.argv[1:]:\n    json.load(open(f, 'rb'))",
                *files,
            ]
            timed(with_rule, ok=(0, 1))  # warm the page cache and the bytecode cache
            t_with, t_without, t_loads = [], [], []
            for _ in range(reps):  # interleaved so all three see the same machine load
                t_with.append(timed(with_rule, ok=(0, 1)))  # random findings: a fixable CRITICAL fails
                t_without.append(timed(without_rule))
                t_loads.append(timed(loads))
        finally:
            registry.stop()
    w, wo, lo = statistics.median(t_with), statistics.median(t_without), statistics.median(t_loads)
    print(f"lean reports: 3 x 10,000 findings, {', '.join(f'{s / 1e6:.2f}' for s in sizes)} MB; median of {reps}")
    print(f"imgcheck verify with the rule:     {w * 1000:8.1f} ms")
    print(f"imgcheck verify without the rule:  {wo * 1000:8.1f} ms")
    print(f"the rule's cost (difference):      {(w - wo) * 1000:8.1f} ms")
    print(f"python -c json.load x3 (process):  {lo * 1000:8.1f} ms")
    print(f"ratio rule / json.load process:    {(w - wo) / lo:.2f}  (target <= 2.0)")


if __name__ == "__main__":
    main()
