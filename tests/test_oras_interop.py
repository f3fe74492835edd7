"""oras-py (the `oras` package) as the tool that attached an SBOM, read back by imgcheck.

The SBOM is pushed by oras-py's own `Registry.push(subject=...)` to Debian's docker-registry
(distribution 2.8, no referrers API). oras-py writes no `artifactType` (the config's and the layer's
media types carry the type) and keeps no `sha256-<hex>` fallback index: with the fallback entry added
as the Go `oras` CLI would, imgcheck finds the SBOM and the rule passes; without it the SBOM cannot be
found on this registry and the rule fails. Nothing is mocked: the real CLI, registry and oras-py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_supplychain_support import push_tiny_image

from imgcheck.registry.client import RegistryClient
from imgcheck.supplychain.discovery import discover, effective_artifact_type
from imgcheck.testing.push import OCI_INDEX, OCI_MANIFEST, Pusher, canonical_json
from imgcheck.testing.registry_server import RegistryServer

CDX = "application/vnd.cyclonedx+json"
ORAS_PY_LAYER = "application/vnd.oci.image.layer.v1.tar"
ORAS_PY_CONFIG = "application/vnd.unknown.config.v1+json"
ALPINE_CDX = "guacsec-guac__alpine-cyclonedx.json"
ALPINE_DIGEST_HEX = "cbaa390ec61abd889dfa5146a411c11717c19ef9e5e18458dbdc06439076ffe7"
"""The digest syft wrote as the described image's version (docker.io/library/alpine:latest)."""

POLICY = """\
version: 1
registry: {host}
images:
  - name: app
    repository: {repo}
rules:
  sbom:
    formats: [cyclonedx]
    min_components: 15
"""


def sbom_of(corpus: Path, tmp_path: Path, digest: str) -> Path:
    """The corpus's syft CycloneDX of alpine, rebound to `digest` (its `metadata.component.version`)."""
    text = (corpus / ALPINE_CDX).read_text()
    assert text.count(ALPINE_DIGEST_HEX) == 1
    path = tmp_path / "sbom.cdx.json"
    path.write_text(text.replace(ALPINE_DIGEST_HEX, digest.partition(":")[2]))
    return path


def verify_json(registry: RegistryServer, repo: str, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """`imgcheck verify <registry>/<repo>:v1 --format json` with an sbom-only policy, as CI runs it."""
    policy = tmp_path / "imgcheck.yaml"
    policy.write_text(POLICY.format(host=registry.host, repo=repo))
    args = ["verify", f"{registry.host}/{repo}:v1", "--policy", str(policy), "--format", "json"]
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr + done.stdout
    return done.returncode, json.loads(done.stdout)


def sbom_check(report: dict[str, Any]) -> dict[str, Any]:
    [image] = report["images"]
    [check] = [c for c in image["checks"] if c["rule"] == "sbom"]
    return dict(check)


def fallback_entries(pusher: Pusher, repo: str, digest: str) -> list[dict[str, Any]]:
    assert pusher.session is not None
    resp = pusher.session.get(
        f"http://{pusher.host}/v2/{repo}/manifests/sha256-{digest.partition(':')[2]}",
        headers={"Accept": OCI_INDEX},
        timeout=30,
    )
    return list(resp.json()["manifests"]) if resp.status_code == 200 else []


def stored_bytes(pusher: Pusher, repo: str, digest: str) -> bytes:
    """A manifest as oras-py serialised it (its own JSON spacing), as the registry stores it."""
    assert pusher.session is not None
    resp = pusher.session.get(
        f"http://{pusher.host}/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}, timeout=30
    )
    resp.raise_for_status()
    return bytes(resp.content)


def stored_manifest(pusher: Pusher, repo: str, digest: str) -> dict[str, Any]:
    return dict(json.loads(stored_bytes(pusher, repo, digest)))


def test_oras_py_sbom_with_fallback_entry_is_found_and_passes(
    pusher: Pusher, registry: RegistryServer, corpus: Path, tmp_path: Path
) -> None:
    from fixtures.supplychain import oras_py_attach

    repo = "oras/with-fallback"
    digest = push_tiny_image(pusher, repo, marker="with-fallback")
    sbom = sbom_of(corpus, tmp_path, digest)
    ref = oras_py_attach(pusher, repo, digest, sbom, media_type=CDX, config_media_type=CDX, fallback_index=True)

    manifest = stored_manifest(pusher, repo, ref)
    assert "artifactType" not in manifest  # oras-py's layout: the type is in the config and the layer
    assert manifest["config"]["mediaType"] == CDX and manifest["layers"][0]["mediaType"] == CDX
    assert manifest["subject"]["digest"] == digest
    assert [(e["digest"], e["artifactType"]) for e in fallback_entries(pusher, repo, digest)] == [(ref, CDX)]

    code, report = verify_json(registry, repo, tmp_path)
    check = sbom_check(report)
    assert (code, report["verdict"], check["verdict"]) == (0, "pass", "pass"), check
    assert "cyclonedx" in check["message"]


def test_oras_py_sbom_without_fallback_entry_is_missing_and_fails(
    pusher: Pusher, registry: RegistryServer, corpus: Path, tmp_path: Path
) -> None:
    """oras-py's gap, documented: it does not write the fallback tag, and distribution 2.8 has no
    referrers API, so nothing links the image to its SBOM. imgcheck must say so, never pass."""
    from fixtures.supplychain import oras_py_attach

    repo = "oras/no-fallback"
    digest = push_tiny_image(pusher, repo, marker="no-fallback")
    ref = oras_py_attach(pusher, repo, digest, sbom_of(corpus, tmp_path, digest), media_type=CDX, config_media_type=CDX)

    assert stored_manifest(pusher, repo, ref)["subject"]["digest"] == digest  # pushed, with its subject
    assert fallback_entries(pusher, repo, digest) == []
    with RegistryClient() as client:
        found = discover(client, registry.host, repo, digest, "sbom")
    assert found.attachments == ()
    assert f"referrers of {digest}" in found.looked

    code, report = verify_json(registry, repo, tmp_path)
    check = sbom_check(report)
    assert (code, report["verdict"], check["verdict"]) == (1, "fail", "fail"), check
    assert "no SBOM attached" in check["message"]


def test_oras_py_generic_layer_typed_by_config_only(
    pusher: Pusher, registry: RegistryServer, corpus: Path, tmp_path: Path
) -> None:
    """A file pushed without `:type` gets oras-py's generic layer type; only the config's media type
    says CycloneDX. Found whether the fallback entry carries that type (as the Go CLI writes it) or
    none at all (a client that copies the manifest's absent `artifactType`): OCI 1.1 types it by config."""
    from fixtures.supplychain import cosign_tag, oras_py_attach

    repo = "oras/generic-layer"
    digest = push_tiny_image(pusher, repo, marker="generic-layer")
    ref = oras_py_attach(pusher, repo, digest, sbom_of(corpus, tmp_path, digest), config_media_type=CDX)
    manifest = stored_manifest(pusher, repo, ref)
    assert manifest["layers"][0]["mediaType"] == ORAS_PY_LAYER

    size = len(stored_bytes(pusher, repo, ref))
    for entry in ({"artifactType": CDX}, {}):
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": ref, "size": size, **entry}],
        }
        pusher.manifest(repo, cosign_tag(digest, ""), canonical_json(index), OCI_INDEX)
        with RegistryClient() as client:
            found = discover(client, registry.host, repo, digest, "sbom")
        assert [(a.kind, a.origin.split()[0]) for a in found.attachments] == [("sbom", "referrer")], entry
        assert found.attachments[0].content == sbom_of(corpus, tmp_path, digest).read_bytes()
        # the SBOM is not evidence of anything else
        with RegistryClient() as client:
            assert discover(client, registry.host, repo, digest, "vulnerabilities").attachments == ()
            assert discover(client, registry.host, repo, digest, "signature").attachments == ()


def test_oras_py_default_layout_without_any_type_is_not_taken_for_an_sbom(
    pusher: Pusher, registry: RegistryServer, corpus: Path, tmp_path: Path
) -> None:
    """oras-py's defaults (unknown config, generic layer) say nothing about the content: not an SBOM."""
    from fixtures.supplychain import oras_py_attach

    repo = "oras/untyped"
    digest = push_tiny_image(pusher, repo, marker="untyped")
    ref = oras_py_attach(pusher, repo, digest, sbom_of(corpus, tmp_path, digest), fallback_index=True)
    manifest = stored_manifest(pusher, repo, ref)
    assert (manifest["config"]["mediaType"], manifest["layers"][0]["mediaType"]) == (ORAS_PY_CONFIG, ORAS_PY_LAYER)
    assert [e["artifactType"] for e in fallback_entries(pusher, repo, digest)] == [ORAS_PY_CONFIG]
    with RegistryClient() as client:
        assert discover(client, registry.host, repo, digest, "sbom").attachments == ()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ({"artifactType": CDX, "config": {"mediaType": "application/vnd.oci.empty.v1+json"}}, CDX),
        ({"config": {"mediaType": CDX}}, CDX),  # oras-py: no artifactType, typed by its config
        ({"config": {"mediaType": "application/spdx+json"}}, "application/spdx+json"),
        ({"config": {"mediaType": ORAS_PY_CONFIG}}, ""),  # oras-py's default config says nothing
        ({"config": {"mediaType": "application/vnd.oci.empty.v1+json"}}, ""),
        ({"config": {"mediaType": "application/vnd.oci.image.config.v1+json"}}, ""),
        ({"config": {"mediaType": "application/vnd.docker.container.image.v1+json"}}, ""),
        ({"config": "not a descriptor"}, ""),
        ({}, ""),
    ],
)
def test_effective_artifact_type_follows_oci_1_1(manifest: dict[str, Any], expected: str) -> None:
    assert effective_artifact_type(manifest) == expected
