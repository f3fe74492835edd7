"""The engine edge's pure parts: attach-stream framing, bounded capture, emulator discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgcheck.engine.client import Engine, registered_emulators, shown_host
from imgcheck.engine.output import HEAD_BYTES, TAIL_BYTES, FrameStripper, OutputCapture
from imgcheck.engine.pull import pull_by_digest
from imgcheck.engine.run import start_failure


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_frames_are_stripped_whatever_the_chunking() -> None:
    wire = frame(1, b"hello ") + frame(2, b"err\n") + frame(1, b"") + frame(1, b"world\n")
    for size in (1, 3, 7, 8, 9, len(wire)):
        stripper = FrameStripper()
        out = b"".join(p for i in range(0, len(wire), size) for p in stripper.feed(wire[i : i + size]))
        assert out == b"hello err\nworld\n", size


def test_capture_keeps_head_and_tail_only() -> None:
    capture = OutputCapture(head=10, tail=20)
    for i in range(10_000):
        capture.feed(f"line {i}\n".encode())
    assert capture.kept == 30
    assert capture.truncated
    text = capture.text()
    assert text.startswith("line 0\nlin")
    assert text.endswith("line 9999\n")
    assert f"{capture.total - 30} bytes of output not kept" in text


def test_capture_of_short_output_is_exact() -> None:
    capture = OutputCapture()
    capture.feed(b"smoke-app version 1.4.2\n")
    assert not capture.truncated
    assert capture.text() == "smoke-app version 1.4.2\n"


def test_capture_of_one_huge_chunk_is_bounded() -> None:
    capture = OutputCapture()
    capture.feed(b"x" * (HEAD_BYTES + 5 * TAIL_BYTES) + b"END")
    assert capture.kept == HEAD_BYTES + TAIL_BYTES
    assert capture.text().endswith("END")


def test_start_failure_keeps_runcs_reason() -> None:
    raw = (
        "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
        'process: exec: "--version": executable file not found in $PATH: unknown'
    )
    assert start_failure(raw) == 'exec: "--version": executable file not found in $PATH'


def test_emulators_need_enabled_fix_binary_handlers(tmp_path: Path) -> None:
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\n")
    (tmp_path / "qemu-arm").write_text("enabled\ninterpreter /usr/bin/qemu-arm\nflags: \n")
    (tmp_path / "qemu-riscv64").write_text("disabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: F\n")
    assert registered_emulators(tmp_path) == frozenset({"arm64"})


def test_engine_platform_matching() -> None:
    engine = Engine(
        client=None, host="unix:///x", os="linux", arch="amd64", version="20.10", emulated=frozenset({"arm64"})
    )
    assert engine.runs("linux/amd64") == (True, False)
    assert engine.runs("linux/arm64/v8") == (True, True)
    assert engine.runs("linux/s390x") == (False, True)
    assert engine.runs("windows/amd64") == (False, False)


def test_host_credentials_never_shown() -> None:
    assert shown_host("ssh://deploy:hunter2@build-host") == "ssh://build-host"
    assert shown_host("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"


def test_pull_by_tag_is_refused() -> None:
    engine = Engine(client=None, host="unix:///x", os="linux", arch="amd64", version="20.10")
    with pytest.raises(ValueError, match="by digest only"):
        pull_by_digest(engine, "127.0.0.1:5000/smoke/right:1.4.2", lambda _m: None)
