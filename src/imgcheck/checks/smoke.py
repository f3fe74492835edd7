"""smoke: run the image (by digest) in a locked-down container and judge its exit code and output.

`collect` does the engine work (imgcheck.engine); `check` is pure: it judges the evidence that
`collect` stored in `facts.extras["smoke"]`.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import timedelta
from typing import Any

from imgcheck.checks.interface import CollectContext, Finding, RuleConfig, RuleSpec, RunContext, VerifyOptions
from imgcheck.engine.pull import SharedPulls
from imgcheck.engine.run import RunResult, RunSpec, is_exec_failure
from imgcheck.engine.session import PlatformRun, SmokeEvidence, smoke_image
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.policy.fields import FieldError
from imgcheck.policy.patterns import PatternError, compile_pattern, escape
from imgcheck.policy.types import ByteSize, format_bytes, format_duration
from imgcheck.record import record
from imgcheck.verdict import Verdict

VERSION_LABEL = "org.opencontainers.image.version"
LAST_LINES = 5
LINE_CHARS = 200
DETAIL_TAIL_CHARS = 4096
DEFAULT_MEMORY = ByteSize(256 * 1024 * 1024)
MIN_MEMORY = 6 * 1024 * 1024
MIN_CPUS = 0.01
"""The engine's smallest CPU limit (a 1 ms CFS quota per 100 ms period)."""
MAX_CPUS = 64.0
FORK_FAILED = re.compile(
    r"can't fork|cannot fork|fork: retry|fork: resource temporarily unavailable"
    r"|(?:can't|cannot|unable to|failed to) create (?:a )?(?:new |native )?(?:os )?thread",
    re.IGNORECASE,
)
"""What shells and runtimes print when fork/clone fails with EAGAIN: the pids limit's signature."""


@record
class Config(RuleConfig):
    command: tuple[str, ...] | None = None
    """Replaces the image's ENTRYPOINT (as container-structure-test's `command`)."""
    args: tuple[str, ...] = ("--version",)
    """Appended to the entrypoint (or to `command`); they replace the image's CMD."""
    expect_exit: int = 0
    expect_output: str | None = None
    """RE2 pattern searched in stdout+stderr; `{version}` is the image's version label, escaped."""
    timeout: timedelta = timedelta(seconds=30)
    memory: ByteSize = DEFAULT_MEMORY
    pids: int = 128
    cpus: float = 1.0
    """CPU time as cores (docker's `--cpus`): a spinning image cannot take the whole runner."""
    user: str | None = None
    """Run as this user instead of the image's own."""
    tmpfs: bool = False
    """Mount a writable tmpfs on /tmp (the root filesystem stays read-only)."""
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Policy mistakes are caught when the policy loads, not after a pull."""
        if self.timeout.total_seconds() <= 0:
            raise FieldError("timeout", "smoke `timeout` must be positive (e.g. 30s)")
        if int(self.memory) < MIN_MEMORY:
            raise FieldError(
                "memory", f"smoke `memory` must be at least 6MiB (the engine's minimum), got {int(self.memory)}"
            )
        if self.pids < 1:
            raise FieldError("pids", f"smoke `pids` must be at least 1, got {self.pids}")
        if not MIN_CPUS <= self.cpus <= MAX_CPUS:  # also refuses NaN
            raise FieldError(
                "cpus",
                f"smoke `cpus` must be a number of CPUs from {MIN_CPUS:g} to {MAX_CPUS:g} (like docker's --cpus: "
                f"0.5, 1, 2), got {self.cpus:g}",
            )
        if self.command is not None and not self.command:
            raise FieldError(
                "command", "smoke `command` must name a program (e.g. [python, -m, app]); leave it out instead"
            )
        if self.expect_output is not None:
            try:
                compile_pattern(self.expect_output.replace("{version}", "v"))
            except PatternError as exc:
                raise FieldError(
                    "expect_output", f"smoke `expect_output` {self.expect_output!r} is not a valid regex: {exc}"
                ) from None


def run_spec(config: Config) -> RunSpec:
    return RunSpec(
        command=config.command,
        args=config.args,
        timeout=config.timeout.total_seconds(),
        memory=int(config.memory),
        pids=config.pids,
        cpus=config.cpus,
        user=config.user,
        tmpfs=config.tmpfs,
        env=dict(config.env),
    )


def collect(ctx: CollectContext, facts: ImageFacts, config: Config) -> SmokeEvidence:
    """Pull by digest and run each runnable platform; with --no-smoke, touch no engine at all."""
    if ctx.options.no_smoke:
        return SmokeEvidence(skipped="--no-smoke given")
    return smoke_image(
        facts,
        run_spec(config),
        keep_images=ctx.options.keep_images,
        only_platform=ctx.options.platform,
        progress=ctx.progress,
        pulls=shared_pulls(ctx),
        deadline=ctx.options.deadline,
    )


def measure_uncompressed(ctx: CollectContext, facts: ImageFacts) -> Mapping[str, int]:
    """platform -> size the engine reports after a pull, for `size.max_uncompressed` without smoke."""
    evidence = smoke_image(
        facts,
        None,
        keep_images=ctx.options.keep_images,
        only_platform=ctx.options.platform,
        progress=ctx.progress,
        pulls=shared_pulls(ctx),
        deadline=ctx.options.deadline,
    )
    return evidence.uncompressed_sizes


def shared_pulls(ctx: CollectContext) -> SharedPulls:
    """The run's pulls: a digest that several images of the run share is pulled once, removed after the last."""

    def make() -> SharedPulls:
        wanted = Counter(
            p.manifest_digest
            for image in ctx.images
            for p in image.platforms
            if ctx.options.platform is None or p.platform == ctx.options.platform
        )
        return SharedPulls(wanted, keep=ctx.options.keep_images, progress=ctx.progress)

    return ctx.shared.get("engine.pulls", make)


def collect_bound(_config: Config, options: VerifyOptions) -> int | None:
    """Images pulled and run at once by default: the engine's CPUs, at least 4 (engine_jobs says why)."""
    if options.no_smoke:
        return None
    from imgcheck.engine.client import engine_jobs

    return engine_jobs()


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    if run.options.no_smoke:
        return [Finding(Verdict.SKIP, "--no-smoke given: the image was not run")]
    evidence = facts.extras.get("smoke")
    if not isinstance(evidence, SmokeEvidence):
        return [Finding(Verdict.ERROR, "the image was not run: no smoke evidence was collected for it")]
    if evidence.skipped:
        return [Finding(Verdict.SKIP, f"{evidence.skipped}: the image was not run")]
    if not evidence.runs:
        return [Finding(Verdict.ERROR, "no platform of the image was selected to run (check --platform)")]
    by_platform = {p.platform: p for p in facts.platforms}
    return [_judge_platform(r, by_platform.get(r.platform), facts, config, evidence.engine) for r in evidence.runs]


def _judge_platform(
    run: PlatformRun, platform: PlatformFacts | None, facts: ImageFacts, config: Config, engine: str | None
) -> Finding:
    details: dict[str, Any] = {"reference": run.reference, "engine": engine}
    if run.uncompressed_size is not None:
        details["uncompressed_size"] = run.uncompressed_size
    if run.skipped:
        return Finding(Verdict.SKIP, f"not run: {run.skipped}", run.platform, details)
    if run.error or run.result is None:
        return Finding(Verdict.ERROR, f"could not run: {run.error or 'no result'}", run.platform, details)
    result = run.result
    argv = _argv(config, platform)
    details.update(
        command=argv,
        exit_code=result.exit_code,
        expected_exit=config.expect_exit,
        seconds=round(result.seconds, 3),
        output_bytes=result.output_bytes,
        output_tail=result.output[-DETAIL_TAIL_CHARS:],
        emulated=run.emulated,
    )
    if result.limits is not None:
        details["limits"] = {"memory": result.limits.memory, "pids": result.limits.pids, "cpus": result.limits.cpus}
    verdict, message = judge(result, config, platform, (platform.labels if platform else facts.labels))
    return Finding(verdict, f"`{shlex.join(argv)}` {message}", run.platform, details)


def judge(
    result: RunResult, config: Config, platform: PlatformFacts | None, labels: Mapping[str, str]
) -> tuple[Verdict, str]:
    """The verdict and the message's tail for one finished (or killed) run."""
    last = _last_lines(result.output)
    if result.timed_out:
        return Verdict.FAIL, _timed_out(result, config, last)
    if result.oom_killed:
        memory = memory_text(int(config.memory))
        return Verdict.FAIL, (
            f"was killed: out of memory (limit {memory}), exit {result.exit_code} (last output: {last}); "
            f"the memory limit ({memory}) stopped it: raise `memory:` if the image needs more"
        )
    if result.start_error and is_exec_failure(result.start_error):
        return Verdict.FAIL, _not_executable(result, config, platform)
    if result.exit_code is None:
        return Verdict.ERROR, f"could not be started by the engine: {result.start_error or 'no exit code'}"
    if result.exit_code != config.expect_exit:
        return Verdict.FAIL, (
            f"exited {result.exit_code}, expected {config.expect_exit} (last output: {last})"
            + _no_entrypoint_hint(result.exit_code, config, platform)
            + _pids_hint(result, config)
        )
    if config.expect_output is None:
        return Verdict.PASS, f"exited {result.exit_code} as expected in {result.seconds:.1f} s"
    pattern = config.expect_output
    if "{version}" in pattern:
        version = labels.get(VERSION_LABEL, "")
        if not version:
            return Verdict.FAIL, (
                f"exited {result.exit_code}, but expect_output uses {{version}} and the image has no "
                f"{VERSION_LABEL} label: add the label at build time or drop {{version}} from expect_output"
            )
        pattern = pattern.replace("{version}", escape(version))
    try:
        found = compile_pattern(pattern).search(result.output)
    except PatternError as exc:
        return Verdict.ERROR, f"expect_output {config.expect_output!r} is not a valid regular expression: {exc}"
    if found is None:
        return Verdict.FAIL, (
            f"exited {result.exit_code} but its output does not match /{pattern}/ (last output: {last}); "
            "the image may report a different version than its label"
        )
    return Verdict.PASS, f"exited {result.exit_code} and printed {found.strip()[:LINE_CHARS]!r}"


def _timed_out(result: RunResult, config: Config, last: str) -> str:
    """Killed at the deadline. A fork bomb shows as the engine's count at the limit, or as failed forks
    in the output (a bomb can settle below the limit once every process is blocked)."""
    held = result.pids is not None and result.pids >= config.pids
    count = f" holding {result.pids} processes, its pids limit ({config.pids})" if held else ""
    head = (
        f"timed out after {format_duration(config.timeout.total_seconds())}{count}: "
        f"the container was killed and removed (last output: {last}); "
    )
    if held or FORK_FAILED.search(result.output):
        return head + (
            f"it kept forking and the pids limit ({config.pids}) held it (a fork bomb or runaway workers): "
            "make `args` print and exit; raise `pids:` only if the image needs that many processes"
        )
    if result.cpu_throttled:
        cpus = cpus_text(result.limits.cpus if result.limits else config.cpus)
        return head + (
            f"it was using all of its CPU limit ({cpus}), which throttled it (a busy loop, or work too heavy "
            "for a smoke run): make `args` print and exit; raise `cpus:` or `timeout:` only if it needs more"
        )
    return head + "make `args` print and exit, or raise `timeout:`"


def _pids_hint(result: RunResult, config: Config) -> str:
    if FORK_FAILED.search(result.output) is None:
        return ""
    return (
        f"; its output says it could not create more processes: the pids limit ({config.pids}) stopped it, "
        "raise `pids:` if the image needs more"
    )


def _not_executable(result: RunResult, config: Config, platform: PlatformFacts | None) -> str:
    """The engine could not execute what the run names: say which setting named it."""
    code = f" (exited {result.exit_code})" if result.exit_code is not None else ""
    head = f"could not be started{code}: {result.start_error}"
    k2 = _no_entrypoint_hint(result.exit_code or 127, config, platform)
    if k2:
        return head + k2
    if config.command is not None:
        return (
            f"{head}; `command:` names {config.command[0]!r}, which the image cannot execute: "
            "set it to a program in the image"
        )
    image_config = (platform.config.get("config") or {}) if platform else {}
    entry = [str(e) for e in image_config.get("Entrypoint") or []]
    if entry:
        return (
            f"{head}; the image's ENTRYPOINT {entry} is not an executable in the image: fix ENTRYPOINT in the "
            "build (a missing COPY, a wrong path, a binary for another platform) or set `command:`"
        )
    return f"{head}; check that the program the image runs exists in it and is executable, or set `command:`"


def _no_entrypoint_hint(exit_code: int, config: Config, platform: PlatformFacts | None) -> str:
    """The k2 case: no ENTRYPOINT, so `args` replaced the CMD and became the program to run."""
    if exit_code not in (126, 127) or config.command is not None or not config.args or platform is None:
        return ""
    image_config = platform.config.get("config") or {}
    if image_config.get("Entrypoint"):
        return ""
    cmd = image_config.get("Cmd") or []
    example = ", ".join(str(c) for c in cmd) if cmd else "/path/to/program"
    return (
        f"; the image has no ENTRYPOINT, so args {list(config.args)} replaced its CMD {cmd} and the engine "
        f"tried to run {config.args[0]!r} as a program: set `command:` to what should answer "
        f"(e.g. command: [{example}]) or give the image an ENTRYPOINT"
    )


def _argv(config: Config, platform: PlatformFacts | None) -> list[str]:
    """What the container ran, as Docker merges it: entrypoint (or command) + args (or the image's CMD)."""
    image_config = (platform.config.get("config") or {}) if platform else {}
    entry: Sequence[str] = config.command if config.command is not None else (image_config.get("Entrypoint") or [])
    rest: Sequence[str] = config.args or ([] if config.command is not None else (image_config.get("Cmd") or []))
    return [str(a) for a in (*entry, *rest)]


def _last_lines(output: str) -> str:
    lines = [line.strip()[:LINE_CHARS] for line in output.splitlines() if line.strip()]
    if not lines:
        return "none"
    return repr(" ⏎ ".join(lines[-LAST_LINES:]))


def memory_text(n: int) -> str:
    """Limits are usually binary (`256MiB`): show them as written."""
    return f"{n / 2**20:g} MiB" if n % 2**20 == 0 else format_bytes(n)


def cpus_text(cpus: float) -> str:
    return f"{cpus:g} CPU" + ("" if cpus == 1 else "s")


def describe(config: Config) -> str:
    entry = shlex.join(config.command) if config.command is not None else "<entrypoint>"
    expect = f" and output matching /{config.expect_output}/" if config.expect_output else ""
    tmp = ", tmpfs /tmp" if config.tmpfs else ""
    return (
        f"runs `{entry} {shlex.join(config.args)}` by digest with no network, a read-only root, no capabilities, "
        f"{memory_text(int(config.memory))}, {config.pids} pids and {cpus_text(config.cpus)}{tmp}; "
        f"expects exit {config.expect_exit}{expect} "
        f"within {format_duration(config.timeout.total_seconds())}"
    )


RULE = RuleSpec(
    id="smoke",
    summary="runs the image with args in a locked-down container and checks exit code and output",
    config=Config,
    check=check,
    collect=collect,
    describe=describe,
    collect_bound=collect_bound,
)
