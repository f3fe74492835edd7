"""The benchmark scripts still import (they run on demand, so nothing else would notice if they rot)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")))
def test_benchmark_script_imports(script: str) -> None:
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # top level only: each script runs under `if __name__ == "__main__"`
    assert callable(getattr(module, "main", None))


def test_audit_bench_images_are_never_built_in_the_future() -> None:
    """At 334 digests a repository the old dates wrapped into December 2026 and failed the bench policy's
    own created_not_in_future; a year of hourly builds stays in the past, newest last."""
    from datetime import UTC, datetime

    spec = importlib.util.spec_from_file_location("bench_audit_dates", BENCH / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    stamps = [module.created_at(i) for i in range(8760)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert datetime.fromisoformat(stamps[-1]) < datetime.now(UTC)
