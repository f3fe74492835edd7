"""No engine: a smoke rule is an error with one line on how to get one; --no-smoke never touches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from imgcheck.checks import smoke
from imgcheck.checks.interface import CollectContext, VerifyOptions
from imgcheck.errors import EngineError
from imgcheck.facts import ImageFacts

DIGEST = "sha256:" + "cd" * 32


def some_facts() -> ImageFacts:
    return ImageFacts("producer", "127.0.0.1:9", "k2/producer", "127.0.0.1:9/k2/producer:1", "1", DIGEST, "x", ())


def context(**options: Any) -> CollectContext:
    return CollectContext(registry=cast(Any, None), options=VerifyOptions(**options))


def test_dead_engine_is_one_line_saying_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(EngineError) as caught:
        smoke.collect(context(), some_facts(), smoke.Config())
    text = str(caught.value)
    assert "\n" not in text
    assert f"no Docker engine answers at unix://{tmp_path}/no-engine.sock" in text
    assert "dockerd" in text and "DOCKER_HOST" in text and "--no-smoke" in text


def test_refused_tcp_engine_is_the_same_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(EngineError, match=r"no Docker engine answers at tcp://127\.0\.0\.1:9"):
        smoke.measure_uncompressed(context(), some_facts())


def test_no_smoke_does_not_touch_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    evidence = smoke.collect(context(no_smoke=True), some_facts(), smoke.Config())
    assert evidence.skipped == "--no-smoke given"
    assert evidence.runs == ()
