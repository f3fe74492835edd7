"""Answering registry 401s: Bearer tokens cached per (registry, scope), or Basic credentials.

One token per repository scope is the point: oras-py keeps one per client, so the second
repository of a run is refused. Tokens are remembered until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from imgcheck.errors import RegistryError
from imgcheck.record import record
from imgcheck.registry.credentials import Credentials, CredentialStore
from imgcheck.registry.transport import Transport

TOKEN_BYTES = 1024 * 1024
DEFAULT_TOKEN_LIFETIME = 60.0
_PARAM_RE = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))')


@record
class Challenge:
    scheme: str
    """`bearer` or `basic` (lowercased)."""
    realm: str = ""
    service: str = ""
    scope: str = ""


def parse_challenge(header: str | None) -> Challenge | None:
    """The first Bearer (else Basic) challenge of a `WWW-Authenticate` header."""
    if not header:
        return None
    found: Challenge | None = None
    for match in re.finditer(r"(?i)\b(bearer|basic)\b", header):
        scheme = match.group(1).lower()
        rest = header[match.end() :]
        nxt = re.search(r"(?i)\b(bearer|basic)\s", rest)
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM_RE.finditer(rest[: nxt.start()] if nxt else rest)
        }
        challenge = Challenge(scheme, params.get("realm", ""), params.get("service", ""), params.get("scope", ""))
        if scheme == "bearer" and challenge.realm:
            return challenge
        found = found or (challenge if scheme == "basic" else None)
    return found


def basic_header(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()


class Authenticator:
    """Turns 401 challenges into Authorization headers for later requests."""

    def __init__(self, transport: Transport, credentials: CredentialStore) -> None:
        self._transport = transport
        self._credentials = credentials
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._realms: dict[str, Challenge] = {}
        self._basic: set[str] = set()

    def __repr__(self) -> str:
        return f"Authenticator({len(self._tokens)} cached tokens)"

    def token_count(self) -> int:
        """How many (registry, scope) tokens are cached (for tests and --verbose)."""
        with self._lock:
            return len(self._tokens)

    def headers(self, registry: str, scope: str) -> dict[str, str]:
        """What to send before any challenge: a cached token, a fresh one for a known realm, or Basic."""
        with self._lock:
            cached = self._tokens.get((registry, scope))
            realm = self._realms.get(registry)
            basic = registry in self._basic
        if cached and cached[1] > time.monotonic():
            return {"Authorization": f"Bearer {cached[0]}"}
        if realm is not None:
            token = self._fetch_token(registry, scope, realm)
            if token:
                return {"Authorization": f"Bearer {token}"}
        creds = self._credentials.get(registry) if basic else None
        return {"Authorization": basic_header(creds)} if creds else {}

    def answer(self, registry: str, scope: str, header: str | None, *, sent: Mapping[str, str] | None = None) -> bool:
        """React to a 401: True when there is something new to retry with. `sent` is the refused request's
        headers: under concurrency another request may have learnt of Basic auth first, so only a request
        that itself carried the credentials proves them refused."""
        challenge = parse_challenge(header)
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            creds = self._credentials.get(registry)
            if creds is None or not (creds.username or creds.password):
                return False
            with self._lock:
                carried = sent.get("Authorization", "").startswith("Basic ") if sent is not None else None
                if carried or (carried is None and registry in self._basic):
                    return False  # these credentials were sent and refused
                self._basic.add(registry)
            return True
        with self._lock:
            self._realms[registry] = challenge
            self._tokens.pop((registry, scope), None)
        return self._fetch_token(registry, scope, challenge) is not None

    def _fetch_token(self, registry: str, scope: str, challenge: Challenge) -> str | None:
        creds = self._credentials.get(registry)
        realm = challenge.realm
        what = f"token for {scope} from {urlsplit(realm).netloc or realm}"
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{registry} named an unusable token realm {realm!r}")
        if creds is not None and not self._transport.allows_plain_http(realm):
            raise RegistryError(
                f"{registry} asks for credentials over plain HTTP ({urlsplit(realm).netloc}); refusing to send them",
                hint="use --insecure only if you trust that network",
            )
        params = {"service": challenge.service} if challenge.service else {}
        params["scope"] = scope
        self._transport.note(f"fetching {what}")
        if creds is not None and creds.identity_token:
            form = {**params, "grant_type": "refresh_token", "refresh_token": creds.identity_token}
            form["client_id"] = "imgcheck"
            reply = self._transport.fetch("POST", realm, headers={}, data=form, max_bytes=TOKEN_BYTES, what=what)
        else:
            headers = {"Authorization": basic_header(creds)} if creds else {}
            sep = "&" if "?" in realm else "?"
            reply = self._transport.fetch(
                "GET", f"{realm}{sep}{urlencode(params)}", headers=headers, max_bytes=TOKEN_BYTES, what=what
            )
        if reply.status in (401, 403):
            if creds is None:
                return None  # anonymous refused: the registry's own 401 explains it better
            raise RegistryError(
                f"{what}: refused ({reply.status}) the credentials from {creds.source}",
                status=reply.status,
                hint=f"log in again (docker login {registry}) or check the token's scopes",
            )
        if reply.status != 200:
            raise RegistryError(f"{what}: token server answered HTTP {reply.status}", status=reply.status)
        try:
            answer = json.loads(reply.body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError, RecursionError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: the token server's answer has no token")
        lifetime = answer.get("expires_in")
        seconds = DEFAULT_TOKEN_LIFETIME
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and 0 < lifetime < 10**9:
            seconds = float(lifetime)
        with self._lock:
            self._tokens[(registry, scope)] = (token, time.monotonic() + max(1.0, seconds - 5.0))
        return token
