"""`imgcheck audit` judges the tags rule's consistent_across_images per release, across images.

The audit verifies each digest on its own; a release is a release tag (`v1.4.2`, `sha-<sha7>`,
`main-<sha7>`) and its images are the digests of the policy's images that carry it. Every test runs the
`imgcheck` process against the real registry, with releases published by the k2 fixture builder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from fixtures.k2 import CURRENT, CURRENT_SEMVER, K2_NAMES, publish_sample_release, push_k2_image, repository
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

CHECK = "consistent_across_images"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=env, timeout=300
    )


def write_policy(path: Path, namespace: str, tags_rule: str) -> Path:
    images = "\n".join(f"  - {{name: {n}, repository: {repository(n, namespace)}}}" for n in K2_NAMES)
    path.write_text(f"version: 1\nimages:\n{images}\nrules:\n  tags: {tags_rule}\n")
    return path


def audit(registry: RegistryServer, policy: Path, *more: str) -> tuple[int, dict[str, Any]]:
    args = ("--policy", str(policy), "--registry", registry.host, "--no-history", "--format", "json", *more)
    result = run_cli("audit", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def consistency(doc: dict[str, Any], image: str, tag: str) -> dict[str, Any]:
    """The consistent_across_images check of the audited digest of `image` that carries `tag`."""
    release = next(r for r in doc["releases"] if r["image"] == image and tag in r["tags"])
    return next(c for c in release["checks"] if c["rule"] == "tags" and c["details"].get("check") == CHECK)


def test_an_inconsistent_release_is_reported_for_that_release_only(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    namespace = "relgroups-semver"
    release = publish_sample_release(
        pusher, registry.host, namespace=namespace, semver=True, platforms=("linux/amd64",)
    )
    odd = release.image("query-engine")  # its v1.4.2 build re-tagged as v1.4.3 instead of being rebuilt
    pusher.tag(odd.repository, odd.digest, "v1.4.3")
    policy = write_policy(tmp_path / "p.yaml", namespace, "{consistent_across_images: true}")

    code, doc = audit(registry, policy)

    assert code == 1
    failing = consistency(doc, "query-engine", "v1.4.2")
    assert failing["verdict"] == "fail"
    assert "release v1.4.2" in failing["message"] and "query-engine is the odd image out" in failing["message"]
    assert "1.4.3" in failing["message"]
    assert failing["details"]["releases"]["v1.4.2"]["images"] == {
        "consumer": "1.4.2",
        "producer": "1.4.2",
        "query-engine": "1.4.3",
    }
    for name in ("producer", "consumer"):
        peer = consistency(doc, name, "v1.4.2")
        assert peer["verdict"] == "pass" and "odd one out: query-engine" in peer["message"]
    for name in K2_NAMES:
        older = consistency(doc, name, "v1.4.1")
        assert older["verdict"] == "pass", older
        assert "all 3 images carry release tag 1.4.1" in older["message"]
    failed = {(r["image"], r["digest"]) for r in doc["releases"] if r["verdict"] == "fail"}
    assert failed == {("query-engine", odd.digest)}

    # Shards compare the same images: a release's peers in another shard are read by digest.
    sharded: dict[tuple[str, str], dict[str, Any]] = {}
    for shard in ("1/2", "2/2"):
        _code, part = audit(registry, policy, "--shard", shard)
        for r in part["releases"]:
            sharded[(r["image"], r["digest"])] = next(c for c in r["checks"] if c["details"].get("check") == CHECK)
    assert sharded == {
        (r["image"], r["digest"]): next(c for c in r["checks"] if c["details"].get("check") == CHECK)
        for r in doc["releases"]
    }

    # The audit says, per release, what `imgcheck verify v1.4.2` says for it.
    verified = run_cli("verify", "v1.4.2", "--policy", str(policy), "--registry", registry.host, "--format", "json")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    for image in json.loads(verified.stdout)["images"]:
        check = next(c for c in image["checks"] if c["details"].get("check") == CHECK)
        assert check["verdict"] == consistency(doc, image["name"], "v1.4.2")["verdict"]


def test_a_release_of_one_image_and_moving_tags_are_not_compared(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    namespace = "relgroups-alone"
    release = publish_sample_release(
        pusher, registry.host, namespace=namespace, semver=True, platforms=("linux/amd64",)
    )
    hotfix = replace(CURRENT_SEMVER, revision="5" * 40, version="1.5.0", created="2026-11-21T10:00:00Z")
    producer = push_k2_image(
        pusher, repository("producer", namespace), name="producer", build=hotfix, tags=("v1.5.0", f"sha-{hotfix.sha7}")
    )
    # `latest` moves: query-engine's points back at 1.4.1 while the others' point at 1.4.2. Not a release.
    old_query = release.image("query-engine", previous=True)
    pusher.tag(old_query.repository, old_query.digest, "latest")
    policy = write_policy(tmp_path / "p.yaml", namespace, "{consistent_across_images: true}")

    code, doc = audit(registry, policy)

    assert code == 0, [(r["image"], r["tags"], r["checks"]) for r in doc["releases"] if r["verdict"] != "pass"]
    alone = consistency(doc, "producer", "v1.5.0")
    assert alone["verdict"] == "pass" and "nothing to compare" in alone["message"]
    assert next(r for r in doc["releases"] if "v1.5.0" in r["tags"])["digest"] == producer.digest
    with_latest = consistency(doc, "query-engine", "latest")
    assert "v1.4.1" in with_latest["message"] and "latest" not in with_latest["details"]["releases"]


def test_branch_builds_compare_the_revision_of_each_build_tag_with_mode_warn(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    namespace = "relgroups-branch"
    release = publish_sample_release(pusher, registry.host, namespace=namespace)  # main-<sha7>, main, latest
    stray = replace(CURRENT, revision="9" * 40)  # consumer's main-<sha7> built from another commit
    consumer = push_k2_image(
        pusher, repository("consumer", namespace), name="consumer", build=stray, tags=CURRENT.branch_tags()
    )
    policy = write_policy(tmp_path / "p.yaml", namespace, "{consistent_across_images: true, mode: warn}")

    code, doc = audit(registry, policy)

    assert code == 0  # mode: warn reports the failure as a warning, as verify does
    build_tag = f"main-{CURRENT.sha7}"
    warned = consistency(doc, "consumer", build_tag)
    assert warned["verdict"] == "warn" and warned["message"].endswith("(mode: warn)")
    assert f"release {build_tag}" in warned["message"] and "consumer is the odd image out" in warned["message"]
    assert "9" * 40 in warned["message"] and CURRENT.revision in warned["message"]
    assert next(r for r in doc["releases"] if build_tag in r["tags"] and r["image"] == "consumer")["digest"] == (
        consumer.digest
    )
    for name in ("producer", "query-engine"):
        assert consistency(doc, name, build_tag)["verdict"] == "pass"
    old_tag = f"main-{release.image('producer', previous=True).build.sha7}"
    for name in K2_NAMES:
        older = consistency(doc, name, old_tag)
        assert older["verdict"] == "pass" and "all 3 images carry org.opencontainers.image.revision" in older["message"]
