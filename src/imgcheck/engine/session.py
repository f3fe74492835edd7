"""Smoke one image: for each platform, pull by digest, measure, run locked down, clean up.

The result is plain evidence (what ran, how it ended, sizes); judging it is the smoke check's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from imgcheck.deadline import Deadline
from imgcheck.engine.client import QEMU_NAMES, Engine, connect
from imgcheck.engine.pull import PulledImage, SharedPulls
from imgcheck.engine.run import RunResult, RunSpec, run_locked_down
from imgcheck.errors import EngineError
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.record import record


@record
class PlatformRun:
    """One platform of the image: run, skipped (with the reason), or an engine error."""

    platform: str
    manifest_digest: str
    reference: str
    """What the engine pulled: `host/repo@<platform manifest digest>`."""
    result: RunResult | None = None
    skipped: str | None = None
    error: str | None = None
    uncompressed_size: int | None = None
    """The engine's size after the pull (what `docker images` shows)."""
    emulated: bool = False


@record
class SmokeEvidence:
    """What the engine saw for one image (stored in `facts.extras["smoke"]`)."""

    runs: tuple[PlatformRun, ...] = ()
    skipped: str | None = None
    """Why nothing ran at all (e.g. --no-smoke)."""
    engine: str | None = None
    """`linux/amd64, Docker 20.10.24 at unix:///…` for the report's details."""

    @property
    def uncompressed_sizes(self) -> Mapping[str, int]:
        """platform -> bytes, for the size rule's `max_uncompressed`."""
        return {r.platform: r.uncompressed_size for r in self.runs if r.uncompressed_size is not None}


def smoke_image(
    facts: ImageFacts,
    spec: RunSpec | None,
    *,
    keep_images: bool = False,
    only_platform: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    pulls: SharedPulls | None = None,
    deadline: Deadline | None = None,
) -> SmokeEvidence:
    """Pull each runnable platform by digest, measure it, run `spec` (None: measure only), clean up.

    `pulls` shares pulls with the run's other images (default: this image's own, removed after use).
    Raises EngineError when no engine answers; a failure on one platform is recorded for it alone.
    Raises DeadlineExceeded when the run's deadline stops a pull or a run (the container and the
    image it pulled are removed first).
    """
    deadline = deadline or Deadline.unlimited()
    deadline.check(f"waiting to pull {facts.name}")
    engine = connect()
    pulls = pulls or SharedPulls({}, keep=keep_images, progress=progress)
    try:
        runs = tuple(
            _one_platform(engine, facts, p, spec, pulls, progress, deadline)
            for p in facts.platforms
            if only_platform is None or p.platform == only_platform
        )
    finally:
        engine.close()
    return SmokeEvidence(runs=runs, engine=f"{engine.platform}, Docker {engine.version} at {engine.host}")


def _one_platform(
    engine: Engine,
    facts: ImageFacts,
    platform: PlatformFacts,
    spec: RunSpec | None,
    pulls: SharedPulls,
    progress: Callable[[str], None],
    deadline: Deadline,
) -> PlatformRun:
    reference = f"{facts.registry}/{facts.repository}@{platform.manifest_digest}"
    base = PlatformRun(platform.platform, platform.manifest_digest, reference)
    runnable, emulated = engine.runs(platform.platform)
    if not runnable:
        return replace(base, skipped=_why_not_runnable(engine, platform.platform))
    try:
        label = f"{facts.name} {platform.platform} ({platform.manifest_digest[:19]})"
        pulled = pulls.acquire(engine, reference, progress, label, deadline)
    except EngineError as exc:
        return replace(base, error=str(exc), emulated=emulated)
    try:
        result = _run(engine, pulled, spec, progress, facts.name, platform.platform, deadline)
    except EngineError as exc:
        return replace(base, error=str(exc), uncompressed_size=pulled.size, emulated=emulated)
    finally:
        pulls.release(engine, pulled, progress)
    return replace(base, result=result, uncompressed_size=pulled.size, emulated=emulated)


def _run(
    engine: Engine,
    pulled: PulledImage,
    spec: RunSpec | None,
    progress: Callable[[str], None],
    name: str,
    platform: str,
    deadline: Deadline,
) -> RunResult | None:
    if spec is None:
        return None
    doing = f"running {name} ({platform})"
    deadline.check(f"waiting to run {name} ({platform})")
    cut = deadline.cuts(spec.timeout)  # the run's end comes first: a timeout then is the run's, not the image's
    bounded = replace(spec, timeout=deadline.bound(spec.timeout)) if cut else spec
    progress(f"smoke {name} ({platform}): running locked down, timeout {bounded.timeout:g} s")
    result = run_locked_down(engine, pulled.reference, bounded)
    if cut and result.timed_out:
        raise deadline.exceeded(doing)
    ended = "timed out" if result.timed_out else f"exited {result.exit_code}"
    progress(f"smoke {name} ({platform}): {ended} after {result.seconds:.1f} s")
    return result


def _why_not_runnable(engine: Engine, platform: str) -> str:
    arch = platform.split("/")[1] if "/" in platform else platform
    emulator = QEMU_NAMES.get(arch)
    how = f"register {emulator} with binfmt_misc (qemu-user-static)" if emulator else "use an engine of that platform"
    return f"{platform} cannot run on this {engine.platform} engine and no emulator is registered for it: {how}"
