"""Credentials under faults: sent only to the registry host they belong to, never printed anywhere.

A real `docker-registry` with htpasswd auth sits behind the fault proxy; the proxy redirects blob
reads (307) to a listener on another loopback host that serves the same bytes and records every
header it receives, as GHCR and S3-backed registries send clients to a CDN.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from faultproxy import Fault, FaultProxy

from fixtures.images import ImageConfig, Pushed, busybox_base_layer, push_image, script_layer
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, free_port

USER = "release-bot"
PASSWORD = "pw-" + secrets.token_hex(12)
ENCODED = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: app
    repository: secure/app
rules:
  size:
    max_compressed: 50MB
  labels:
    required: [org.opencontainers.image.revision]
  config:
    non_root: true
"""


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("htpasswd-registry")
    htpasswd = root / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    server = RegistryServer(
        root=root,
        port=free_port(),
        extra_config=f"auth:\n  htpasswd:\n    realm: imgcheck-faults\n    path: {htpasswd}\n",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pushed(auth_registry: RegistryServer) -> Pushed:
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    layers = [busybox_base_layer(), script_layer("usr/local/bin/app", "#!/bin/sh\necho app\n")]
    config = ImageConfig(entrypoint=["/usr/local/bin/app"], labels={"org.opencontainers.image.revision": "abc"})
    return push_image(Pusher(auth_registry.host, session=session), "secure/app", layers, config, tags=("latest",))


@pytest.fixture(scope="module")
def proxy(auth_registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(auth_registry.host) as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "imgcheck.yaml").write_text(POLICY)
    return tmp_path


def docker_config(directory: Path, host: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    encoded = base64.b64encode(f"{USER}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": encoded}}}))
    return directory


def run_verify(workdir: Path, proxy: FaultProxy, password: str, *extra: str) -> tuple[int, str]:
    """The CLI with --verbose and every report format; returns the exit code and ALL it wrote."""
    from imgcheck.report import FORMATS

    reports = [workdir / f"report.{fmt}" for fmt in FORMATS]
    args = [
        "verify",
        f"{proxy.host}/secure/app:latest",
        "--policy",
        str(workdir / "imgcheck.yaml"),
        "--verbose",
        "--timeout",
        "30",
        *(f"--report={fmt}={path}" for fmt, path in zip(FORMATS, reports, strict=True)),
        *extra,
    ]
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": str(docker_config(workdir / "docker", proxy.host, password))}
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=env, timeout=120
    )
    written = [done.stdout, done.stderr, *(p.read_text() for p in reports if p.exists())]
    return done.returncode, "\n".join(written)


def assert_no_secret(text: str, password: str) -> None:
    encoded = base64.b64encode(f"{USER}:{password}".encode()).decode()
    assert password not in text, "the password leaked into output"
    assert encoded not in text, "the Basic credentials leaked into output"


def test_credentials_never_follow_a_redirect_to_another_host(proxy: FaultProxy, pushed: Pushed, workdir: Path) -> None:
    with proxy.faults(Fault("redirect", "/blobs/", count=-1)):
        code, written = run_verify(workdir, proxy, PASSWORD, "--format", "json")
        origin, side = proxy.seen, proxy.side_seen
    assert code == 0, written
    blob_reads = [s for s in origin if "/blobs/" in s.path]
    assert blob_reads and all(s.fault == "redirect" for s in blob_reads)
    assert all(s.headers.get("Authorization") == f"Basic {ENCODED}" for s in blob_reads), (
        "the registry host itself must get the credentials (else this test proves nothing)"
    )
    assert side, "the redirect target was never asked: the blob did not come from the other host"
    assert proxy.side_host.split(":")[0] != proxy.host.split(":")[0]
    for request in side:
        names = {k.lower() for k in request.headers}
        assert "authorization" not in names, f"credentials sent to {proxy.side_host}: {request.headers}"
        assert_no_secret(json.dumps(request.headers), PASSWORD)
    assert_no_secret(written, PASSWORD)


@pytest.mark.parametrize(
    "faults",
    [
        [],
        [Fault("status", "/manifests/", count=2, status=503), Fault("reset", "/blobs/", count=1)],
        [Fault("flip", "/blobs/", count=-1)],
        [Fault("hang", "/blobs/", count=-1)],
    ],
    ids=["clean", "retried", "tampered", "hung"],
)
def test_the_password_appears_in_no_output_log_or_report(
    faults: list[Fault], proxy: FaultProxy, pushed: Pushed, workdir: Path
) -> None:
    with proxy.faults(*faults):
        code, written = run_verify(workdir, proxy, PASSWORD, "--timeout", "5")
    assert code == (0 if not faults or faults[0].kind == "status" else 2), written
    assert_no_secret(written, PASSWORD)


def test_a_refused_password_is_not_echoed_even_with_verbose_tracebacks(
    proxy: FaultProxy, pushed: Pushed, workdir: Path
) -> None:
    wrong = "wrong-" + secrets.token_hex(12)
    proxy.clear()
    code, written = run_verify(workdir, proxy, wrong)
    assert code == 2
    assert "were refused" in written and f"docker login {proxy.host}" in written
    assert_no_secret(written, wrong)
