"""RegistryClient against the real distribution server: verified reads, caps, tags, referrers, errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from imgcheck.errors import DigestMismatchError, RegistryError
from imgcheck.registry.auth import parse_challenge
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.reference import Reference
from imgcheck.testing.push import OCI_INDEX, OCI_MANIFEST, Pusher, canonical_json, sha256_digest
from imgcheck.testing.registry_server import RegistryServer, free_port, start_registry

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
SBOM_TYPE = "application/vnd.cyclonedx+json"
SIG_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass
class Pushed:
    digest: str
    config_digest: str
    layer_digest: str
    body: bytes


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    server = start_registry()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pusher(registry: RegistryServer) -> Pusher:
    return Pusher(registry.host)


@pytest.fixture
def client() -> Iterator[RegistryClient]:
    with RegistryClient(timeout=60, env={}) as c:
        yield c


def push_image(
    pusher: Pusher, repo: str, tag: str, *, arch: str = "amd64", extra: dict[str, object] | None = None
) -> Pushed:
    config = canonical_json({"architecture": arch, "os": "linux", "config": {"Labels": {"tag": tag}}})
    layer = f"layer of {repo}:{tag}:{arch}".encode()
    cfg = pusher.blob(repo, config)
    lay = pusher.blob(repo, layer)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, **cfg},
        "layers": [{"mediaType": LAYER_TYPE, **lay}],
        **(extra or {}),
    }
    body = canonical_json(manifest)
    digest = pusher.manifest(repo, tag, body, OCI_MANIFEST)
    return Pushed(digest, cfg["digest"], lay["digest"], body)


def test_resolve_by_tag_and_by_digest(registry: RegistryServer, pusher: Pusher, client: RegistryClient) -> None:
    pushed = push_image(pusher, "app/one", "v1")
    by_tag = client.resolve(Reference(registry.host, "app/one", tag="v1"))
    assert by_tag.digest == pushed.digest == sha256_digest(by_tag.raw)
    assert by_tag.media_type == OCI_MANIFEST
    assert not by_tag.is_index
    assert by_tag.json["config"]["digest"] == pushed.config_digest
    by_digest = client.resolve(Reference(registry.host, "app/one", digest=pushed.digest))
    assert by_digest.raw == by_tag.raw == pushed.body


def test_resolve_index_and_read_its_children(registry: RegistryServer, pusher: Pusher, client: RegistryClient) -> None:
    amd = push_image(pusher, "app/multi", "amd", arch="amd64")
    arm = push_image(pusher, "app/multi", "arm", arch="arm64")
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": p.digest,
                    "size": len(p.body),
                    "platform": {"os": "linux", "architecture": a},
                }
                for p, a in ((amd, "amd64"), (arm, "arm64"))
            ],
        }
    )
    index_digest = pusher.manifest("app/multi", "latest", index, OCI_INDEX)
    got = client.resolve(Reference(registry.host, "app/multi", tag="latest"))
    assert got.is_index and got.digest == index_digest
    child = client.get_manifest(registry.host, "app/multi", got.json["manifests"][1]["digest"])
    assert child.digest == arm.digest
    config = json.loads(client.get_blob(registry.host, "app/multi", child.json["config"]["digest"]))
    assert config["architecture"] == "arm64"


def test_find_manifest_is_none_for_a_missing_tag(
    registry: RegistryServer, pusher: Pusher, client: RegistryClient
) -> None:
    pushed = push_image(pusher, "app/find", "v1")
    assert client.find_manifest(registry.host, "app/find", "sha256-" + "0" * 64 + ".sig") is None
    found = client.find_manifest(registry.host, "app/find", "v1")
    assert found is not None and found.digest == pushed.digest


def test_tampered_blob_is_a_digest_mismatch(registry: RegistryServer, pusher: Pusher, client: RegistryClient) -> None:
    pushed = push_image(pusher, "app/tamper", "v1")
    path = registry.blob_path(pushed.layer_digest)
    original = path.read_bytes()
    path.write_bytes(original.upper())  # same length, different bytes
    with pytest.raises(DigestMismatchError) as err:
        client.get_blob(registry.host, "app/tamper", pushed.layer_digest)
    assert pushed.layer_digest in str(err.value)


def test_tampered_manifest_is_a_digest_mismatch_by_tag_and_by_digest(
    registry: RegistryServer, pusher: Pusher, client: RegistryClient
) -> None:
    pushed = push_image(pusher, "app/tamper-manifest", "v1")
    path = registry.blob_path(pushed.digest)
    layer_hex = pushed.layer_digest.split(":")[1].encode()
    path.write_bytes(path.read_bytes().replace(layer_hex, layer_hex[::-1]))  # still a valid manifest
    with pytest.raises(DigestMismatchError):
        client.resolve(Reference(registry.host, "app/tamper-manifest", tag="v1"))
    with pytest.raises(DigestMismatchError):
        client.get_manifest(registry.host, "app/tamper-manifest", pushed.digest)


def test_manifest_over_the_cap_is_refused(registry: RegistryServer, pusher: Pusher) -> None:
    """The registry itself will not serve over 4 MiB (our default cap), so the cap is lowered here."""
    push_image(pusher, "app/huge", "v1", extra={"annotations": {"padding": "x" * 100_000}})
    ref = Reference(registry.host, "app/huge", tag="v1")
    with RegistryClient(env={}, max_manifest_bytes=64 * 1024) as small, pytest.raises(RegistryError, match="limit"):
        small.resolve(ref)
    with RegistryClient(env={}) as default:
        assert len(default.resolve(ref).raw) > 100_000


def test_truncated_bodies_are_retried_then_reported(registry: RegistryServer, pusher: Pusher) -> None:
    """A storage file shorter than the registry's recorded size makes it send a short body."""
    digest = pusher.blob("app/short", b"x" * 100_000)["digest"]
    notes: list[str] = []
    with RegistryClient(env={}, backoff=0.05, progress=notes.append) as c:
        assert len(c.get_blob(registry.host, "app/short", digest)) == 100_000
        registry.blob_path(digest).write_bytes(b"x" * 50_000)
        with pytest.raises(RegistryError, match=r"failed 4 times .*cut short"):
            c.get_blob(registry.host, "app/short", digest)
    assert sum("cut short" in note and "retrying" in note for note in notes) == 3


def test_server_errors_are_retried_then_reported(registry: RegistryServer, pusher: Pusher) -> None:
    """The registry answers 500 for a stored manifest over its own 4 MiB read limit."""
    pushed = push_image(pusher, "app/broken", "v1")
    doc = json.loads(pushed.body)
    doc["annotations"] = {"padding": "x" * (5 * 1024 * 1024)}
    registry.blob_path(pushed.digest).write_bytes(canonical_json(doc))
    notes: list[str] = []
    with RegistryClient(env={}, backoff=0.05, progress=notes.append) as c, pytest.raises(RegistryError) as err:
        c.resolve(Reference(registry.host, "app/broken", tag="v1"))
    assert err.value.status == 500 and "retry later" in str(err.value)
    assert sum("HTTP 500, retrying" in note for note in notes) == 3


def test_blob_over_max_bytes_is_refused(registry: RegistryServer, pusher: Pusher, client: RegistryClient) -> None:
    pushed = push_image(pusher, "app/bigblob", "v1")
    assert client.get_blob(registry.host, "app/bigblob", pushed.config_digest, max_bytes=4096)
    with pytest.raises(RegistryError, match="limit"):
        client.get_blob(registry.host, "app/bigblob", pushed.config_digest, max_bytes=8)


def test_malformed_digest_is_refused_before_any_request(registry: RegistryServer, client: RegistryClient) -> None:
    with pytest.raises(RegistryError, match="sha256"):
        client.get_blob(registry.host, "app/one", "sha512:abc")


def test_tags_are_all_listed(registry: RegistryServer, pusher: Pusher, client: RegistryClient) -> None:
    """Debian's registry 2.8 ignores `?n=` on tags/list (one page); the catalog below proves paging."""
    pushed = push_image(pusher, "app/tags", "t0")
    names = [f"t{i}" for i in range(7)]
    for name in names[1:]:
        pusher.tag("app/tags", pushed.digest, name)
    assert sorted(client.list_tags(registry.host, "app/tags", page_size=2)) == names
    assert sorted(client.list_tags(registry.host, "app/tags")) == names
    with pytest.raises(RegistryError, match="more than 5 tags"):
        client.list_tags(registry.host, "app/tags", max_tags=5)


def test_link_pagination_is_followed_and_bounded(client: RegistryClient) -> None:
    """The catalog pages with `Link: <...>; rel="next"` on this registry: same code path as tags."""
    with start_registry() as server:
        pusher = Pusher(server.host)
        repos = [f"paged/r{i}" for i in range(7)]
        for repo in repos:
            push_image(pusher, repo, "v1")
        assert client.list_repositories(server.host, page_size=2) == repos
        with pytest.raises(RegistryError, match="more than 3 pages"):
            client.list_repositories(server.host, page_size=2, max_pages=3)
        with pytest.raises(RegistryError, match="more than 5 repositories"):
            client.list_repositories(server.host, page_size=2, max_repositories=5)


def _artifact(pusher: Pusher, repo: str, subject: Pushed, artifact_type: str, payload: bytes) -> dict[str, object]:
    empty = pusher.blob(repo, b"{}")
    blob = pusher.blob(repo, payload)
    body = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
            "layers": [{"mediaType": artifact_type, **blob}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.body)},
            "annotations": {"org.opencontainers.image.created": "2026-11-01T00:00:00Z"},
        }
    )
    digest = pusher.manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest,
        "size": len(body),
        "artifactType": artifact_type,
        "annotations": {"org.opencontainers.image.created": "2026-11-01T00:00:00Z"},
    }


def test_referrers_fall_back_to_the_sha256_tag_index(
    registry: RegistryServer, pusher: Pusher, client: RegistryClient
) -> None:
    repo = "app/referred"
    subject = push_image(pusher, repo, "v1")
    assert client.referrers(registry.host, repo, subject.digest) == []
    sbom = _artifact(pusher, repo, subject, SBOM_TYPE, b'{"bomFormat":"CycloneDX"}')
    sig = _artifact(pusher, repo, subject, SIG_TYPE, b'{"mediaType":"bundle"}')
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sbom, sig]})
    pusher.manifest(repo, "sha256-" + subject.digest.split(":")[1], index, OCI_INDEX)

    found = client.referrers(registry.host, repo, subject.digest)
    assert [(d.digest, d.artifact_type) for d in found] == [(sbom["digest"], SBOM_TYPE), (sig["digest"], SIG_TYPE)]
    assert found[0].annotations["org.opencontainers.image.created"] == "2026-11-01T00:00:00Z"
    only_sbom = client.referrers(registry.host, repo, subject.digest, artifact_type=SBOM_TYPE)
    assert [d.digest for d in only_sbom] == [sbom["digest"]]
    referred = client.get_manifest(registry.host, repo, only_sbom[0].digest)
    assert referred.json["subject"]["digest"] == subject.digest


def test_a_fallback_tag_that_is_not_an_index_is_ignored(
    registry: RegistryServer, pusher: Pusher, client: RegistryClient
) -> None:
    repo = "app/not-index"
    subject = push_image(pusher, repo, "v1")
    push_image(pusher, repo, "sha256-" + subject.digest.split(":")[1])
    assert client.referrers(registry.host, repo, subject.digest) == []


def test_unknown_tag_lists_existing_tags(registry: RegistryServer, pusher: Pusher, client: RegistryClient) -> None:
    pushed = push_image(pusher, "app/known", "v1")
    pusher.tag("app/known", pushed.digest, "v2")
    with pytest.raises(RegistryError) as err:
        client.resolve(Reference(registry.host, "app/known", tag="v3"))
    text = str(err.value)
    assert err.value.status == 404
    assert f"'v3' not found in {registry.host}/app/known" in text
    assert "existing tags: v1, v2" in text
    assert "\n" not in text


def test_unknown_repository_says_so(registry: RegistryServer, client: RegistryClient) -> None:
    with pytest.raises(RegistryError) as err:
        client.resolve(Reference(registry.host, "nobody/here", tag="latest"))
    assert "repository 'nobody/here' not found" in str(err.value)
    with pytest.raises(RegistryError, match="not found"):
        client.list_tags(registry.host, "nobody/here")
    with pytest.raises(RegistryError, match=r"nobody/here@sha256:0{64} not found"):
        client.get_manifest(registry.host, "nobody/here", "sha256:" + "0" * 64)


def test_dead_registry_is_one_clear_error() -> None:
    host = f"127.0.0.1:{free_port()}"
    with RegistryClient(timeout=20, env={}) as c, pytest.raises(RegistryError) as err:
        c.resolve(Reference(host, "app/one", tag="v1"))
    assert "refused" in str(err.value) and host in str(err.value)


def test_hung_registry_ends_with_an_error_within_the_deadline() -> None:
    """A peer that accepts the connection and never answers: read timeouts, bounded retries, error."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        notes: list[str] = []
        with (
            RegistryClient(timeout=3, read_timeout=0.3, env={}, progress=notes.append) as c,
            pytest.raises(RegistryError) as err,
        ):
            c.resolve(Reference(host, "app/one", tag="v1"))
        assert host in str(err.value)
        assert any("retrying" in n for n in notes)


def test_unresolvable_host_is_one_clear_error() -> None:
    with RegistryClient(timeout=20, env={}) as c, pytest.raises(RegistryError, match="cannot resolve host"):
        c.resolve(Reference("no-such-registry.invalid", "app/one", tag="v1"))


def test_parse_challenge_reads_bearer_and_basic() -> None:
    bearer = parse_challenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"')
    assert bearer is not None
    assert (bearer.scheme, bearer.realm, bearer.service, bearer.scope) == (
        "bearer",
        "https://ghcr.io/token",
        "ghcr.io",
        "repository:a/b:pull,push",
    )
    basic = parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert parse_challenge(None) is None
    assert parse_challenge("Negotiate") is None
