"""Pull by digest (never by tag), with progress, and give back only what imgcheck itself pulled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from imgcheck.deadline import Deadline
from imgcheck.engine.client import Engine
from imgcheck.errors import EngineError, ImgcheckError
from imgcheck.policy.types import format_bytes
from imgcheck.record import record

PROGRESS_INTERVAL = 0.5


@record
class PulledImage:
    """An image present in the engine under `reference` (`host/repo@sha256:…`)."""

    reference: str
    image_id: str
    size: int
    """What `docker images` shows: the engine's uncompressed size."""
    was_present: bool
    """Present before imgcheck ran: then imgcheck never removes it."""
    seconds: float = 0.0


def pull_by_digest(
    engine: Engine,
    reference: str,
    progress: Callable[[str], None],
    label: str | None = None,
    *,
    deadline: Deadline | None = None,
) -> PulledImage:
    """Make `reference` present; a digest reference only, so the engine checks the bytes it gets.
    `label` names the image in progress lines (default: the reference). Past `deadline` the pull is
    abandoned (the engine cancels it when the stream closes) with DeadlineExceeded."""
    if "@sha256:" not in reference:
        raise ValueError(f"refusing to pull {reference!r}: imgcheck pulls by digest only")
    label = label or reference
    started = time.monotonic()
    existing = inspect_image(engine, reference)
    if existing is not None:
        progress(f"{label}: already present in the engine, not pulled")
        return PulledImage(reference, str(existing["Id"]), int(existing["Size"]), True)
    _stream_pull(engine, reference, progress, label, deadline or Deadline.unlimited())
    pulled = inspect_image(engine, reference)
    if pulled is None:
        raise EngineError(f"the engine reported pulling {reference} but does not have it afterwards")
    seconds = time.monotonic() - started
    size = int(pulled["Size"])
    progress(f"{label}: pulled in {seconds:.1f} s ({format_bytes(size)} uncompressed)")
    return PulledImage(reference, str(pulled["Id"]), size, False, seconds)


def inspect_image(engine: Engine, reference: str) -> Mapping[str, Any] | None:
    from docker.errors import APIError, NotFound

    try:
        result: Mapping[str, Any] = engine.client.api.inspect_image(reference)
    except NotFound:
        return None
    except (APIError, OSError) as exc:
        raise EngineError(
            f"the engine could not inspect {reference}: {getattr(exc, 'explanation', None) or exc}"
        ) from None
    return result


def release(engine: Engine, image: PulledImage, *, keep: bool, progress: Callable[[str], None]) -> None:
    """Remove an image imgcheck pulled (by its reference, so other names of it survive)."""
    if keep or image.was_present:
        return
    from docker.errors import APIError, NotFound

    try:
        engine.client.api.remove_image(image.reference, force=False, noprune=False)
    except NotFound:
        return
    except (APIError, OSError) as exc:
        reason = getattr(exc, "explanation", None) or exc
        progress(f"warning: could not remove {image.reference} from the engine: {reason}")


def _stream_pull(
    engine: Engine, reference: str, progress: Callable[[str], None], label: str, deadline: Deadline
) -> None:
    from docker.errors import APIError
    from urllib3.exceptions import HTTPError

    meter = _PullMeter(label, progress)
    doing = f"pulling {label}"
    deadline.check(f"waiting to pull {label}")
    response = None
    try:
        response = _open_pull(engine.client.api, reference, deadline)
        for event in engine.client.api._stream_helper(response, decode=True):
            if deadline.expired():
                raise deadline.exceeded(doing)
            if "error" in event:
                raise EngineError(
                    f"the engine could not pull {reference}: {str(event['error'])[:300]}",
                    hint="check that the engine can reach the registry; a private one needs `docker login`",
                )
            meter.update(event)
    except (APIError, OSError, HTTPError) as exc:
        if deadline.expired():
            raise deadline.exceeded(doing) from None
        raise EngineError(
            f"the engine could not pull {reference}: {getattr(exc, 'explanation', None) or exc}",
            hint="check that the engine can reach the registry; a private one needs `docker login`",
        ) from None
    finally:
        if response is not None:
            response.close()  # early (deadline, error): the engine cancels a pull whose client went away
    meter.report(force=True)


def _open_pull(api: Any, reference: str, deadline: Deadline) -> Any:
    """docker-py's `pull(stream=True)`, but with a read timeout: its own waits forever on a pull that
    stalls (timeout=None), so a hung registry behind the engine would outlive any deadline."""
    from docker import auth, utils

    repository, tag = utils.parse_repository_tag(reference)
    registry, _name = auth.resolve_repository_name(repository)
    headers = {}
    header = auth.get_config_header(api, registry)
    if header:
        headers["X-Registry-Auth"] = header
    read_timeout = min(float(api.timeout), deadline.remaining()) if deadline.remaining() > 0 else 0.001
    response = api._post(
        api._url("/images/create"),
        params={"fromImage": repository, "tag": tag},
        headers=headers,
        stream=True,
        timeout=read_timeout,
    )
    api._raise_for_status(response)
    return response


class _PullMeter:
    """Folds the engine's per-layer pull events into one throttled progress line."""

    def __init__(self, label: str, progress: Callable[[str], None]) -> None:
        self.label = label
        self.progress = progress
        self.totals: dict[str, int] = {}
        self.current: dict[str, int] = {}
        self.done: set[str] = set()
        self.layers: set[str] = set()
        self.last = 0.0

    def update(self, event: Mapping[str, Any]) -> None:
        layer = event.get("id")
        status = str(event.get("status", ""))
        if not isinstance(layer, str) or layer.startswith("sha256:") or "@" in layer:
            return
        self.layers.add(layer)
        detail = event.get("progressDetail") or {}
        if status == "Downloading" and isinstance(detail, dict):
            self.totals[layer] = int(detail.get("total") or 0)
            self.current[layer] = int(detail.get("current") or 0)
        elif status in ("Pull complete", "Already exists"):
            self.done.add(layer)
        self.report()

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        got = sum(self.current.values())
        total = sum(self.totals.values())
        size = f", {format_bytes(got)} of {format_bytes(total)}" if total else ""
        self.progress(f"pulling {self.label}: {len(self.done)}/{len(self.layers)} layers{size}")


class SharedPulls:
    """One pull per digest for a whole run, on any number of threads.

    Images of a run can share a platform manifest digest (two policy images of one build, one image
    under two tags): the first asks the engine, the others wait for that pull and run the same image.
    Each user releases what it acquired; the image is removed once every expected user has (a digest
    nobody else expects: at once), and `close()` removes what is left when the run's collection ends.
    A failed pull is shared only with users of the same reference (another repository may still serve it).
    """

    def __init__(self, expected: Mapping[str, int], *, keep: bool, progress: Callable[[str], None]) -> None:
        self._expected = dict(expected)
        self._keep = keep
        self._progress = progress
        self._lock = threading.Lock()
        self._entries: dict[str, _SharedPull] = {}
        self._closed = False

    def acquire(
        self,
        engine: Engine,
        reference: str,
        progress: Callable[[str], None],
        label: str,
        deadline: Deadline | None = None,
    ) -> PulledImage:
        """The image present in the engine (pulled by this call or by another user of its digest)."""
        digest = reference.rsplit("@", 1)[-1]
        while True:
            with self._lock:
                entry = self._entries.get(digest)
                owner = entry is None
                if entry is None:
                    entry = self._entries[digest] = _SharedPull(reference, label)
                entry.users += 1
            if owner:
                return self._pull(entry, engine, progress, deadline)
            progress(f"{label}: the same digest as {entry.label}, pulled once for both")
            entry.done.wait()
            if entry.image is not None:
                return entry.image
            if entry.reference == reference:
                raise entry.failure or EngineError(f"the engine could not pull {reference}")
            # that pull was from another repository: this reference gets its own attempt

    def _pull(
        self, entry: _SharedPull, engine: Engine, progress: Callable[[str], None], deadline: Deadline | None
    ) -> PulledImage:
        try:
            entry.image = pull_by_digest(engine, entry.reference, progress, entry.label, deadline=deadline)
            if self._closed:  # the run ended (Ctrl-C) while this pull went on: run nothing, leave nothing
                release(engine, entry.image, keep=self._keep, progress=progress)
                raise EngineError("the run was interrupted")
        except ImgcheckError as exc:  # the engine's refusal, or the run's deadline: its waiters get it too
            entry.failure = exc
            with self._lock:
                if self._entries.get(entry.digest) is entry:
                    del self._entries[entry.digest]
            raise
        finally:
            entry.done.set()
        return entry.image

    def release(self, engine: Engine, image: PulledImage, progress: Callable[[str], None]) -> None:
        """One user is done with `image`; the last expected one removes it (unless kept or present before)."""
        digest = image.reference.rsplit("@", 1)[-1]
        with self._lock:
            entry = self._entries.get(digest)
            if self._closed or entry is None or entry.image is not image:
                return  # closed: `close()` removes it, once its container is surely gone
            entry.released += 1
            if entry.released < max(entry.users, self._expected.get(digest, 1)):
                return
            del self._entries[digest]
        release(engine, image, keep=self._keep, progress=progress)

    def close(self) -> None:
        """Remove what some expected user never released (its collect ended before the pull), and any
        container still running (the run's end came early: Ctrl-C), so that its image can go too."""
        from imgcheck.engine.run import remove_running

        with self._lock:
            self._closed = True
        if remove_running():
            self._progress("removed the smoke containers still running")
        with self._lock:
            left, self._entries = [e.image for e in self._entries.values() if e.image is not None], {}
        if not left or self._keep:
            return
        from imgcheck.engine.client import connect

        try:
            engine = connect()
        except EngineError as exc:
            self._progress(f"warning: could not remove {len(left)} pulled image(s) from the engine: {exc}")
            return
        try:
            for image in left:
                release(engine, image, keep=False, progress=self._progress)
        finally:
            engine.close()


class _SharedPull:
    """A digest's one pull: who started it, and how it ended (once `done` is set)."""

    def __init__(self, reference: str, label: str) -> None:
        self.reference = reference
        self.digest = reference.rsplit("@", 1)[-1]
        self.label = label
        self.done = threading.Event()
        self.users = 0
        self.released = 0
        self.image: PulledImage | None = None
        self.failure: ImgcheckError | None = None
