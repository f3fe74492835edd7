"""One locked-down container run: no network, read-only root, no capabilities, limits, a deadline.

The limits bound what one image can take from the machine: memory (and swap), processes, and CPU
time (a CFS quota: a spinning image gets at most `cpus` cores, however many processes it starts).

The output is read from the attach stream as it is written (the engine stores none of it: log
driver `none`), into a bounded capture. The container is always removed, whatever happens.

Hostile images end in a RunResult, never in an engine error: an entrypoint that cannot be executed
is a `start_error`; a process that outlives the deadline (forking, ignoring SIGTERM, or silent after
closing its output) is SIGKILLed and `timed_out`, with the engine's process count at that moment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import field, replace
from typing import Any

from imgcheck.engine.client import Engine
from imgcheck.engine.output import FrameStripper, OutputCapture
from imgcheck.errors import EngineError
from imgcheck.record import record

RUN_LABEL = "org.imgcheck.smoke"
TMPFS_OPTIONS = "rw,nosuid,nodev,noexec,size=64m"
READ_CHUNK = 64 * 1024
GONE_WAIT = 15.0
"""Seconds an interrupted run waits for the engine to remove its containers."""
WAIT_GRACE = 5.0
"""Seconds the engine gets to report an exit after the output ended, even at the deadline."""
EXEC_FAILURES = (
    "executable file not found",
    "no such file or directory",
    "permission denied",
    "exec format error",
    "not a directory",
)
"""runc's reasons for not executing the entrypoint: the image's fault, not the engine's."""
CPU_LIMIT_HINT = (
    "the engine cannot apply the smoke CPU limit (`cpus`): give it the cgroup cpu controller "
    "(rootless Docker: delegate `cpu`); imgcheck never runs an image without it"
)
NO_CPU_LIMIT = ("cpu cfs", "range of cpus")
"""The engine's words when it cannot apply the CPU limit: no CFS bandwidth control, or too few CPUs."""
NANO = 1_000_000_000


@record
class RunSpec:
    """What to run and under which limits (the smoke rule's policy, resolved)."""

    command: tuple[str, ...] | None = None
    """Replaces the image's ENTRYPOINT when set (as container-structure-test does)."""
    args: tuple[str, ...] = ("--version",)
    """Replace the image's CMD: appended to the entrypoint (or to `command`)."""
    timeout: float = 30.0
    memory: int = 256 * 1024 * 1024
    pids: int = 128
    cpus: float = 1.0
    """CPU time as a number of cores (docker's `--cpus`), capped to what the engine has."""
    user: str | None = None
    """None: the image's own user."""
    tmpfs: bool = False
    """Mount a small writable tmpfs on /tmp (the root filesystem stays read-only)."""
    env: Mapping[str, str] = field(default_factory=dict)


@record
class Limits:
    """The limits a run was given, as the engine applied them (for the report)."""

    memory: int
    pids: int
    cpus: float


@record
class RunResult:
    """How a run ended: an exit code, a timeout, an OOM kill, or a start failure."""

    exit_code: int | None
    """None when the container timed out or never started."""
    output: str
    """stdout and stderr interleaved, capped (head and tail kept)."""
    output_bytes: int
    truncated: bool
    seconds: float
    timed_out: bool = False
    oom_killed: bool = False
    start_error: str | None = None
    """The engine's reason when the process could not be started (126/127 keep their exit code)."""
    pids: int | None = None
    """Processes in the container when the deadline killed it (the engine's count; None if unknown)."""
    cpu_throttled: bool | None = None
    """At the deadline: the CPU quota had throttled it (it wanted more CPU than `cpus`); None if unknown."""
    limits: Limits | None = None


def applied_limits(engine: Engine, spec: RunSpec) -> Limits:
    """`spec`'s limits as the engine can apply them: more CPUs than it has would be refused, and
    would limit nothing, so `cpus` is capped to its count."""
    cpus = min(spec.cpus, engine.ncpu) if engine.ncpu else spec.cpus
    return Limits(memory=spec.memory, pids=spec.pids, cpus=cpus)


def host_config(engine: Engine, spec: RunSpec) -> Any:
    """The lockdown, in one place: every smoke run gets exactly this."""
    from docker.types import LogConfig

    limits = applied_limits(engine, spec)
    return engine.client.api.create_host_config(
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=limits.memory,
        memswap_limit=limits.memory,
        pids_limit=limits.pids,
        nano_cpus=round(limits.cpus * NANO),
        tmpfs={"/tmp": TMPFS_OPTIONS} if spec.tmpfs else None,
        log_config=LogConfig(type="none"),
    )


def run_locked_down(engine: Engine, image: str, spec: RunSpec) -> RunResult:
    """Run `image` once under `spec`; the container is removed before this returns."""
    result = _create_and_run(engine, image, spec)
    return replace(result, limits=applied_limits(engine, spec))


def _create_and_run(engine: Engine, image: str, spec: RunSpec) -> RunResult:
    from docker.errors import APIError

    api = engine.client.api
    try:
        container = api.create_container(
            image,
            command=list(spec.args) or None,
            entrypoint=list(spec.command) if spec.command is not None else None,
            user=spec.user or "",
            environment=dict(spec.env) or None,
            host_config=host_config(engine, spec),
            network_disabled=True,
            labels={RUN_LABEL: "1"},
            tty=False,
            stdin_open=False,
        )
    except APIError as exc:
        reason = start_failure(str(exc.explanation or exc))
        if is_exec_failure(reason):  # engines that check the entrypoint at create time
            return RunResult(None, reason, len(reason.encode()), False, 0.0, start_error=reason)
        hint = CPU_LIMIT_HINT if any(m in reason.lower() for m in NO_CPU_LIMIT) else None
        raise EngineError(f"the engine refused to create a container for {image}: {reason}", hint=hint) from None
    except OSError as exc:  # requests' errors are OSErrors: the engine went away
        raise EngineError(f"lost the engine while creating a container for {image}: {exc}") from None
    cid = str(container["Id"])
    _RUNNING[cid] = api
    try:
        return _attach_start_wait(api, cid, spec)
    except APIError as exc:
        raise EngineError(f"the engine failed while running {image}: {exc.explanation or exc}") from None
    except OSError as exc:
        raise EngineError(f"lost the engine while running {image}: {exc}") from None
    finally:
        _RUNNING.pop(cid, None)
        _remove(api, cid)


def _attach_start_wait(api: Any, cid: str, spec: RunSpec) -> RunResult:
    from docker.errors import APIError

    capture = OutputCapture()
    started = time.monotonic()
    stream = api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
    try:
        try:
            api.start(cid)
        except APIError as exc:
            state = api.inspect_container(cid)["State"]
            code = int(state.get("ExitCode") or 0)
            reason = start_failure(str(state.get("Error") or exc.explanation or exc))
            capture.feed(reason.encode())
            return RunResult(
                exit_code=code or None,
                output=capture.text(),
                output_bytes=capture.total,
                truncated=False,
                seconds=time.monotonic() - started,
                start_error=reason,
            )
        finished = _drain(stream, capture, started + spec.timeout)
    finally:
        stream.close()
    status = _wait(api, cid, started + spec.timeout) if finished else None
    if status is None:
        pids, throttled = _usage_now(api, cid)
        _kill(api, cid)
        return RunResult(
            None,
            capture.text(),
            capture.total,
            capture.truncated,
            spec.timeout,
            timed_out=True,
            pids=pids,
            cpu_throttled=throttled,
        )
    state = api.inspect_container(cid)["State"]
    return RunResult(
        exit_code=int(status.get("StatusCode", state.get("ExitCode", -1))),
        output=capture.text(),
        output_bytes=capture.total,
        truncated=capture.truncated,
        seconds=time.monotonic() - started,
        oom_killed=bool(state.get("OOMKilled")),
    )


def start_failure(text: str) -> str:
    """runc's start error without its layers of wrapping: `exec: "--version": executable file not found`."""
    marker = "unable to start container process: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.removesuffix(": unknown").strip()


def is_exec_failure(reason: str) -> bool:
    """The engine could not execute the entrypoint (missing, not executable, wrong format)."""
    lowered = reason.lower()
    return "exec" in lowered and any(marker in lowered for marker in EXEC_FAILURES)


def _wait(api: Any, cid: str, deadline: float) -> Mapping[str, Any] | None:
    """The exit status, or None when the container still runs at the deadline: its output ended
    (it closed stdout and stderr) but it did not."""
    try:
        status: Mapping[str, Any] = api.wait(cid, timeout=max(WAIT_GRACE, deadline - time.monotonic()))
    except OSError:  # requests' read timeout; anything else shows in the inspect below
        if api.inspect_container(cid)["State"].get("Running"):
            return None
        raise
    return status


def _usage_now(api: Any, cid: str) -> tuple[int | None, bool | None]:
    """From one engine stats sample (API >= 1.41): how many processes the container holds, and
    whether the CPU quota has throttled it (a busy loop, not a process waiting for something)."""
    from docker.errors import DockerException

    try:
        stats = api.stats(cid, stream=False, one_shot=True)
    except (DockerException, OSError):
        return None, None
    current = (stats.get("pids_stats") or {}).get("current")
    throttling = (stats.get("cpu_stats") or {}).get("throttling_data") or {}
    throttled = throttling.get("throttled_periods")
    return (
        current if isinstance(current, int) else None,
        throttled > 0 if isinstance(throttled, int) else None,
    )


def _drain(stream: Any, capture: OutputCapture, deadline: float) -> bool:
    """Read the attach stream until it ends (True) or the deadline passes (False)."""
    raw = getattr(stream, "_sock", stream)
    frames = FrameStripper()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        raw.settimeout(left)
        try:
            data = stream.read(READ_CHUNK)
        except TimeoutError:
            return False
        if not data:
            return True
        for payload in frames.feed(data):
            capture.feed(payload)


def _kill(api: Any, cid: str) -> None:
    from docker.errors import APIError

    with contextlib.suppress(APIError):  # it may have exited between the deadline and the kill
        api.kill(cid)


def _remove(api: Any, cid: str) -> None:
    from docker.errors import APIError, NotFound

    try:
        api.remove_container(cid, force=True, v=True)
    except NotFound:
        return
    except (APIError, OSError) as exc:
        raise EngineError(
            f"could not remove smoke container {cid[:12]}: {getattr(exc, 'explanation', None) or exc}",
            hint=f"remove it by hand: docker rm -f {cid[:12]}",
        ) from None


_RUNNING: dict[str, Any] = {}
"""Container id -> the API client running it, while a run is under way (on any thread)."""


def remove_running(wait: float = GONE_WAIT) -> int:
    """Force-remove every container a run of this process still has (a Ctrl-C left its thread running:
    the deadline is kept by that thread, so nothing else would stop a hanging image), and wait until the
    engine has let go of each (its own thread may be removing it too), so that its image can go. How many."""
    from docker.errors import NotFound

    left = list(_RUNNING.items())
    for cid, api in left:
        with contextlib.suppress(Exception):  # best effort on the way out: the run may end by itself meanwhile
            _remove(api, cid)
    deadline = time.monotonic() + wait
    for cid, api in left:
        while time.monotonic() < deadline:
            try:
                api.inspect_container(cid)
            except NotFound:
                break
            except Exception:  # the engine went away: nothing more to wait for
                break
            time.sleep(0.1)
    return len(left)
