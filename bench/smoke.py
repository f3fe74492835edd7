#!/usr/bin/env python3
"""Benchmark: a full `imgcheck verify` with the smoke rule costs about what the work itself costs.

Three k2 images (each with a ~30 MB incompressible layer) in a local registry, one Docker engine
(the one DOCKER_HOST names, else Debian's dockerd started here). In the same run, cold engine cache
each time (no image of the three present before a measurement), it times:
  (a) `imgcheck verify latest` with smoke (pull by digest, locked-down `--version`, cleanup) and
      `size.max_uncompressed` (read from the same pull);
  (b) by hand, for the same three: `docker pull IMAGE` + `docker run --rm <same lockdown> IMAGE --version`
      (the `docker rmi` after it is timed separately: imgcheck's own cleanup is inside its time).
  (c) the engine phase of (a) alone, in-process: `smoke_image` over facts gathered beforehand (pull by
      digest, measure, run locked down, remove), to separate imgcheck's fixed start-up and registry
      reads from what it adds to the engine work.
Prints medians and the ratios (a) / (b) (target <= 1.05) and (c) / (b).

    python bench/smoke.py [--reps 5] [--layer-mb 30]
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from bench._installed import imgcheck_base, run_env  # noqa: E402
from fixtures.images import data_layer  # noqa: E402
from fixtures.k2 import K2_NAMES, push_k2_image, repository  # noqa: E402
from imgcheck.engine.run import RunSpec  # noqa: E402
from imgcheck.engine.session import smoke_image  # noqa: E402
from imgcheck.facts import ImageFacts  # noqa: E402
from imgcheck.gather import Gatherer  # noqa: E402
from imgcheck.registry.client import RegistryClient  # noqa: E402
from imgcheck.registry.reference import parse_reference  # noqa: E402
from imgcheck.testing.engine_server import ensure_engine  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import RegistryServer, start_registry  # noqa: E402

RATIO_TARGET = 1.05
SMOKE_POLICY = """\
version: 1
registry: 127.0.0.1:5000
images:
  - {name: producer, repository: rjdscott/k2-market-data-platform-producer}
  - {name: consumer, repository: rjdscott/k2-market-data-platform-consumer}
  - {name: query-engine, repository: rjdscott/k2-market-data-platform-query-engine}
rules:
  size: {max_uncompressed: 500MB}
  smoke:
    args: ['--version']
    expect_output: '{version}'
    timeout: 30s
"""
LOCKDOWN_FLAGS = (
    "--network=none",
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--memory=256m",
    "--memory-swap=256m",
    "--pids-limit=128",
    "--log-driver=none",
)


def publish(registry: RegistryServer, layer_bytes: int) -> list[str]:
    """Push the three images (tag `latest`); their references as a person would type them."""
    pusher = Pusher(registry.host)
    refs = []
    for name in K2_NAMES:
        big = data_layer(f"/opt/k2/{name}/model.bin", layer_bytes, seed=f"smoke-bench-{name}".encode())
        push_k2_image(pusher, repository(name), name=name, extra_layers=[big])
        refs.append(f"{registry.host}/{repository(name)}:latest")
    return refs


def run(cmd: Sequence[str], *, ok_codes: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, env=run_env())
    elapsed = time.perf_counter() - start
    if done.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {done.returncode}: {done.stderr.strip()[:400]}")
    return elapsed


def engine_images(docker: str) -> list[str]:
    out = subprocess.run([docker, "images", "-q", "--no-trunc"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def make_cold(docker: str, refs: Sequence[str]) -> None:
    """Remove the three images (by tag and by digest name) so the next measurement pulls everything."""
    ids = subprocess.run(
        [docker, "images", "-q", "--no-trunc", *[f"--filter=reference={r.split(':latest')[0]}*" for r in refs]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if ids:
        subprocess.run([docker, "rmi", "-f", *sorted(set(ids))], capture_output=True, check=False)


def gather_facts(refs: Sequence[str]) -> list[ImageFacts]:
    client = RegistryClient()
    try:
        gatherer = Gatherer(client)
        return [gatherer.gather(r.split("/")[-1], parse_reference(r), need_tags=False) for r in refs]
    finally:
        client.close()


def engine_phase(facts: Sequence[ImageFacts]) -> float:
    """(c): the smoke edge alone, as the pipeline calls it for each image."""
    spec = RunSpec(args=("--version",), timeout=30.0)
    start = time.perf_counter()
    for image in facts:
        evidence = smoke_image(image, spec)
        if any(r.result is None or r.result.exit_code != 0 for r in evidence.runs):
            raise RuntimeError(f"smoke of {image.name} did not exit 0: {evidence}")
    return time.perf_counter() - start


@dataclass(frozen=True)
class Sample:
    imgcheck: float
    by_hand: float
    rmi: float
    engine_phase: float


def one_round(
    verify: list[str], docker: str, refs: Sequence[str], facts: Sequence[ImageFacts], imgcheck_first: bool
) -> Sample:
    def ours() -> float:
        make_cold(docker, refs)
        return run(verify)

    def phase() -> float:
        make_cold(docker, refs)
        return engine_phase(facts)

    def theirs() -> tuple[float, float]:
        make_cold(docker, refs)
        spent = 0.0
        for ref in refs:
            spent += run([docker, "pull", "-q", ref])
            spent += run([docker, "run", "--rm", *LOCKDOWN_FLAGS, ref, "--version"])
        rmi = sum(run([docker, "rmi", ref]) for ref in refs)
        return spent, rmi

    if imgcheck_first:
        a, c = ours(), phase()
        b, rmi = theirs()
    else:
        b, rmi = theirs()
        a, c = ours(), phase()
    return Sample(a, b, rmi, c)


def measure(reps: int, layer_mb: int) -> None:
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError("the docker CLI is not installed (apt-get install docker.io)")
    workdir = Path(tempfile.mkdtemp(prefix="imgcheck-smoke-bench-"))
    engine = ensure_engine()
    os.environ["DOCKER_HOST"] = engine.docker_host
    registry = start_registry(workdir / "registry")
    try:
        refs = publish(registry, layer_mb * 1_000_000)
        policy = workdir / "smoke-policy.yaml"
        policy.write_text(SMOKE_POLICY)
        verify = [*imgcheck_base(), "verify", "latest", "--quiet", "--format", "json", "--registry", registry.host]
        verify += ["--policy", str(policy)]
        before = set(engine_images(docker))
        run(verify)  # warm the page cache and check that the verify passes (exit 0)
        if set(engine_images(docker)) != before:
            raise RuntimeError("imgcheck left images behind in the engine")
        startup = statistics.median(run([*imgcheck_base(), "--version"]) for _ in range(3))
        facts = gather_facts(refs)
        samples = [one_round(verify, docker, refs, facts, imgcheck_first=i % 2 == 0) for i in range(reps)]
        report(samples, startup, layer_mb)
    finally:
        registry.stop()
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def report(samples: Sequence[Sample], startup: float, layer_mb: int) -> None:
    ours = statistics.median(s.imgcheck for s in samples)
    theirs = statistics.median(s.by_hand for s in samples)
    rmi = statistics.median(s.rmi for s in samples)
    phase = statistics.median(s.engine_phase for s in samples)
    ratio = ours / theirs
    fair = ours / (theirs + rmi)
    verdict = f"<= {RATIO_TARGET:g}: {'met' if ratio <= RATIO_TARGET else 'MISSED'}"
    rows = [
        (f"imgcheck verify (smoke + size, 3 images, {layer_mb} MB layer each), median of {len(samples)}", ours, ""),
        ("  engine phase alone (pull, run, remove; in-process)", phase, ""),
        ("  the rest: start-up, imports, registry reads, report", ours - phase, ""),
        ("  (imgcheck --version, the start-up floor)", startup, ""),
        ("docker pull + docker run --rm --version, x3 (peer)", theirs, ""),
        ("docker rmi x3 (cleanup the peer leaves to you)", rmi, ""),
    ]
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'metric':<{width}}{'value':>10}  target")
    for metric, seconds, target in rows:
        print(f"{metric:<{width}}{seconds:>8.3f} s  {target}")
    print(f"{'ratio imgcheck / (pull + run)':<{width}}{ratio:>10.3f}  {verdict}")
    print(f"{'ratio imgcheck / (pull + run + rmi)':<{width}}{fair:>10.3f}")
    print(f"{'ratio engine phase / (pull + run)':<{width}}{phase / theirs:>10.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="timed rounds (default: %(default)s)")
    parser.add_argument("--layer-mb", type=int, default=30, help="big layer per image, MB (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        measure(max(1, args.reps), max(1, args.layer_mb))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"bench/smoke.py: could not measure: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
