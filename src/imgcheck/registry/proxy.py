"""Which forward proxy, if any, a registry URL goes through: HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY.

urllib's rules, which requests used: the lowercase variable wins over the uppercase one (even when
empty), HTTP_PROXY is ignored under CGI (httpoxy), NO_PROXY holds host suffixes matched on a dot
boundary (with or without the port), `*`, or IP addresses and CIDR blocks for IP hosts. The
transport adds one rule: loopback hosts are never proxied, as in Go's net/http. Read here rather
than through urllib.request, whose import alone costs a run more than all of this.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import field
from urllib.parse import unquote, urlsplit

from imgcheck.errors import RegistryError
from imgcheck.record import record


@record
class Proxy:
    """An HTTP forward proxy: `http` URLs are sent to it as absolute URIs, `https` ones tunnel with CONNECT."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)
    """`Basic ...` from the proxy URL's user:password; never printed (repr hides it)."""

    @property
    def address(self) -> str:
        """`host:port` for messages: the credentials are not part of it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ProxySettings:
    """The proxy variables of the environment, read once; `for_url` answers per scheme and host."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._proxies = {scheme: value for scheme in ("http", "https", "all") if (value := _variable(env, scheme))}
        self._no_proxy = [e.strip().lower() for e in (_variable(env, "no") or "").split(",") if e.strip()]
        self._cache: dict[tuple[str, str], Proxy | None] = {}

    def for_url(self, scheme: str, netloc: str) -> Proxy | None:
        """The proxy for `scheme://netloc`, or None to connect directly."""
        if not self._proxies:
            return None
        key = (scheme, netloc)
        if key not in self._cache:  # racing threads compute the same answer
            value = self._proxies.get(scheme) or self._proxies.get("all")
            self._cache[key] = _parse_proxy(value, scheme) if value and not self.bypassed(netloc) else None
        return self._cache[key]

    def bypassed(self, netloc: str) -> bool:
        """Whether NO_PROXY sends `host[:port]` direct."""
        if not self._no_proxy:
            return False
        host_port = netloc.rpartition("@")[2].lower()
        host = urlsplit(f"//{host_port}").hostname or host_port
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self._no_proxy:
            if entry == "*":
                return True
            if address is not None:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                    continue
                except ValueError:
                    pass
            name = entry.lstrip(".")
            for candidate in (host, host_port):
                if candidate == name or candidate.endswith("." + name):
                    return True
        return False


def _variable(env: Mapping[str, str], scheme: str) -> str | None:
    lower = f"{scheme}_proxy"
    if lower in env:
        return env[lower]
    if scheme == "http" and "REQUEST_METHOD" in env:  # a CGI request's Proxy: header arrives as HTTP_PROXY
        return None
    return env.get(lower.upper())


def _parse_proxy(value: str, scheme: str) -> Proxy:
    """`[http://][user:password@]host[:port]`; the variable's value is never echoed (it may hold a password)."""
    variable = "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY"
    parts = urlsplit(value if "://" in value else f"http://{value}")
    if parts.scheme != "http":
        raise RegistryError(
            f"the {variable} (or ALL_PROXY) proxy uses the unsupported scheme {parts.scheme!r}",
            hint="imgcheck speaks to proxies over plain http:// (https traffic is tunnelled with CONNECT)",
        )
    try:
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        host, port = None, 0
    if not host:
        raise RegistryError(
            f"the {variable} (or ALL_PROXY) proxy setting is not a usable URL",
            hint="expected http://[user:password@]host:port",
        )
    authorization = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return Proxy(host, port, authorization)
