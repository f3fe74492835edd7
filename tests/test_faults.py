"""imgcheck through a misbehaving network: the fault proxy between the CLI and the real registry.

Transient faults are retried and the run passes as if nothing happened; a hung or dead registry
ends at the `--timeout` deadline with exit 2; tampered bytes are exit 2, never a verdict; a tag
that moves mid-run changes nothing; one broken image does not stop the others being verified.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy

from fixtures.images import ImageConfig, Pushed, busybox_base_layer, push_image, script_layer
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, free_port

LABELS = {"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567"}
POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: app
    repository: faults/app
  - name: web
    repository: faults/web
  - name: moving
    repository: faults/moving
rules:
  size:
    max_compressed: 50MB
  labels:
    required: [org.opencontainers.image.revision]
  config:
    non_root: true
  tags:
    required: ['latest']
"""
APP_LATEST = r"/v2/faults/app/manifests/latest$"
SLACK = 6.0
"""Seconds past `--timeout` a run may take: interpreter start-up and writing the report, on a busy runner."""


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": "/nonexistent-imgcheck-test"}
    return subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def push_app(pusher: Pusher, repo: str, tag: str, text: str = "app") -> Pushed:
    layers = [busybox_base_layer(), script_layer("usr/local/bin/app", f"#!/bin/sh\necho {text}\n")]
    config = ImageConfig(entrypoint=["/usr/local/bin/app"], labels={**LABELS, "test.text": text})
    return push_image(pusher, repo, layers, config, tags=(tag,))


@pytest.fixture(scope="module")
def images(pusher: Pusher) -> dict[str, Pushed]:
    return {
        "app": push_app(pusher, "faults/app", "latest"),
        "web": push_app(pusher, "faults/web", "latest", "web"),
        "moving": push_app(pusher, "faults/moving", "latest", "first"),
        "moved": push_app(pusher, "faults/moving", "moved", "second"),
    }


@pytest.fixture(scope="module")
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as running:
        yield running


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "imgcheck.yaml"
    path.write_text(POLICY)
    return path


def verify(
    proxy_host: str, policy: Path, *extra: str, target: str = "faults/app:latest"
) -> subprocess.CompletedProcess[str]:
    ref = f"{proxy_host}/{target}" if ":" in target else target
    return run_cli("verify", ref, "--registry", proxy_host, "--policy", str(policy), "--format", "json", *extra)


def by_name(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {image["name"]: image for image in json.loads(result.stdout)["images"]}


TRANSIENT = {
    "5xx burst on the manifest": [Fault("status", APP_LATEST, count=3, status=503)],
    "502 then 500 on the config blob": [
        Fault("status", "/blobs/", count=1, status=502),
        Fault("status", "/blobs/", count=1, status=500),
    ],
    "429 with Retry-After": [Fault("status", APP_LATEST, count=2, status=429, retry_after="1")],
    "connection reset mid-body": [Fault("reset", APP_LATEST, count=2), Fault("reset", "/blobs/", count=1)],
    "truncated bodies": [Fault("truncate", APP_LATEST, count=2), Fault("truncate", "/blobs/", count=1)],
    "reset on the tag list": [Fault("reset", "/tags/list", count=2)],
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_transient_faults_are_retried_and_the_run_passes(
    name: str, proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path
) -> None:
    with proxy.faults(*TRANSIENT[name]):
        result = verify(proxy.host, policy_file)
        fired = proxy.fired()
        expected = sum(f.count for f in TRANSIENT[name])
    assert fired == expected, f"the proxy injected {fired} of {expected} faults"
    assert result.returncode == 0, result.stderr + result.stdout
    app = by_name(result)["app"]
    assert app["verdict"] == "pass" and app["digest"] == images["app"].digest


def test_retry_after_is_honoured(proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path) -> None:
    with proxy.faults(Fault("status", APP_LATEST, count=1, status=429, retry_after="2")):
        result = verify(proxy.host, policy_file, "--verbose")
    assert result.returncode == 0, result.stderr
    assert "HTTP 429, retrying in 2.0 s" in result.stderr


def test_a_burst_longer_than_the_retries_is_exit_2_not_a_pass(
    proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path
) -> None:
    with proxy.faults(Fault("status", APP_LATEST, count=-1, status=503)):
        result = verify(proxy.host, policy_file)
        attempts = sum(1 for s in proxy.seen if s.path.endswith("/faults/app/manifests/latest"))
    assert result.returncode == 2, result.stdout
    app = by_name(result)["app"]
    assert app["verdict"] == "error" and "HTTP 503" in str(app["error"])
    assert 1 < attempts <= 10, f"{attempts} attempts: retries must be bounded"


@pytest.mark.parametrize("kind", ["hang", "endless"])
def test_a_hung_registry_ends_at_the_deadline_with_exit_2(
    kind: str, proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path, tmp_path: Path
) -> None:
    """`hang` accepts and never answers; `endless` sends one byte every 0.2 s, forever (no read timeout).
    The deadline is the whole run's: the command ends within it (plus start-up and writing the report),
    and the report it wrote says which read the deadline stopped."""
    report = tmp_path / "report.json"
    started = time.monotonic()
    with proxy.faults(Fault(kind, "/manifests/", count=-1)):
        result = verify(proxy.host, policy_file, "--timeout", "4", "--report", f"json={report}", target="latest")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stdout
    assert elapsed < 4 + SLACK, f"{elapsed:.1f} s for a 4 s deadline"
    assert "Traceback" not in result.stderr
    for image in by_name(result).values():
        assert image["verdict"] == "error"
        assert "deadline of 4 s reached while reading manifest" in str(image["error"]), image["error"]
    assert json.loads(report.read_text())["verdict"] == "error"


def test_a_dead_registry_is_one_clear_line_and_exit_2(images: dict[str, Pushed], policy_file: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    result = run_cli(
        "verify", f"{dead}/faults/app:latest", "--policy", str(policy_file), "--timeout", "10", "--format", "json"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    (image,) = json.loads(result.stdout)["images"]
    assert f"connection to {dead} refused" in image["error"]
    assert "check that the registry is running" in image["error"]
    assert "\n" not in image["error"]


@pytest.mark.parametrize("where", ["/blobs/", r"/manifests/sha256:"])
def test_flipped_bytes_are_exit_2_never_a_verdict(
    where: str, proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path
) -> None:
    """A config blob read for every image, or a manifest pinned by digest: the hash decides, not the registry."""
    target = "latest" if where == "/blobs/" else f"faults/app@{images['app'].digest}"
    with proxy.faults(Fault("flip", where, count=-1)):
        result = verify(proxy.host, policy_file, "--timeout", "20", target=target)
        assert proxy.fired() > 0
    assert result.returncode == 2, result.stdout
    for name, image in by_name(result).items():
        assert image["verdict"] == "error", name
        assert image["checks"] == [], f"{name}: no rule may judge content that failed its digest"
        assert "hash to" in str(image["error"]) and "do not trust this image" in str(image["error"])


def test_a_tampered_manifest_by_tag_is_caught_by_its_digest_header(
    proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path
) -> None:
    with proxy.faults(Fault("flip", APP_LATEST, count=-1)):
        result = verify(proxy.host, policy_file)
    assert result.returncode == 2
    assert "the registry says" in str(by_name(result)["app"]["error"])


def test_a_tag_that_moves_mid_run_changes_nothing(
    proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path
) -> None:
    """The first GET of `latest` answers manifest A, every later one B: every check must use A."""
    first, second = images["moving"], images["moved"]
    swap = Fault(
        "swap", r"/v2/faults/moving/manifests/latest$", skip=1, count=-1, target="/v2/faults/moving/manifests/moved"
    )
    with proxy.faults(swap):
        result = verify(proxy.host, policy_file, target="faults/moving:latest")
        seen = proxy.seen
    assert result.returncode == 0, result.stdout + result.stderr
    image = by_name(result)["moving"]
    assert image["digest"] == first.digest
    by_tag = [s for s in seen if s.path.endswith("/faults/moving/manifests/latest")]
    assert len(by_tag) == 1, f"the tag was resolved {len(by_tag)} times; once, then everything by digest"
    assert not any(second.digest in s.path for s in seen)


def test_one_broken_image_does_not_stop_the_others(
    proxy: FaultProxy, images: dict[str, Pushed], policy_file: Path
) -> None:
    with proxy.faults(Fault("status", r"/v2/faults/web/", count=-1, status=500)):
        result = verify(proxy.host, policy_file, target="latest")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "error"
    images_by_name = by_name(result)
    assert images_by_name["web"]["verdict"] == "error"
    assert "HTTP 500" in str(images_by_name["web"]["error"])
    for name in ("app", "moving"):
        assert images_by_name[name]["verdict"] == "pass", images_by_name[name]
        assert images_by_name[name]["checks"], name
