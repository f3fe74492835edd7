"""HTTPS to a real docker-registry serving TLS with a certificate from a CA minted here.

Loopback registries are spoken to over plain HTTP by design (`Transport.base_url`), so the TLS
registry is reached either by URL through `Transport.fetch`, or by `RegistryClient` through a
plain loopback front that redirects every request to it (as GHCR sends blob reads to a CDN).
Which CAs are trusted comes from the environment: the system store, SSL_CERT_FILE, or the
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE that users of the requests-based imgcheck may have set.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from imgcheck.errors import RegistryError
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.reference import Reference
from imgcheck.registry.transport import Transport
from imgcheck.testing.push import OCI_MANIFEST, Pusher, canonical_json, sha256_digest
from imgcheck.testing.registry_server import RegistryServer, free_port

CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
TLS_NAMES = ("localhost", "registry.invalid")
"""What the server certificate is valid for: no IP address, so https://127.0.0.1 is a name mismatch."""


@dataclass(frozen=True)
class Minted:
    ca: Path
    cert: Path
    key: Path


def mint_certificates(directory: Path, names: tuple[str, ...] = TLS_NAMES) -> Minted:
    """A CA and a server certificate it signed for `names` (PEM files), with the `cryptography` package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgcheck test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    minted = Minted(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    minted.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    minted.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    minted.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return minted


class TLSRegistry(RegistryServer):
    """The same server with `http.tls` configured; its readiness probe must then speak https."""

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


def start_tls_registry(root: Path, storage: Path, minted: Minted) -> TLSRegistry:
    """A TLS registry serving `storage` (another registry's); its certificate must name localhost."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "storage").symlink_to(storage, target_is_directory=True)
    server = TLSRegistry(
        root=root,
        port=free_port(),
        extra_config=f"  tls:\n    certificate: {minted.cert}\n    key: {minted.key}\n",
    )
    with pytest.MonkeyPatch.context() as env:  # the start-up probe uses requests: trust the CA, go direct
        env.setenv("REQUESTS_CA_BUNDLE", str(minted.ca))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.delenv(name, raising=False)
            env.delenv(name.lower(), raising=False)
        server.start()
    return server


@dataclass(frozen=True)
class Image:
    repo: str
    digest: str
    config_digest: str
    body: bytes


def push_small(pusher: Pusher, repo: str) -> Image:
    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {"Labels": {"repo": repo}}})
    cfg = pusher.blob(repo, config)
    layer = pusher.blob(repo, f"layer of {repo}".encode())
    body = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
        }
    )
    return Image(repo, pusher.manifest(repo, "latest", body, OCI_MANIFEST), cfg["digest"], body)


@pytest.fixture(scope="module")
def minted(tmp_path_factory: pytest.TempPathFactory) -> Minted:
    return mint_certificates(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="module")
def image(pusher: Pusher) -> Image:
    return push_small(pusher, "tls/app")


@pytest.fixture(scope="module")
def tls_registry(
    registry: RegistryServer, minted: Minted, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TLSRegistry]:
    server = start_tls_registry(tmp_path_factory.mktemp("tls-registry") / "root", registry.storage, minted)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_ca_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says which CAs it trusts; none is inherited from the machine running the suite."""
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def manifest_url(server: RegistryServer, image: Image, host: str = "localhost") -> str:
    return f"https://{host}:{server.port}/v2/{image.repo}/manifests/{image.digest}"


def get(transport: Transport, url: str, **extra: Any) -> Any:
    return transport.fetch(
        "GET", url, headers={"Accept": OCI_MANIFEST}, max_bytes=1 << 20, what="manifest over TLS", **extra
    )


def test_an_untrusted_certificate_is_one_line_naming_tls_and_the_fix(tls_registry: TLSRegistry, image: Image) -> None:
    notes: list[str] = []
    transport = Transport(timeout=30, progress=notes.append)
    with pytest.raises(RegistryError) as err:
        get(transport, manifest_url(tls_registry, image))
    transport.close()
    text = str(err.value)
    assert f"TLS handshake with localhost:{tls_registry.port} failed" in text
    assert "SSL_CERT_FILE" in text and "\n" not in text
    assert notes == [], "a certificate nobody trusts is not retried"


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_each_variable_names_is_trusted(
    variable: str, tls_registry: TLSRegistry, image: Image, minted: Minted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, str(minted.ca))
    transport = Transport(timeout=30)
    try:
        reply = get(transport, manifest_url(tls_registry, image))
    finally:
        transport.close()
    assert reply.status == 200
    assert reply.body == image.body and sha256_digest(reply.body) == image.digest
    assert reply.headers["docker-content-digest"] == reply.headers.get("Docker-Content-Digest") == image.digest


def test_a_certificate_for_another_name_is_refused(
    tls_registry: TLSRegistry, image: Image, minted: Minted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trusted CA, but the certificate names localhost, not 127.0.0.1: hostname checking is on."""
    monkeypatch.setenv("SSL_CERT_FILE", str(minted.ca))
    transport = Transport(timeout=30)
    with pytest.raises(RegistryError, match=r"TLS handshake with 127\.0\.0\.1:\d+ failed"):
        get(transport, manifest_url(tls_registry, image, host="127.0.0.1"))
    transport.close()


def test_an_unreadable_ca_bundle_is_named(
    tls_registry: TLSRegistry, image: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    transport = Transport(timeout=30)
    with pytest.raises(RegistryError, match="REQUESTS_CA_BUNDLE names a CA bundle that cannot be loaded"):
        get(transport, manifest_url(tls_registry, image))
    transport.close()


def test_requests_reuse_one_tls_connection_also_across_threads(
    tls_registry: TLSRegistry, image: Image, minted: Minted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep-alive: one handshake for a run of requests, at most one connection per concurrent thread."""
    monkeypatch.setenv("SSL_CERT_FILE", str(minted.ca))
    url = manifest_url(tls_registry, image)
    transport = Transport(timeout=60)
    try:
        assert all(get(transport, url).body == image.body for _ in range(10))
        assert transport.connections_opened == 1
        bodies: list[bytes] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(15):
                body = get(transport, url).body
                with lock:
                    bodies.append(body)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        transport.close()
    assert bodies == [image.body] * 60
    assert transport.connections_opened <= 4


class _RedirectFront(BaseHTTPRequestHandler):
    """Plain HTTP on loopback; every request is sent on, with 307, to the TLS registry."""

    protocol_version = "HTTP/1.1"
    target = ""

    def do_GET(self) -> None:
        self.send_response(307)
        self.send_header("Location", f"{self.target}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def front(tls_registry: TLSRegistry) -> Iterator[str]:
    handler = type("Front", (_RedirectFront,), {"target": tls_registry.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_registry_client_verifies_content_read_over_tls(
    front: str, image: Image, minted: Minted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(minted.ca))
    with RegistryClient(env={}, timeout=60) as client:
        manifest = client.resolve(Reference(front, image.repo, tag="latest"))
        config = client.get_blob(front, image.repo, image.config_digest)
    assert manifest.digest == image.digest and manifest.raw == image.body
    assert hashlib.sha256(config).hexdigest() == image.config_digest.split(":", 1)[1]


def test_registry_client_through_the_front_without_the_ca_is_a_tls_error(front: str, image: Image) -> None:
    with RegistryClient(env={}, timeout=30) as client, pytest.raises(RegistryError, match="TLS handshake"):
        client.resolve(Reference(front, image.repo, tag="latest"))
