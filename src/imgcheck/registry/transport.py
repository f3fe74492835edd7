"""HTTP for registries: timeouts, one overall deadline, bounded retries, capped bodies, safe redirects.

Kept apart from the API (client.py) and credentials (auth.py) so each can be read on its own.
Nothing here knows about manifests; it moves bytes and refuses to move too many or wait too long.

Built on http.client rather than requests: importing requests cost ~45 ms of a CLI run and each
request ~0.5 ms. Connections are kept alive per (scheme, host, port) (connections.py); forward
proxies come from the environment (proxy.py); ~/.netrc is never read and no credential is added
here: Authorization comes only from the caller's headers.

Content codings: requests are sent with `Accept-Encoding: identity` (RFC 9110 says a request
without the header accepts any coding), and a success answered in any other coding is refused,
not decoded: digests are checked over exactly the bytes the registry stores and sends.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, quote, urlencode, urljoin, urlsplit

from imgcheck.deadline import Deadline
from imgcheck.errors import RegistryError
from imgcheck.record import record
from imgcheck.registry.connections import ConnectionPool, Lease
from imgcheck.registry.proxy import Proxy, ProxySettings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ERROR_BODY_BYTES = 64 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "imgcheck"
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
"""What requests left unquoted in a URL: existing %-escapes stay, spaces and non-ASCII are escaped."""
_STALE = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)
"""How a kept-alive connection the server closed meanwhile fails (RemoteDisconnected is a reset)."""

# Docker Hub's API lives on a different host than its reference name.
_API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def split_host(registry: str) -> str:
    """The host part of `host[:port]` / `[v6]:port`, without brackets."""
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    if registry.count(":") > 1:  # a bare IPv6 address
        return registry
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


@functools.lru_cache(maxsize=64)
def is_loopback(registry: str) -> bool:
    """Whether `host[:port]` is this machine (plain HTTP allowed, never proxied). Cached: asked ~3 times
    per request, and parsing the address each time was ~10 % of the client's CPU in an audit."""
    host = split_host(registry).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_host(registry: str) -> str:
    return _API_HOSTS.get(registry, registry)


class Headers(Mapping[str, str]):
    """Response headers, case-insensitive; a repeated header's values joined by ", " (RFC 9110 §5.3)."""

    __slots__ = ("_fields",)

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        fields: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            key = name.lower()
            if key in fields:
                fields[key] = (fields[key][0], f"{fields[key][1]}, {value}")
            else:
                fields[key] = (name, value)
        self._fields = fields

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        found = self._fields.get(name.lower())
        return found[1] if found is not None else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return (name for name, _value in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({dict(self._fields.values())!r})"


@record
class Reply:
    """A response whose body was read (and capped) inside the retry loop."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class _Retryable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport:
    """The HTTP side of one run: kept-alive connections and a deadline shared by every request."""

    def __init__(
        self,
        *,
        insecure: bool = False,
        schemes: Mapping[str, str] | None = None,
        timeout: float = 90.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        retry_after_cap: float = 20.0,
        progress: Callable[[str], None] | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self.insecure = insecure
        self.schemes = dict(schemes or {})
        """Registry host -> `http`/`https` chosen on the command line; others: HTTPS unless loopback/insecure."""
        self.deadline = deadline or Deadline(timeout)
        self.timeout = self.deadline.seconds
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.retry_after_cap = retry_after_cap
        self._progress = progress
        self._pool = ConnectionPool()
        self._proxies = ProxySettings()

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def base_url(self, registry: str) -> str:
        scheme = self.schemes.get(registry) or ("http" if self.insecure or is_loopback(registry) else "https")
        return f"{scheme}://{api_host(registry)}"

    def allows_plain_http(self, url: str) -> bool:
        parts = urlsplit(url)
        chosen = self.schemes.get(parts.netloc) == "http"
        return parts.scheme == "https" or self.insecure or chosen or is_loopback(parts.netloc)

    def close(self) -> None:
        self._pool.close()

    def remaining(self) -> float:
        return self.deadline.remaining()

    @property
    def connections_opened(self) -> int:
        """How many connections this transport has made (for tests and --verbose: keep-alive keeps it low)."""
        return self._pool.opened

    def fetch(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
        data: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send with retries on 429/5xx/resets/truncation; the final reply is returned whatever its status.

        A 2xx body over `max_bytes` raises at once (not retried: a registry that serves too much
        will do it again). Error bodies are kept to their first 64 KiB. `data` is sent as an
        urlencoded form (token endpoints).
        """
        host = _display(urlsplit(url))
        last_problem = ""
        for attempt in range(self.max_attempts):
            final = attempt == self.max_attempts - 1
            try:
                reply = self._once(method, url, headers, max_bytes, what, data)
            except _Retryable as exc:
                last_problem = exc.reason
                if final:
                    break
                self._sleep(self._backoff(attempt), what, exc.reason)
                continue
            if reply.status in RETRY_STATUSES and not final:
                last_problem = f"HTTP {reply.status}"
                wait = _retry_after(reply.headers.get("Retry-After"))
                self._sleep(
                    min(wait, self.retry_after_cap) if wait is not None else self._backoff(attempt),
                    what,
                    last_problem,
                )
                continue
            return reply
        raise RegistryError(
            f"{what}: {host} failed {self.max_attempts} times ({last_problem})",
            hint=f"check that {host} is up and reachable, then retry",
        )

    def _backoff(self, attempt: int) -> float:
        return float(self.backoff * (2**attempt) * random.uniform(0.5, 1.0))

    def _sleep(self, seconds: float, what: str, reason: str) -> None:
        if seconds >= self.remaining():
            if self.remaining() < 0.05:  # a read timed out at the deadline (its timeout was what was left)
                raise RegistryError(
                    self.deadline.message(f"reading {what} ({reason})"),
                    hint="the registry did not answer in time: check that it is healthy, or raise --timeout",
                )
            raise RegistryError(
                f"{what}: gave up ({reason}); the deadline of {self.timeout:g} s would pass before a retry",
                hint="the registry is overloaded or failing; retry later",
            )
        self.note(f"{what}: {reason}, retrying in {seconds:.1f} s")
        time.sleep(seconds)

    def _timeouts(self, what: str, host: str) -> tuple[float, float]:
        left = self.remaining()
        if left <= 0:
            raise RegistryError(
                self.deadline.message(f"reading {what} ({host} did not finish)"),
                hint=f"check that {host} is healthy, or raise --timeout",
            )
        return min(self.connect_timeout, left), min(self.read_timeout, left)

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
        data: Mapping[str, str] | None,
    ) -> Reply:
        """One attempt: follow redirects by hand, dropping Authorization when the host changes."""
        origin = urlsplit(url).netloc
        send_headers = {"User-Agent": USER_AGENT, **headers}
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            host = _display(parts)
            body = None
            if data is not None:
                body = urlencode(data).encode()
                send_headers["Content-Type"] = "application/x-www-form-urlencoded"
            lease, resp = self._exchange(method, parts, send_headers, body, what)
            reusable = False
            try:
                if resp.status in _REDIRECTS:
                    location = resp.getheader("Location")
                    reusable = self._drain(resp, method)
                    url = self._redirect_target(url, location, resp.status, what)
                    if urlsplit(url).netloc != origin:
                        send_headers = {k: v for k, v in send_headers.items() if k.lower() != "authorization"}
                    if resp.status == 303:
                        method, data = "GET", None
                        send_headers.pop("Content-Type", None)
                    continue
                if resp.status == 407 and lease.proxy is not None:
                    raise _proxy_auth_error(what, lease.proxy)
                reply_headers = Headers(resp.getheaders())
                ok = 200 <= resp.status < 300
                if ok:
                    _refuse_content_coding(reply_headers, what, host)
                data_read = self._read(resp, method, max_bytes if ok else ERROR_BODY_BYTES, what, host, strict=ok)
                reusable = _fully_read(resp)
                return Reply(resp.status, reply_headers, data_read, url)
            finally:
                resp.close()
                if reusable:
                    self._pool.give_back(lease)
                else:
                    lease.conn.close()
        raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects from {origin}")

    def _redirect_target(self, url: str, location: str | None, status: int, what: str) -> str:
        host = _display(urlsplit(url))
        if not location:
            raise RegistryError(f"{what}: {host} redirected ({status}) without a Location")
        target = urljoin(url, location)
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https"):
            raise RegistryError(f"{what}: {host} redirected to a URL that is not http(s); refusing")
        if not self.allows_plain_http(target):
            raise RegistryError(
                f"{what}: {host} redirected to plain-HTTP {_display(parts)}; refusing",
                hint="use --insecure only if you trust that network",
            )
        return target

    def _exchange(
        self, method: str, parts: SplitResult, headers: Mapping[str, str], body: bytes | None, what: str
    ) -> tuple[Lease, http.client.HTTPResponse]:
        """Send the request and read the status and headers; a stale kept-alive connection is retried once."""
        host = _display(parts)
        if parts.scheme not in ("http", "https"):
            raise RegistryError(f"{what}: {parts.scheme or 'no'} scheme in the URL for {host}; need http(s)")
        try:
            hostname, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            hostname, port = None, 0
        if not hostname:
            raise RegistryError(f"{what}: the URL for {host} has no usable host and port")
        proxy = None if is_loopback(parts.netloc) else self._proxies.for_url(parts.scheme, parts.netloc)
        target = quote(parts.path or "/", safe=_URL_SAFE) + (
            "?" + quote(parts.query, safe=_URL_SAFE) if parts.query else ""
        )
        send = dict(headers)
        if proxy is not None and parts.scheme == "http":
            target = f"http://{parts.netloc.rpartition('@')[2]}{target}"  # absolute URI: the proxy forwards it
            if proxy.authorization:
                send["Proxy-Authorization"] = proxy.authorization
        fresh = False
        while True:
            connect_timeout, read_timeout = self._timeouts(what, host)
            lease = self._pool.lease(parts.scheme, hostname, port, proxy, fresh=fresh)
            if not lease.reused:
                self._connect(lease, connect_timeout, what, host)
            try:
                if lease.conn.sock is not None:  # connect's timeout was for connecting; reads get their own
                    lease.conn.sock.settimeout(read_timeout)
                lease.conn.request(method, target, body=body, headers=send)
                return lease, lease.conn.getresponse()
            except _STALE as exc:
                lease.conn.close()
                if lease.reused:  # the server closed it while idle: not this attempt's fault
                    fresh = True
                    continue
                raise _Retryable(f"connection problem ({type(exc).__name__})") from None
            except TimeoutError:
                lease.conn.close()
                raise _Retryable("read timed out") from None
            except (OSError, http.client.HTTPException) as exc:
                lease.conn.close()
                raise _Retryable(f"connection problem ({type(exc).__name__})") from None
            except (ValueError, UnicodeError):  # control characters in a header or URL (a hostile token?)
                lease.conn.close()
                raise RegistryError(
                    f"{what}: the request to {host} would not be valid HTTP (forbidden characters in a header or URL)"
                ) from None

    def _connect(self, lease: Lease, timeout: float, what: str, host: str) -> None:
        try:
            self._pool.connect(lease, timeout)
        except Exception as exc:
            lease.conn.close()
            raise _connect_error(exc, what, host, lease.proxy) from None

    def _drain(self, resp: http.client.HTTPResponse, method: str) -> bool:
        """Read a redirect's (small) body so its connection can be reused; False if it was not all read."""
        try:
            self._read(resp, method, ERROR_BODY_BYTES, "redirect", "", strict=False)
        except (_Retryable, RegistryError):
            return False
        return _fully_read(resp)

    def _read(
        self, resp: http.client.HTTPResponse, method: str, cap: int, what: str, host: str, *, strict: bool
    ) -> bytes:
        if resp.status in (204, 304) or method == "HEAD":
            return b""  # no body by definition (RFC 9110), whatever Content-Length says
        declared = resp.getheader("Content-Length")
        expected = int(declared) if declared and declared.isdigit() else None
        if strict and expected is not None and expected > cap:
            raise RegistryError(
                f"{what}: {host} declares {expected} bytes, over the {cap}-byte limit",
                hint="this is not small metadata; check the reference, or raise the limit",
            )
        chunks: list[bytes] = []
        total = 0
        try:
            # read1 returns whatever has arrived, so a registry that trickles one byte at a time cannot
            # keep a 64 KiB read (and so the deadline check between reads) waiting for hours.
            while chunk := resp.read1(_CHUNK):
                total += len(chunk)
                if total > cap:
                    if strict:
                        raise RegistryError(
                            f"{what}: {host} sent more than the {cap}-byte limit; stopped reading",
                            hint="this is not small metadata; check the reference, or raise the limit",
                        )
                    chunks.append(chunk[: cap - (total - len(chunk))])
                    return b"".join(chunks)
                chunks.append(chunk)
                if self.remaining() <= 0:
                    raise RegistryError(
                        self.deadline.message(f"reading {what} ({host} was still sending)"),
                        hint=f"check that {host} is healthy, or raise --timeout",
                    )
        except (http.client.HTTPException, OSError) as exc:
            raise _Retryable(f"body cut short after {total} bytes ({type(exc).__name__})") from None
        if expected is not None and total != expected:
            raise _Retryable(f"body cut short: {total} of {expected} bytes")
        return b"".join(chunks)


def _display(parts: SplitResult) -> str:
    """`host[:port]` for messages, without any user:password a URL may carry."""
    return parts.netloc.rpartition("@")[2]


def _fully_read(resp: http.client.HTTPResponse) -> bool:
    """The response ended where HTTP says it ends, and the server keeps the connection open."""
    return not resp.will_close and (resp.isclosed() or resp.length == 0)


def _refuse_content_coding(headers: Headers, what: str, host: str) -> None:
    coding = (headers.get("Content-Encoding") or "").strip().lower()
    if coding not in ("", "identity"):
        raise RegistryError(
            f"{what}: {host} sent the content {coding}-encoded although only identity was accepted",
            hint="a digest cannot be checked over re-encoded bytes; check any proxy or CDN in between",
        )


def _proxy_auth_error(what: str, proxy: Proxy) -> RegistryError:
    said = "refused the credentials in the proxy URL" if proxy.authorization else "asks for credentials"
    return RegistryError(
        f"{what}: proxy {proxy.address} {said} (HTTP 407)",
        hint="put them in the proxy variable as http://user:password@host:port",
        status=407,
    )


def _connect_error(exc: Exception, what: str, host: str, proxy: Proxy | None) -> Exception:
    """Connection problems that retrying cannot fix become a one-line RegistryError; others retry."""
    if isinstance(exc, RegistryError):  # an unreadable CA bundle
        return exc
    peer = f"proxy {proxy.address}" if proxy is not None else host
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or type(exc).__name__
        return RegistryError(
            f"{what}: TLS handshake with {host} failed ({reason})",
            hint="check the registry's certificate; for a private CA set SSL_CERT_FILE "
            "(or REQUESTS_CA_BUNDLE) to its PEM bundle",
        )
    if isinstance(exc, socket.gaierror):
        name = f"proxy host {proxy.host}" if proxy is not None else f"host {split_host(host)}"
        return RegistryError(
            f"{what}: cannot resolve {name}",
            hint="check the registry name in the policy or --registry, and DNS"
            if proxy is None
            else "check the HTTPS_PROXY / HTTP_PROXY setting, and DNS",
        )
    if isinstance(exc, ConnectionRefusedError):
        return RegistryError(
            f"{what}: connection to {peer} refused",
            hint="check that the registry is running and the host and port are right"
            if proxy is None
            else "check that the proxy is running and HTTPS_PROXY / HTTP_PROXY name it right",
        )
    if isinstance(exc, TimeoutError):
        return _Retryable("connect timed out")
    if isinstance(exc, UnicodeError):
        return RegistryError(f"{what}: {host} is not a valid host name")
    if proxy is not None and str(exc).startswith("Tunnel connection failed:"):
        status = str(exc).removeprefix("Tunnel connection failed:").strip()
        if status.startswith("407"):
            return _proxy_auth_error(what, proxy)
        if status[:1] == "5":
            return _Retryable(f"proxy {proxy.address} could not reach {host}: {status}")
        return RegistryError(f"{what}: proxy {proxy.address} refused the tunnel to {host} ({status})")
    return _Retryable(f"connection problem ({type(exc).__name__})")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
