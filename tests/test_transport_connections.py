"""The transport's connections and wire format: keep-alive reuse, stale connections, what is sent and refused.

Against the real registry where it can say it, else a small HTTP server written here that misbehaves
on purpose: one that closes kept-alive connections behind the client's back, one that answers in
gzip, chunked bodies cut short. Every server is on loopback and every loop is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imgcheck.errors import RegistryError
from imgcheck.registry.transport import Transport
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

BODY = b"hello from the scripted server\n"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


@dataclass
class Script:
    connections: int = 0
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Scripted(BaseHTTPRequestHandler):
    """One instance per connection; the path says how to (mis)behave."""

    protocol_version = "HTTP/1.1"
    script: Script

    def setup(self) -> None:
        super().setup()
        with self.script.lock:
            self.script.connections += 1
            self.number = self.script.connections
        self.served = 0

    def log_message(self, *_args: object) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.script.lock:
            self.script.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body, self.number))
        self.served += 1
        path = self.path
        if path == "/close-after":  # answers, then closes without saying Connection: close
            self._answer(200, BODY)
            self.close_connection = True
        elif path == "/drop-second" and self.served > 1:  # the idle timer fired as the request came in
            self.close_connection = True
        elif path == "/gzip":
            self._answer(200, b"\x1f\x8b not really", [("Content-Encoding", "gzip")])
        elif path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (BODY[:10], BODY[10:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                if path == "/chunked-cut":
                    self.close_connection = True
                    return
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._answer(200, BODY)

    do_GET = do_HEAD = do_POST = _dispatch

    def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@dataclass
class Server:
    url: str
    script: Script


@pytest.fixture
def scripted() -> Iterator[Server]:
    script = Script()
    handler = type("Handler", (_Scripted,), {"script": script})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", script)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def transport() -> Iterator[tuple[Transport, list[str]]]:
    notes: list[str] = []
    running = Transport(timeout=60, backoff=0.05, progress=notes.append)
    yield running, notes
    running.close()


def get(transport: Transport, url: str, method: str = "GET", max_bytes: int = 1 << 20) -> tuple[int, bytes]:
    reply = transport.fetch(method, url, headers={}, max_bytes=max_bytes, what="test")
    return reply.status, reply.body


def test_requests_to_the_registry_share_one_connection(
    registry: RegistryServer, pusher: Pusher, transport: tuple[Transport, list[str]]
) -> None:
    running, _notes = transport
    blob = pusher.blob("conn/app", b"x" * 100)
    url = f"{registry.url}/v2/conn/app/blobs/{blob['digest']}"
    for _ in range(5):
        assert get(running, url) == (200, b"x" * 100)
    assert get(running, url, method="HEAD") == (200, b"")
    assert running.connections_opened == 1


def test_a_connection_whose_answer_was_not_read_is_not_reused(
    registry: RegistryServer, pusher: Pusher, transport: tuple[Transport, list[str]]
) -> None:
    running, _notes = transport
    blob = pusher.blob("conn/app", b"y" * 100_000)
    url = f"{registry.url}/v2/conn/app/blobs/{blob['digest']}"
    with pytest.raises(RegistryError, match="limit"):
        get(running, url, max_bytes=10)
    assert get(running, url) == (200, b"y" * 100_000)
    assert running.connections_opened == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_silently(
    scripted: Server, transport: tuple[Transport, list[str]]
) -> None:
    running, notes = transport
    for _ in range(3):
        assert get(running, f"{scripted.url}/close-after") == (200, BODY)
    assert scripted.script.connections == 3
    assert notes == [], "a stale keep-alive connection is not a failed attempt"


def test_a_request_the_server_dropped_on_a_reused_connection_is_sent_again_once(
    scripted: Server, transport: tuple[Transport, list[str]]
) -> None:
    running, notes = transport
    assert get(running, f"{scripted.url}/drop-second") == (200, BODY)
    assert get(running, f"{scripted.url}/drop-second") == (200, BODY)
    assert [s.connection for s in scripted.script.seen] == [1, 1, 2]
    assert notes == [], "a stale keep-alive connection is not a failed attempt"


def test_what_is_sent_identity_only_our_agent_no_credentials(
    scripted: Server, transport: tuple[Transport, list[str]]
) -> None:
    running, _notes = transport
    get(running, f"{scripted.url}/plain")
    (seen,) = scripted.script.seen
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["user-agent"] == "imgcheck"
    assert headers.get("accept-encoding", "identity") == "identity"
    assert "authorization" not in headers, "credentials only come from the caller"


def test_a_form_is_posted_urlencoded(scripted: Server, transport: tuple[Transport, list[str]]) -> None:
    running, _notes = transport
    reply = running.fetch(
        "POST",
        f"{scripted.url}/token",
        headers={},
        data={"scope": "repository:a/b:pull", "x": "a b"},
        max_bytes=1024,
        what="t",
    )
    assert reply.status == 200
    (seen,) = scripted.script.seen
    assert seen.method == "POST"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.body == b"scope=repository%3Aa%2Fb%3Apull&x=a+b"


def test_a_content_coding_is_refused_not_hashed(scripted: Server, transport: tuple[Transport, list[str]]) -> None:
    running, _notes = transport
    with pytest.raises(RegistryError, match="gzip-encoded") as err:
        get(running, f"{scripted.url}/gzip")
    assert "digest" in str(err.value)


def test_chunked_bodies_are_read_and_a_cut_one_is_retried(
    scripted: Server, transport: tuple[Transport, list[str]]
) -> None:
    running, notes = transport
    assert get(running, f"{scripted.url}/chunked") == (200, BODY)
    assert get(running, f"{scripted.url}/chunked") == (200, BODY)
    assert scripted.script.connections == 1, "a chunked body read to its end leaves the connection reusable"
    with pytest.raises(RegistryError, match=r"failed 4 times \(body cut short"):
        get(running, f"{scripted.url}/chunked-cut")
    assert sum("cut short" in note for note in notes) == 3
