"""One deadline for a whole run (`--timeout`): registry work, pulls, smoke runs, scans and rule checks.

A gate that an image can make hang is a gate someone will switch off, so every wait in a run is
bounded by what is left of this one clock, not by its own fresh timeout. Code that waits takes
`remaining()` (or `bound(own_timeout)`) for its socket, subprocess or container timeout, and calls
`check("pulling …")` before starting work; past the deadline that raises DeadlineExceeded, which
the pipeline reports as that rule's (or image's) `error`: exit 2, with the report still written.

Child processes (trivy, credential helpers): `run_process(deadline, argv, doing=..., timeout=own)`
runs one in its own process group and kills the whole group when its time is up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from imgcheck.errors import ImgcheckError

if TYPE_CHECKING:
    import subprocess


class DeadlineExceeded(ImgcheckError):
    """The run's `--timeout` passed before this work finished: could not verify (exit 2)."""


class Deadline:
    """A monotonic-clock deadline, `seconds` after it was started. Immutable; share it freely."""

    __slots__ = ("expires_at", "seconds")

    def __init__(self, seconds: float, *, started_at: float | None = None) -> None:
        self.seconds = seconds
        self.expires_at = (time.monotonic() if started_at is None else started_at) + seconds

    @classmethod
    def unlimited(cls) -> Deadline:
        """For callers outside a run (tests, library use): each step keeps its own timeout."""
        return cls(math.inf)

    def remaining(self) -> float:
        """Seconds left; 0.0 once it has passed (never negative: use it as a timeout as is)."""
        return max(0.0, self.expires_at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    def bound(self, timeout: float) -> float:
        """A step's own timeout, cut to what is left of the run."""
        return min(timeout, self.remaining())

    def cuts(self, timeout: float) -> bool:
        """Whether the run ends before a step given `timeout` now would (its timeout is the deadline's)."""
        return self.remaining() < timeout

    def message(self, doing: str) -> str:
        return f"deadline of {self.seconds:g} s reached while {doing}"

    def exceeded(self, doing: str) -> DeadlineExceeded:
        """The error to raise when the deadline stopped `doing` (e.g. `pulling app linux/amd64`)."""
        return DeadlineExceeded(self.message(doing), hint="raise --timeout, or find what is slow in the progress lines")

    def check(self, doing: str) -> None:
        """Raise DeadlineExceeded when the deadline has passed; call it before starting `doing`."""
        if self.expired():
            raise self.exceeded(doing)

    def __repr__(self) -> str:
        return f"Deadline({self.seconds:g} s, {self.remaining():.1f} s left)"


def run_process(
    deadline: Deadline, argv: Sequence[str], *, doing: str, timeout: float, input: bytes | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    """`subprocess.run(argv, capture_output=True)` within min(timeout, what is left of the run).

    The process gets its own session, so when time is up the whole group is SIGKILLed (a scanner's
    own children too) and reaped: nothing is left running. Past the run's deadline that raises
    DeadlineExceeded naming `doing`; past only its own `timeout`, subprocess.TimeoutExpired as usual.
    """
    import contextlib
    import os
    import signal
    import subprocess

    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **kwargs,
    ) as process:
        try:
            out, err = process.communicate(input, timeout=deadline.bound(timeout))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it ended between the timeout and the kill
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            if deadline.expired():
                raise deadline.exceeded(doing) from None
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
