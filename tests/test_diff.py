"""`imgcheck diff OLD NEW` against the real registry: two releases pushed by the fixture builder, with
their buildx SBOMs and Trivy reports; env values never appear in any output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fixtures.images import data_layer
from fixtures.k2 import CURRENT_SEMVER, DEMO_SECRET, K2_NAMES, PREVIOUS_SEMVER, push_k2_image
from fixtures.security import BUSYBOX_AWK_UAF, XZ_BACKDOOR, trivy_report
from imgcheck.audit.diff import sbom_packages
from imgcheck.audit.diff_render import run_diff
from imgcheck.checks.interface import VerifyOptions
from imgcheck.policy.loader import load_policy
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

NAMESPACE = "diff"


def publish(pusher: Pusher, reports: Path) -> dict[str, tuple[Any, Any]]:
    pairs = {}
    reports.mkdir()
    for name in K2_NAMES[:2]:
        repo = f"{NAMESPACE}/k2-market-data-platform-{name}"
        old = push_k2_image(pusher, repo, name=name, build=PREVIOUS_SEMVER, tags=("v1.4.1",))
        extra = [data_layer("/opt/k2/model.bin", 400_000, seed=name.encode())] if name == "producer" else []
        new = push_k2_image(
            pusher,
            repo,
            name=name,
            build=CURRENT_SEMVER,
            tags=("v1.4.2",),
            extra_env=[f"API_TOKEN={DEMO_SECRET}"],
            extra_layers=extra,
            user="1001",
        )
        for image, findings in ((old, [XZ_BACKDOOR]), (new, [BUSYBOX_AWK_UAF])):
            doc = trivy_report(image, findings, created=datetime.now(UTC))
            (reports / f"{name}-{image.digest[7:19]}.trivy.json").write_text(json.dumps(doc))
        pairs[name] = (old, new)
    return pairs


def policy_file(tmp: Path) -> Path:
    path = tmp / "diff.yaml"
    images = "\n".join(f"  - {{name: {n}, repository: {NAMESPACE}/k2-market-data-platform-{n}}}" for n in K2_NAMES[:2])
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            registry: 127.0.0.1:5000
            images:
            {images}
            rules:
              size: {max_compressed: 500MB, max_growth: 10%}
            """
        ).replace("{images}", images)
    )
    return path


def test_diff_shows_sizes_labels_config_packages_and_vulnerabilities(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    pairs = publish(pusher, tmp_path / "reports")
    policy = load_policy(policy_file(tmp_path))
    options = VerifyOptions(registry_override=registry.host, trivy_reports=(tmp_path / "reports",))
    out = io.StringIO()
    code = run_diff(policy, options, "v1.4.1", "v1.4.2", output_format="json", out=out)
    text = out.getvalue()
    assert DEMO_SECRET not in text
    doc = json.loads(text)
    assert doc["schema"] == "imgcheck.diff/v1"
    producer, consumer = doc["images"]
    assert producer["old"]["digest"] == pairs["producer"][0].digest
    assert producer["new"]["digest"] == pairs["producer"][1].digest
    (platform,) = producer["platforms"]
    assert platform["old_compressed"] == pairs["producer"][0].compressed_sizes["linux/amd64"]
    assert platform["new_compressed"] == pairs["producer"][1].compressed_sizes["linux/amd64"]
    assert platform["shared_layers"] == 1  # busybox base; payload and entrypoint changed, model layer added
    assert {c["change"] for c in platform["layers"]} == {"added", "removed"}
    assert producer["growth"][0]["verdict"] == "fail"  # +400 kB on ~1.1 MB is over 10%
    assert consumer["growth"][0]["verdict"] == "pass"
    labels = {c["name"]: c for c in producer["labels"]}
    assert labels["org.opencontainers.image.version"]["old"] == "1.4.1"
    assert labels["org.opencontainers.image.version"]["new"] == "1.4.2"
    config = {c["name"]: c for c in producer["config"]}
    assert config["user"] == {"name": "user", "change": "changed", "old": "1000", "new": "1001"}
    assert producer["env_names"] == [{"name": "API_TOKEN", "change": "added", "old": None, "new": "set"}]
    packages = {c["name"]: c for c in producer["packages"]}
    assert packages["k2-producer"]["change"] == "changed"
    assert (packages["k2-producer"]["old"], packages["k2-producer"]["new"]) == ("1.4.1", "1.4.2")
    assert "busybox-static" not in packages  # same version on both sides
    # The SBOM's own root (what it DESCRIBES: the image, versioned by its digest) is no upgraded package.
    assert not [name for name in packages if name.endswith("k2-market-data-platform-producer")]
    assert [c for c in producer["packages"] if c["change"] == "changed"] == [packages["k2-producer"]]
    assert [(g["platform"], g["verdict"]) for g in producer["growth"]] == [("linux/amd64", "fail")]
    assert producer["vulnerabilities"]["fixed"] == ["CVE-2024-3094 xz-utils (CRITICAL)"]
    assert producer["vulnerabilities"]["introduced"] == ["CVE-2023-42366 busybox (MEDIUM)"]
    assert code == 1  # producer fails the growth budget

    for fmt in ("table", "markdown"):
        rendered = io.StringIO()
        run_diff(policy, options, "v1.4.1", "v1.4.2", output_format=fmt, out=rendered)
        assert DEMO_SECRET not in rendered.getvalue()
        shown = rendered.getvalue().replace("\\_", "_")  # Markdown escapes `_`; it renders as one
        assert "API_TOKEN" in shown and "CVE-2024-3094" in shown
        growth = [line for line in shown.splitlines() if "growth" in line]
        assert growth and all("linux/amd64" in line for line in growth) and len(growth) == len(set(growth))
        assert "1 upgraded" in shown or "1 upgraded/downgraded" in shown


def test_diff_of_an_unknown_tag_exits_2(registry: RegistryServer, pusher: Pusher, tmp_path: Path) -> None:
    policy = policy_file(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgcheck",
            "diff",
            "v0.0.1",
            "v0.0.2",
            "--policy",
            str(policy),
            "--registry",
            registry.host,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "could not compare" in result.stdout


def test_sbom_packages_from_cyclonedx_and_spdx(corpus: Path) -> None:
    cdx = sbom_packages(json.loads((corpus / "guacsec-guac__alpine-cyclonedx.json").read_text()))
    spdx = sbom_packages(json.loads((corpus / "guacsec-guac__alpine-spdx.json").read_text()))
    assert cdx and spdx
    assert cdx.get("musl") and spdx.get("musl") and cdx["musl"] == spdx["musl"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"bomFormat": "CycloneDX", "components": 5}, {}),
        ({"bomFormat": "CycloneDX", "components": [{"name": "a", "version": "1", "components": True}]}, {"a": "1"}),
        ({"spdxVersion": "SPDX-2.3", "packages": {"name": "a"}}, {}),
        ({"spdxVersion": "SPDX-2.3", "packages": "abc"}, {}),
    ],
    ids=["components-int", "nested-components-bool", "packages-object", "packages-string"],
)
def test_sbom_packages_of_a_hostile_document_lists_only_what_it_lists(
    document: dict[str, object], expected: dict[str, str]
) -> None:
    """A hand-made or hostile attached SBOM crashed `imgcheck diff` (TypeError on iterating a number);
    what is not a list lists nothing, and well-formed entries beside it still count."""
    assert sbom_packages(document) == expected
