"""Progress on stderr while images are verified at once: one line per image on a terminal, plain lines in logs.

On a terminal (neither --quiet nor --verbose) a rich Live board redraws a spinner with the run's latest
step and, under it, one line per image with that image's latest step (its pull, its run). Anywhere else
(a pipe, a CI log) each image's steps are plain lines as they happen, except the pull meter's transient
byte counts; --verbose prints every message; --quiet prints nothing. Several images report from
several threads: every write happens under one lock, so lines never interleave.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

REFRESH_PER_SECOND = 8
TRANSIENT_PREFIX = "pulling "
"""The pull meter's running byte counts: redrawn on a terminal, left out of a log (the pull's end is kept)."""


class StderrProgress:
    """The `progress` callable of a command; `for_image(label)` gives one image its own line."""

    def __init__(self, quiet: bool, verbose: bool, *, terminal: bool | None = None) -> None:
        self.quiet, self.verbose = quiet, verbose
        self._lock = threading.Lock()
        self._status = "imgcheck: starting"
        self._lines: dict[str, str] = {}
        self._live: Any = None
        self._spinner: Any = None
        on_terminal = sys.stderr.isatty() if terminal is None else terminal
        self._plain = not quiet and not verbose and not on_terminal
        if not quiet and not verbose and on_terminal:
            self._start_live()

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner

        self._spinner = Spinner("dots", self._status)
        self._live = Live(
            get_renderable=self._render,
            console=Console(stderr=True),
            refresh_per_second=REFRESH_PER_SECOND,
            transient=True,
        )
        self._live.start()

    def __call__(self, message: str) -> None:
        """A step of the run as a whole (resolving, reading tags): the spinner's text, or a --verbose line."""
        if self.verbose:
            self._echo(message)
        elif self._live is not None:
            with self._lock:
                self._status = f"imgcheck: {message}"

    def for_image(self, label: str) -> Callable[[str], None]:
        """The progress of one image: its own line on a terminal, plain lines in a log."""

        def say(message: str) -> None:
            named = message.startswith(label) or label in message.replace(":", " ").split()
            shown = message if named else f"{label}: {message}"
            if self.verbose:
                self._echo(shown)
            elif self._live is not None:
                with self._lock:
                    self._lines[label] = shown
            elif self._plain and not message.startswith(TRANSIENT_PREFIX):
                self._echo(shown)

        return say

    def _echo(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(f"imgcheck: {message}\n")
            sys.stderr.flush()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            status, lines = self._status, list(self._lines.values())
        self._spinner.update(text=Text(status, no_wrap=True, overflow="ellipsis"))
        return Group(self._spinner, *(Text(f"  {line}", no_wrap=True, overflow="ellipsis") for line in lines))

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
