"""`size.max_uncompressed` without a smoke rule: the size rule pulls by digest to measure (real engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.images import ImageConfig, busybox_base_layer, data_layer, push_image, script_layer
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

POLICY = """\
version: 1
images:
  - name: big
    repository: sizes/big
rules:
  size:
    max_uncompressed: {budget}
"""


def verify(registry: RegistryServer, tmp_path: Path, budget: str, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(budget=budget))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgcheck",
            "verify",
            f"{registry.host}/sizes/big:latest",
            "--policy",
            str(policy),
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=180,
    )
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module")
def big_image(pusher: Pusher) -> str:
    layers = [busybox_base_layer(), script_layer("app", "#!/bin/sh\necho big\n"), data_layer("blob.bin", 4_000_000)]
    return push_image(pusher, "sizes/big", layers, ImageConfig(entrypoint=["/app"]), tags=("latest",)).digest


@pytest.mark.engine
def test_uncompressed_budget_is_measured_by_a_pull(
    engine: EngineHandle, registry: RegistryServer, big_image: str, tmp_path: Path
) -> None:
    code, report = verify(registry, tmp_path, "5MB")
    check = report["images"][0]["checks"][0]
    assert (code, check["verdict"]) == (1, "fail"), check
    assert "uncompressed" in check["message"]
    code, report = verify(registry, tmp_path, "50MB")
    assert code == 0, report


@pytest.mark.engine
def test_no_smoke_skips_the_uncompressed_budget_never_passes(
    engine: EngineHandle, registry: RegistryServer, big_image: str, tmp_path: Path
) -> None:
    code, report = verify(registry, tmp_path, "5MB", "--no-smoke")
    check = report["images"][0]["checks"][0]
    assert check["verdict"] == "skip" and code == 0
