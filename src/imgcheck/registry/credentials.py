"""Where registry credentials come from: imgcheck's env, Docker's config and credential helpers, GITHUB_TOKEN.

Order for a host: `IMGCHECK_REGISTRY_TOKEN` (ghcr.io only), then Docker's config (credHelpers, credsStore,
auths: what `docker login` wrote), then `GITHUB_TOKEN` (ghcr.io only; ambient in Actions, so it comes last).
Env tokens are never sent to other hosts: a `--registry` mirror must be logged in with `docker login`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from imgcheck.deadline import Deadline, run_process
from imgcheck.record import record

GHCR = "ghcr.io"
_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
HELPER_TIMEOUT = 15.0


@record
class Credentials:
    """A username and a secret; the secret never shows in repr, str or messages (only `source` does)."""

    username: str
    password: str = field(repr=False)
    source: str = "unknown"
    identity_token: str | None = field(default=None, repr=False)
    """An OAuth2 refresh token (`identitytoken` / helper username `<token>`), exchanged at the realm."""

    def __str__(self) -> str:
        return f"credentials for {self.username or '<token>'} from {self.source}"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _normalize(key: str) -> str:
    """`https://ghcr.io/v1/` and `ghcr.io` name the same registry in Docker's config."""
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("/", 1)[0].lower()
    return "index.docker.io" if text in _HUB_NAMES else text


class CredentialStore:
    """Looks credentials up once per host and remembers the answer for the run."""

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        note: Callable[[str], None] | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self._deadline = deadline or Deadline.unlimited()
        self._env = env if env is not None else os.environ
        self._config_path = config_path
        self._note = note or (lambda _msg: None)
        self._cache: dict[str, Credentials | None] = {}

    def get(self, registry: str) -> Credentials | None:
        key = _normalize(registry)
        if key not in self._cache:
            self._cache[key] = self._lookup(key)
        return self._cache[key]

    def _lookup(self, host: str) -> Credentials | None:
        if host == GHCR and self._env.get("IMGCHECK_REGISTRY_TOKEN"):
            return Credentials("imgcheck", self._env["IMGCHECK_REGISTRY_TOKEN"], "IMGCHECK_REGISTRY_TOKEN")
        found = self._from_docker_config(host)
        if found is not None:
            return found
        if host == GHCR and self._env.get("GITHUB_TOKEN"):
            return Credentials("imgcheck", self._env["GITHUB_TOKEN"], "GITHUB_TOKEN")
        return None

    def _from_docker_config(self, host: str) -> Credentials | None:
        path = self._config_path or docker_config_path()
        try:
            config: Any = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):
            self._note(f"ignoring unreadable Docker config {path}")
            return None
        if not isinstance(config, dict):
            return None
        helpers = config.get("credHelpers") or {}
        if isinstance(helpers, dict):
            for key, helper in helpers.items():
                if _normalize(key) == host and isinstance(helper, str):
                    return self._from_helper(helper, key)
        auths = config.get("auths") or {}
        entries = auths.items() if isinstance(auths, dict) else []
        matches = [(key, entry) for key, entry in entries if _normalize(key) == host]
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            server = matches[0][0] if matches else (_HUB_KEY if host == "index.docker.io" else host)
            found = self._from_helper(store, server)
            if found is not None:
                return found
        for key, entry in matches:
            found = _from_auth_entry(entry, f"{path} auths[{key}]", self._note)
            if found is not None:
                return found
        return None

    def _from_helper(self, name: str, server: str) -> Credentials | None:
        binary = shutil.which(f"docker-credential-{name}")
        if binary is None:
            self._note(f"Docker credential helper docker-credential-{name} is not installed; going anonymous")
            return None
        try:
            done = run_process(
                self._deadline,
                [binary, "get"],
                doing=f"asking docker-credential-{name} for {_normalize(server)}",
                timeout=HELPER_TIMEOUT,
                input=server.encode(errors="replace"),  # a JSON key may hold a lone surrogate
            )
        except (OSError, subprocess.TimeoutExpired):
            self._note(f"docker-credential-{name} did not answer for {_normalize(server)}; going anonymous")
            return None
        if done.returncode != 0:
            return None  # "credentials not found in native keychain": anonymous, as docker does
        try:
            answer = json.loads(done.stdout)
            username, secret = str(answer["Username"]), str(answer["Secret"])
        except (ValueError, KeyError, TypeError, RecursionError):
            self._note(f"docker-credential-{name} gave an unreadable answer; going anonymous")
            return None
        source = f"docker-credential-{name}"
        if username == "<token>":
            return Credentials("", "", source, identity_token=secret)
        return Credentials(username, secret, source)


def _from_auth_entry(entry: Any, source: str, note: Callable[[str], None]) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    username, password = "", ""
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except ValueError:  # not base64, not ASCII (b64decode's own ValueError), not UTF-8 inside
            note(f"ignoring {source}: `auth` is not base64; going anonymous")
            return None
        username, colon, password = decoded.partition(":")
        if not colon:  # as docker: not `user:password`; a bare token must not become a username we print
            note(f"ignoring {source}: `auth` is not base64 of user:password; going anonymous")
            return None
    elif isinstance(entry.get("username"), str):
        username, password = entry["username"], str(entry.get("password") or "")
    if isinstance(token, str) and token:
        return Credentials(username, "", source, identity_token=token)
    if username or password:
        return Credentials(username, password, source)
    return None
