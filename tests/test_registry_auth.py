"""Registry auth against the real distribution server: htpasswd (Basic) and token (Bearer) realms.

The token realm is a small real token server issuing ES256 JWTs signed by a certificate the
registry trusts (`auth: token`), so the registry itself checks every token and its scope.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from needs import require_tool

from imgcheck.errors import RegistryError
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.credentials import CredentialStore
from imgcheck.registry.reference import Reference
from imgcheck.testing.push import OCI_MANIFEST, Pusher, canonical_json
from imgcheck.testing.registry_server import RegistryServer, free_port

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

USER = "release-bot"
PASSWORD = "s3cret-" + secrets.token_hex(8)
SERVICE = "imgcheck-test"
ISSUER = "imgcheck-test-issuer"


def bcrypt_htpasswd(user: str, password: str) -> str:
    try:
        import bcrypt
    except ImportError:
        tool = require_tool("htpasswd", "pip install bcrypt, or apt-get install apache2-utils")
        return subprocess.run([tool, "-nbB", user, password], capture_output=True, text=True, check=True).stdout
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"


def write_docker_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def basic_auths(host: str, user: str, password: str) -> dict[str, object]:
    return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def push_small(pusher: Pusher, repo: str, tag: str) -> str:
    cfg = pusher.blob(repo, canonical_json({"architecture": "amd64", "os": "linux", "repo": repo}))
    body = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [],
        }
    )
    return pusher.manifest(repo, tag, body, OCI_MANIFEST)


# --- htpasswd (Basic) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("basic-registry")
    (root / "htpasswd").write_text(bcrypt_htpasswd(USER, PASSWORD))
    server = RegistryServer(root=root, port=free_port())
    server.extra_config = f"auth:\n  htpasswd:\n    realm: imgcheck-test\n    path: {root / 'htpasswd'}\n"
    server.start()
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    push_small(Pusher(server.host, session=session), "team/app", "v1")
    yield server
    server.stop()


def test_basic_auth_from_docker_config(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(write_docker_config(tmp_path, basic_auths(basic_registry.host, USER, PASSWORD)))
    )
    with RegistryClient(env={}) as client:
        manifest = client.resolve(Reference(basic_registry.host, "team/app", tag="v1"))
        assert client.list_tags(basic_registry.host, "team/app") == ["v1"]
        config = client.get_blob(basic_registry.host, "team/app", manifest.json["config"]["digest"])
    assert json.loads(config)["repo"] == "team/app"


def test_basic_auth_is_learnt_once_under_concurrent_first_requests(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several requests refused together before Basic auth is known (the gatherer lists tags while it
    resolves the image): each retries with the credentials; none calls them refused."""
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(write_docker_config(tmp_path, basic_auths(basic_registry.host, USER, PASSWORD)))
    )
    start = threading.Barrier(6)
    results: list[object] = []

    def first_request() -> None:
        start.wait()
        try:
            results.append(client.resolve(Reference(basic_registry.host, "team/app", tag="v1")).digest)
        except RegistryError as err:
            results.append(err)

    for _ in range(3):
        with RegistryClient(env={}) as client:
            threads = [threading.Thread(target=first_request) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    assert len(results) == 18 and all(isinstance(r, str) and r.startswith("sha256:") for r in results), results


def test_anonymous_is_told_to_log_in(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    with RegistryClient(env={}) as client, pytest.raises(RegistryError) as err:
        client.resolve(Reference(basic_registry.host, "team/app", tag="v1"))
    assert err.value.status == 401
    assert f"docker login {basic_registry.host}" in str(err.value)


def test_a_wrong_password_never_appears_in_errors_or_reprs(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(write_docker_config(tmp_path, basic_auths(basic_registry.host, USER, wrong)))
    )
    notes: list[str] = []
    with RegistryClient(env={}, progress=notes.append) as client, pytest.raises(RegistryError) as err:
        client.resolve(Reference(basic_registry.host, "team/app", tag="v1"))
    assert err.value.status == 401
    assert "were refused" in str(err.value) and "config.json" in str(err.value)
    creds = CredentialStore(env={}).get(basic_registry.host)
    assert creds is not None and creds.password == wrong
    encoded = base64.b64encode(f"{USER}:{wrong}".encode()).decode()
    for text in (str(err.value), repr(err.value), repr(client), repr(client.auth), repr(creds), str(creds), *notes):
        assert wrong not in text and encoded not in text


def test_credential_helper_from_docker_config(
    basic_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `docker-credential-<name>` executable speaking the helper protocol (server on stdin)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-imgtest"
    helper.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "assert sys.argv[1:] == ['get']\n"
        "server = sys.stdin.read().strip()\n"
        f"if server != {basic_registry.host!r}:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        f"print(json.dumps({{'ServerURL': server, 'Username': {USER!r}, 'Secret': {PASSWORD!r}}}))\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    configs: list[dict[str, object]] = [{"credHelpers": {basic_registry.host: "imgtest"}}, {"credsStore": "imgtest"}]
    for number, config in enumerate(configs):
        monkeypatch.setenv("DOCKER_CONFIG", str(write_docker_config(tmp_path / f"cfg{number}", config)))
        with RegistryClient(env={}) as client:
            assert client.list_tags(basic_registry.host, "team/app") == ["v1"]


# --- token (Bearer) ------------------------------------------------------------------------------


@dataclass
class TokenServer:
    """Issues ES256 JWTs for the scopes asked, to USER/PASSWORD only; records every request."""

    key: EllipticCurvePrivateKey
    cert_der: bytes
    cert_pem: bytes
    requests_seen: list[tuple[str, str | None]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def issue(self, subject: str, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if kind == "repository":
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture(scope="module")
def token_server() -> Iterator[TokenServer]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgcheck test token issuer")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    server = TokenServer(
        key, cert.public_bytes(serialization.Encoding.DER), cert.public_bytes(serialization.Encoding.PEM)
    )
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            scopes = query.get("scope", [])
            auth = self.headers.get("Authorization")
            server.requests_seen.append((",".join(scopes), auth))
            if auth != expected or query.get("service") != [SERVICE]:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"token": server.issue(USER, scopes), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(scope="module")
def token_registry(token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("token-registry")
    (root / "issuer.pem").write_bytes(token_server.cert_pem)
    server = RegistryServer(root=root, port=free_port())
    server.extra_config = (
        f"auth:\n  token:\n    realm: {token_server.realm}\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {root / 'issuer.pem'}\n"
    )
    server.start()
    session = requests.Session()
    push_token = token_server.issue(USER, ["repository:team/alpha:pull,push", "repository:team/beta:pull,push"])
    session.headers["Authorization"] = f"Bearer {push_token}"
    pusher = Pusher(server.host, session=session)
    push_small(pusher, "team/alpha", "v1")
    push_small(pusher, "team/beta", "v1")
    yield server
    server.stop()


def test_bearer_tokens_are_per_repository_scope(
    token_registry: RegistryServer, token_server: TokenServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(write_docker_config(tmp_path, basic_auths(token_registry.host, USER, PASSWORD)))
    )
    token_server.requests_seen.clear()
    with RegistryClient(env={}) as client:
        alpha = client.resolve(Reference(token_registry.host, "team/alpha", tag="v1"))
        beta = client.resolve(Reference(token_registry.host, "team/beta", tag="v1"))
        again = client.resolve(Reference(token_registry.host, "team/alpha", tag="v1"))
        config = client.get_blob(token_registry.host, "team/beta", beta.json["config"]["digest"])
        assert client.auth.token_count() == 2
    assert alpha.digest == again.digest != beta.digest
    assert json.loads(config)["repo"] == "team/beta"
    scopes = [scope for scope, _auth in token_server.requests_seen]
    assert scopes == ["repository:team/alpha:pull", "repository:team/beta:pull"]
    assert all(auth and auth.startswith("Basic ") for _scope, auth in token_server.requests_seen)


def test_bearer_realm_refusing_anonymous_says_log_in(
    token_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    with RegistryClient(env={}) as client, pytest.raises(RegistryError) as err:
        client.resolve(Reference(token_registry.host, "team/alpha", tag="v1"))
    assert err.value.status == 401 and "docker login" in str(err.value)


def test_bearer_realm_refusing_a_wrong_password_names_the_source_not_the_secret(
    token_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(write_docker_config(tmp_path, basic_auths(token_registry.host, USER, wrong)))
    )
    with RegistryClient(env={}) as client, pytest.raises(RegistryError) as err:
        client.resolve(Reference(token_registry.host, "team/alpha", tag="v1"))
    assert "refused" in str(err.value) and "config.json" in str(err.value)
    assert wrong not in str(err.value) and wrong not in repr(err.value)


# --- where credentials come from -----------------------------------------------------------------


def test_env_tokens_go_to_ghcr_only_and_docker_login_wins_over_github_token(tmp_path: Path) -> None:
    config = write_docker_config(tmp_path / "cfg", basic_auths("https://ghcr.io/v1/", "octo", "from-login"))
    empty = tmp_path / "none" / "config.json"
    github = {"GITHUB_TOKEN": "ghs_ambient"}
    only_github = CredentialStore(env=github, config_path=empty)
    ghcr = only_github.get("ghcr.io")
    assert ghcr is not None and ghcr.password == "ghs_ambient" and ghcr.username
    assert only_github.get("registry.example.com") is None
    logged_in = CredentialStore(env=github, config_path=config / "config.json").get("ghcr.io")
    assert logged_in is not None and (logged_in.username, logged_in.password) == ("octo", "from-login")
    explicit = CredentialStore(
        env={**github, "IMGCHECK_REGISTRY_TOKEN": "ghp_explicit"}, config_path=config / "config.json"
    ).get("ghcr.io")
    assert explicit is not None and explicit.password == "ghp_explicit"
    assert "ghp_explicit" not in repr(explicit) and "ghp_explicit" not in str(explicit)


def test_identity_tokens_are_read_from_docker_config(tmp_path: Path) -> None:
    config = write_docker_config(
        tmp_path, {"auths": {"registry.example.com": {"auth": "", "identitytoken": "refresh-me"}}}
    )
    creds = CredentialStore(env={}, config_path=config / "config.json").get("registry.example.com")
    assert creds is not None and creds.identity_token == "refresh-me"
    assert "refresh-me" not in repr(creds)
