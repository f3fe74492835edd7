"""End to end: the `imgcheck` process against a real registry — exit codes, reports, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.images import ImageConfig, Pushed, busybox_base_layer, push_image, script_layer
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, free_port

GOOD_LABELS = {
    "org.opencontainers.image.source": "https://github.com/rjdscott/k2-market-data-platform",
    "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
    "org.opencontainers.image.version": "main",
    "org.opencontainers.image.created": "2026-11-20T10:00:00Z",
}

POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: alpha
    repository: cli/alpha
  - name: beta
    repository: cli/beta
rules:
  size:
    max_compressed: 50MB
  labels:
    required: [org.opencontainers.image.source, org.opencontainers.image.revision]
    match:
      org.opencontainers.image.revision: '[0-9a-f]{40}'
  config:
    non_root: true
  platforms:
    required: [linux/amd64]
"""


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def push_app(
    pusher: Pusher,
    repo: str,
    *,
    user: str = "1000",
    labels: dict[str, str] | None = None,
    tags: tuple[str, ...] = ("latest",),
) -> Pushed:
    layers = [busybox_base_layer(), script_layer("usr/local/bin/app", "#!/bin/sh\necho app main\n")]
    config = ImageConfig(
        user=user, entrypoint=["/usr/local/bin/app"], labels=dict(GOOD_LABELS if labels is None else labels)
    )
    return push_image(pusher, repo, layers, config, tags=tags)


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "imgcheck.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture(scope="module")
def images(pusher: Pusher) -> dict[str, Pushed]:
    return {
        "alpha": push_app(pusher, "cli/alpha"),
        "beta": push_app(pusher, "cli/beta"),
        "root": push_app(pusher, "cli/rooted", user="root", tags=("latest",)),
    }


def test_version_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['imgcheck', '--version']\n"
        "from imgcheck.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('docker', 'oras', 'sigstore', 'jsonschema', 'cyclonedx') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("imgcheck 0.")
    assert "HEAVY []" in out


def test_verify_passes_and_json_follows_the_contract(
    registry: RegistryServer, images: dict[str, Pushed], policy_file: Path
) -> None:
    result = run_cli("verify", "latest", "--registry", registry.host, "--policy", str(policy_file), "--format", "json")
    assert result.returncode == 0, result.stderr + result.stdout
    doc = json.loads(result.stdout)
    assert doc["schema"] == "imgcheck.report/v1"
    assert doc["verdict"] == "pass"
    by_name = {i["name"]: i for i in doc["images"]}
    assert set(by_name) == {"alpha", "beta"}
    assert by_name["alpha"]["digest"] == images["alpha"].digest
    assert by_name["alpha"]["reference"] == f"{registry.host}/cli/alpha:latest"
    rules = [c["rule"] for c in by_name["alpha"]["checks"]]
    assert rules == ["size", "labels", "config", "platforms"]
    size = by_name["alpha"]["checks"][0]
    assert size["platform"] == "linux/amd64" and size["verdict"] == "pass"


def test_failing_rule_exits_1_and_table_names_it(
    registry: RegistryServer, images: dict[str, Pushed], policy_file: Path
) -> None:
    result = run_cli("verify", f"{registry.host}/cli/rooted:latest", "--policy", str(policy_file))
    assert result.returncode == 1, result.stderr + result.stdout
    assert "config" in result.stdout and "fail" in result.stdout
    assert "FAIL" in result.stdout


def test_report_files_match_stdout(
    registry: RegistryServer, images: dict[str, Pushed], policy_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "nested" / "report.json"
    result = run_cli(
        "verify",
        "--registry",
        registry.host,
        "--policy",
        str(policy_file),
        "--format",
        "json",
        "--report",
        f"json={out}",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["images"] == json.loads(result.stdout)["images"]


def test_policy_typo_is_exit_2_with_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("non_root: true", "non_rooot: true"))
    result = run_cli("verify", "--policy", str(bad))
    assert result.returncode == 2
    assert "non_rooot" in result.stderr and "bad.yaml:16:" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_policy_bad_regex_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("'[0-9a-f]{40}'", "'[0-9a-f{40'"))
    result = run_cli("policy", "validate", str(bad))
    assert result.returncode == 2
    assert "org.opencontainers.image.revision" in result.stderr and "Traceback" not in result.stderr


def test_policy_validate_explains(policy_file: Path) -> None:
    result = run_cli("policy", "validate", str(policy_file))
    assert result.returncode == 0, result.stderr
    assert "cli/alpha" in result.stdout and "size" in result.stdout


def test_unknown_tag_is_exit_2_and_one_line(
    registry: RegistryServer, images: dict[str, Pushed], policy_file: Path
) -> None:
    result = run_cli("verify", f"{registry.host}/cli/alpha:no-such-tag", "--policy", str(policy_file))
    assert result.returncode == 2, result.stdout
    assert "no-such-tag" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_one_image_erroring_does_not_hide_the_others(
    registry: RegistryServer, images: dict[str, Pushed], policy_file: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY.replace("repository: cli/beta", "repository: cli/does-not-exist"))
    result = run_cli("verify", "--registry", registry.host, "--policy", str(policy), "--format", "json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    by_name = {i["name"]: i for i in doc["images"]}
    assert by_name["alpha"]["verdict"] == "pass"
    assert by_name["beta"]["verdict"] == "error" and by_name["beta"]["digest"] is None
    assert "cli/does-not-exist" in by_name["beta"]["error"]
    assert doc["verdict"] == "error"
    errors = [line for line in result.stderr.splitlines() if line.startswith("imgcheck: error:")]
    assert len(errors) == 1 and "beta" in errors[0] and "cli/does-not-exist" in errors[0]


def test_tampered_config_blob_is_exit_2_never_a_verdict(
    registry: RegistryServer, pusher: Pusher, policy_file: Path
) -> None:
    pushed = push_app(pusher, "cli/tampered", labels={**GOOD_LABELS, "tamper": "me"})
    manifest = json.loads(
        pusher._s.get(
            f"{registry.url}/v2/cli/tampered/manifests/{pushed.digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).content
    )
    blob = registry.blob_path(manifest["config"]["digest"])
    original = blob.read_bytes()
    blob.write_bytes(original.replace(b'"tamper":"me"', b'"tamper":"ME"'))
    result = run_cli("verify", f"{registry.host}/cli/tampered:latest", "--policy", str(policy_file), "--format", "json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["images"][0]["verdict"] == "error"
    assert "digest" in doc["images"][0]["error"].lower() or "sha256" in doc["images"][0]["error"]


def test_dead_registry_is_exit_2_quickly(policy_file: Path) -> None:
    port = free_port()
    started = time.monotonic()
    result = run_cli("verify", "--registry", f"127.0.0.1:{port}", "--policy", str(policy_file), "--timeout", "20")
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stdout + result.stderr
    assert time.monotonic() - started < 60


def test_bad_usage_is_exit_2(policy_file: Path) -> None:
    assert run_cli("verify", "--policy", str(policy_file), "--format", "yaml").returncode == 2
    assert run_cli("verify", "--policy", str(policy_file), "--report", "json").returncode == 2
    assert run_cli("verify", "--no-such-option").returncode == 2
    assert run_cli("verify", "--policy", str(policy_file), "not a tag!").returncode == 2


def test_two_releases_in_one_run_are_each_consistent_on_their_own(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """`verify v1.4.2 v1.4.1`: consistent_across_images compares images of the same target only."""
    from fixtures.k2 import K2_NAMES, publish_sample_release

    publish_sample_release(pusher, registry.host, namespace="twotargets", semver=True, platforms=("linux/amd64",))
    images = "\n".join(f"  - {{name: {n}, repository: twotargets/k2-market-data-platform-{n}}}" for n in K2_NAMES)
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"version: 1\nimages:\n{images}\nrules:\n  tags:\n    required: ['v\\d+\\.\\d+\\.\\d+']\n"
        "    consistent_across_images: true\n"
    )
    result = run_cli(
        "verify", "v1.4.2", "v1.4.1", "--registry", registry.host, "--policy", str(policy), "--format", "json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["images"]) == 6
    assert {c["verdict"] for i in doc["images"] for c in i["checks"]} == {"pass"}
