"""HTTP for registries: timeouts, one overall deadline, bounded retries, capped bodies, safe redirects.

Kept apart from the API (client.py) and credentials (auth.py) so each can be read on its own.
Nothing here knows about manifests; it moves bytes and refuses to move too many or wait too long.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from imgcheck.errors import RegistryError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ERROR_BODY_BYTES = 64 * 1024
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024

# Docker Hub's API lives on a different host than its reference name.
_API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def split_host(registry: str) -> str:
    """The host part of `host[:port]` / `[v6]:port`, without brackets."""
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    if registry.count(":") > 1:  # a bare IPv6 address
        return registry
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def is_loopback(registry: str) -> bool:
    host = split_host(registry).lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_host(registry: str) -> str:
    return _API_HOSTS.get(registry, registry)


@dataclass(frozen=True)
class Reply:
    """A response whose body was read (and capped) inside the retry loop."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class _NoAuth(requests.auth.AuthBase):
    """Set as the session's auth so requests never adds ~/.netrc credentials behind our back."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _Retryable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport:
    """One requests session for a run, with a deadline shared by every request it makes."""

    def __init__(
        self,
        *,
        insecure: bool = False,
        timeout: float = 90.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        retry_after_cap: float = 20.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.insecure = insecure
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.retry_after_cap = retry_after_cap
        self._progress = progress
        self.session = requests.Session()
        self.session.auth = _NoAuth()
        self.session.headers["User-Agent"] = "imgcheck"

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def base_url(self, registry: str) -> str:
        scheme = "http" if self.insecure or is_loopback(registry) else "https"
        return f"{scheme}://{api_host(registry)}"

    def allows_plain_http(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme == "https" or self.insecure or is_loopback(parts.netloc)

    def close(self) -> None:
        self.session.close()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

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
        will do it again). Error bodies are kept to their first 64 KiB.
        """
        host = urlsplit(url).netloc
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
            raise RegistryError(
                f"{what}: gave up ({reason}); the {self.timeout:g} s deadline would pass before a retry",
                hint="the registry is overloaded or failing; retry later",
            )
        self.note(f"{what}: {reason}, retrying in {seconds:.1f} s")
        time.sleep(seconds)

    def _timeouts(self, what: str, host: str) -> tuple[float, float]:
        left = self.remaining()
        if left <= 0:
            raise RegistryError(
                f"{what}: {host} did not finish within the {self.timeout:g} s deadline",
                hint=f"check that {host} is healthy, or raise the timeout",
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
        send_headers = dict(headers)
        for _hop in range(MAX_REDIRECTS + 1):
            host = urlsplit(url).netloc
            timeouts = self._timeouts(what, host)
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=send_headers,
                    data=data,
                    timeout=timeouts,
                    stream=True,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise _classify(exc, what, host) from None
            with resp:
                if resp.is_redirect or resp.status_code in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise RegistryError(f"{what}: {host} redirected ({resp.status_code}) without a Location")
                    url = urljoin(url, location)
                    if not self.allows_plain_http(url):
                        raise RegistryError(
                            f"{what}: {host} redirected to plain-HTTP {urlsplit(url).netloc}; refusing",
                            hint="use --insecure only if you trust that network",
                        )
                    if urlsplit(url).netloc != origin:
                        send_headers = {k: v for k, v in send_headers.items() if k.lower() != "authorization"}
                    if resp.status_code == 303:
                        method, data = "GET", None
                    continue
                ok = 200 <= resp.status_code < 300
                body = self._read(resp, max_bytes if ok else ERROR_BODY_BYTES, what, host, strict=ok)
                return Reply(resp.status_code, CaseInsensitiveDict(resp.headers), body, url)
        raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects from {origin}")

    def _read(self, resp: requests.Response, cap: int, what: str, host: str, *, strict: bool) -> bytes:
        if resp.status_code in (204, 304) or (resp.request is not None and resp.request.method == "HEAD"):
            return b""  # no body by definition (RFC 9110), whatever Content-Length says
        declared = resp.headers.get("Content-Length")
        expected = int(declared) if declared and declared.isdigit() else None
        if strict and expected is not None and expected > cap:
            raise RegistryError(
                f"{what}: {host} declares {expected} bytes, over the {cap}-byte limit",
                hint="this is not small metadata; check the reference, or raise the limit",
            )
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in _body_chunks(resp):
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
                        f"{what}: {host} was still sending when the {self.timeout:g} s deadline passed",
                        hint=f"check that {host} is healthy, or raise the timeout",
                    )
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retryable(f"body cut short after {total} bytes ({type(exc).__name__})") from None
        if expected is not None and total != expected:
            raise _Retryable(f"body cut short: {total} of {expected} bytes")
        return b"".join(chunks)


def _body_chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: `read1` returns whatever is there, so a registry that trickles one byte
    at a time cannot keep a 64 KiB read (and so the deadline check between reads) waiting for hours."""
    raw = resp.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2.3
        yield from resp.iter_content(_CHUNK)
        return
    while chunk := raw.read1(_CHUNK, decode_content=True):
        yield chunk


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


def _chain(exc: BaseException) -> list[BaseException]:
    """Every exception reachable from a requests error (urllib3 hides the cause in `reason`/args)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return seen


def _classify(exc: requests.RequestException, what: str, host: str) -> Exception:
    """Connection problems that retrying cannot fix become a one-line RegistryError; others retry."""
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    if any(isinstance(e, ssl.SSLError) for e in chain) or isinstance(exc, requests.exceptions.SSLError):
        return RegistryError(
            f"{what}: TLS handshake with {host} failed",
            hint="check the registry's certificate and the system CA bundle (REQUESTS_CA_BUNDLE)",
        )
    if any(isinstance(e, socket.gaierror) for e in chain) or "NameResolutionError" in names:
        return RegistryError(
            f"{what}: cannot resolve host {split_host(host)}",
            hint="check the registry name in the policy or --registry, and DNS",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return RegistryError(
            f"{what}: connection to {host} refused",
            hint="check that the registry is running and the host and port are right",
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return _Retryable("connect timed out")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return _Retryable("read timed out")
    return _Retryable(f"connection problem ({type(exc).__name__})")
