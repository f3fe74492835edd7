"""Keep-alive connections for the transport: a few idle ones per (scheme, host, port), shared by threads.

A connection is leased to one request at a time and given back only after its response was read
to the end; one that failed, or whose response was not fully read, is closed instead. An idle
connection the server has since closed is noticed before reuse (its socket reads as ready).

TLS uses `ssl.create_default_context()`: the system CA store, which OpenSSL lets SSL_CERT_FILE and
SSL_CERT_DIR replace, plus the bundles REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE name (users of the
requests-based imgcheck may rely on them). The store is loaded on the first https connection
(http.client itself imports `ssl`, so that import is not ours to defer).
"""

from __future__ import annotations

import http.client
import os
import select
import ssl
import threading
from dataclasses import dataclass

from imgcheck.errors import RegistryError
from imgcheck.registry.proxy import Proxy

MAX_IDLE_PER_HOST = 8
"""More than the gatherer's thread pool, so concurrent tag resolution keeps its connections."""

Key = tuple[str, str, int]


@dataclass
class Lease:
    """A connection lent to one request; `reused` says it carried an earlier one (so may have gone stale)."""

    key: Key
    conn: http.client.HTTPConnection
    proxy: Proxy | None
    reused: bool


class ConnectionPool:
    def __init__(self, max_idle_per_host: int = MAX_IDLE_PER_HOST) -> None:
        self._max_idle = max_idle_per_host
        self._lock = threading.Lock()
        self._idle: dict[Key, list[http.client.HTTPConnection]] = {}
        self._tls: ssl.SSLContext | None = None
        self.opened = 0
        """Connections opened (or attempted) so far: keep-alive keeps it low."""

    def lease(self, scheme: str, host: str, port: int, proxy: Proxy | None, *, fresh: bool = False) -> Lease:
        """An idle connection to (scheme, host, port) that still looks open, else a new unconnected one."""
        key = (scheme, host, port)
        while not fresh:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if not _dropped(conn):
                return Lease(key, conn, proxy, reused=True)
            conn.close()
        return Lease(key, self._new(scheme, host, port, proxy), proxy, reused=False)

    def connect(self, lease: Lease, timeout: float) -> None:
        """TCP connect (and CONNECT tunnel, and TLS handshake) within `timeout`."""
        with self._lock:
            self.opened += 1
        lease.conn.timeout = timeout
        lease.conn.connect()

    def give_back(self, lease: Lease) -> None:
        """Keep the connection for the next request to the same place (its response was read to the end)."""
        with self._lock:
            idle = self._idle.setdefault(lease.key, [])
            if len(idle) < self._max_idle:
                idle.append(lease.conn)
                return
        lease.conn.close()

    def close(self) -> None:
        """Close the idle connections; the pool stays usable (later requests connect again)."""
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def _new(self, scheme: str, host: str, port: int, proxy: Proxy | None) -> http.client.HTTPConnection:
        if scheme == "http":
            target = (proxy.host, proxy.port) if proxy else (host, port)  # absolute URIs to the proxy
            return http.client.HTTPConnection(*target)
        if proxy is None:
            return http.client.HTTPSConnection(host, port, context=self._tls_context())
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, context=self._tls_context())
        tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
        conn.set_tunnel(host, port, headers=tunnel_headers)
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                self._tls = tls_context()
            return self._tls


def tls_context() -> ssl.SSLContext:
    """The system store (or SSL_CERT_FILE / SSL_CERT_DIR), plus REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE if set.

    A union rather than requests' "the bundle replaces everything": machines often set
    REQUESTS_CA_BUNDLE to the system bundle, which must not hide a private CA in SSL_CERT_FILE.
    """
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    if paths.cafile is None and paths.capath is None:
        _add_certifi(context)  # a Python without a system store (python.org macOS builds)
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        bundle = os.environ.get(variable)
        if not bundle:
            continue
        try:
            if os.path.isdir(bundle):
                context.load_verify_locations(capath=bundle)
            else:
                context.load_verify_locations(cafile=bundle)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(
                f"{variable} names a CA bundle that cannot be loaded ({bundle}: {exc.strerror or exc})",
                hint=f"point {variable} at a PEM file of CA certificates, or unset it",
            ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _add_certifi(context: ssl.SSLContext) -> None:
    try:
        import certifi  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return
    context.load_verify_locations(cafile=certifi.where())


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive socket that reads as ready has been closed by the server (or sent junk): not reusable."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
