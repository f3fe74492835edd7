#!/usr/bin/env python3
"""Benchmark: `imgcheck audit` over 3 repositories x 300 tags (100 digests each) in a local registry.

Measures, in one run, with the metadata rules of the k2 policy (no smoke, as the nightly audit runs):
  (a) warm / cold: the second audit against the same history (manifests and configs cached by digest,
      tags re-listed and re-resolved, every rule re-evaluated) over the first (target <= 0.1);
  (b) linearity: cold time for 300 tags per repository over cold time for 30 (target <= 12).

The drift contract makes every run resolve every tag (a release tag that moved is a failure), so
it also measures that floor in the same run: revalidating every tag once (`If-None-Match`, a 304 per
unmoved tag), and the registry's requests per run from its JSON log. So that the floor is not just
imgcheck's client judging itself, the same work is also done by curl (`--parallel`, keep-alive, the same
`Accept` and `If-None-Match` headers, from a generated config file): what any client must spend.

    python bench/audit.py [--digests 100] [--reps 3] [--curl-parallel 8]
    python bench/audit.py --digests 333        # 3 x 1,000 tags

Build times count up one hour apart from 2025-01-01, so they are never in the future however many
digests are published (the policy's `created_not_in_future` must pass: the audit must exit 0).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from bench._registry import children_cpu, registry_cpu, requests_served  # noqa: E402
from fixtures.images import FileEntry, ImageConfig, build_layer, push_image  # noqa: E402
from imgcheck.audit.cache import CachingClient  # noqa: E402
from imgcheck.audit.command import run_audit  # noqa: E402
from imgcheck.audit.inventory import is_attachment_tag, take_snapshot  # noqa: E402
from imgcheck.audit.store import HistoryStore  # noqa: E402
from imgcheck.checks.interface import VerifyOptions  # noqa: E402
from imgcheck.policy.loader import load_policy  # noqa: E402
from imgcheck.registry.client import ACCEPT_MANIFESTS  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import RegistryServer, start_registry  # noqa: E402

WARM_TARGET = 0.1
LINEAR_TARGET = 12.0
POLICY = """\
version: 1
registry: 127.0.0.1:5000
images:
{images}
rules:
  size: {{max_compressed: 500MB}}
  labels:
    required: [org.opencontainers.image.source, org.opencontainers.image.revision]
    match: {{org.opencontainers.image.revision: '[0-9a-f]{{40}}'}}
    created_not_in_future: true
  tags: {{required: ['v?\\d+\\.\\d+\\.\\d+', 'sha-[0-9a-f]{{7}}'], latest_is_highest: true}}
  config: {{non_root: true, forbid_env: ['(?i).*(secret|token|password).*']}}
  platforms: {{required: [linux/amd64]}}
"""


ORIGIN = datetime(2025, 1, 1, tzinfo=UTC)
"""Build times count up from here, one hour apart: in the past however many digests (a year is 8,760),
newest last, and the same every run (so the digests are too)."""


def created_at(i: int) -> str:
    """The i-th build's `created`: never in the future (the policy checks `created_not_in_future`)."""
    return (ORIGIN + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(pusher: Pusher, repo: str, digests: int) -> None:
    """`digests` tiny releases, three tags each (`vX.Y.Z`, `sha-<7>`, `main-<7>`), `latest` on the newest."""
    for i in range(digests):
        revision = hashlib.sha1(f"{repo}-{i}".encode()).hexdigest()
        layer = build_layer({"app/version": FileEntry(f"{repo} {i}\n".encode())})
        config = ImageConfig(
            created=created_at(i),
            labels={
                "org.opencontainers.image.source": "https://github.com/rjdscott/k2-market-data-platform",
                "org.opencontainers.image.revision": revision,
            },
        )
        tags = [f"v1.{i // 10}.{i % 10}", f"sha-{revision[:7]}", f"main-{revision[:7]}"]
        if i == digests - 1:
            tags.append("latest")
        push_image(pusher, repo, [layer], config, tags)


def audit_seconds(policy_path: Path, host: str, history: Path) -> float:
    policy = load_policy(policy_path)
    options = VerifyOptions(registry_override=host, no_smoke=True, timeout=1800)
    start = time.perf_counter()
    code = run_audit(policy, options, history=history, output_format="json", out=io.StringIO())
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"bench audit exited {code}; the bench images should pass")
    return elapsed


def snapshot_seconds(host: str, repos: list[str], history: Path) -> tuple[float, float]:
    """The floor under any audit run: list and revalidate every tag once, as the warm run does first.
    Wall seconds, and the CPU seconds this process (imgcheck's client) spent over the same span."""
    store = HistoryStore.open(history)
    try:
        known = store.last_tags()
        client = CachingClient(store, timeout=1800)
        start, cpu = time.perf_counter(), time.process_time()
        for repo in repos:
            held = client.held_manifests(known.get(image_name(repo), {}))
            take_snapshot(client, host, repo, held=held)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        client.close()
    finally:
        store.close()
    return elapsed, cpu


@dataclass(frozen=True)
class CurlFloor:
    """The floor done by curl: wall time, curl's CPU, the registry's CPU, and the answers' status codes."""

    seconds: float
    curl_cpu: float
    registry_cpu: float | None
    statuses: Counter[str]


def curl_floor(registry: RegistryServer, repos: list[str], history: Path, work: Path, parallel: int) -> CurlFloor:
    """List every repository's tags, then ask for every release/build tag once, with the headers imgcheck
    sends (`If-None-Match` with the digest last night's history recorded, when there is one): two curl
    runs over generated config files, `parallel` transfers at a time on keep-alive connections. The
    timing includes starting curl twice and writing its config; imgcheck's in-process floor has neither."""
    store = HistoryStore.open(history)
    try:
        known = store.last_tags()
    finally:
        store.close()
    base = f"http://{registry.host}/v2"
    lists = [work / f"curl-tags-{n}.json" for n in range(len(repos))]
    list_config = work / "curl-list.cfg"
    list_config.write_text(
        "\nnext\n".join(
            f'url = "{base}/{repo}/tags/list"\noutput = "{out}"' for repo, out in zip(repos, lists, strict=True)
        )
        + "\n"
    )
    ask_config = work / "curl-revalidate.cfg"
    cpu_before = children_cpu()
    registry_before = registry_cpu(registry)
    start = time.perf_counter()
    _curl(list_config, parallel)
    blocks = []
    for repo, listed in zip(repos, lists, strict=True):
        last = known.get(image_name(repo), {})
        for tag in json.loads(listed.read_text())["tags"]:
            if is_attachment_tag(tag):
                continue
            headers = [f"Accept: {ACCEPT_MANIFESTS}"]
            if tag in last:
                headers.append(f'If-None-Match: \\"{last[tag]}\\"')
            blocks.append(
                f'url = "{base}/{repo}/manifests/{tag}"\n'
                + "".join(f'header = "{h}"\n' for h in headers)
                + 'output = "/dev/null"\nwrite-out = "%{http_code}\\n"'
            )
    ask_config.write_text("\nnext\n".join(blocks) + "\n")
    answers = _curl(ask_config, parallel)
    elapsed = time.perf_counter() - start
    registry_after = registry_cpu(registry)
    server = None if registry_before is None or registry_after is None else registry_after - registry_before
    return CurlFloor(elapsed, children_cpu() - cpu_before, server, Counter(answers.split()))


def _curl(config: Path, parallel: int) -> str:
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--parallel", "--parallel-max", str(parallel), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"curl exited {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def settled(registry: RegistryServer) -> Counter[str]:
    last = requests_served(registry)
    for _ in range(20):
        time.sleep(0.05)
        now = requests_served(registry)
        if now == last:
            break
        last = now
    return last


def image_name(repo: str) -> str:
    return repo.rsplit("/", 1)[-1]


def write_policy(path: Path, repos: list[str]) -> Path:
    images = "\n".join(f"  - {{name: {image_name(r)}, repository: {r}}}" for r in repos)
    path.write_text(POLICY.format(images=images))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=100, help="digests per repository (3 tags each)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument(
        "--curl-parallel", type=int, default=8, help="curl's --parallel-max for the peer floor (imgcheck uses 8)"
    )
    args = parser.parse_args(argv)
    curl = shutil.which("curl")
    with tempfile.TemporaryDirectory(prefix="imgcheck-bench-audit-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            pusher = Pusher(registry.host)
            big = [f"bench/big-{n}" for n in range(3)]
            small = [f"bench/small-{n}" for n in range(3)]
            start = time.perf_counter()
            for repo in big:
                publish(pusher, repo, args.digests)
            for repo in small:
                publish(pusher, repo, args.digests // 10)
            print(
                f"published 3 x {args.digests * 3 + 1} and 3 x {args.digests // 10 * 3 + 1} tags "
                f"in {time.perf_counter() - start:.1f} s"
            )
            big_policy = write_policy(work / "big.yaml", big)
            small_policy = write_policy(work / "small.yaml", small)
            colds, warms, smalls, floors, floor_cpus, floor_registry_cpus = [], [], [], [], [], []
            curls: list[CurlFloor] = []
            seen: dict[str, Counter[str]] = {}
            for rep in range(args.reps):
                history = work / f"big-{rep}.sqlite"
                before = settled(registry)
                colds.append(audit_seconds(big_policy, registry.host, history))
                middle = settled(registry)
                warms.append(audit_seconds(big_policy, registry.host, history))
                after = settled(registry)
                seen = {"cold": middle - before, "warm": after - middle}
                server_start = registry_cpu(registry)
                floor, floor_cpu = snapshot_seconds(registry.host, big, history)
                server_end = registry_cpu(registry)
                floors.append(floor)
                floor_cpus.append(floor_cpu)
                if server_start is not None and server_end is not None:
                    floor_registry_cpus.append(server_end - server_start)
                if curl:
                    curls.append(curl_floor(registry, big, history, work, args.curl_parallel))
                smalls.append(audit_seconds(small_policy, registry.host, work / f"small-{rep}.sqlite"))
        finally:
            registry.stop()
    cold, warm, cold_small = statistics.median(colds), statistics.median(warms), statistics.median(smalls)
    floor = statistics.median(floors)
    ratio, linear = warm / cold, cold / cold_small
    tags = args.digests * 3 + 1
    print(f"cold audit, 3 x {tags} tags: {cold:.2f} s (median of {args.reps})")
    print(f"warm audit, same history:     {warm:.2f} s")
    print(f"  floor: list + revalidate every tag once: {floor:.2f} s ({floor / cold:.2f} of cold)")
    server = f", the registry's {statistics.median(floor_registry_cpus):.2f} s" if floor_registry_cpus else ""
    print(f"    imgcheck's CPU: {statistics.median(floor_cpus):.2f} s{server}")
    if curls:
        by_curl = statistics.median(c.seconds for c in curls)
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(curls[-1].statuses.items()))
        print(
            f"  the same by curl (--parallel-max {args.curl_parallel}, keep-alive): {by_curl:.2f} s"
            f" ({by_curl / cold:.2f} of cold; answers {statuses})"
        )
        registry_cpus = [c.registry_cpu for c in curls if c.registry_cpu is not None]
        server = f", the registry's {statistics.median(registry_cpus):.2f} s" if registry_cpus else ""
        print(f"    curl's CPU: {statistics.median(c.curl_cpu for c in curls):.2f} s{server}")
    else:
        print("  the same by curl: skipped (no curl on PATH)")
    print(f"  warm above that floor: {warm - floor:.2f} s ({(warm - floor) / cold:.3f} of cold)")
    if curls:
        above = (warm - statistics.median(c.seconds for c in curls)) / cold
        verdict = "OK" if above <= WARM_TARGET else "MISSED"
        print(f"warm - curl floor = {above:.3f} of cold (target <= {WARM_TARGET}) {verdict}")
    for run, counts in seen.items():
        print(
            f"requests, {run} run: {sum(counts.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})"
        )
    print(f"cold audit, 3 x {args.digests // 10 * 3 + 1} tags:  {cold_small:.2f} s")
    print(f"warm/cold = {ratio:.3f} (target <= {WARM_TARGET}) {'OK' if ratio <= WARM_TARGET else 'MISSED'}")
    verdict = "OK" if linear <= LINEAR_TARGET else "MISSED"
    print(f"cold({tags})/cold({args.digests // 10 * 3 + 1}) = {linear:.1f} (target <= {LINEAR_TARGET}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
