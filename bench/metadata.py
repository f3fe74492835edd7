#!/usr/bin/env python3
"""Benchmark: imgcheck answers metadata rules from manifests and configs, never from layers.

Three k2 images with ~30 MB incompressible layers in a local registry. Measures, in one run:
  (a) bytes the registry served during `imgcheck verify --no-smoke` over the images' total bytes
      (target <= 0.001: no layer is ever downloaded);
  (b) wall time of that verify over `skopeo inspect` of the same three images (the peer that reads
      the same manifest and config), median of a few repetitions (target <= 2).
Also shown, to say where the time goes: the requests the registry answered (its JSON log; tags still
on the verified digest cost a 304), and the time a Python takes to start and import what the verify imports.

    python bench/metadata.py [--reps 21] [--layer-mb 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from bench._installed import imgcheck_base, run_env  # noqa: E402
from bench._registry import children_cpu, registry_cpu, requests_served  # noqa: E402
from fixtures.images import data_layer  # noqa: E402
from fixtures.k2 import K2_NAMES, PREVIOUS, push_k2_image, repository  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import RegistryServer, start_registry  # noqa: E402

DEPS_FLOOR = "import typer, yaml, http.client, json, hashlib, threading, datetime, packaging.version"
FAST_EXIT = "; import gc; gc.freeze()"
"""The floors exit as imgcheck does (live objects frozen, so the interpreter's exit skips collecting them):
otherwise a floor would carry ~7 ms of exit work that imgcheck itself no longer pays."""
BYTES_TARGET = 0.001
TIME_TARGET = 2.0
METADATA_POLICY = """\
version: 1
registry: 127.0.0.1:5000
images:
  - {name: producer, repository: rjdscott/k2-market-data-platform-producer}
  - {name: consumer, repository: rjdscott/k2-market-data-platform-consumer}
  - {name: query-engine, repository: rjdscott/k2-market-data-platform-query-engine}
rules:
  size: {max_compressed: 500MB}
  labels:
    required: [org.opencontainers.image.source, org.opencontainers.image.revision, org.opencontainers.image.created]
    match: {org.opencontainers.image.revision: '[0-9a-f]{40}'}
    created_not_in_future: true
  tags: {required: ['main-[0-9a-f]{7}'], latest_is_newest: true}
  config: {non_root: true, healthcheck: true, forbid_env: ['(?i).*(secret|token|password).*']}
  platforms: {required: [linux/amd64]}
"""


def publish(registry: RegistryServer, layer_bytes: int) -> int:
    """Push the previous and current release with one big layer each; the current images' total bytes."""
    pusher = Pusher(registry.host)
    total = 0
    for name in K2_NAMES:
        big = data_layer(f"/opt/k2/{name}/model.bin", layer_bytes, seed=f"bench-{name}".encode())
        repo = repository(name)
        push_k2_image(pusher, repo, name=name, build=PREVIOUS, tags=(f"main-{PREVIOUS.sha7}",), extra_layers=[big])
        image = push_k2_image(pusher, repo, name=name, extra_layers=[big])
        total += sum(image.compressed_sizes.values())
    return total


def settled_bytes(registry: RegistryServer) -> int:
    """The registry's served-bytes count once its log stops growing (it logs after each response)."""
    last = registry.bytes_served()
    for _ in range(20):
        time.sleep(0.05)
        now = registry.bytes_served()
        if now == last:
            return now
        last = now
    return last


def import_command(cmd: Sequence[str]) -> list[str]:
    """A Python that only starts and imports what `cmd` imports (found with Python's import profiler),
    so its time is the floor under `cmd` before any request: interpreter start-up plus imports."""
    env = {**run_env(), "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, env=env)
    modules = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        top_level = len(parts) == 3 and parts[2].startswith(" ") and not parts[2].startswith("  ")
        if line.startswith("import time:") and top_level and parts[1].strip().isdigit():
            modules.append(parts[2].strip())
    return [sys.executable, "-c", "import " + ", ".join(modules or ["sys"]) + FAST_EXIT]


@dataclass
class CpuTally:
    """CPU spent by the timed commands themselves and by the registry while they ran, summed over runs."""

    client: float = 0.0
    server: float = 0.0
    runs: int = 0

    def add(self, registry: RegistryServer, run: Callable[[], float]) -> float:
        client, server = children_cpu(), registry_cpu(registry) or 0.0
        elapsed = run()
        self.client += children_cpu() - client
        self.server += (registry_cpu(registry) or 0.0) - server
        self.runs += 1
        return elapsed

    def per_run(self) -> tuple[float, float]:
        return self.client / max(1, self.runs), self.server / max(1, self.runs)


def timed(cmd: Sequence[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False, env=run_env())
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {done.returncode}: {done.stderr.strip()[:400]}")
    return elapsed


def imgcheck_command(host: str, policy: Path) -> list[str]:
    base = imgcheck_base()
    return [*base, "verify", "latest", "--no-smoke", "--quiet", "--registry", host, "--policy", str(policy)]


def skopeo_commands(host: str) -> list[list[str]]:
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise RuntimeError("skopeo is not installed: apt-get install skopeo")
    return [
        [skopeo, "inspect", "--tls-verify=false", f"docker://{host}/{repository(name)}:latest"] for name in K2_NAMES
    ]


def measure(reps: int, layer_mb: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="imgcheck-bench-"))
    registry = start_registry(workdir / "registry")
    try:
        total = publish(registry, layer_mb * 1_000_000)
        policy = workdir / "metadata-policy.yaml"
        policy.write_text(METADATA_POLICY)
        verify = imgcheck_command(registry.host, policy)
        peers = skopeo_commands(registry.host)

        before = settled_bytes(registry)
        asked = requests_served(registry)
        timed(verify)
        served = settled_bytes(registry) - before
        asked = requests_served(registry) - asked
        before = settled_bytes(registry)
        for cmd in peers:
            timed(cmd)
        peer_served = settled_bytes(registry) - before

        floor_cmd = [*verify[: verify.index("verify")], "--version"]
        imports_cmd = import_command(verify)
        deps_cmd = [sys.executable, "-c", DEPS_FLOOR + FAST_EXIT]
        ours, theirs, floor, imports, deps = [], [], [], [], []
        our_cpu, their_cpu = CpuTally(), CpuTally()
        for _ in range(reps):
            ours.append(our_cpu.add(registry, lambda: timed(verify)))
            theirs.append(their_cpu.add(registry, lambda: sum(timed(cmd) for cmd in peers)))
            floor.append(timed(floor_cmd))
            imports.append(timed(imports_cmd))
            deps.append(timed(deps_cmd))
        medians = Medians(
            statistics.median(ours),
            statistics.median(theirs),
            statistics.median(floor),
            statistics.median(imports),
            statistics.median(deps),
            reps,
            our_cpu.per_run(),
            their_cpu.per_run(),
        )
        report(total, served, peer_served, medians, asked)
    finally:
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class Medians:
    verify: float
    skopeo: float
    startup: float
    """`imgcheck --version`: interpreter start and CLI import, the floor under any imgcheck run."""
    imports: float
    """Python start-up plus every module the verify imports (typer, PyYAML, http.client, the rules...),
    nothing else: paid before the first request."""
    deps: float
    """Python start-up plus only the chosen libraries and stdlib modules any such CLI needs (DEPS_FLOOR):
    what a Python tool built on these dependencies pays before its own code runs."""
    reps: int
    verify_cpu: tuple[float, float]
    """Mean CPU seconds per verify: (the imgcheck process, the registry answering it)."""
    skopeo_cpu: tuple[float, float]
    """Mean CPU seconds per three skopeo runs: (the skopeo processes, the registry answering them)."""


def report(total: int, served: int, peer_served: int, t: Medians, asked: Counter[str]) -> None:
    ratio_bytes = served / total
    ratio_time = t.verify / t.skopeo
    rows = [
        ("image bytes (3 images, config + layers)", f"{total:,} B", ""),
        ("served to imgcheck verify --no-smoke", f"{served:,} B", ""),
        ("served to skopeo inspect x3 (peer)", f"{peer_served:,} B", ""),
        (
            "bytes ratio (imgcheck / image bytes)",
            f"{ratio_bytes:.6f}",
            _verdict(ratio_bytes <= BYTES_TARGET, BYTES_TARGET),
        ),
        ("requests answered for imgcheck verify", ", ".join(f"{k}: {v}" for k, v in sorted(asked.items())), ""),
        (f"imgcheck verify, median of {t.reps}", f"{t.verify:.3f} s", ""),
        ("  of which imgcheck --version (startup floor)", f"{t.startup:.3f} s", ""),
        ("  of which start-up + the verify's imports", f"{t.imports:.3f} s", ""),
        ("  of which start-up + chosen libraries only", f"{t.deps:.3f} s", ""),
        (f"skopeo inspect x3, median of {t.reps}", f"{t.skopeo:.3f} s", ""),
        ("time ratio (imgcheck / skopeo x3)", f"{ratio_time:.2f}", _verdict(ratio_time <= TIME_TARGET, TIME_TARGET)),
        ("  start-up + imports / skopeo x3 (the floor)", f"{t.imports / t.skopeo:.2f}", ""),
        ("  verify without its imports / skopeo x3", f"{(t.verify - t.imports) / t.skopeo:.2f}", ""),
        ("  start-up + chosen libraries / skopeo x3", f"{t.deps / t.skopeo:.2f}", ""),
        ("  imgcheck's own part (verify - that) / skopeo x3", f"{(t.verify - t.deps) / t.skopeo:.2f}", ""),
        ("CPU per imgcheck verify: client / registry", _cpu(t.verify_cpu), ""),
        ("CPU per skopeo inspect x3: client / registry", _cpu(t.skopeo_cpu), ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'value':>16}  target")
    for metric, value, target in rows:
        print(f"{metric:<{width}}  {value:>16}  {target}")


def _cpu(pair: tuple[float, float]) -> str:
    return f"{pair[0] * 1000:.0f} / {pair[1] * 1000:.0f} ms"


def _verdict(ok: bool, target: float) -> str:
    return f"<= {target:g}: {'met' if ok else 'MISSED'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=21, help="timed repetitions, interleaved (default: %(default)s)")
    parser.add_argument("--layer-mb", type=int, default=30, help="big layer per image, MB (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        measure(max(1, args.reps), max(1, args.layer_mb))
    except (RuntimeError, OSError) as exc:
        print(f"bench/metadata.py: could not measure: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
