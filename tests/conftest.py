"""Shared fixtures: real services started by the tests themselves, every time."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
        pytest.skip("../shared/corpus is not present beside the checkout")
    return CORPUS
