"""GitHub Actions integration: workflow commands read back as the runner reads them, and the job summary.

The runner's parser is re-implemented here from GitHub's documented syntax (`::name k=v,k=v::data`,
`%25 %0D %0A` in data, plus `%3A %2C` in property values), so the tests check what the runner
would see, not what our own code meant to write.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgcheck.ci import github
from imgcheck.ci.workflow_commands import command, escape_data, escape_property
from imgcheck.report import markdown
from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

DIGEST = "sha256:" + "ef" * 32
NASTY = "100% broken:\r\nline two, with commas: and colons\n::set-output name=x::pwned"


def runner_unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def runner_unescape_property(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """`::name props::data` as the runner splits it: the first `::` after the name ends the properties."""
    assert line.startswith("::") and "\n" not in line and "\r" not in line, line
    head, sep, data = line[2:].partition("::")
    assert sep, line
    name, _, props = head.partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        key, eq, value = pair.partition("=")
        assert eq, pair
        properties[key] = runner_unescape_property(value)
    return name, properties, runner_unescape_data(data)


def report(policy: str = "imgcheck.yaml", message: str = NASTY) -> Report:
    image = ImageResult(
        "producer",
        "ghcr.io/rjdscott/k2-market-data-platform-producer:latest",
        DIGEST,
        (
            CheckResult("size", Verdict.PASS, "compressed size 182.4 MB ≤ 500 MB", "linux/amd64"),
            CheckResult("labels", Verdict.WARN, "label org.opencontainers.image.version is empty (mode: warn)"),
            CheckResult("config", Verdict.FAIL, message),
            CheckResult("smoke", Verdict.SKIP, "--no-smoke given: the image was not run"),
            CheckResult("signature", Verdict.ERROR, "no signature found for this digest; sign it with cosign"),
        ),
    )
    lost = ImageResult("consumer", "ghcr.io/rjdscott/k2-market-data-platform-consumer:latest", None, (), "401: log in")
    return Report("0.1.0", policy, "2026-11-23T23:00:00Z", (image, lost), target="latest")


# --- escaping -----------------------------------------------------------------------------------


def test_escaping_follows_the_documented_table() -> None:
    assert escape_data("50%\r\nx:y,z") == "50%25%0D%0Ax:y,z"
    assert escape_property("50%\r\nx:y,z") == "50%25%0D%0Ax%3Ay%2Cz"
    assert escape_data("%0A") == "%250A"  # a literal %0A in a message is not a newline for the runner
    assert command("warning", "hi") == "::warning::hi"
    assert command("error", "m", {"file": "a.yaml", "line": 1, "title": None}) == "::error file=a.yaml,line=1::m"


@settings(max_examples=300, deadline=None)
@given(
    message=st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    title=st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
)
def test_any_text_round_trips_through_the_runner(message: str, title: str) -> None:
    line = command("error", message, {"title": title, "file": "policies/k2.yaml"})
    name, props, data = parse_command(line)
    assert (name, props, data) == ("error", {"title": title, "file": "policies/k2.yaml"}, message)


# --- publish ------------------------------------------------------------------------------------


def test_outside_actions_publish_does_nothing(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    err = io.StringIO()
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": "false"}
    assert github.publish(report(), env=env, stderr=err) is False
    assert err.getvalue() == "" and not summary.exists()


def test_annotations_for_every_failure_and_warning(tmp_path: Path) -> None:
    rep = report()
    err = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    assert github.publish(rep, env=env, stderr=err) is True
    commands = [parse_command(line) for line in err.getvalue().splitlines()]
    names = [name for name, _, _ in commands]
    counts = rep.counts()
    lost = sum(1 for i in rep.images if i.error)
    assert names.count("error") == counts["fail"] + counts["error"] + lost
    assert names.count("warning") == counts["warn"]
    assert names[-1] == "notice" and names.index("warning") > max(i for i, n in enumerate(names) if n == "error")

    by_title = {props.get("title"): data for _, props, data in commands}
    config = by_title["imgcheck fail: producer config"]
    assert config == f"{NASTY} [ghcr.io/rjdscott/k2-market-data-platform-producer:latest@{DIGEST}]"
    assert "imgcheck error: consumer could not be verified" in by_title
    assert commands[-1][1]["title"] == "imgcheck: ERROR"
    # no injected command survives: every stderr line is one of ours
    assert all(line.startswith(("::error ", "::warning ", "::notice ")) for line in err.getvalue().splitlines())


def test_summary_is_appended_not_overwritten(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("## an earlier step\n", encoding="utf-8")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    github.publish(report(), env=env, stderr=io.StringIO())
    github.publish(report(), env=env, stderr=io.StringIO())
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## an earlier step\n")
    assert text.count(markdown.render(report())) == 2


def test_annotations_point_at_the_policy_inside_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    (workspace / "deploy").mkdir(parents=True)
    policy = workspace / "deploy" / "imgcheck.yaml"
    err = io.StringIO()
    github.publish(
        report(policy=str(policy)), env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace)}, stderr=err
    )
    files = {
        props.get("file") for name, props, _ in map(parse_command, err.getvalue().splitlines()) if name != "notice"
    }
    assert files == {"deploy/imgcheck.yaml"}

    err = io.StringIO()
    outside = str(tmp_path / "elsewhere" / "k2.yaml")
    github.publish(
        report(policy=outside), env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(workspace)}, stderr=err
    )
    assert all("file" not in props for _, props, _ in map(parse_command, err.getvalue().splitlines()))


def test_unwritable_summary_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    err = io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path)}  # a directory: cannot append
    assert github.publish(report(), env=env, stderr=err) is True
    last = parse_command(err.getvalue().splitlines()[-1])
    assert last[0] == "warning" and "cannot append the job summary" in last[2]


def test_huge_summary_is_cut_under_githubs_limit(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    checks = tuple(CheckResult("tags", Verdict.WARN, "x" * 250 + f" {i}", None, {"n": "y" * 3000}) for i in range(600))
    big = Report("0.1.0", "p.yaml", "2026-11-23T23:00:00Z", (ImageResult("a", "r:latest", DIGEST, checks),))
    assert len(markdown.render(big).encode()) > github.SUMMARY_LIMIT
    github.publish(big, env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}, stderr=io.StringIO())
    text = summary.read_text(encoding="utf-8")
    assert len(text.encode()) <= github.SUMMARY_LIMIT + 1
    assert "Summary cut at GitHub's 1 MiB limit" in text


# --- the CLI in an Actions step -------------------------------------------------------------------


def test_cli_in_actions_keeps_stdout_a_pure_report(registry: object, pusher: object, tmp_path: Path) -> None:
    from fixtures.images import ImageConfig, busybox_base_layer, push_image

    push_image(pusher, "gha/rooted", [busybox_base_layer()], ImageConfig(user="root"), tags=("latest",))  # type: ignore[arg-type]
    policy = tmp_path / "imgcheck.yaml"
    policy.write_text(
        "version: 1\nregistry: ghcr.io\nimages:\n  - name: rooted\n    repository: gha/rooted\n"
        "rules:\n  config:\n    non_root: true\n"
    )
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKSPACE": str(tmp_path),
    }
    args = ["verify", "--registry", registry.host, "--policy", str(policy), "--format", "json"]  # type: ignore[attr-defined]
    result = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)  # stdout is the JSON report and nothing else
    assert doc["verdict"] == "fail"
    errors = [parse_command(line) for line in result.stderr.splitlines() if line.startswith("::error")]
    assert [props["title"] for _, props, _ in errors] == ["imgcheck fail: rooted config"]
    assert errors[0][1]["file"] == "imgcheck.yaml"
    assert "### rooted: **FAIL**" in summary.read_text(encoding="utf-8")


# --- action.yml and the example workflows -------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
GITHUB_SCHEMAS = Path(__file__).parent / "data" / "github"


def load_yaml(path: Path) -> dict[str, object]:
    """YAML as GitHub reads it: the key `on` is a string, not YAML 1.1's boolean."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def schema_errors(schema_file: str, doc: object) -> list[str]:
    import jsonschema

    schema = json.loads((GITHUB_SCHEMAS / schema_file).read_text(encoding="utf-8"))
    return [f"{list(e.path)}: {e.message[:200]}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


@pytest.mark.parametrize("workflow", ["post-merge.yml", "nightly-audit.yml"])
def test_example_workflows_are_valid(workflow: str) -> None:
    doc = load_yaml(ROOT / "docs" / "workflows" / workflow)
    assert schema_errors("github-workflows.json", doc) == []
    broken = {**doc, "jobs": {"x": {"runs-on": "ubuntu-latest", "steps": [{"uses": "a/b@v1", "runz": "typo"}]}}}
    assert schema_errors("github-workflows.json", broken)  # the schema would catch a typo


def test_action_metadata_is_valid_and_has_the_inputs() -> None:
    action = load_yaml(ROOT / "action.yml")
    assert schema_errors("github-actions.json", action) == []
    inputs = action["inputs"]
    assert isinstance(inputs, dict)
    assert {"target", "policy", "registry", "trivy-report", "format", "sarif", "upload-sarif", "junit"} <= set(inputs)
    runs = action["runs"]
    assert isinstance(runs, dict) and runs["using"] == "composite"
    for step in runs["steps"]:
        script = step.get("run", "")
        assert "${{" not in script, f"step {step['name']!r} expands an expression inside its script"


def test_post_merge_gate_runs_the_documented_command() -> None:
    doc = load_yaml(ROOT / "docs" / "workflows" / "post-merge.yml")
    jobs = doc["jobs"]
    assert isinstance(jobs, dict)
    steps = jobs["gate"]["steps"]
    gate = next(s for s in steps if s.get("id") == "imgcheck")["run"]
    assert 'imgcheck verify "main-${GITHUB_SHA::7}"' in gate
    sarif_path = re.search(r"--report sarif=(\S+)", gate)
    junit_path = re.search(r"--report junit=(\S+)", gate)
    assert sarif_path and junit_path
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif"))
    assert upload["with"]["sarif_file"] == sarif_path.group(1)
    junit_step = next(s for s in steps if "junit" in str(s.get("uses", "")))
    assert junit_step["with"]["report_paths"] == junit_path.group(1)
    nightly = load_yaml(ROOT / "docs" / "workflows" / "nightly-audit.yml")
    assert any("imgcheck audit" in s.get("run", "") for s in nightly["jobs"]["audit"]["steps"])  # type: ignore[index]


def action_script() -> str:
    action = load_yaml(ROOT / "action.yml")
    steps = action["runs"]["steps"]  # type: ignore[index]
    return str(next(s for s in steps if s.get("id") == "verify")["run"])


def run_action_step(tmp_path: Path, inputs: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The action's verify step under bash, with inputs in the environment as the runner passes them."""
    output = tmp_path / "github_output"
    output.write_text("")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GITHUB_OUTPUT": str(output),
        **{f"INPUT_{k.upper().replace('-', '_')}": v for k, v in inputs.items()},
    }
    for name in ("TARGET", "POLICY", "REGISTRY", "TRIVY_REPORT", "FORMAT", "SARIF", "JUNIT", "JSON", "NO_SMOKE"):
        env.setdefault(f"INPUT_{name}", "")
    env.pop("GITHUB_ACTIONS", None)
    result = subprocess.run(
        ["bash", "-c", action_script()], capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return result, outputs


ACTION_POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: app
    repository: action/app
rules:
  config:
    non_root: true
"""


@pytest.fixture(scope="module")
def action_policy(pusher: object, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.images import ImageConfig, busybox_base_layer, push_image

    push_image(pusher, "action/app", [busybox_base_layer()], ImageConfig(user="1000"), tags=("v1",))  # type: ignore[arg-type]
    push_image(pusher, "action/app", [busybox_base_layer()], ImageConfig(user="0"), tags=("v2",))  # type: ignore[arg-type]
    folder = tmp_path_factory.mktemp("action policy with spaces")
    (folder / "imgcheck.yaml").write_text(ACTION_POLICY)
    return folder / "imgcheck.yaml"


def test_action_step_passes_and_fails_with_the_verdict(registry: object, action_policy: Path, tmp_path: Path) -> None:
    host = registry.host  # type: ignore[attr-defined]
    base = {"policy": str(action_policy), "registry": host, "format": "json", "json": str(tmp_path / "out.json")}
    result, outputs = run_action_step(tmp_path, {**base, "target": "v1"})
    assert result.returncode == 0, result.stderr
    assert outputs == {"exit-code": "0", "verdict": "pass"}
    assert json.loads(result.stdout)["verdict"] == "pass"
    assert json.loads((tmp_path / "out.json").read_text())["images"][0]["reference"].endswith(":v1")

    result, outputs = run_action_step(tmp_path, {**base, "target": "v2"})
    assert result.returncode == 0, result.stderr  # the step records the verdict; the Gate step fails the job
    assert outputs == {"exit-code": "1", "verdict": "fail"}

    result, outputs = run_action_step(tmp_path, {**base, "target": "no-such-tag"})
    assert outputs == {"exit-code": "2", "verdict": "error"}


def test_action_inputs_cannot_inject_shell(registry: object, action_policy: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _result, outputs = run_action_step(
        tmp_path,
        {"policy": str(action_policy), "registry": registry.host, "target": f"v1 $(touch {marker})"},  # type: ignore[attr-defined]
    )
    assert not marker.exists()
    assert outputs["verdict"] == "error"  # `$(touch …)` reached imgcheck as a (bad) target, not as code


def test_action_step_writes_sarif_and_junit(registry: object, action_policy: Path, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    sarif_file, junit_file = tmp_path / "r" / "out.sarif", tmp_path / "r" / "out.xml"
    inputs = {"policy": str(action_policy), "registry": registry.host, "target": "v2"}  # type: ignore[attr-defined]
    result, outputs = run_action_step(tmp_path, {**inputs, "sarif": str(sarif_file), "junit": str(junit_file)})
    assert outputs == {"exit-code": "1", "verdict": "fail", "sarif-written": "true"}, result.stderr
    assert json.loads(sarif_file.read_text())["runs"][0]["results"][0]["ruleId"] == "config"
    assert ET.parse(junit_file).getroot().get("failures") == "1"
