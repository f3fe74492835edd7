"""imgcheck behind a forward proxy, as HTTP_PROXY / HTTPS_PROXY / NO_PROXY say.

The proxy is written here: it answers absolute-URI requests (plain HTTP) and CONNECT (tunnels for
HTTPS), and maps made-up non-loopback names (`registry.invalid:...`, which no DNS resolves) to the
real registries on loopback. Loopback registries themselves are never proxied.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_transport_tls import Minted, TLSRegistry, mint_certificates, start_tls_registry

from fixtures.images import ImageConfig, Pushed, busybox_base_layer, push_image, script_layer
from imgcheck.errors import RegistryError
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.reference import Reference
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, free_port

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
PLAIN_NAME = "registry.invalid:5000"
TLS_NAME = "registry.invalid:5443"
USER, SECRET = "proxy-bot", "proxy-secret-4c1d"
CREDENTIALS = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: app
    repository: proxied/app
rules:
  size:
    max_compressed: 50MB
  labels:
    required: [org.opencontainers.image.revision]
  config:
    non_root: true
"""
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "transfer-encoding", "te"}
TUNNEL_SECONDS = 60.0
"""No tunnel lives longer than this, whatever the client does."""


@dataclass
class ProxyState:
    routes: dict[str, str]
    """`name:port` the client asks for → `127.0.0.1:port` it is served from."""
    require: str | None = None
    """The Proxy-Authorization value demanded, if any."""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, target, Proxy-Authorization) of every request."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ProxyState

    def log_message(self, *_args: object) -> None:
        pass

    def _admit(self) -> bool:
        with self.state.lock:
            self.state.seen.append((self.command, self.path, self.headers.get("Proxy-Authorization")))
        if self.state.require and self.headers.get("Proxy-Authorization") != self.state.require:
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="test proxy"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        return True

    def _forward(self) -> None:
        """An absolute-URI request: sent on to the mapped upstream, the answer relayed with its length."""
        if not self._admit():
            return
        parts = urlsplit(self.path)
        upstream = self.state.routes.get(parts.netloc)
        if parts.scheme != "http" or upstream is None:
            self.send_error(502, "no route")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        host, port = upstream.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.putrequest(self.command, parts.path + (f"?{parts.query}" if parts.query else ""), skip_host=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.endheaders(body)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        self.send_response(resp.status)
        for name, value in resp.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = _forward

    def do_CONNECT(self) -> None:
        """A tunnel: bytes both ways between the client and the mapped upstream until either closes."""
        self.close_connection = True
        if not self._admit():
            return
        upstream = self.state.routes.get(self.path)
        if upstream is None:
            self.send_error(502, "no route")
            return
        host, port = upstream.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as far:
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            ends = time.monotonic() + TUNNEL_SECONDS
            near = self.connection
            while time.monotonic() < ends:
                ready, _, _ = select.select([near, far], [], [], 0.5)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (far if sock is near else near).sendall(data)


@dataclass
class ForwardProxy:
    state: ProxyState
    port: int

    def url(self, credentials: str | None = None) -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def seen(self) -> list[tuple[str, str, str | None]]:
        with self.state.lock:
            return list(self.state.seen)

    def reset(self, require: str | None = None) -> None:
        with self.state.lock:
            self.state.seen.clear()
            self.state.require = require


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory) -> Minted:
    return mint_certificates(tmp_path_factory.mktemp("proxy-ca"), names=("registry.invalid", "localhost"))


@pytest.fixture(scope="module")
def tls_registry(
    registry: RegistryServer, minted: Minted, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TLSRegistry]:
    server = start_tls_registry(tmp_path_factory.mktemp("proxy-tls") / "root", registry.storage, minted)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def forward_proxy(registry: RegistryServer, tls_registry: TLSRegistry) -> Iterator[ForwardProxy]:
    state = ProxyState(routes={PLAIN_NAME: registry.host, TLS_NAME: tls_registry.host})
    handler = type("Handler", (_ProxyHandler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield ForwardProxy(state, httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def image(pusher: Pusher) -> Pushed:
    layers = [busybox_base_layer(), script_layer("usr/local/bin/app", "#!/bin/sh\necho proxied\n")]
    config = ImageConfig(entrypoint=["/usr/local/bin/app"], labels={"org.opencontainers.image.revision": "abc"})
    return push_image(pusher, "proxied/app", layers, config, tags=("latest",))


@pytest.fixture(autouse=True)
def clean_environment(forward_proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets: CI machines may have proxies and CA bundles of their own."""
    for name in (*PROXY_VARIABLES, *CA_VARIABLES):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    forward_proxy.reset()


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "imgcheck.yaml"
    path.write_text(POLICY)
    return path


def verify(reference: str, policy: Path, *extra: str) -> tuple[int, dict[str, Any] | None, str]:
    """The CLI in a child process with this process's environment; (exit code, its JSON, all it wrote)."""
    env = {**os.environ, "NO_COLOR": "1", "DOCKER_CONFIG": "/nonexistent-imgcheck-test"}
    args = ["verify", reference, "--policy", str(policy), "--format", "json", "--verbose", "--timeout", "30", *extra]
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        doc = None
    return done.returncode, doc, done.stdout + done.stderr


def the_image(doc: dict[str, Any] | None) -> dict[str, Any]:
    assert doc is not None
    (found,) = doc["images"]
    return dict(found)


def test_plain_http_goes_through_the_proxy_with_its_credentials_unprinted(
    forward_proxy: ForwardProxy, image: Pushed, policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward_proxy.reset(require=f"Basic {CREDENTIALS}")
    monkeypatch.setenv("HTTP_PROXY", forward_proxy.url(f"{USER}:{SECRET}"))
    code, doc, output = verify(f"{PLAIN_NAME}/proxied/app:latest", policy, "--insecure")
    assert code == 0, output
    found = the_image(doc)
    assert found["verdict"] == "pass" and found["digest"] == image.digest
    seen = forward_proxy.seen()
    assert seen, "nothing went through the proxy"
    assert all(target.startswith(f"http://{PLAIN_NAME}/v2/") for _method, target, _auth in seen)
    assert {auth for _m, _t, auth in seen} == {f"Basic {CREDENTIALS}"}
    assert SECRET not in output and CREDENTIALS not in output


def test_https_goes_through_a_connect_tunnel(
    forward_proxy: ForwardProxy, image: Pushed, policy: Path, minted: Minted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --insecure: TLS end to end inside the tunnel, checked against the CA in SSL_CERT_FILE."""
    forward_proxy.reset(require=f"Basic {CREDENTIALS}")
    monkeypatch.setenv("https_proxy", forward_proxy.url(f"{USER}:{SECRET}"))
    monkeypatch.setenv("SSL_CERT_FILE", str(minted.ca))
    code, doc, output = verify(f"{TLS_NAME}/proxied/app:latest", policy)
    assert code == 0, output
    found = the_image(doc)
    assert found["verdict"] == "pass" and found["digest"] == image.digest
    seen = forward_proxy.seen()
    assert seen and {(method, target) for method, target, _auth in seen} == {("CONNECT", TLS_NAME)}
    assert SECRET not in output and CREDENTIALS not in output


def test_no_proxy_sends_the_host_direct(
    forward_proxy: ForwardProxy, image: Pushed, policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", forward_proxy.url())
    monkeypatch.setenv("NO_PROXY", "localhost,.invalid")
    code, doc, output = verify(f"{PLAIN_NAME}/proxied/app:latest", policy, "--insecure")
    assert code == 2, output
    assert "cannot resolve host registry.invalid" in the_image(doc)["error"]
    assert forward_proxy.seen() == []


def test_without_a_proxy_the_made_up_name_does_not_resolve(image: Pushed, policy: Path) -> None:
    code, doc, output = verify(f"{PLAIN_NAME}/proxied/app:latest", policy, "--insecure")
    assert code == 2 and "Traceback" not in output
    assert "cannot resolve host registry.invalid" in the_image(doc)["error"]


def test_loopback_registries_are_never_proxied(
    registry: RegistryServer, image: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    with RegistryClient(env={}, timeout=30) as client:
        assert client.resolve(Reference(registry.host, "proxied/app", tag="latest")).digest == image.digest


@pytest.mark.parametrize(("name", "scheme"), [(PLAIN_NAME, "http"), (TLS_NAME, "https")])
def test_a_proxy_refusing_us_is_one_line_without_the_secret(
    name: str, scheme: str, forward_proxy: ForwardProxy, image: Pushed, minted: Minted, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward_proxy.reset(require="Basic bm90LXRoaXM=")
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", forward_proxy.url(f"{USER}:{SECRET}"))
    monkeypatch.setenv("SSL_CERT_FILE", str(minted.ca))
    with RegistryClient(env={}, timeout=30, insecure=scheme == "http") as client, pytest.raises(RegistryError) as err:
        client.resolve(Reference(name, "proxied/app", tag="latest"))
    text = str(err.value) + repr(err.value)
    assert f"proxy 127.0.0.1:{forward_proxy.port} refused the credentials in the proxy URL (HTTP 407)" in text
    assert SECRET not in text and CREDENTIALS not in text and "\n" not in text


def test_a_dead_proxy_is_named(image: Pushed, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:{SECRET}@127.0.0.1:{port}")
    with RegistryClient(env={}, timeout=30) as client, pytest.raises(RegistryError) as err:
        client.resolve(Reference(TLS_NAME, "proxied/app", tag="latest"))
    assert f"connection to proxy 127.0.0.1:{port} refused" in str(err.value)
    assert SECRET not in str(err.value)
