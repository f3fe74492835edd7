"""The smoke check is pure: these feed it evidence (as the engine records it) and judge the verdicts."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imgcheck.checks.interface import RunContext, VerifyOptions
from imgcheck.checks.smoke import Config, check, describe
from imgcheck.engine.run import Limits, RunResult
from imgcheck.engine.session import PlatformRun, SmokeEvidence
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.policy.fields import FieldError
from imgcheck.policy.types import ByteSize
from imgcheck.verdict import Verdict

DIGEST = "sha256:" + "ab" * 32
RUN = RunContext(now=datetime(2026, 11, 24, tzinfo=UTC))


def facts(
    version: str | None = "1.4.2", entrypoint: list[str] | None = None, cmd: list[str] | None = None
) -> ImageFacts:
    labels = {"org.opencontainers.image.version": version} if version else {}
    image_config: dict[str, Any] = {"Labels": labels, "Entrypoint": entrypoint, "Cmd": cmd}
    platform = PlatformFacts(
        platform="linux/amd64",
        manifest_digest=DIGEST,
        manifest={},
        config_digest=DIGEST,
        config={"os": "linux", "architecture": "amd64", "config": image_config},
        layers=(),
        config_size=100,
    )
    return ImageFacts(
        name="producer",
        registry="127.0.0.1:5000",
        repository="k2/producer",
        reference="127.0.0.1:5000/k2/producer:1.4.2",
        tag="1.4.2",
        digest=DIGEST,
        media_type="application/vnd.oci.image.manifest.v1+json",
        platforms=(platform,),
    )


def ran(output: str, exit_code: int | None = 0, **kw: Any) -> SmokeEvidence:
    result = RunResult(exit_code, output, len(output.encode()), False, 0.2, **kw)
    run = PlatformRun("linux/amd64", DIGEST, f"127.0.0.1:5000/k2/producer@{DIGEST}", result, uncompressed_size=5)
    return SmokeEvidence(runs=(run,), engine="linux/amd64")


def judge(evidence: SmokeEvidence, config: Config, image: ImageFacts | None = None, run: RunContext = RUN) -> Any:
    image = replace(image or facts(entrypoint=["/app/run"]), extras={"smoke": evidence})
    findings = check(image, config, run)
    assert len(findings) == 1
    return findings[0]


VERSIONED = Config(expect_output=".*{version}.*")


def test_right_version_passes() -> None:
    finding = judge(ran("smoke-app version 1.4.2\n"), VERSIONED)
    assert finding.verdict is Verdict.PASS
    assert "smoke-app version 1.4.2" in finding.message
    assert finding.details["command"] == ["/app/run", "--version"]
    assert finding.platform == "linux/amd64"


def test_version_is_escaped_not_a_wildcard() -> None:
    finding = judge(ran("smoke-app version 1x4x2\n"), VERSIONED)
    assert finding.verdict is Verdict.FAIL
    assert "1\\.4\\.2" in finding.message


def test_wrong_version_fails_and_quotes_the_output() -> None:
    finding = judge(ran("smoke-app version 1.4.1\n"), VERSIONED)
    assert finding.verdict is Verdict.FAIL
    assert "smoke-app version 1.4.1" in finding.message


def test_missing_version_label_is_not_a_pass() -> None:
    finding = judge(ran("smoke-app version 1.4.2\n"), VERSIONED, facts(version=None, entrypoint=["/app/run"]))
    assert finding.verdict is Verdict.FAIL
    assert "org.opencontainers.image.version" in finding.message


def test_exit_code_mismatch_quotes_the_last_lines() -> None:
    output = "".join(f"log line {i}\n" for i in range(50)) + "fatal: cannot read /etc/app.yaml\n"
    finding = judge(ran(output, exit_code=3), Config())
    assert finding.verdict is Verdict.FAIL
    assert "exited 3, expected 0" in finding.message
    assert "fatal: cannot read /etc/app.yaml" in finding.message
    assert "log line 49" in finding.message
    assert "log line 10" not in finding.message
    assert "ENTRYPOINT" not in finding.message


def test_expected_non_zero_exit_passes() -> None:
    assert judge(ran("usage\n", exit_code=2), Config(expect_exit=2)).verdict is Verdict.PASS


def test_args_replacing_the_cmd_says_so_and_suggests_command() -> None:
    k2 = facts(entrypoint=None, cmd=["python", "scripts/binance_stream.py"])
    output = 'exec: "--version": executable file not found in $PATH'
    finding = judge(ran(output, exit_code=127, start_error=output), Config(), k2)
    assert finding.verdict is Verdict.FAIL
    assert "no ENTRYPOINT" in finding.message
    assert "replaced its CMD" in finding.message
    assert "command: [python, scripts/binance_stream.py]" in finding.message
    assert finding.details["command"] == ["--version"]


def test_with_command_no_cmd_hint() -> None:
    k2 = facts(entrypoint=None, cmd=["python", "app.py"])
    finding = judge(ran("not found", exit_code=127), Config(command=("python", "-m", "k2")), k2)
    assert finding.verdict is Verdict.FAIL
    assert "ENTRYPOINT" not in finding.message
    assert finding.details["command"] == ["python", "-m", "k2", "--version"]


def test_timeout_fails_with_the_duration() -> None:
    evidence = ran("waiting for a broker\n", exit_code=None, timed_out=True)
    finding = judge(evidence, Config(timeout=timedelta(seconds=30)))
    assert finding.verdict is Verdict.FAIL
    assert "timed out after 30 s" in finding.message
    assert "waiting for a broker" in finding.message


def test_oom_kill_names_the_limit() -> None:
    finding = judge(ran("", exit_code=137, oom_killed=True), Config(memory=ByteSize.parse("64MiB")))
    assert finding.verdict is Verdict.FAIL
    assert "memory limit (64 MiB)" in finding.message


def test_start_failure_without_exit_code_is_an_error() -> None:
    finding = judge(ran("", exit_code=None, start_error="cgroup setup failed"), Config())
    assert finding.verdict is Verdict.ERROR


def test_version_that_breaks_the_regex_is_escaped() -> None:
    image = facts(version="1.0+(rc", entrypoint=["/app/run"])
    assert judge(ran("app 1.0+(rc\n"), Config(expect_output="app {version}$"), image).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"expect_output": "(["}, "not a valid regex"),
        ({"timeout": timedelta(0)}, "timeout"),
        ({"memory": ByteSize(1024)}, "6MiB"),
        ({"pids": 0}, "pids"),
        ({"cpus": 0.0}, "cpus"),
        ({"cpus": 0.001}, "cpus"),
        ({"cpus": 65.0}, "cpus"),
        ({"cpus": float("nan")}, "cpus"),
        ({"command": ()}, "command"),
    ],
)
def test_bad_settings_are_rejected_at_load(settings: dict[str, Any], complaint: str) -> None:
    """Each is one key's fault, so the loader can point at that key's line."""
    with pytest.raises(FieldError, match=complaint) as info:
        Config(**settings)
    assert [info.value.key] == list(settings)


def test_no_smoke_skips_even_without_evidence() -> None:
    run = RunContext(now=RUN.now, options=VerifyOptions(no_smoke=True))
    findings = check(facts(), Config(), run)
    assert [f.verdict for f in findings] == [Verdict.SKIP]
    assert "--no-smoke" in findings[0].message


def test_missing_evidence_is_an_error_never_a_pass() -> None:
    assert [f.verdict for f in check(facts(), Config(), RUN)] == [Verdict.ERROR]


def test_skipped_platform_and_engine_error_are_reported_per_platform() -> None:
    arm = PlatformRun("linux/arm64", DIGEST, "r", skipped="linux/arm64 cannot run on this linux/amd64 engine")
    amd = PlatformRun("linux/amd64", DIGEST, "r", error="the engine could not pull r: 404")
    image = replace(facts(), extras={"smoke": SmokeEvidence(runs=(amd, arm))})
    findings = check(image, Config(), RUN)
    assert [(f.platform, f.verdict) for f in findings] == [
        ("linux/amd64", Verdict.ERROR),
        ("linux/arm64", Verdict.SKIP),
    ]
    assert "cannot run" in findings[1].message


def test_uncompressed_sizes_are_exposed_per_platform() -> None:
    assert ran("x").uncompressed_sizes == {"linux/amd64": 5}


def test_describe_names_the_lockdown() -> None:
    text = describe(Config(expect_output="{version}", tmpfs=True))
    for word in ("no network", "read-only", "no capabilities", "256 MiB", "128 pids", "1 CPU", "tmpfs /tmp", "30 s"):
        assert word in text
    assert "0.5 CPUs" in describe(Config(cpus=0.5))


def test_limits_applied_are_in_the_details() -> None:
    limits = Limits(memory=64 * 2**20, pids=50, cpus=0.5)
    finding = judge(ran("smoke-app version 1.4.2\n", limits=limits), VERSIONED)
    assert finding.details["limits"] == {"memory": 64 * 2**20, "pids": 50, "cpus": 0.5}


CPUS_POLICY = """\
version: 1
images:
  - {{name: app, repository: org/app}}
rules:
  smoke:
    timeout: 5s
    cpus: {cpus}
"""


def validate(tmp_path: Path, cpus: str) -> subprocess.CompletedProcess[str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(CPUS_POLICY.format(cpus=cpus))
    command = [sys.executable, "-m", "imgcheck", "policy", "validate", str(policy)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("cpus", "where", "complaint"),
    [
        ("0", "policy.yaml:7: rules.smoke.cpus:", "smoke `cpus` must be a number of CPUs from 0.01 to 64"),
        ("-1", "policy.yaml:7: rules.smoke.cpus:", "smoke `cpus` must be a number of CPUs from 0.01 to 64"),
        ("65", "policy.yaml:7: rules.smoke.cpus:", "smoke `cpus` must be a number of CPUs from 0.01 to 64"),
        ('"lots"', "policy.yaml:7: rules.smoke.cpus:", "expected a number, got a string"),
        ("[1]", "policy.yaml:7: rules.smoke.cpus:", "expected a number, got a list"),
    ],
)
def test_bad_cpus_is_a_one_line_policy_error(tmp_path: Path, cpus: str, where: str, complaint: str) -> None:
    done = validate(tmp_path, cpus)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"imgcheck: error: {tmp_path / where}") and complaint in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("cpus", "shown"), [("0.5", "0.5 CPUs"), ("1", "1 CPU"), ("2", "2 CPUs")])
def test_good_cpus_load_and_are_described(tmp_path: Path, cpus: str, shown: str) -> None:
    done = validate(tmp_path, cpus)
    assert done.returncode == 0, done.stderr
    assert f"128 pids and {shown}" in done.stdout
