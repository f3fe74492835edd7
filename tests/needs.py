"""What a test needs from the machine: a tool found as imgcheck finds it, or a clear failure.

`scripts/setup.sh` installs every tool the suite uses, so a missing one is a broken setup. Under CI
(`CI` set) it fails the test; elsewhere it skips with the install hint, and the session's summary (see
conftest.py) counts the skip: `.ci/run` and `make test` accept none.
"""

from __future__ import annotations

import os

import pytest

from imgcheck.tools import find_tool


def missing(message: str) -> None:
    """Fail under CI, skip elsewhere; either way the message says how to install what is missing."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, how: str) -> str:
    """The path of `name` on PATH or beside the interpreter (the venv's bin/), as the product looks."""
    path = find_tool(name)
    if path is None:
        missing(f"{name} is not installed ({how}; scripts/setup.sh does it)")
        raise AssertionError("unreachable")  # pytest.fail/skip raise
    return path
