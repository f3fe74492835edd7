#!/usr/bin/env python3
"""Benchmark: `imgcheck audit` over 3 repositories x 300 tags (100 digests each) in a local registry.

Measures, in one run, with the metadata rules of the k2 policy (no smoke, as the nightly audit runs):
  (a) warm / cold: the second audit against the same history (manifests and configs cached by digest,
      tags re-listed and re-resolved, every rule re-evaluated) over the first (target <= 0.1);
  (b) linearity: cold time for 300 tags per repository over cold time for 30 (target <= 12).

The drift contract makes every run resolve every tag (a release tag that moved is a failure), so
it also measures that floor in the same run: revalidating every tag once (`If-None-Match`, a 304 per
unmoved tag), and the registry's requests per run from its JSON log.

    python bench/audit.py [--digests 100] [--reps 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures

from fixtures.images import FileEntry, ImageConfig, build_layer, push_image  # noqa: E402
from imgcheck.audit.cache import CachingClient  # noqa: E402
from imgcheck.audit.command import run_audit  # noqa: E402
from imgcheck.audit.inventory import take_snapshot  # noqa: E402
from imgcheck.audit.store import HistoryStore  # noqa: E402
from imgcheck.checks.interface import VerifyOptions  # noqa: E402
from imgcheck.policy.loader import load_policy  # noqa: E402
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


def publish(pusher: Pusher, repo: str, digests: int) -> None:
    """`digests` tiny releases, three tags each (`vX.Y.Z`, `sha-<7>`, `main-<7>`), `latest` on the newest."""
    for i in range(digests):
        revision = hashlib.sha1(f"{repo}-{i}".encode()).hexdigest()
        layer = build_layer({"app/version": FileEntry(f"{repo} {i}\n".encode())})
        config = ImageConfig(
            created=f"2026-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
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


def snapshot_seconds(host: str, repos: list[str], history: Path) -> float:
    """The floor under any audit run: list and revalidate every tag once, as the warm run does first."""
    store = HistoryStore.open(history)
    try:
        known = store.last_tags()
        client = CachingClient(store, timeout=1800)
        start = time.perf_counter()
        for repo in repos:
            held = client.held_manifests(known.get(image_name(repo), {}))
            take_snapshot(client, host, repo, held=held)
        elapsed = time.perf_counter() - start
        client.close()
    finally:
        store.close()
    return elapsed


def requests_served(registry: RegistryServer) -> Counter[str]:
    """Requests by `METHOD status` from the registry's JSON log (it logs after each response)."""
    counts: Counter[str] = Counter()
    for line in registry.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "http.request.method" in entry and "http.response.status" in entry:
            counts[f"{entry['http.request.method']} {entry['http.response.status']}"] += 1
    return counts


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
    args = parser.parse_args(argv)
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
            colds, warms, smalls, floors = [], [], [], []
            seen: dict[str, Counter[str]] = {}
            for rep in range(args.reps):
                history = work / f"big-{rep}.sqlite"
                before = settled(registry)
                colds.append(audit_seconds(big_policy, registry.host, history))
                middle = settled(registry)
                warms.append(audit_seconds(big_policy, registry.host, history))
                after = settled(registry)
                seen = {"cold": middle - before, "warm": after - middle}
                floors.append(snapshot_seconds(registry.host, big, history))
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
    print(f"  warm above that floor: {warm - floor:.2f} s ({(warm - floor) / cold:.3f} of cold)")
    for run, counts in seen.items():
        print(
            f"requests, {run} run: {sum(counts.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})"
        )
    print(f"cold audit, 3 x {args.digests // 10 * 3 + 1} tags:  {cold_small:.2f} s")
    print(f"warm/cold = {ratio:.3f} (target <= {WARM_TARGET}) {'OK' if ratio <= WARM_TARGET else 'MISSED'}")
    verdict = "OK" if linear <= LINEAR_TARGET else "MISSED"
    print(f"cold(300)/cold(30) = {linear:.1f} (target <= {LINEAR_TARGET}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
