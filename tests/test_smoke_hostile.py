"""Hostile images through the real engine: each ends in a `fail` that says why, within its timeout
plus a few seconds, and leaves no container and no pulled image behind.

The wall-time bounds here are safety bounds (timeout + 15 s), not benchmarks: they catch a run that
hangs past its deadline, which is the failure these images are built to provoke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from fixtures.smoke_images import GIB_BYTES, MISSING_ENTRY, VERSION, SmokeImage, push_hostile, read_facts
from imgcheck.checks import smoke
from imgcheck.checks.interface import CollectContext, Finding, RunContext, VerifyOptions
from imgcheck.engine.output import HEAD_BYTES, TAIL_BYTES
from imgcheck.engine.run import Limits, RunResult, is_exec_failure
from imgcheck.facts import PlatformFacts
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

SAFETY_SECONDS = 15.0
RSS_GROWTH_LIMIT = 64 * 1024 * 1024


@pytest.fixture(scope="session")
def hostile_images(pusher: Pusher) -> dict[str, SmokeImage]:
    return push_hostile(pusher)


class Hostile:
    """Runs one hostile fixture through collect + check and records what it cost."""

    def __init__(self, registry: RegistryServer, images: dict[str, SmokeImage], api: Any) -> None:
        self.registry = registry
        self.images = images
        self.api = api
        self.seconds = 0.0

    def run(self, name: str, config: smoke.Config) -> tuple[RunResult, Finding]:
        facts = read_facts(self.registry.host, self.images[name])
        ctx = CollectContext(registry=cast(Any, None), options=VerifyOptions())
        started = time.monotonic()
        evidence = smoke.collect(ctx, facts, config)
        self.seconds = time.monotonic() - started
        findings = smoke.check(replace(facts, extras={"smoke": evidence}), config, RunContext(now=datetime.now(UTC)))
        assert len(findings) == 1 and len(evidence.runs) == 1, findings
        result = evidence.runs[0].result
        assert result is not None, findings[0].message  # an engine error would have no result
        return result, findings[0]

    def leftovers(self) -> tuple[list[str], list[str]]:
        """Every container (`docker ps -a`) and every image from the test registry (`docker images`)."""
        containers = [c["Id"] for c in self.api.containers(all=True)]
        images = [
            ref
            for image in self.api.images(all=True)
            for ref in (image.get("RepoDigests") or []) + (image.get("RepoTags") or [])
            if ref.startswith(self.registry.host)
        ]
        return containers, images


@pytest.fixture
def hostile(
    engine: EngineHandle, registry: RegistryServer, hostile_images: dict[str, SmokeImage], docker_api: Any
) -> Iterator[Hostile]:
    runner = Hostile(registry, hostile_images, docker_api)
    assert runner.leftovers() == ([], []), "the engine is not clean before the run"
    yield runner
    assert runner.leftovers() == ([], []), "the run left a container or a pulled image behind"


def within(runner: Hostile, config: smoke.Config) -> None:
    limit = config.timeout.total_seconds() + SAFETY_SECONDS
    assert runner.seconds < limit, f"took {runner.seconds:.1f} s, more than timeout + {SAFETY_SECONDS:g} s"


@pytest.mark.engine
def test_fork_bomb_is_held_by_the_pids_limit(hostile: Hostile) -> None:
    config = smoke.Config(timeout=timedelta(seconds=5), pids=32)
    result, finding = hostile.run("fork-bomb", config)
    assert finding.verdict is Verdict.FAIL
    assert result.timed_out
    assert "can't fork" in result.output  # forks were refused: the limit, not the bomb, stopped it
    # The engine's count when it was killed: never past the limit. A bomb often sits at exactly 32,
    # but can settle below it once every process is blocked; the message then rests on the output.
    assert result.pids is not None and 1 < result.pids <= 32, result.pids
    assert "timed out after 5 s" in finding.message
    assert "the pids limit (32) held it (a fork bomb or runaway workers)" in finding.message
    if result.pids == 32:
        assert "holding 32 processes, its pids limit (32)" in finding.message
    within(hostile, config)


@pytest.mark.engine
def test_memory_hog_is_killed_by_the_memory_limit(hostile: Hostile) -> None:
    config = smoke.Config(timeout=timedelta(seconds=5))
    result, finding = hostile.run("memory-hog", config)
    assert finding.verdict is Verdict.FAIL
    assert result.oom_killed and result.exit_code == 137
    assert "killed: out of memory (limit 256 MiB)" in finding.message
    assert "loading the whole dataset" in finding.message
    assert "raise `memory:`" in finding.message
    within(hostile, config)


@pytest.mark.engine
def test_cpu_spinners_are_held_by_the_cpu_limit(hostile: Hostile) -> None:
    config = smoke.Config(timeout=timedelta(seconds=3), cpus=0.5)
    result, finding = hostile.run("cpu-spinner", config)
    assert finding.verdict is Verdict.FAIL
    assert result.timed_out
    assert "warming the caches cpu=50000/100000" in result.output  # it spun under half a core's quota
    assert result.cpu_throttled is True  # and the engine saw the quota throttle it
    assert result.limits == Limits(memory=256 * 1024 * 1024, pids=128, cpus=0.5)
    assert "timed out after 3 s: the container was killed and removed" in finding.message
    assert "it was using all of its CPU limit (0.5 CPUs), which throttled it" in finding.message
    assert "raise `cpus:` or `timeout:`" in finding.message
    assert finding.details["limits"] == {"memory": 256 * 1024 * 1024, "pids": 128, "cpus": 0.5}
    within(hostile, config)


class PeakRss:
    """Samples this process's resident set while a run streams into it (ru_maxrss is a lifetime peak)."""

    def __init__(self) -> None:
        self.baseline = self.peak = self._now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _now() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.engine
def test_a_gibibyte_of_output_is_capped_and_costs_no_memory(hostile: Hostile) -> None:
    # 1 GiB streams through this engine in about 10 s on two shared cores: 30 s lets it finish.
    config = smoke.Config(timeout=timedelta(seconds=30), expect_output=f"smoke-app version {VERSION}$")
    with PeakRss() as rss:
        result, finding = hostile.run("flood", config)
    assert result.output_bytes > GIB_BYTES  # every byte was read (and dropped), not just the first
    assert result.truncated
    assert len(result.output.encode()) < HEAD_BYTES + TAIL_BYTES + 100
    assert rss.peak - rss.baseline < RSS_GROWTH_LIMIT, f"RSS grew by {(rss.peak - rss.baseline) >> 20} MiB"
    assert (finding.verdict, result.exit_code) == (Verdict.PASS, 0), finding.message  # version line in the tail
    within(hostile, config)


@pytest.mark.engine
def test_sigterm_is_ignored_so_the_deadline_kills(hostile: Hostile, docker_api: Any) -> None:
    config = smoke.Config(timeout=timedelta(seconds=3))
    since = int(time.time()) - 1
    result, finding = hostile.run("term-ignoring", config)
    assert finding.verdict is Verdict.FAIL
    assert result.timed_out
    assert "timed out after 3 s: the container was killed and removed" in finding.message
    assert "ignoring SIGTERM" in finding.message
    signals = {
        event["Actor"]["Attributes"].get("signal")
        for event in docker_api.events(
            since=since, until=int(time.time()) + 1, filters={"event": "kill", "type": "container"}, decode=True
        )
        if "term-ignoring" in event["Actor"]["Attributes"].get("image", "")
    }
    assert signals == {"9"}  # SIGKILL straight away: no SIGTERM and grace period it would ignore
    within(hostile, config)


@pytest.mark.engine
def test_closing_the_output_is_not_the_end_of_the_run(hostile: Hostile) -> None:
    config = smoke.Config(timeout=timedelta(seconds=3))
    result, finding = hostile.run("detached", config)
    assert finding.verdict is Verdict.FAIL
    assert result.timed_out
    assert "timed out after 3 s" in finding.message
    assert "going quiet" in finding.message
    within(hostile, config)


@pytest.mark.engine
def test_missing_entrypoint_is_a_fail_with_the_engine_reason(hostile: Hostile) -> None:
    config = smoke.Config(timeout=timedelta(seconds=5))
    result, finding = hostile.run("missing-entrypoint", config)
    assert finding.verdict is Verdict.FAIL, finding.message
    assert result.start_error is not None
    assert f"stat {MISSING_ENTRY}: no such file or directory" in finding.message
    assert f"the image's ENTRYPOINT ['{MISSING_ENTRY}'] is not an executable in the image" in finding.message
    assert "set `command:`" in finding.message
    within(hostile, config)


@pytest.mark.engine
def test_a_container_still_running_after_its_output_ended_is_a_timeout(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engines that end the attach stream when stdout and stderr close leave `wait` to find the
    deadline: a read timeout there is the container's timeout, not a lost engine."""
    from imgcheck.engine import run
    from imgcheck.engine.client import connect
    from imgcheck.engine.pull import pull_by_digest, release

    monkeypatch.setattr(run, "WAIT_GRACE", 1.0)
    facts = read_facts(hostile.registry.host, hostile.images["detached"])
    engine = connect()
    pulled = pull_by_digest(engine, f"{facts.registry}/{facts.repository}@{facts.digest}", lambda _m: None)
    api = engine.client.api
    cid = api.create_container(pulled.reference, host_config=run.host_config(engine, run.RunSpec()))["Id"]
    try:
        api.start(cid)
        assert run._wait(api, cid, time.monotonic()) is None
        assert api.inspect_container(cid)["State"]["Running"]
    finally:
        api.remove_container(cid, force=True)
        release(engine, pulled, keep=False, progress=lambda _m: None)
        engine.close()


CLI_POLICY = """\
version: 1
images:
  - {name: missing-entrypoint, repository: smoke/missing-entrypoint}
  - {name: memory-hog, repository: smoke/memory-hog}
rules:
  smoke:
    timeout: 5s
"""


@pytest.mark.engine
def test_hostile_images_are_verdicts_of_a_cli_run_never_its_error(
    engine: EngineHandle, registry: RegistryServer, hostile_images: dict[str, SmokeImage], tmp_path: Path
) -> None:
    """Through `imgcheck verify`: exit 1 (a verdict), each image failed with its reason, no traceback."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(CLI_POLICY)
    targets = [f"{registry.host}/smoke/{name}:{VERSION}" for name in ("missing-entrypoint", "memory-hog")]
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", "verify", *targets, "--policy", str(policy), "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 1, done.stderr
    checks = {image["name"]: image["checks"] for image in json.loads(done.stdout)["images"]}
    assert [(c["rule"], c["verdict"]) for c in checks["missing-entrypoint"]] == [("smoke", "fail")]
    assert "no such file or directory" in checks["missing-entrypoint"][0]["message"]
    assert [(c["rule"], c["verdict"]) for c in checks["memory-hog"]] == [("smoke", "fail")]
    assert "out of memory (limit 256 MiB)" in checks["memory-hog"][0]["message"]
    limits = {"memory": 256 * 1024 * 1024, "pids": 128, "cpus": 1.0}  # the defaults, in the JSON report
    assert checks["memory-hog"][0]["details"]["limits"] == limits


# The judging of hostile endings, without an engine (the engine tests above produce these results).


def judged(result: RunResult, config: smoke.Config, entrypoint: list[str] | None = None) -> tuple[Verdict, str]:
    platform = PlatformFacts(
        platform="linux/amd64",
        manifest_digest="sha256:" + "ab" * 32,
        manifest={},
        config_digest="sha256:" + "cd" * 32,
        config={"config": {"Entrypoint": entrypoint}},
        layers=(),
        config_size=2,
    )
    return smoke.judge(result, config, platform, {})


def ended(output: str, exit_code: int | None, **kw: Any) -> RunResult:
    return RunResult(exit_code, output, len(output), False, 1.0, **kw)


def test_failed_forks_in_the_output_name_the_pids_limit() -> None:
    output = "starting 200 workers\n/app/run: line 3: can't fork: Resource temporarily unavailable\n"
    verdict, message = judged(ended(output, 2), smoke.Config(pids=64))
    assert verdict is Verdict.FAIL
    assert "exited 2, expected 0" in message
    assert "could not create more processes: the pids limit (64) stopped it" in message
    verdict, message = judged(ended(output, None, timed_out=True), smoke.Config(pids=64))
    assert verdict is Verdict.FAIL
    assert "timed out after 30 s: the container was killed" in message
    assert "the pids limit (64) held it (a fork bomb or runaway workers)" in message


def test_a_plain_hang_does_not_blame_the_pids_limit() -> None:
    verdict, message = judged(ended("waiting\n", None, timed_out=True, pids=3), smoke.Config(pids=64))
    assert verdict is Verdict.FAIL
    assert "pids" not in message and "raise `timeout:`" in message


def test_a_hang_blames_the_cpu_limit_only_when_it_throttled() -> None:
    config = smoke.Config(cpus=2)
    _, idle = judged(ended("waiting\n", None, timed_out=True, cpu_throttled=False), config)
    assert "CPU" not in idle and "cpus" not in idle
    verdict, busy = judged(ended("working\n", None, timed_out=True, cpu_throttled=True), config)
    assert verdict is Verdict.FAIL
    assert "it was using all of its CPU limit (2 CPUs), which throttled it" in busy


@pytest.mark.parametrize(
    ("reason", "image_fault"),
    [
        ('exec: "/no/such/binary": stat /no/such/binary: no such file or directory', True),
        ('exec: "--version": executable file not found in $PATH', True),
        ('exec: "/app/run": permission denied', True),
        ("exec format error", True),
        ("cgroup setup failed", False),
        ("error mounting proc: no such file or directory", False),
    ],
)
def test_only_exec_failures_are_the_image_s_fault(reason: str, image_fault: bool) -> None:
    assert is_exec_failure(reason) is image_fault


def test_unexecutable_entrypoint_is_a_fail_even_without_an_exit_code() -> None:
    """Some engines refuse at create time and give no exit code: still the image's fault."""
    reason = 'exec: "/no/such/binary": stat /no/such/binary: no such file or directory'
    verdict, message = judged(ended(reason, None, start_error=reason), smoke.Config(), ["/no/such/binary"])
    assert verdict is Verdict.FAIL
    assert message.startswith(f"could not be started: {reason}; the image's ENTRYPOINT ['/no/such/binary']")


def test_unexecutable_command_names_the_setting() -> None:
    reason = 'exec: "python": executable file not found in $PATH'
    config = smoke.Config(command=("python", "-m", "app"))
    verdict, message = judged(ended(reason, 127, start_error=reason), config, ["/app/run"])
    assert verdict is Verdict.FAIL
    assert "could not be started (exited 127)" in message
    assert "`command:` names 'python', which the image cannot execute" in message
    assert "ENTRYPOINT" not in message
