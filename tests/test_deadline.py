"""`--timeout` is one deadline for the whole run: registry reads, pulls, smoke runs and rule checks.

Past it, what is unfinished is `error` naming what the deadline stopped, the command exits 2 with its
report written, and nothing it started is left running (no container, no pulled image)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faultproxy import Fault, FaultProxy
from test_pipeline import FACTS

from fixtures.smoke_images import SmokeImage, push_hang
from imgcheck.checks.interface import RunContext, VerifyOptions
from imgcheck.checks.labels import RULE as LABELS
from imgcheck.checks.labels import Config as LabelsConfig
from imgcheck.deadline import Deadline, DeadlineExceeded, run_process
from imgcheck.pipeline import _judge
from imgcheck.registry.credentials import CredentialStore
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

SLACK = 8.0
"""Seconds past `--timeout` a run may take: interpreter start-up, removing the container, the report."""


def test_deadline_counts_down_and_never_goes_negative() -> None:
    deadline = Deadline(0.2)
    assert 0 < deadline.remaining() <= 0.2 and not deadline.expired()
    assert deadline.bound(30) <= 0.2 and deadline.cuts(30) and not deadline.cuts(0.1)
    deadline.check("reading a manifest")
    time.sleep(0.25)
    assert deadline.expired() and deadline.remaining() == 0.0 and deadline.bound(30) == 0.0
    with pytest.raises(DeadlineExceeded, match=r"^deadline of 0\.2 s reached while pulling app \(raise --timeout"):
        deadline.check("pulling app")


def test_an_unlimited_deadline_keeps_each_steps_own_timeout() -> None:
    deadline = Deadline.unlimited()
    assert deadline.bound(30) == 30 and not deadline.cuts(3600) and not deadline.expired()


def test_a_rule_not_yet_evaluated_at_the_deadline_is_an_error_never_a_pass() -> None:
    spent = Deadline(0.0)
    run = RunContext(now=datetime.now(UTC), options=VerifyOptions(timeout=5, deadline=spent))
    (finding,) = _judge(LABELS, FACTS, LabelsConfig(), run)
    assert finding.verdict is Verdict.ERROR
    assert finding.message == "deadline of 0 s reached while waiting to evaluate rule 'labels' (not evaluated)"


# --- end to end: a smoke run that outlives the run's deadline ---------------------------------------

METADATA_POLICY = """\
version: 1
registry: {host}
images:
  - name: hang
    repository: smoke/hang
rules:
  labels:
    required: [org.opencontainers.image.version]
"""
"""The hang image with a metadata rule only (the audit through a hung registry)."""
SMOKE_POLICY = METADATA_POLICY + "  smoke:\n    timeout: 120s\n"


@pytest.fixture(scope="module")
def hang_image(pusher: Pusher) -> SmokeImage:
    return push_hang(pusher)


def _leftovers(api: Any) -> tuple[list[str], list[str]]:
    """Every container (`docker ps -a`), and every image of the fixture under any registry host."""
    containers = [c["Id"] for c in api.containers(all=True)]
    images = [ref for image in api.images(all=True) for ref in image.get("RepoDigests") or [] if "/smoke/hang" in ref]
    return containers, images


def _verify_past_deadline(engine: EngineHandle, host: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`verify --timeout 10` of the hang image through `host`: exits 2 in time; (report written, stdout)."""
    policy = tmp_path / "imgcheck.yaml"
    policy.write_text(SMOKE_POLICY.format(host=host))
    report = tmp_path / "report.json"
    args = ["verify", f"{host}/smoke/hang:1.4.2", "--policy", str(policy), "--timeout", "10", "--format", "json"]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args, "--report", f"json={report}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1", "DOCKER_HOST": engine.docker_host},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert elapsed < 10 + SLACK, f"{elapsed:.1f} s for a 10 s deadline"
    return json.loads(report.read_text()), json.loads(done.stdout)


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["rule"]: c for c in report["images"][0]["checks"]}


@pytest.mark.engine
def test_a_smoke_run_past_the_deadline_is_error_exit_2_with_the_report_written_and_nothing_left(
    engine: EngineHandle, docker_api: Any, registry: RegistryServer, hang_image: SmokeImage, tmp_path: Path
) -> None:
    """The image sleeps an hour and its own smoke timeout is 120 s; the run's `--timeout 10` ends it."""
    assert _leftovers(docker_api) == ([], [])
    written, printed = _verify_past_deadline(engine, registry.host, tmp_path)
    assert written == printed
    checks = _checks(written)
    assert checks["smoke"]["verdict"] == "error"
    assert checks["smoke"]["message"].startswith("deadline of 10 s reached while running hang (linux/amd64)")
    assert checks["labels"]["verdict"] == "error"  # evaluated after the deadline: not a pass
    assert _leftovers(docker_api) == ([], [])


@pytest.mark.engine
def test_a_pull_that_stalls_behind_the_engine_ends_at_the_deadline(
    engine: EngineHandle, docker_api: Any, registry: RegistryServer, hang_image: SmokeImage, tmp_path: Path
) -> None:
    """The engine pulls through the fault proxy, which lets imgcheck read the config blob and then
    never answers a blob request: docker-py alone would wait on that pull forever."""
    with FaultProxy(registry.host) as proxy, proxy.faults(Fault("hang", "/blobs/", count=-1, skip=1)):
        written, _printed = _verify_past_deadline(engine, proxy.host, tmp_path)
    smoke = _checks(written)["smoke"]
    assert smoke["verdict"] == "error"
    assert smoke["message"].startswith("deadline of 10 s reached while pulling hang linux/amd64"), smoke["message"]
    assert _leftovers(docker_api) == ([], [])


def test_an_audit_through_a_hung_registry_ends_at_its_deadline_with_the_report_written(
    registry: RegistryServer, hang_image: SmokeImage, tmp_path: Path
) -> None:
    """`audit --timeout` is the same one deadline: the tag listing hangs, the audit ends in time, exit 2."""
    policy = tmp_path / "imgcheck.yaml"
    report = tmp_path / "audit.json"
    with FaultProxy(registry.host) as proxy, proxy.faults(Fault("hang", "/tags/list", count=-1)):
        policy.write_text(METADATA_POLICY.format(host=proxy.host))
        args = ["audit", "--policy", str(policy), "--no-history", "--timeout", "4", "--format", "json"]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "imgcheck", *args, "--report", f"json={report}"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert elapsed < 4 + SLACK, f"{elapsed:.1f} s for a 4 s deadline"
    assert "deadline of 4 s reached while reading" in report.read_text()


def test_a_credential_helper_that_hangs_is_killed_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real helper process that never answers: the lookup ends at the run's deadline (not the
    helper's own 15 s) and the helper is gone."""
    helper = tmp_path / "docker-credential-slow"
    pid_file = tmp_path / "pid"
    helper.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    helper.chmod(0o755)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"registry.example": "slow"}}))
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    store = CredentialStore(env={}, config_path=config, deadline=Deadline(1.5))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"^deadline of 1\.5 s reached while asking docker-credential-slow"):
        store.get("registry.example")
    assert time.monotonic() - started < 1.5 + 2
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_run_process_kills_the_whole_group_at_the_deadline(tmp_path: Path) -> None:
    """What a scan runs: a process that starts its own child and both outlive the run. Both are killed."""
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"^deadline of 1 s reached while scanning app"):
        run_process(Deadline(1), ["sh", "-c", script], doing="scanning app", timeout=30)
    assert time.monotonic() - started < 1 + 2
    time.sleep(0.2)
    assert [pid for pid in pids.read_text().split() if _running(pid)] == []


def _running(pid: str) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for PID 1, which may not be an init here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_run_process_keeps_its_own_timeout_and_its_output() -> None:
    import subprocess as sp

    done = run_process(Deadline(30), ["sh", "-c", "cat; echo err >&2; exit 3"], doing="x", timeout=10, input=b"in")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"in", b"err\n")
    with pytest.raises(sp.TimeoutExpired):
        run_process(Deadline.unlimited(), ["sleep", "30"], doing="x", timeout=0.5)
