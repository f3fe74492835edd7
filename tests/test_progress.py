"""Progress on stderr while several images collect evidence at once: plain lines in a log, one line per
image on a terminal, nothing with --quiet; and `--jobs` refuses what it cannot mean."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import pytest
from rich.console import Console

from imgcheck.progress import StderrProgress

PULL_METER = "pulling producer linux/amd64 (sha256:594ac19eaa08): 1/4 layers, 4.2 MB of 21.1 MB"
PULLED = "producer linux/amd64 (sha256:594ac19eaa08): pulled in 1.4 s (32.0 MB uncompressed)"


def test_a_log_gets_each_image_steps_as_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    progress = StderrProgress(quiet=False, verbose=False, terminal=False)
    progress("producer: resolving registry.example/k2/producer:latest")  # the run's chatter: --verbose only
    producer = progress.for_image("producer")
    producer(PULL_METER)  # running byte counts: a terminal redraws them, a log would fill up
    producer(PULLED)
    progress.for_image("query-engine")("the same digest as producer, pulled once for both")
    progress.stop()
    assert capsys.readouterr().err.splitlines() == [
        f"imgcheck: {PULLED}",
        "imgcheck: query-engine: the same digest as producer, pulled once for both",
    ]


def test_verbose_prints_every_step_and_quiet_none(capsys: pytest.CaptureFixture[str]) -> None:
    for quiet, verbose in ((False, True), (True, False)):
        progress = StderrProgress(quiet=quiet, verbose=verbose, terminal=False)
        progress("producer: reading tags")
        progress.for_image("producer")(PULL_METER)
        progress.stop()
    assert capsys.readouterr().err.splitlines() == ["imgcheck: producer: reading tags", f"imgcheck: {PULL_METER}"]


def test_lines_from_many_threads_never_interleave(capsys: pytest.CaptureFixture[str]) -> None:
    progress = StderrProgress(quiet=False, verbose=True, terminal=False)

    def chatter(name: str) -> None:
        say = progress.for_image(name)
        for step in range(300):
            say(f"step {step} of a long message that takes a while to write out")

    threads = [threading.Thread(target=chatter, args=(f"image-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1200
    shape = re.compile(r"imgcheck: image-\d: step \d+ of a long message that takes a while to write out")
    assert all(shape.fullmatch(line) for line in lines)


def test_a_terminal_shows_one_line_per_image_under_the_spinner() -> None:
    progress = StderrProgress(quiet=False, verbose=False, terminal=True)
    try:
        progress("collecting evidence for 2 images, 2 at a time")
        producer, consumer = progress.for_image("producer"), progress.for_image("consumer")
        producer(PULL_METER)
        consumer("smoke consumer (linux/amd64): running locked down, timeout 30 s")
        producer(PULLED)  # replaces the producer's meter line: one line per image
        consumer("[bold]not markup[/bold]")
        console = Console(record=True, width=200, force_terminal=False)
        console.print(progress._render())
    finally:
        progress.stop()
    shown = [line.rstrip() for line in console.export_text().splitlines()]
    assert shown[0].endswith("imgcheck: collecting evidence for 2 images, 2 at a time")
    assert shown[1:] == [f"  {PULLED}", "  consumer: [bold]not markup[/bold]"]


@pytest.mark.parametrize(("command", "jobs"), [(["verify", "latest"], "0"), (["verify"], "-2"), (["audit"], "0")])
def test_jobs_below_one_is_a_one_line_usage_error(command: list[str], jobs: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *command, "--jobs", jobs],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"imgcheck: error: --jobs must be at least 1 (images collecting evidence at once), got {jobs}"
    ]
