"""A Docker engine for tests, the demo and benchmarks: the one that answers, else Debian's dockerd.

Started as root with everything of its own (data root, exec root, pidfile, socket) under one
temporary folder, no bridge and no iptables changes, so it leaves the machine as it found it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imgcheck.tools import find_tool

DEFAULT_HOST = "unix:///var/run/docker.sock"
START_TIMEOUT = 60.0


@dataclass
class EngineHandle:
    """An engine that answers at `docker_host`; `stop()` ends it only if this process started it."""

    docker_host: str
    process: subprocess.Popen[bytes] | None = None
    root: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @property
    def log_path(self) -> Path | None:
        return self.root / "dockerd.log" if self.root else None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.root is not None and not _has_mounts_under(self.root):
            shutil.rmtree(self.root, ignore_errors=True)


def engine_answers(docker_host: str, timeout: int = 3) -> bool:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.DockerClient(base_url=docker_host, version="auto", timeout=timeout)
    except (DockerException, OSError):
        return False
    try:
        return bool(client.ping())
    except (DockerException, OSError):
        return False
    finally:
        client.close()


def ensure_engine() -> EngineHandle:
    """The engine DOCKER_HOST (or the default socket) names if it answers; else start our own."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if engine_answers(host):
        return EngineHandle(docker_host=host)
    return start_dockerd()


def start_dockerd(root: Path | None = None) -> EngineHandle:
    """Start Debian's dockerd on a private socket and wait until it answers."""
    binary = find_tool("dockerd")
    if binary is None:
        raise RuntimeError("dockerd is not installed: run scripts/setup.sh (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise RuntimeError("starting dockerd needs root: run as root, or start docker and set DOCKER_HOST")
    base = root or Path(tempfile.mkdtemp(prefix="imgcheck-dockerd-"))
    socket_path = base / "docker.sock"
    command = [
        binary,
        f"--data-root={base / 'data'}",
        f"--exec-root={base / 'exec'}",
        f"--pidfile={base / 'dockerd.pid'}",
        f"--host=unix://{socket_path}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--log-level=warn",
    ]
    log = (base / "dockerd.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    handle = EngineHandle(docker_host=f"unix://{socket_path}", process=process, root=base)
    atexit.register(handle.stop)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            handle.stop()
            raise RuntimeError(f"dockerd exited early with {process.returncode}; see {base / 'dockerd.log'}")
        if socket_path.exists() and engine_answers(handle.docker_host):
            return handle
        time.sleep(0.1)
    handle.stop()
    raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT:.0f} s; see {base / 'dockerd.log'}")


def _has_mounts_under(root: Path) -> bool:
    """Never rmtree through a mount dockerd left behind (it could reach into image layers)."""
    prefix = str(root.resolve())
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return True
    return any(len(parts) > 1 and parts[1].startswith(prefix) for parts in (m.split() for m in mounts))
