"""Faults x outcome: imgcheck and `skopeo inspect --retry-times 3`, side by side, through the same fault proxy.

Starts a real docker-registry and the test suite's fault proxy (tests/faultproxy.py) on loopback,
pushes one busybox image, then for each fault runs both tools against the proxy and prints a
Markdown table (recorded in bench/RELIABILITY.md). Run: `python bench/reliability.py`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from faultproxy import Fault, FaultProxy  # noqa: E402

from fixtures.images import ImageConfig, busybox_base_layer, push_image, script_layer  # noqa: E402
from imgcheck.testing.push import Pusher  # noqa: E402
from imgcheck.testing.registry_server import free_port, start_registry  # noqa: E402

REPO = "bench/app"
MANIFEST = r"/v2/bench/app/manifests/latest$"
BLOB = r"/v2/bench/app/blobs/"
DEADLINE = 10
TOOL_CAP = 60.0
"""Wall-clock cap on either tool per scenario; the proxy's own stalls last 180 s."""
POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: app
    repository: bench/app
rules:
  size:
    max_compressed: 50MB
  config:
    non_root: true
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: Callable[[], list[Fault]]
    dead: bool = False


SCENARIOS = [
    Scenario("no fault", lambda: []),
    Scenario("2 x 503 on the manifest", lambda: [Fault("status", MANIFEST, count=2)]),
    Scenario("3 x 503 on the manifest", lambda: [Fault("status", MANIFEST, count=3)]),
    Scenario("2 x 429 Retry-After: 1", lambda: [Fault("status", MANIFEST, count=2, status=429, retry_after="1")]),
    Scenario("2 x connection reset mid-body (manifest)", lambda: [Fault("reset", MANIFEST, count=2)]),
    Scenario("1 x truncated body (manifest)", lambda: [Fault("truncate", MANIFEST, count=1)]),
    Scenario("1 x truncated body (config blob)", lambda: [Fault("truncate", BLOB, count=1)]),
    Scenario("2 x connection reset (config blob)", lambda: [Fault("reset", BLOB, count=2)]),
    Scenario("503 on every request", lambda: [Fault("status", "/v2/", count=-1)]),
    Scenario("accepts, never answers", lambda: [Fault("hang", MANIFEST, count=-1)]),
    Scenario("body that never ends (1 byte / 0.2 s)", lambda: [Fault("endless", MANIFEST, count=-1)]),
    Scenario("307 of blobs to another host", lambda: [Fault("redirect", BLOB, count=-1)]),
    Scenario(
        "tag moves after the first GET",
        lambda: [Fault("swap", MANIFEST, skip=1, count=-1, target="/v2/bench/app/manifests/other")],
    ),
    Scenario("bit flipped in the config blob", lambda: [Fault("flip", BLOB, count=-1)]),
    Scenario("bit flipped in the manifest (digest header kept)", lambda: [Fault("flip", MANIFEST, count=-1)]),
    Scenario("registry down (connection refused)", lambda: [], dead=True),
]


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int | None, str, str, float]:
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_CAP, env=env)
    except subprocess.TimeoutExpired:
        return None, "", "", time.monotonic() - started
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def imgcheck(host: str, policy: Path) -> str:
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": "/nonexistent"}
    code, out, err, took = run(
        [
            sys.executable,
            "-m",
            "imgcheck",
            "verify",
            "latest",
            "--registry",
            host,
            "--policy",
            str(policy),
            "--format",
            "json",
            "--timeout",
            str(DEADLINE),
        ],
        env,
    )
    if code is None:
        return f"**hung** (killed at {TOOL_CAP:.0f} s)"
    reason = ""
    try:
        (image,) = json.loads(out)["images"]
        reason = image.get("error") or image["verdict"]
    except (ValueError, KeyError):
        reason = err.strip().splitlines()[-1] if err.strip() else ""
    return f"exit {code} in {took:.1f} s: {_short(reason)}"


def skopeo(host: str) -> str:
    code, _out, err, took = run(
        ["skopeo", "inspect", "--tls-verify=false", "--retry-times", "3", f"docker://{host}/{REPO}:latest"]
    )
    if code is None:
        return f"**hung** (killed at {TOOL_CAP:.0f} s)"
    last = err.strip().splitlines()[-1] if err.strip() else ""
    last = re.sub(r'^time="[^"]*" level=\w+ msg="', "", last).removesuffix('"')
    last = re.sub(r'^Error parsing image name \\"[^\\]*\\": ', "", last)
    reason = "ok" if code == 0 else last
    return f"exit {code} in {took:.1f} s: {_short(reason)}"


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> None:
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed (apt-get install skopeo)")
    with tempfile.TemporaryDirectory() as tmp:
        registry = start_registry(Path(tmp) / "registry")
        try:
            pusher = Pusher(registry.host)
            layers = [busybox_base_layer(), script_layer("usr/local/bin/app", "#!/bin/sh\necho app\n")]
            push_image(pusher, REPO, layers, ImageConfig(entrypoint=["/usr/local/bin/app"]), tags=("latest",))
            push_image(pusher, REPO, layers, ImageConfig(entrypoint=["/bin/sh"]), tags=("other",))
            policy = Path(tmp) / "imgcheck.yaml"
            policy.write_text(POLICY)
            print(f"| fault | imgcheck verify (--timeout {DEADLINE}) | skopeo inspect --retry-times 3 |")
            print("|---|---|---|")
            with FaultProxy(registry.host) as proxy:
                for scenario in SCENARIOS:
                    host = f"127.0.0.1:{free_port()}" if scenario.dead else proxy.host
                    with proxy.faults(*scenario.faults()):
                        ours = imgcheck(host, policy)
                    with proxy.faults(*scenario.faults()):
                        theirs = skopeo(host)
                    print(f"| {scenario.name} | {ours} | {theirs} |", flush=True)
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
