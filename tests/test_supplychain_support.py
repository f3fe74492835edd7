"""Helpers shared by the supply-chain tests (signature, sbom, provenance), plus discovery tests.

Everything runs against the real registry of the session: images pushed with the fixture builder,
signed and attached in exactly cosign's / oras' / buildx's layouts, read back through RegistryClient.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imgcheck.checks.interface import CollectContext, Finding, RuleSpec, RunContext, VerifyOptions
from imgcheck.facts import ImageFacts
from imgcheck.gather import Gatherer
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.reference import parse_reference
from imgcheck.supplychain.attachments import ANN_SIGNATURE, Attachment
from imgcheck.supplychain.discovery import discover
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

CONTAINERS_IMAGE_MAGIC = b"\x00sigstore-json\n"


def push_tiny_image(pusher: Pusher, repo: str, tag: str = "v1", marker: str = "a") -> str:
    """A one-layer image (a few files, no busybox needed) pushed by the fixture builder; its digest."""
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_image

    layer = build_layer(
        {
            "etc/os-release": FileEntry(b'ID=imgcheck\nVERSION_ID="1"\n'),
            "app/hello.txt": FileEntry(f"hello {marker}\n".encode()),
        }
    )
    return push_image(pusher, repo, [layer], ImageConfig(labels={"marker": marker}), tags=[tag]).digest


def gather_facts(registry: RegistryServer, repo: str, ref: str) -> ImageFacts:
    with RegistryClient() as client:
        return Gatherer(client).gather(repo, parse_reference(f"{registry.host}/{repo}{ref}"), need_tags=False)


def run_rule(rule: RuleSpec[Any], facts: ImageFacts, config: Any, policy_dir: Path = Path(".")) -> list[Finding]:
    """collect (real registry) then the pure check, as the pipeline does."""
    assert rule.collect is not None
    with RegistryClient() as client:
        evidence = rule.collect(CollectContext(client, VerifyOptions(policy_dir=policy_dir)), facts, config)
    enriched = replace(facts, extras={**facts.extras, rule.id: evidence})
    return rule.check(enriched, config, RunContext(now=datetime.now(UTC)))


def containers_image_signature(path: Path) -> tuple[bytes, dict[str, str]]:
    """containers/image's on-disk cosign signature -> (payload, layer annotations) as in a `.sig` manifest."""
    raw = path.read_bytes()
    assert raw.startswith(CONTAINERS_IMAGE_MAGIC)
    doc = json.loads(raw[len(CONTAINERS_IMAGE_MAGIC) :])
    return base64.b64decode(doc["payload"]), dict(doc["annotations"])


def facts_for_digest(registry_host: str, repo: str, digest: str) -> ImageFacts:
    """Facts of a digest whose manifest is not in the registry (a corpus manifest whose blobs are not
    in the corpus): signature discovery and verification only need the digest."""
    return ImageFacts(
        name=repo,
        registry=registry_host,
        repository=repo,
        reference=f"{registry_host}/{repo}@{digest}",
        tag=None,
        digest=digest,
        media_type="application/vnd.docker.distribution.manifest.v2+json",
        platforms=(),
    )


def push_bundle_in_fallback_index(pusher: Pusher, repo: str, digest: str, bundle: bytes) -> None:
    """A referrer manifest without `subject` listed in the fallback index of `digest` (the subject
    manifest itself is not in the registry; distribution 2.8 does not validate fallback indexes)."""
    from fixtures.supplychain import EMPTY_CONFIG, cosign_tag
    from imgcheck.testing.push import OCI_INDEX, OCI_MANIFEST, canonical_json, sha256_digest

    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": bundle_type,
        "config": {"mediaType": EMPTY_CONFIG, **pusher.blob(repo, b"{}")},
        "layers": [{"mediaType": bundle_type, **pusher.blob(repo, bundle)}],
    }
    body = canonical_json(manifest)
    ref = pusher.manifest(repo, sha256_digest(body), body, OCI_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": ref, "size": len(body), "artifactType": bundle_type}],
    }
    pusher.manifest(repo, cosign_tag(digest, ""), canonical_json(index), OCI_INDEX)


# ---- discovery tests ---------------------------------------------------------------------------


def test_discovery_finds_cosign_sig_referrer_sbom_and_buildx(pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_attestation_manifest, push_image, push_index
    from fixtures.supplychain import attach_sbom, sign_image

    repo = "sc/discovery"
    layer = build_layer({"a.txt": FileEntry(b"a")})
    platform = push_image(pusher, repo, [layer], ImageConfig())
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "x", "digest": {"sha256": platform.digest.split(":")[1]}}],
            "predicate": {"spdxVersion": "SPDX-2.3"},
        }
    ).encode()
    att = push_attestation_manifest(pusher, repo, platform, [statement])
    index = push_index(pusher, repo, [platform], {platform.digest: att}, tags=["multi"])
    sign_image(pusher, registry.host, repo, index.digest)
    attach_sbom(
        pusher, repo, index.digest, b'{"bomFormat":"CycloneDX"}', "application/vnd.cyclonedx+json", as_cosign_tag=True
    )

    facts = gather_facts(registry, repo, ":multi")
    assert facts.digest == index.digest
    with RegistryClient() as client:
        sigs = discover(client, registry.host, repo, facts.digest, "signature", facts.attestation_manifests)
        sboms = discover(client, registry.host, repo, facts.digest, "sbom", facts.attestation_manifests)
    assert [a.kind for a in sigs.attachments] == ["simplesigning"]
    assert ANN_SIGNATURE in sigs.attachments[0].annotations
    kinds = sorted((a.kind, a.origin.split()[0]) for a in sboms.attachments)
    assert kinds == [("sbom", "cosign"), ("sbom", "referrer"), ("statement", "buildx")]
    buildx = next(a for a in sboms.attachments if a.kind == "statement")
    assert buildx.target == platform.digest
    assert buildx.content == statement


def test_discovery_of_unsigned_image_finds_nothing(pusher: Pusher, registry: RegistryServer) -> None:
    digest = push_tiny_image(pusher, "sc/nothing")
    with RegistryClient() as client:
        found = discover(client, registry.host, "sc/nothing", digest, "signature")
    assert found.attachments == ()
    assert any(".sig" in place for place in found.looked)


def test_attachment_is_frozen() -> None:
    att = Attachment("sbom", "x", "sha256:0", "application/json", b"{}")
    with pytest.raises(AttributeError):
        att.kind = "dsse"  # type: ignore[misc]
