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
CORPUS = ROOT.parent / "shared" / "corpus"
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
    """The real files in ../shared/corpus (Trivy reports, SBOMs, Sigstore bundles)."""
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail("../shared/corpus must be beside the checkout in CI")
        pytest.skip("../shared/corpus is not present beside the checkout")
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
