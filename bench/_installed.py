"""How the benchmarks start imgcheck: as an installed copy runs, so the timings are a user's timings."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def imgcheck_base() -> list[str]:
    """The `imgcheck` installed beside this Python (the venv's), not whatever PATH finds first: a pyenv
    shim is a shell script that starts another interpreter (~50 ms more per run)."""
    exe = Path(sys.executable).with_name("imgcheck")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "imgcheck"]


def run_env() -> dict[str, str]:
    """The environment every timed command runs in: Python may keep its bytecode cache, as pip writes it at
    install time. This sandbox sets PYTHONDONTWRITEBYTECODE, which would make every run recompile
    imgcheck's ~60 modules (25-45 ms) -- a cost no installed copy pays."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
