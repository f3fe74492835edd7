#!/usr/bin/env python3
"""Benchmark: `imgcheck verify` with the smoke rule overlaps its three pulls and runs, as a person would by hand.

Three k2 images (each with an incompressible layer of --layer-mb MB) in a local registry, one Docker
engine (the one DOCKER_HOST names, else Debian's dockerd started here). In the same run, cold engine
cache before each measurement (no image of the three present), in an order that rotates every round:
  (a) `imgcheck verify latest` with smoke (pull by digest, locked-down `--version`, cleanup) and
      `size.max_uncompressed` (read from the same pull), images at once (the default --jobs: one per
      image up to the engine's CPU count), and (a3) the same with `--jobs 3`;
  (b) the sequential hand procedure: `docker pull IMAGE` then `docker run --rm <same lockdown> IMAGE
      --version`, one image after another (the `docker rmi` after it is timed separately: imgcheck's
      own cleanup is inside its time);
  (c) the same commands started concurrently by hand: three `docker pull && docker run` chains at once;
  (d) the engine phase of (a) alone, in-process: `smoke_image` for the three images on threads (as the
      pipeline runs them), over facts gathered beforehand.
Prints medians and the ratios (a) / (b) (target <= 0.8) and (a) / (c) (target <= 1.1), per layer size.

    python bench/smoke.py [--reps 5] [--layer-mb 30 150]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from bench._installed import imgcheck_base, run_env  # noqa: E402
from fixtures.images import data_layer  # noqa: E402
from fixtures.k2 import K2_NAMES, push_k2_image, repository  # noqa: E402
from imgcheck.engine.client import MIN_ENGINE_JOBS  # noqa: E402
from imgcheck.engine.run import RunSpec  # noqa: E402
from imgcheck.engine.session import smoke_image  # noqa: E402
from imgcheck.facts import ImageFacts  # noqa: E402
from imgcheck.gather import Gatherer, parallel_map  # noqa: E402
from imgcheck.registry.client import RegistryClient  # noqa: E402
from imgcheck.registry.reference import parse_reference  # noqa: E402
from imgcheck.testing.engine_server import ensure_engine  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import RegistryServer, start_registry  # noqa: E402

SEQUENTIAL_TARGET = 0.8
CONCURRENT_TARGET = 1.1
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
    """(d): the smoke edge alone, the three images on threads as the pipeline runs them."""
    spec = RunSpec(args=("--version",), timeout=30.0)

    def one(image: ImageFacts) -> None:
        evidence = smoke_image(image, spec)
        if any(r.result is None or r.result.exit_code != 0 for r in evidence.runs):
            raise RuntimeError(f"smoke of {image.name} did not exit 0: {evidence}")

    start = time.perf_counter()
    parallel_map(one, list(facts), len(facts))
    return time.perf_counter() - start


def by_hand_sequential(docker: str, refs: Sequence[str]) -> float:
    """(b): pull then run, image after image (the seed's hand procedure)."""
    spent = 0.0
    for ref in refs:
        spent += run([docker, "pull", "-q", ref])
        spent += run([docker, "run", "--rm", *LOCKDOWN_FLAGS, ref, "--version"])
    return spent


def by_hand_concurrent(docker: str, refs: Sequence[str]) -> float:
    """(c): the same commands, one `pull && run` chain per image, all three started at once."""
    chains = [
        shlex.join([docker, "pull", "-q", ref])
        + " && "
        + shlex.join([docker, "run", "--rm", *LOCKDOWN_FLAGS, ref])
        + " --version"
        for ref in refs
    ]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(["sh", "-c", chain], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=run_env())
        for chain in chains
    ]
    failed = [(p.wait(), p.stderr.read() if p.stderr else b"") for p in procs]
    elapsed = time.perf_counter() - start
    for code, err in failed:
        if code != 0:
            raise RuntimeError(f"a concurrent pull && run exited {code}: {err.decode(errors='replace')[:400]}")
    return elapsed


@dataclass(frozen=True)
class Sample:
    imgcheck: float
    imgcheck_jobs3: float
    sequential: float
    concurrent: float
    rmi: float
    engine_phase: float


def one_round(verify: list[str], docker: str, refs: Sequence[str], facts: Sequence[ImageFacts], turn: int) -> Sample:
    """Every measurement once, cold, starting with a different one each round (the page cache and the
    engine's state favour whatever runs later)."""
    times: dict[str, float] = {}

    def cold(name: str, measure: Callable[[], float]) -> Callable[[], None]:
        def go() -> None:
            make_cold(docker, refs)
            times[name] = measure()
            if name == "sequential":
                times["rmi"] = sum(run([docker, "rmi", ref]) for ref in refs)

        return go

    steps = [
        cold("imgcheck", lambda: run(verify)),
        cold("imgcheck_jobs3", lambda: run([*verify, "--jobs", "3"])),
        cold("sequential", lambda: by_hand_sequential(docker, refs)),
        cold("concurrent", lambda: by_hand_concurrent(docker, refs)),
        cold("engine_phase", lambda: engine_phase(facts)),
    ]
    for step in steps[turn % len(steps) :] + steps[: turn % len(steps)]:
        step()
    return Sample(**times)


def measure(reps: int, layer_mbs: Sequence[int]) -> None:
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError("the docker CLI is not installed (apt-get install docker.io)")
    engine = ensure_engine()
    os.environ["DOCKER_HOST"] = engine.docker_host
    ncpu = int(subprocess.run([docker, "info", "-f", "{{.NCPU}}"], capture_output=True, text=True, check=True).stdout)
    try:
        for layer_mb in layer_mbs:
            workdir = Path(tempfile.mkdtemp(prefix="imgcheck-smoke-bench-"))
            registry = start_registry(workdir / "registry")
            try:
                refs = publish(registry, layer_mb * 1_000_000)
                policy = workdir / "smoke-policy.yaml"
                policy.write_text(SMOKE_POLICY)
                verify = [*imgcheck_base(), "verify", "latest", "--quiet", "--format", "json"]
                verify += ["--registry", registry.host, "--policy", str(policy)]
                before = set(engine_images(docker))
                run(verify)  # warm the page cache and check that the verify passes (exit 0)
                if set(engine_images(docker)) != before:
                    raise RuntimeError("imgcheck left images behind in the engine")
                startup = statistics.median(run([*imgcheck_base(), "--version"]) for _ in range(3))
                facts = gather_facts(refs)
                samples = [one_round(verify, docker, refs, facts, turn) for turn in range(reps)]
                report(samples, startup, layer_mb, ncpu)
            finally:
                registry.stop()
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        engine.stop()


def report(samples: Sequence[Sample], startup: float, layer_mb: int, ncpu: int) -> None:
    def median(field: str) -> float:
        return statistics.median(getattr(s, field) for s in samples)

    ours, ours3, phase = median("imgcheck"), median("imgcheck_jobs3"), median("engine_phase")
    sequential, concurrent, rmi = median("sequential"), median("concurrent"), median("rmi")
    default_jobs = min(3, max(ncpu, MIN_ENGINE_JOBS))  # what imgcheck picks for 3 images (engine_jobs)
    rows = [
        (f"imgcheck verify (smoke + size, 3 images, {layer_mb} MB layer each), --jobs {default_jobs} (default)", ours),
        ("imgcheck verify, --jobs 3", ours3),
        ("  engine phase alone (3 threads: pull, run, remove; in-process)", phase),
        ("  (imgcheck --version, the start-up floor)", startup),
        ("docker pull + docker run --rm --version, one image after another", sequential),
        ("the same, three pull && run chains at once", concurrent),
        ("docker rmi x3 (cleanup the hand runs leave to you)", rmi),
    ]
    width = max(len(r[0]) for r in rows) + 2
    print(f"{layer_mb} MB per image, engine with {ncpu} CPUs, median of {len(samples)} rounds")
    print(f"{'metric':<{width}}{'value':>10}")
    for metric, seconds in rows:
        print(f"{metric:<{width}}{seconds:>8.3f} s")

    def ratio(label: str, value: float, target: float | None) -> None:
        verdict = f"  <= {target:g}: {'met' if value <= target else 'MISSED'}" if target else ""
        print(f"{label:<{width}}{value:>10.3f}{verdict}")

    ratio("ratio imgcheck / sequential by hand", ours / sequential, SEQUENTIAL_TARGET)
    ratio("ratio imgcheck / concurrent by hand", ours / concurrent, CONCURRENT_TARGET)
    ratio("ratio imgcheck --jobs 3 / sequential by hand", ours3 / sequential, SEQUENTIAL_TARGET)
    ratio("ratio imgcheck --jobs 3 / concurrent by hand", ours3 / concurrent, CONCURRENT_TARGET)
    ratio("ratio imgcheck --jobs 3 / (concurrent by hand + its rmi)", ours3 / (concurrent + rmi), None)
    ratio("ratio concurrent / sequential by hand", concurrent / sequential, None)
    ratio("ratio engine phase / concurrent by hand", phase / concurrent, None)
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="timed rounds (default: %(default)s)")
    parser.add_argument(
        "--layer-mb", type=int, nargs="+", default=[30, 150], help="big layer per image, MB (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        measure(max(1, args.reps), [max(1, mb) for mb in args.layer_mb])
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"bench/smoke.py: could not measure: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
