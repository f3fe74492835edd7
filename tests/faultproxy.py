"""A small fault-injecting HTTP proxy between imgcheck and the real test registry.

It forwards every request to the real `docker-registry` and, for requests whose path matches a
fault's pattern, misbehaves the way real registries and networks do: 5xx bursts, 429 with
Retry-After, connection resets, truncated bodies, a body that never ends, a server that accepts
and never answers, 307 redirects of blobs to another host, a tag that moves between requests, and
bytes flipped in transit. Every loop is bounded in time, and `stop()` ends them all.

Used by tests/test_faults*.py and bench/reliability.py; loopback addresses only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("status", "reset", "truncate", "endless", "hang", "redirect", "swap", "flip", "serve")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}
MAX_STALL_SECONDS = 180.0
"""No injected stall (endless body, hang) lasts longer than this, whatever the test does."""
SIDE_HOST = "127.0.0.2"
"""The redirect target: a different loopback address, so a different host from the client's view."""


@dataclass
class Fault:
    """Misbehave on requests whose path matches `pattern` (a regex searched in the path and query)."""

    kind: str
    pattern: str
    count: int = 1
    """How many matching requests it fires on; -1 means every one."""
    skip: int = 0
    """Matching requests let through untouched before it starts firing."""
    status: int = 503
    retry_after: str | None = None
    target: str = ""
    """For `swap`: the upstream path served instead (e.g. another tag's manifest)."""
    method: str = "GET"
    trickle: float = 0.2
    """For `endless`: seconds between the single bytes it sends."""
    body: bytes = b""
    """For `serve`: the bytes answered instead of the registry's (a hostile registry)."""
    headers: tuple[tuple[str, str], ...] = ()
    """For `serve`: the headers sent with them."""
    fired: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (known: {', '.join(KINDS)})")
        self._re = re.compile(self.pattern)

    def take(self, method: str, path: str) -> bool:
        """Whether this request gets the fault (counts it); caller holds the proxy lock."""
        if method != self.method or not self._re.search(path):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.count >= 0 and self.fired >= self.count):
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class Seen:
    """One request as the proxy (or the redirect target) received it."""

    method: str
    path: str
    headers: dict[str, str]
    fault: str | None


@dataclass
class _State:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    side_url: str = ""
    side_blobs: dict[str, bytes] = field(default_factory=dict)
    side_seen: list[Seen] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], state: _State) -> None:
        self.state = state
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with state.lock:
            fault = next((f for f in state.faults if f.take(self.command, self.path)), None)
            state.seen.append(Seen(self.command, self.path, dict(self.headers.items()), fault.kind if fault else None))
        if fault is None:
            self._relay(*self._forward(self.path, body))
            return
        getattr(self, f"_fault_{fault.kind}")(fault, body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _forward(self, path: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The real registry's answer (Host kept, so the registry's links point back at the proxy)."""
        host, _, port = self.server.state.upstream.partition(":")
        conn = http.client.HTTPConnection(host, int(port or 80), timeout=30)
        try:
            conn.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            for key, value in self.headers.items():  # repeated headers (Go sends one Accept per type) kept
                if key.lower() not in _HOP_BY_HOP:
                    conn.putheader(key, value)
            if body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes, *, declare: int | None = None) -> None:
        self.send_response(status)
        upstream_length = None
        for key, value in headers:
            if key.lower() == "content-length":
                upstream_length = value
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", upstream_length or "0")
        else:
            self.send_header("Content-Length", str(len(data) if declare is None else declare))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # --- the faults -------------------------------------------------------------------------

    def _fault_status(self, fault: Fault, _body: bytes) -> None:
        data = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": f"injected HTTP {fault.status}"}]}).encode()
        headers = [("Content-Type", "application/json")]
        if fault.retry_after is not None:
            headers.append(("Retry-After", fault.retry_after))
        self._relay(fault.status, headers, data)

    def _fault_reset(self, _fault: Fault, body: bytes) -> None:
        """Headers and half the body, then an abortive close (RST)."""
        status, headers, data = self._forward(self.path, body)
        self._relay_partial(status, headers, data)
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(self.connection.detach())
        self.close_connection = True

    def _fault_truncate(self, _fault: Fault, body: bytes) -> None:
        """Content-Length of the whole body, half of it sent, then a clean close (FIN)."""
        status, headers, data = self._forward(self.path, body)
        self._relay_partial(status, headers, data)
        self.close_connection = True

    def _relay_partial(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(max(len(data), 2)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])

    def _fault_endless(self, fault: Fault, _body: bytes) -> None:
        """200 with no length, then one byte every `trickle` seconds: never a read timeout, never an end."""
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        ends = time.monotonic() + MAX_STALL_SECONDS
        try:
            self.wfile.write(b"{")
            while time.monotonic() < ends and not self.server.state.stopping.wait(fault.trickle):
                self.wfile.write(b" ")
        except OSError:
            return  # the client gave up: what we wanted

    def _fault_hang(self, _fault: Fault, _body: bytes) -> None:
        """Accept, read the request, answer nothing until stopped (bounded)."""
        self.server.state.stopping.wait(MAX_STALL_SECONDS)
        self.close_connection = True

    def _fault_redirect(self, fault: Fault, body: bytes) -> None:
        """307 to the side listener on another host, which serves the same bytes."""
        status, headers, data = self._forward(self.path, body)
        if status != 200:
            self._relay(status, headers, data)
            return
        state = self.server.state
        key = f"/r{fault.fired}{self.path.split('?', 1)[0]}"
        with state.lock:
            state.side_blobs[key] = data
        self._relay(
            fault.status if fault.status in (301, 302, 303, 307, 308) else 307,
            [("Location", state.side_url + key)],
            b"",
        )

    def _fault_swap(self, fault: Fault, body: bytes) -> None:
        """Serve another path's answer (a tag that moved since the first GET)."""
        self._relay(*self._forward(fault.target, body))

    def _fault_serve(self, fault: Fault, _body: bytes) -> None:
        self._relay(fault.status, list(fault.headers), fault.body)

    def _fault_flip(self, _fault: Fault, body: bytes) -> None:
        """The right length and headers, one bit flipped in the middle of the body."""
        status, headers, data = self._forward(self.path, body)
        if status == 200 and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
        self._relay(status, headers, data)


class _SideHandler(BaseHTTPRequestHandler):
    """The redirect target: serves stashed blobs and records every header it was sent."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        state = self.server.state
        with state.lock:
            state.side_seen.append(Seen("GET", self.path, dict(self.headers.items()), None))
            data = state.side_blobs.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")


class FaultProxy:
    """`FaultProxy(upstream).start()`; point imgcheck at `.host`; `.add(Fault(...))`; `.stop()`."""

    def __init__(self, upstream: str) -> None:
        self._state = _State(upstream)
        self._server = _Server(("127.0.0.1", 0), _Handler, self._state)
        try:
            self._side = _Server((SIDE_HOST, 0), _SideHandler, self._state)
        except OSError:  # a loopback without 127.0.0.2: another port is still another host (netloc)
            self._side = _Server(("127.0.0.1", 0), _SideHandler, self._state)
        side_host, side_port = self._side.server_address[:2]
        self._state.side_url = f"http://{side_host!s}:{side_port}"
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def side_host(self) -> str:
        return self._state.side_url.removeprefix("http://")

    def start(self) -> FaultProxy:
        for server in (self._server, self._side):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._state.stopping.set()
        for server in (self._server, self._side):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def add(self, *faults: Fault) -> FaultProxy:
        with self._state.lock:
            self._state.faults.extend(faults)
        return self

    def clear(self) -> None:
        """Remove every fault and forget every request seen."""
        with self._state.lock:
            self._state.faults.clear()
            self._state.seen.clear()
            self._state.side_seen.clear()
            self._state.side_blobs.clear()

    @contextmanager
    def faults(self, *faults: Fault) -> Iterator[FaultProxy]:
        """The faults for the duration of a block, and a clean proxy after it."""
        self.clear()
        self.add(*faults)
        try:
            yield self
        finally:
            self.clear()

    @property
    def seen(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.seen)

    @property
    def side_seen(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.side_seen)

    def fired(self) -> int:
        with self._state.lock:
            return sum(f.fired for f in self._state.faults)
