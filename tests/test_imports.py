"""What a command imports: a metadata-only verify loads only the rules its policy names, and nothing heavy.

Start-up is most of a metadata verify's time, so each rule's module (and the engine, Trivy, Sigstore or
SBOM machinery behind it) loads only when a policy names the rule. These tests run the real CLI in a
fresh interpreter against the real registry and read `sys.modules` when it exits. The lazy pieces must
lose nothing: every rule is still reachable, and `--help` still lists the lazily built commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.k2 import SampleRelease, publish_sample_release
from imgcheck.checks import RULE_MODULES, RULE_ORDER, all_rules
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

NAMESPACE = "imports"
HEAVY = (
    "imgcheck.checks.smoke",
    "imgcheck.checks.vulnerabilities",
    "imgcheck.checks.signature",
    "imgcheck.checks.provenance",
    "imgcheck.checks.sbom",
    "imgcheck.engine",
    "imgcheck.vulns",
    "imgcheck.supplychain",
    "imgcheck.audit",
    "docker",
    "sigstore",
    "jsonschema",
    "cyclonedx",
    "oras",
    "requests",
    "rich",
    "concurrent.futures",
    "importlib.resources",
)
"""Modules a metadata-only verify with its report on a pipe has no use for."""

METADATA_RULES = """\
rules:
  size: {max_compressed: 500MB}
  labels:
    required: [org.opencontainers.image.source, org.opencontainers.image.revision]
    created_not_in_future: true
  tags: {required: ['main-[0-9a-f]{7}'], latest_is_newest: true}
  config: {non_root: true, forbid_env: ['(?i).*(secret|token|password).*']}
  platforms: {required: [linux/amd64]}
"""

# Runs the CLI as the console script does, then reports which of the watched modules were imported.
WRAPPER = """\
import atexit, json, sys
watched = json.loads(sys.argv[1])
sys.argv = ["imgcheck", *sys.argv[2:]]
atexit.register(lambda: print("IMPORTED " + json.dumps([m for m in watched if m in sys.modules]), file=sys.stderr))
from imgcheck.cli import main
main()
"""


def run_watched(*args: str, watched: tuple[str, ...] = HEAVY) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The CLI's result and which of `watched` it imported (stdout is a pipe, as in CI)."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps(watched), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("IMPORTED ")]
    assert marker, done.stderr
    return done, json.loads(marker[-1].removeprefix("IMPORTED "))


def policy_file(tmp_path: Path, release: SampleRelease, rules: str) -> Path:
    images = "".join(f"  - {{name: {image.name}, repository: {image.repository}}}\n" for image in release.current)
    path = tmp_path / "imgcheck.yaml"
    path.write_text(f"version: 1\nregistry: {release.host}\nimages:\n{images}{rules}")
    return path


@pytest.fixture(scope="module")
def release(registry: RegistryServer, pusher: Pusher) -> SampleRelease:
    return publish_sample_release(pusher, registry.host, namespace=NAMESPACE)


def test_metadata_verify_imports_only_the_rules_it_runs(release: SampleRelease, tmp_path: Path) -> None:
    policy = policy_file(tmp_path, release, METADATA_RULES)
    done, imported = run_watched("verify", "latest", "--no-smoke", "--policy", str(policy), "--format", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(done.stdout)
    assert [image["name"] for image in report["images"]] == [image.name for image in release.current]
    assert {check["rule"] for image in report["images"] for check in image["checks"]} == {
        "size",
        "labels",
        "tags",
        "config",
        "platforms",
    }
    assert imported == []


def test_a_policy_naming_smoke_loads_the_smoke_rule_and_no_other(release: SampleRelease, tmp_path: Path) -> None:
    rules = "rules:\n  size: {max_compressed: 500MB}\n  smoke: {args: ['--version'], expect_output: 'k2'}\n"
    policy = policy_file(tmp_path, release, rules)
    done, imported = run_watched("verify", "latest", "--no-smoke", "--policy", str(policy), "--format", "json")
    assert done.returncode == 0, done.stderr + done.stdout
    verdicts = {(c["rule"], c["verdict"]) for image in json.loads(done.stdout)["images"] for c in image["checks"]}
    assert verdicts == {("size", "pass"), ("smoke", "skip")}
    assert "imgcheck.checks.smoke" in imported
    assert not {m for m in imported if m.startswith("imgcheck.checks.")} - {"imgcheck.checks.smoke"}


def test_loading_a_policy_imports_only_the_rules_it_names(tmp_path: Path) -> None:
    policy = tmp_path / "only-size.yaml"
    policy.write_text(
        "version: 1\nimages:\n  - {name: app, repository: org/app}\nrules:\n  size: {max_compressed: 1GB}\n"
    )
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from imgcheck.policy.loader import load_policy\n"
        f"load_policy(Path({str(policy)!r}))\n"
        f"print(json.dumps([m for m in {list(RULE_MODULES.values())!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["imgcheck.checks.size"]


def test_version_imports_no_policy_pipeline_or_audit_machinery() -> None:
    done, imported = run_watched(
        "--version", watched=(*HEAVY, "yaml", "imgcheck.policy", "imgcheck.pipeline", "imgcheck.registry")
    )
    assert done.returncode == 0 and done.stdout.startswith("imgcheck 0."), done.stderr
    assert imported == []


def test_every_rule_id_names_the_module_that_implements_it() -> None:
    rules = all_rules()
    assert tuple(rules) == RULE_ORDER
    assert all(spec.id == rule_id for rule_id, spec in rules.items())


def test_help_lists_the_lazily_built_commands_and_a_typo_is_offered_them() -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "imgcheck", "--help"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    listed = [m.group(1) for m in re.finditer(r"^│ ([a-z]\S*)  ", shown.stdout, re.MULTILINE)]
    assert listed == ["verify", "diff", "policy", "audit"]  # typer's order: commands, then groups
    typo = subprocess.run([sys.executable, "-m", "imgcheck", "audti"], capture_output=True, text=True, env=env)
    assert typo.returncode == 2 and "Did you mean 'audit'?" in typo.stderr
    merge = subprocess.run(
        [sys.executable, "-m", "imgcheck", "audit", "merge", "--help"], capture_output=True, text=True, env=env
    )
    assert merge.returncode == 0 and "Merge the shard reports" in merge.stdout
