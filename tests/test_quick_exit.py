"""`quick_exit` ends a finished command without the interpreter's teardown, and only when that loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys

BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
"""Output buffered as in a console script's run (this sandbox sets PYTHONUNBUFFERED): the flush is real."""

SCRIPT = """\
import sys, threading, atexit
from imgcheck.cli import quick_exit
mode = sys.argv[1]
if mode == "atexit":
    atexit.register(lambda: print("ATEXIT RAN"))
if mode == "thread":
    release = threading.Event()
    threading.Thread(target=release.wait).start()
    threading.Timer(0.2, release.set).start()
sys.stdout.write("x" * 200_000)  # more than any pipe buffer: quick_exit must flush it
sys.stderr.write("to stderr")
quick_exit(int(sys.argv[2]))
print("RETURNED")
"""


def run(mode: str, code: int = 3) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=BUFFERED,
    )


def test_exits_at_once_with_the_code_and_all_output() -> None:
    done = run("plain")
    assert done.returncode == 3
    assert done.stdout == "x" * 200_000  # flushed, and nothing after quick_exit ran
    assert done.stderr == "to stderr"


def test_exit_code_zero() -> None:
    assert run("plain", 0).returncode == 0


def test_returns_when_an_atexit_callback_is_registered() -> None:
    done = run("atexit")
    assert done.stdout.endswith("RETURNED\nATEXIT RAN\n")
    assert done.returncode == 0


def test_returns_while_another_non_daemon_thread_runs() -> None:
    done = run("thread")
    assert done.stdout.endswith("RETURNED\n")
    assert done.returncode == 0


def test_a_message_code_is_left_to_python() -> None:
    code = "from imgcheck.cli import quick_exit\nquick_exit('a message')\nprint('RETURNED')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout == "RETURNED\n"


def test_closed_stdout_falls_back_to_pythons_exit() -> None:
    # the reader is gone when the (still buffered) output is flushed: Python's own exit reports it, not hidden
    code = (
        "import sys\nfrom imgcheck.cli import quick_exit\n"
        "sys.stdout.write('y' * 4000)\nquick_exit(0)\nsys.stderr.write('RETURNED')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=BUFFERED
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert "RETURNED" in err
