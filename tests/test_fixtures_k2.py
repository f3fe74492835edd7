"""The sample k2 release really is in the registry the way the k2 pipeline pushes it.

Everything is read back with plain distribution-API GETs (no imgcheck code), every body is checked
against its digest, and the entrypoint is run from the pulled layer with the same static busybox.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fixtures import k2
from fixtures.images import busybox_path
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import OCI_INDEX, OCI_MANIFEST, Pusher
from imgcheck.testing.registry_server import RegistryServer, start_registry

ACCEPT = f"{OCI_INDEX}, {OCI_MANIFEST}"
LABELS = "org.opencontainers.image."


@pytest.fixture(scope="module")
def k2_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path_factory.mktemp("k2-registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def release(k2_registry: RegistryServer) -> k2.SampleRelease:
    return k2.publish_sample_release(Pusher(k2_registry.host), k2_registry.host)


def manifest(host: str, repo: str, ref: str) -> tuple[dict[str, Any], str]:
    """A manifest and its digest, verified against the bytes served."""
    resp = requests.get(f"http://{host}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, timeout=10)
    resp.raise_for_status()
    digest = "sha256:" + hashlib.sha256(resp.content).hexdigest()
    assert resp.headers["Docker-Content-Digest"] == digest
    if ref.startswith("sha256:"):
        assert ref == digest
    doc: dict[str, Any] = json.loads(resp.content)
    assert doc["mediaType"] == resp.headers["Content-Type"]
    return doc, digest


def blob(host: str, repo: str, digest: str) -> bytes:
    resp = requests.get(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=10)
    resp.raise_for_status()
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest
    return resp.content


def config_of(host: str, repo: str, manifest_ref: str) -> dict[str, Any]:
    doc, _ = manifest(host, repo, manifest_ref)
    config: dict[str, Any] = json.loads(blob(host, repo, doc["config"]["digest"]))
    return config


def amd64_manifest_digest(host: str, repo: str, ref: str) -> str:
    index, _ = manifest(host, repo, ref)
    [entry] = [m for m in index["manifests"] if m.get("platform", {}).get("architecture") == "amd64"]
    return str(entry["digest"])


def tags_of(host: str, repo: str) -> set[str]:
    resp = requests.get(f"http://{host}/v2/{repo}/tags/list", timeout=10)
    resp.raise_for_status()
    return set(resp.json()["tags"])


def run_entrypoint(host: str, repo: str, manifest_digest: str, name: str, tmp_path: Path, *args: str) -> str:
    """Pull the layers of one image manifest, find the entrypoint script and run it with busybox sh."""
    doc, _ = manifest(host, repo, manifest_digest)
    wanted = f"usr/local/bin/k2-{name}"
    for layer in doc["layers"]:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(host, repo, layer["digest"])))) as tar:
            if wanted in tar.getnames():
                member = tar.extractfile(wanted)
                assert member is not None
                script = tmp_path / f"k2-{name}"
                script.write_bytes(member.read())
                break
    else:
        raise AssertionError(f"no layer of {repo}@{manifest_digest} holds /{wanted}")
    done = subprocess.run(
        [busybox_path(), "sh", str(script), *args], capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def compressed_size(host: str, repo: str, manifest_digest: str) -> int:
    doc, _ = manifest(host, repo, manifest_digest)
    return int(doc["config"]["size"]) + sum(int(layer["size"]) for layer in doc["layers"])


# --- the release --------------------------------------------------------------------------------------


def test_release_tags_point_where_the_pipeline_puts_them(release: k2.SampleRelease) -> None:
    host = release.host
    sha7, old_sha7 = k2.CURRENT.sha7, k2.PREVIOUS.sha7
    assert re.fullmatch("[0-9a-f]{40}", k2.CURRENT.revision) and sha7 != old_sha7
    assert [image.name for image in release.current] == list(k2.K2_NAMES)
    for image in release.current:
        old = release.image(image.name, previous=True)
        assert image.repository == f"rjdscott/k2-market-data-platform-{image.name}"
        assert tags_of(host, image.repository) == {"latest", "main", f"main-{sha7}", f"main-{old_sha7}"}
        for tag in ("latest", "main", f"main-{sha7}"):
            assert manifest(host, image.repository, tag)[1] == image.digest
        assert manifest(host, image.repository, f"main-{old_sha7}")[1] == old.digest != image.digest


def test_index_holds_the_image_and_its_buildx_attestation(release: k2.SampleRelease) -> None:
    for image in release.images:
        index, _ = manifest(release.host, image.repository, image.digest)
        assert index["mediaType"] == OCI_INDEX == image.media_type
        platforms = [m for m in index["manifests"] if m["platform"] != {"os": "unknown", "architecture": "unknown"}]
        attestations = [m for m in index["manifests"] if m not in platforms]
        assert [(m["platform"], m["mediaType"]) for m in platforms] == [
            ({"os": "linux", "architecture": "amd64"}, OCI_MANIFEST)
        ]
        assert platforms[0]["digest"] == image.platform_digests["linux/amd64"]
        [att] = attestations
        assert att["annotations"] == {
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": platforms[0]["digest"],
        }
        assert image.attestation_digests == {platforms[0]["digest"]: att["digest"]}


def test_config_carries_labels_user_healthcheck_and_entrypoint(release: k2.SampleRelease) -> None:
    for image in release.current:
        config = config_of(release.host, image.repository, image.platform_digests["linux/amd64"])
        labels = config["config"]["Labels"]
        assert labels == {
            LABELS + "title": f"k2-market-data-platform-{image.name}",
            LABELS + "description": labels[LABELS + "description"],
            LABELS + "url": k2.K2_SOURCE,
            LABELS + "source": k2.K2_SOURCE,
            LABELS + "version": "main",
            LABELS + "created": k2.CURRENT.created,
            LABELS + "revision": k2.CURRENT.revision,
            LABELS + "licenses": "MIT",
        }
        assert image.name.replace("-", " ") in labels[LABELS + "description"]
        assert config["created"] == k2.CURRENT.created
        assert (config["os"], config["architecture"]) == ("linux", "amd64")
        assert config["config"]["User"] == "1000"
        assert config["config"]["Entrypoint"] == [f"/usr/local/bin/k2-{image.name}"]
        assert config["config"]["Healthcheck"]["Test"][0] == "CMD"
        assert not [e for e in config["config"]["Env"] if re.match(r"(?i).*(secret|token|password)", e)]


def test_attestation_layers_are_spdx_and_slsa_statements_about_the_image(release: k2.SampleRelease) -> None:
    host = release.host
    for image in release.current:
        [(subject, att_digest)] = image.attestation_digests.items()
        att, _ = manifest(host, image.repository, att_digest)
        statements = {}
        for layer in att["layers"]:
            assert layer["mediaType"] == "application/vnd.in-toto+json"
            statement = json.loads(blob(host, image.repository, layer["digest"]))
            assert layer["annotations"]["in-toto.io/predicate-type"] == statement["predicateType"]
            assert statement["_type"] == "https://in-toto.io/Statement/v0.1"
            assert [s["digest"]["sha256"] for s in statement["subject"]] == [subject.removeprefix("sha256:")]
            statements[statement["predicateType"]] = statement["predicate"]
        assert set(statements) == {"https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"}
        sbom = statements["https://spdx.dev/Document"]
        assert sbom["spdxVersion"] == "SPDX-2.3"
        names = {p["name"]: p for p in sbom["packages"]}
        assert names["busybox-static"]["versionInfo"] == k2.busybox_version() != "unknown"
        assert names[f"k2-{image.name}"]["licenseConcluded"] == "MIT"
        provenance = statements["https://slsa.dev/provenance/v0.2"]
        assert provenance["builder"]["id"] == "https://github.com/docker/build-push-action"
        source = provenance["invocation"]["configSource"]
        assert source["uri"].startswith(k2.K2_SOURCE) and source["digest"]["sha1"] == k2.CURRENT.revision


def test_entrypoint_answers_version_and_health(release: k2.SampleRelease, tmp_path: Path) -> None:
    for image in release.current:
        out = run_entrypoint(
            release.host, image.repository, image.platform_digests["linux/amd64"], image.name, tmp_path, "--version"
        )
        assert out == f"k2-{image.name} main ({k2.CURRENT.sha7})"
        health = run_entrypoint(
            release.host, image.repository, image.platform_digests["linux/amd64"], image.name, tmp_path, "--health"
        )
        assert health == ""


def test_previous_release_is_older_and_slightly_smaller(release: k2.SampleRelease) -> None:
    host = release.host
    for image in release.current:
        old = release.image(image.name, previous=True)
        new_config = config_of(host, image.repository, image.platform_digests["linux/amd64"])
        old_config = config_of(host, old.repository, old.platform_digests["linux/amd64"])
        assert old_config["created"] < new_config["created"]
        new_size = compressed_size(host, image.repository, image.platform_digests["linux/amd64"])
        old_size = compressed_size(host, old.repository, old.platform_digests["linux/amd64"])
        assert old_size < new_size < old_size * 1.10
        assert image.compressed_sizes["linux/amd64"] == new_size
        assert old.compressed_sizes["linux/amd64"] == old_size


def test_publishing_is_deterministic(release: k2.SampleRelease, tmp_path: Path) -> None:
    again = k2.publish_sample_release(Pusher(release.host), release.host)
    assert [i.digest for i in again.images] == [i.digest for i in release.images]
    with start_registry(tmp_path / "other") as other:
        elsewhere = k2.publish_sample_release(Pusher(other.host), other.host)
        assert [i.digest for i in elsewhere.images] == [i.digest for i in release.images]
        assert elsewhere.images[0].reference("latest") == f"{other.host}/{elsewhere.images[0].repository}:latest"


def test_a_fresh_process_builds_the_same_bytes(release: k2.SampleRelease) -> None:
    """No cache, clock or randomness leaks into the digests: another interpreter gets the same ones."""
    code = (
        "import json, sys; from fixtures import k2; from imgcheck.testing.push import Pusher; "
        "r = k2.publish_sample_release(Pusher(sys.argv[1]), sys.argv[1]); "
        "print(json.dumps([i.digest for i in r.images]))"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code, release.host], cwd=root, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == [i.digest for i in release.images]


def test_semver_flavour_tags_and_labels_releases(k2_registry: RegistryServer) -> None:
    host = k2_registry.host
    semver = k2.publish_sample_release(Pusher(host), host, namespace="semver", semver=True)
    for image in semver.current:
        old = semver.image(image.name, previous=True)
        assert image.repository == f"semver/k2-market-data-platform-{image.name}"
        assert tags_of(host, image.repository) == {
            "latest",
            "v1.4.2",
            f"sha-{k2.CURRENT.sha7}",
            "v1.4.1",
            f"sha-{k2.PREVIOUS.sha7}",
        }
        assert manifest(host, image.repository, "latest")[1] == manifest(host, image.repository, "v1.4.2")[1]
        assert manifest(host, image.repository, "v1.4.1")[1] == old.digest
        index, _ = manifest(host, image.repository, "v1.4.2")
        runnable = [m["platform"] for m in index["manifests"] if m["platform"]["os"] != "unknown"]
        assert runnable == [
            {"os": "linux", "architecture": "amd64"},
            {"os": "linux", "architecture": "arm64", "variant": "v8"},
        ]
        assert len(index["manifests"]) == 4  # one attestation manifest per platform
        labels = config_of(host, image.repository, image.platform_digests["linux/amd64"])["config"]["Labels"]
        assert labels[LABELS + "version"] == "1.4.2"
        old_labels = config_of(host, old.repository, old.platform_digests["linux/amd64"])["config"]["Labels"]
        assert old_labels[LABELS + "version"] == "1.4.1"


# --- broken variants: each one differs from the release in exactly the way it claims -------------------


@pytest.fixture
def k2_pusher(k2_registry: RegistryServer) -> Pusher:
    return Pusher(k2_registry.host)


def test_missing_labels_variant(k2_pusher: Pusher) -> None:
    image = k2.push_missing_labels(k2_pusher, "broken/missing-labels")
    labels = config_of(k2_pusher.host, image.repository, image.platform_digests["linux/amd64"])
    present = set(labels["config"]["Labels"])
    assert LABELS + "revision" not in present and LABELS + "created" not in present
    assert LABELS + "source" in present
    assert tags_of(k2_pusher.host, image.repository) == set(k2.CURRENT.branch_tags())


def test_runs_as_root_variant(k2_pusher: Pusher) -> None:
    for user in ("", "0"):
        image = k2.push_runs_as_root(k2_pusher, f"broken/root{user}", user=user)
        assert (
            config_of(k2_pusher.host, image.repository, image.platform_digests["linux/amd64"])["config"]["User"] == user
        )


def test_oversize_variant_exceeds_a_small_budget(k2_pusher: Pusher, release: k2.SampleRelease) -> None:
    image = k2.push_oversize(k2_pusher, "broken/oversize", extra_bytes=3_000_000)
    big = compressed_size(k2_pusher.host, image.repository, image.platform_digests["linux/amd64"])
    normal = release.image("producer").compressed_sizes["linux/amd64"]
    assert normal < 2_000_000 < 3_000_000 < big
    assert big == image.compressed_sizes["linux/amd64"]


def test_latest_not_newest_variant(k2_pusher: Pusher) -> None:
    old, new = k2.push_latest_not_newest(k2_pusher, "broken/latest-old")
    repo = old.repository
    assert manifest(k2_pusher.host, repo, "latest")[1] == old.digest
    assert manifest(k2_pusher.host, repo, "main")[1] == new.digest != old.digest
    old_created = config_of(k2_pusher.host, repo, old.platform_digests["linux/amd64"])["created"]
    new_created = config_of(k2_pusher.host, repo, new.platform_digests["linux/amd64"])["created"]
    assert old_created < new_created


def test_secret_env_variant(k2_pusher: Pusher) -> None:
    image = k2.push_secret_env(k2_pusher, "broken/secret-env")
    env = config_of(k2_pusher.host, image.repository, image.platform_digests["linux/amd64"])["config"]["Env"]
    assert f"API_TOKEN={k2.DEMO_SECRET}" in env


def test_wrong_version_variant(k2_pusher: Pusher, tmp_path: Path) -> None:
    image = k2.push_wrong_version(k2_pusher, "broken/wrong-version")
    out = run_entrypoint(
        k2_pusher.host, image.repository, image.platform_digests["linux/amd64"], "producer", tmp_path, "--version"
    )
    assert out == "k2-producer 0.9.0-dev (0000000)"
    labels = config_of(k2_pusher.host, image.repository, image.platform_digests["linux/amd64"])["config"]["Labels"]
    assert labels[LABELS + "version"] not in out


def test_single_platform_variant_is_a_plain_manifest(k2_pusher: Pusher) -> None:
    image = k2.push_single_platform(k2_pusher, "broken/single-platform")
    doc, digest = manifest(k2_pusher.host, image.repository, "latest")
    assert doc["mediaType"] == OCI_MANIFEST == image.media_type
    assert digest == image.digest == image.platform_digests["linux/amd64"]
    two = k2.push_two_platforms(k2_pusher, "good/two-platforms")
    index, _ = manifest(k2_pusher.host, two.repository, "latest")
    assert {m["platform"].get("architecture") for m in index["manifests"]} == {"amd64", "arm64", "unknown"}


def test_variants_are_deterministic(k2_pusher: Pusher) -> None:
    first = k2.push_secret_env(k2_pusher, "broken/secret-env-a")
    second = k2.push_secret_env(k2_pusher, "broken/secret-env-a")
    assert first.digest == second.digest


# --- against the real CLI: the release passes the demo policy, each variant fails exactly its rule -----

DEMO_POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "demo-policy.yaml"
METADATA_RULES = ("size", "labels", "tags", "config", "platforms")


def verify_json(host: str, policy: Path, target: str = "latest") -> tuple[int, dict[str, Any], str]:
    args = ["verify", target, "--registry", host, "--policy", str(policy), "--format", "json", "--no-smoke"]
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report, done.stdout + done.stderr


def policy_for(tmp_path: Path, repo: str, **rule_overrides: dict[str, Any]) -> Path:
    """The demo policy's rules, applied to one repository (with some rules changed)."""
    import yaml

    doc = yaml.safe_load(DEMO_POLICY.read_text())
    doc["images"] = [{"name": "producer", "repository": repo}]
    doc["rules"] = {k: v for k, v in doc["rules"].items() if k in METADATA_RULES}
    doc["rules"].update(rule_overrides)
    path = tmp_path / f"{repo.replace('/', '-')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def failing_rules(report: dict[str, Any]) -> set[str]:
    return {c["rule"] for image in report["images"] for c in image["checks"] if c["verdict"] == "fail"}


def test_release_passes_the_demo_policy(release: k2.SampleRelease, tmp_path: Path) -> None:
    """The metadata rules of the demo policy (the demo adds signatures and reports; test_demo covers those)."""
    import yaml

    doc = yaml.safe_load(DEMO_POLICY.read_text())
    doc["rules"] = {k: v for k, v in doc["rules"].items() if k in METADATA_RULES}
    policy = tmp_path / "metadata.yaml"
    policy.write_text(yaml.safe_dump(doc))
    code, report, _ = verify_json(release.host, policy)
    assert (code, report["verdict"]) == (0, "pass")
    assert {image["digest"] for image in report["images"]} == set(release.digests.values())
    assert {c["rule"] for c in report["images"][0]["checks"]} == {"size", "labels", "tags", "config", "platforms"}


@pytest.mark.parametrize(
    ("variant", "overrides", "expected"),
    [
        ("missing-labels", {}, {"labels"}),
        ("root", {}, {"config"}),
        ("secret-env", {}, {"config"}),
        ("oversize", {"size": {"max_compressed": "2MB"}}, {"size"}),
        ("latest-old", {}, {"tags"}),
        ("single-platform", {"platforms": {"required": ["linux/amd64", "linux/arm64"]}}, {"platforms"}),
    ],
)
def test_each_variant_fails_exactly_its_rule(
    k2_pusher: Pusher, tmp_path: Path, variant: str, overrides: dict[str, Any], expected: set[str]
) -> None:
    repo = f"cli/{variant}"
    pushers: dict[str, Callable[[Pusher, str], object]] = {
        "missing-labels": k2.push_missing_labels,
        "root": k2.push_runs_as_root,
        "secret-env": k2.push_secret_env,
        "oversize": k2.push_oversize,
        "latest-old": k2.push_latest_not_newest,
        "single-platform": k2.push_single_platform,
    }
    pushers[variant](k2_pusher, repo)
    code, report, output = verify_json(k2_pusher.host, policy_for(tmp_path, repo, **overrides))
    assert (code, report["verdict"]) == (1, "fail"), output
    assert failing_rules(report) == expected, output
    assert k2.DEMO_SECRET not in output


def test_two_platform_counterpart_passes_the_two_platform_rule(k2_pusher: Pusher, tmp_path: Path) -> None:
    k2.push_two_platforms(k2_pusher, "cli/two-platforms")
    policy = policy_for(tmp_path, "cli/two-platforms", platforms={"required": ["linux/amd64", "linux/arm64"]})
    code, report, output = verify_json(k2_pusher.host, policy)
    assert (code, report["verdict"]) == (0, "pass"), output


def test_semver_flavour_passes_the_release_policy_metadata_rules(k2_registry: RegistryServer, tmp_path: Path) -> None:
    """policies/k2-release.yaml (its registry-metadata rules) accepts the semver flavour, growth included."""
    import yaml

    import imgcheck

    host = k2_registry.host
    k2.publish_sample_release(Pusher(host), host, namespace="semver-policy", semver=True)
    bundled = Path(imgcheck.__file__).parent / "policies" / "k2-release.yaml"
    doc = yaml.safe_load(bundled.read_text())
    for image in doc["images"]:
        image["repository"] = image["repository"].replace("rjdscott/", "semver-policy/", 1)
    metadata = ("size", "labels", "tags", "config", "platforms")
    doc["rules"] = {rule: doc["rules"][rule] for rule in metadata}
    doc["rules"]["size"].pop("max_uncompressed")  # needs a pull (engine); not a registry-metadata rule
    policy = tmp_path / "k2-release-metadata.yaml"
    policy.write_text(yaml.safe_dump(doc))
    code, report, output = verify_json(host, policy, "v1.4.2")
    assert (code, report["verdict"]) == (0, "pass"), output
    checks = {c["rule"] for image in report["images"] for c in image["checks"]}
    assert checks == set(metadata)


@pytest.mark.engine
def test_demo_script_shows_a_pass_then_a_failure(engine: EngineHandle) -> None:
    """`make demo` end to end: every rule passes on the release (smoke in the session's engine), then fails."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "COLUMNS": "220"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PASS" in done.stdout and "FAIL" in done.stdout
    assert "Demo OK" in done.stderr and "Registry stopped" in done.stderr
    release_table, candidate_table = done.stdout.split("PASS: 3 image(s)", 1)
    for rule in ("smoke", "signature", "sbom", "provenance", "vulnerabilities"):
        assert rule in release_table
    assert "CVE-2024-3094" in candidate_table and "1 waived" in release_table
