"""Smoke evidence for several images at once, against the real engine and registry (issue 19).

What the engine itself recorded (its event stream: container start and die, image pull) shows that the
runs overlap, that `--jobs 1` keeps them apart, that a digest two policy images share is pulled once,
and that a pull that fails for one image leaves the others' verdicts intact, in the policy's order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.images import ImageConfig, Layer, busybox_base_layer, data_layer, push_image, script_layer
from fixtures.smoke_images import CPU_QUOTA_PROBE, ENTRY, VERSION, VERSION_LABEL
from imgcheck.checks import load_rules
from imgcheck.checks.interface import VerifyOptions
from imgcheck.engine.run import RUN_LABEL
from imgcheck.pipeline import _default_jobs, _gather_all, plan_targets
from imgcheck.policy.loader import load_policy
from imgcheck.registry.client import RegistryClient
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

pytestmark = pytest.mark.engine

SLEEPS = {"slow": 3.0, "medium": 2.5, "fast": 2.0}
"""Each answers --version after sleeping this long: the slowest first, so finishing order is not policy order."""
SPIN_SECONDS = 3


def sleeper_script(seconds: float) -> str:
    return (
        "#!/bin/sh\n"
        'case "$1" in --version) ;; *) echo "usage: run --version" >&2; exit 2;; esac\n'
        f"sleep {seconds:g}\n"
        f'echo "smoke-app version {VERSION}"\n'
    )


SPINNER_SCRIPT = (
    "#!/bin/sh\n"
    + CPU_QUOTA_PROBE
    + 'echo "spinning under $cpu"\n'
    + "spin() { while :; do :; done; }\n"
    + "spin & spin & spin\n"
)


@dataclass(frozen=True)
class Published:
    host: str
    broken_layer: str
    """The blob of `concurrent/broken` altered in the registry's storage: its pull must fail."""


def _image(pusher: Pusher, repository: str, script: str, extra: list[Layer] | None = None) -> str:
    layers = [busybox_base_layer(), script_layer(ENTRY, script), *(extra or [])]
    config = ImageConfig(entrypoint=[ENTRY], labels={VERSION_LABEL: VERSION})
    return push_image(pusher, repository, layers, config, tags=("latest",)).digest


@pytest.fixture(scope="module")
def published(registry: RegistryServer, pusher: Pusher) -> Published:
    for name, seconds in SLEEPS.items():
        _image(pusher, f"concurrent/{name}", sleeper_script(seconds))
    twin = sleeper_script(0.5)
    assert _image(pusher, "concurrent/twin-a", twin) == _image(pusher, "concurrent/twin-b", twin)
    broken = data_layer("/data/only-here", 64 * 1024, seed=b"issue-19-broken")
    _image(pusher, "concurrent/broken", sleeper_script(0.5), [broken])
    stored = registry.blob_path(broken.digest)  # flipped bytes: the engine's digest check fails the pull
    stored.write_bytes(bytes(b ^ 0xFF for b in stored.read_bytes()))  # (a missing blob it retries for ~75 s)
    _image(pusher, "concurrent/hang", "#!/bin/sh\necho waiting for a broker\nexec sleep 3600\n")
    for index in range(3):
        _image(pusher, f"concurrent/spinner-{index}", SPINNER_SCRIPT.replace("spinning", f"spinner {index} spinning"))
    return Published(registry.host, broken.digest)


def write_policy(tmp_path: Path, host: str, names: list[str], smoke_rule: str) -> Path:
    images = "\n".join(f"  - {{name: {n}, repository: concurrent/{n}}}" for n in names)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\nregistry: {host}\nimages:\n{images}\nrules:\n  smoke: {smoke_rule}\n")
    return policy


VERSIONED = "{expect_output: 'version {version}$', timeout: 20s}"


def verify(policy: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", "verify", "latest", "--policy", str(policy), "--format", "json", *extra],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def events(api: Any, since: float, kind: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The engine's own record of what happened to images and containers of `concurrent/` repositories."""
    found = api.events(since=int(since) - 1, until=int(time.time()) + 1, filters={"type": kind}, decode=True)
    return [e for e in found if any(f"concurrent/{n}" in _subject(e) for n in names)]


def _subject(event: dict[str, Any]) -> str:
    return str(event["Actor"]["Attributes"].get("image") or event["Actor"].get("ID") or "")


def run_intervals(api: Any, since: float, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """name -> (start, die) in engine nanoseconds, one container run each."""
    starts: dict[str, int] = {}
    dies: dict[str, int] = {}
    for event in events(api, since, "container", names):
        name = next(n for n in names if f"concurrent/{n}@" in _subject(event))
        if event["Action"] == "start":
            starts[name] = event["timeNano"]
        elif event["Action"] == "die":
            dies[name] = event["timeNano"]
    assert starts.keys() == dies.keys() == set(names), (starts, dies)
    return {n: (starts[n], dies[n]) for n in names}


def test_images_run_at_once_and_report_in_policy_order(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    names = tuple(SLEEPS)
    since = time.time()
    code, report, _ = verify(write_policy(tmp_path, published.host, list(names), VERSIONED), "--jobs", "3")
    assert code == 0, report
    assert [i["name"] for i in report["images"]] == list(names)  # slow first, though it finished last
    intervals = run_intervals(docker_api, since, names)
    assert max(s for s, _ in intervals.values()) < min(d for _, d in intervals.values()), intervals  # all overlap
    seconds = {i["name"]: i["checks"][0]["details"]["seconds"] for i in report["images"]}
    assert all(seconds[n] >= SLEEPS[n] for n in names), seconds  # each run kept its own clock


def test_jobs_one_runs_them_one_after_another(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    names = ("medium", "fast")
    since = time.time()
    code, report, _ = verify(write_policy(tmp_path, published.host, list(names), VERSIONED), "--jobs", "1")
    assert code == 0, report
    intervals = run_intervals(docker_api, since, names)
    assert intervals["medium"][1] < intervals["fast"][0]  # the first ran, and ended, before the second started


def test_a_digest_two_images_share_is_pulled_once(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    names = ("twin-a", "twin-b")
    since = time.time()
    code, report, stderr = verify(write_policy(tmp_path, published.host, list(names), VERSIONED), "--jobs", "2")
    assert code == 0, report
    assert [(i["name"], i["checks"][0]["verdict"]) for i in report["images"]] == [(n, "pass") for n in names]
    assert report["images"][0]["digest"] == report["images"][1]["digest"]
    pulls = [e for e in events(docker_api, since, "image", names) if e["Action"] == "pull"]
    assert len(pulls) == 1, pulls
    started = {e["id"] for e in events(docker_api, since, "container", names) if e["Action"] == "start"}
    assert len(started) == 2  # one pull, two runs of it (each image with its own rule config)
    assert "pulled once for both" in stderr  # the log says why the second image did not pull
    leftover = [r for i in docker_api.images() for r in i.get("RepoDigests") or [] if "concurrent/twin" in r]
    assert leftover == []  # removed after the last of its users


def test_a_failed_pull_is_that_image_error_only(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    names = ["fast", "broken", "twin-a"]
    code, report, _ = verify(write_policy(tmp_path, published.host, names, VERSIONED), "--jobs", "3")
    assert code == 2, report  # could not verify one image
    assert [i["name"] for i in report["images"]] == names
    verdicts = {i["name"]: [c["verdict"] for c in i["checks"]] for i in report["images"]}
    assert verdicts == {"fast": ["pass"], "broken": ["error"], "twin-a": ["pass"]}
    broken = report["images"][1]["checks"][0]["message"]
    assert broken.startswith("could not run: the engine could not pull") and "concurrent/broken@" in broken


def test_cpu_limit_is_exact_for_each_of_several_runs(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    names = tuple(f"spinner-{i}" for i in range(3))
    rule = f"{{cpus: 0.5, timeout: {SPIN_SECONDS}s}}"
    since = time.time()
    code, report, _ = verify(write_policy(tmp_path, published.host, list(names), rule), "--jobs", "3")
    assert code == 1, report
    for index, image in enumerate(report["images"]):
        check = image["checks"][0]
        assert check["verdict"] == "fail" and "timed out after 3 s" in check["message"], check
        assert f"spinner {index} spinning under cpu=50000/100000" in check["details"]["output_tail"]
        assert check["details"]["limits"]["cpus"] == 0.5
    intervals = run_intervals(docker_api, since, names)
    assert max(s for s, _ in intervals.values()) < min(d for _, d in intervals.values()), intervals


def test_default_jobs_is_one_per_image_up_to_the_engine_cpus_and_at_least_four(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    bound = max(docker_api.info()["NCPU"], 4)
    names = [*SLEEPS, "twin-a", "twin-b"]  # five: more than the bound on a machine of up to 4 CPUs
    policy = load_policy(write_policy(tmp_path, published.host, names, VERSIONED))
    options = VerifyOptions()
    planned = plan_targets(policy, ["latest"], options)
    rules = load_rules({"smoke"})
    client = RegistryClient()
    try:
        items = _gather_all(client, planned, rules, options, lambda _m: None)
    finally:
        client.close()
    assert _default_jobs(items, rules, options) == min(len(names), bound)
    assert _default_jobs(items[:3], rules, options) == 3  # three k2 images on a 2-CPU engine: all at once
    assert _default_jobs(items[:1], rules, options) == 1
    assert _default_jobs(items, rules, VerifyOptions(no_smoke=True)) == min(len(names), 4)  # registry reads only


def test_ctrl_c_leaves_no_container_running(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    """The deadline of each run is kept by its own thread: an interrupted verify must not leave a hanging
    image running with nobody left to kill it."""
    policy = write_policy(tmp_path, published.host, ["hang", "slow"], "{timeout: 120s}")
    command = [sys.executable, "-m", "imgcheck", "verify", "latest", "--policy", str(policy), "--jobs", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        if sum("running locked down" in s for s in seen) == 2:
            break
    else:
        pytest.fail(f"the runs never started: {''.join(seen)}")
    deadline = time.monotonic() + 30
    while len(docker_api.containers(filters={"label": RUN_LABEL})) < 2:  # both run at once
        assert time.monotonic() < deadline, "the two runs were never under way together"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 2, rest
    assert "imgcheck: error: interrupted" in rest
    assert docker_api.containers(all=True, filters={"label": RUN_LABEL}) == []
    pulled = [r for i in docker_api.images() for r in i.get("RepoDigests") or [] if "/concurrent/" in r]
    assert pulled == []  # and the images it pulled went with them


def test_two_images_of_one_failing_digest_share_the_failure(
    engine: EngineHandle, docker_api: Any, published: Published, tmp_path: Path
) -> None:
    """Two policy images of one repository and digest: one pull, which fails; each image gets the error."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nregistry: {published.host}\nimages:\n"
        "  - {name: broken-1, repository: concurrent/broken}\n"
        "  - {name: broken-2, repository: concurrent/broken}\n"
        f"rules:\n  smoke: {VERSIONED}\n"
    )
    code, report, stderr = verify(policy, "--jobs", "2")
    assert code == 2, report
    messages = [i["checks"][0]["message"] for i in report["images"]]
    assert [i["name"] for i in report["images"]] == ["broken-1", "broken-2"]
    assert all(m.startswith("could not run: the engine could not pull") for m in messages), messages
    assert messages[0] == messages[1]
    assert "pulled once for both" in stderr
