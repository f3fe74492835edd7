"""Shared fixtures: real services started by the tests themselves, every time."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imgcheck.testing.engine_server import EngineHandle, ensure_engine
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, start_registry

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the fixture builder lives in ./fixtures


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Debian's docker-registry on a free loopback port with its own storage, for the whole session."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pusher(registry: RegistryServer) -> Pusher:
    return Pusher(registry.host)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Real files written by real tools (Trivy reports, SBOMs, Sigstore bundles): tests/data/corpus/INDEX.md."""
    return CORPUS


@pytest.fixture(scope="session")
def engine() -> Iterator[EngineHandle]:
    """One Docker engine for the session: the one DOCKER_HOST names if it answers, else our own dockerd."""
    handle = ensure_engine()
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = handle.docker_host
    try:
        yield handle
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        handle.stop()


@pytest.fixture(scope="session")
def docker_api(engine: EngineHandle) -> Iterator[Any]:
    """A low-level docker-py client on the session's engine (to look for leftovers)."""
    import docker

    api = docker.APIClient(base_url=engine.docker_host, version="auto", timeout=60)
    yield api
    api.close()


# --- skips are counted, and refused where every tool is installed ------------------------------------

PLATFORM_SKIP = "platform_skip"
"""Marker for the one kind of skip allowed: `@pytest.mark.platform_skip("why")` on a test that cannot run
on some platform; the summary lists each with its reason. Any other skip means a tool or file is missing."""


def _skips(config: pytest.Config) -> tuple[list[Any], list[Any]]:
    """The skipped tests' reports: (refused, allowed by the platform_skip marker)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    skipped = list(reporter.stats.get("skipped", [])) if reporter is not None else []
    allowed = [r for r in skipped if PLATFORM_SKIP in r.keywords]
    return [r for r in skipped if PLATFORM_SKIP not in r.keywords], allowed


def _skips_refused() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("IMGCHECK_NO_SKIPS"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{PLATFORM_SKIP}(reason): a skip allowed on some platform; CI lists it")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    refused, _ = _skips(session.config)
    if refused and _skips_refused() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    refused, allowed = _skips(config)
    terminalreporter.write_line(f"skipped: {len(refused) + len(allowed)} ({len(allowed)} allowed by platform_skip)")
    for report in allowed:
        terminalreporter.write_line(f"  platform skip: {report.nodeid}: {report.longrepr[2]}")
    if refused and _skips_refused():
        terminalreporter.write_line(
            f"FAILED: {len(refused)} test(s) skipped; every tool is installed by scripts/setup.sh, so none may skip",
            red=True,
        )
