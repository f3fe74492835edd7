"""Find the engine the user means (DOCKER_HOST, else the default socket) and what it can run."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgcheck.errors import EngineError
from imgcheck.record import record

DEFAULT_HOST = "unix:///var/run/docker.sock"
API_TIMEOUT = 120
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_NAMES = {
    "amd64": "qemu-x86_64",
    "386": "qemu-i386",
    "arm64": "qemu-aarch64",
    "arm": "qemu-arm",
    "ppc64le": "qemu-ppc64le",
    "s390x": "qemu-s390x",
    "riscv64": "qemu-riscv64",
    "mips64le": "qemu-mips64el",
}
START_HINT = (
    "start one (`sudo dockerd` or `sudo systemctl start docker`) or point DOCKER_HOST at one, "
    "or skip container runs (verify --no-smoke; audit --smoke none)"
)


@dataclass
class Engine:
    """A connected docker-py client and the platform its containers run on."""

    client: Any
    """docker.DockerClient (typed Any: docker-py ships no type hints)."""
    host: str
    """DOCKER_HOST as shown to users: credentials removed."""
    os: str
    arch: str
    version: str
    emulated: frozenset[str] = field(default_factory=frozenset)
    """Architectures the kernel runs through a registered binfmt_misc emulator (qemu-user-static)."""
    ncpu: int = 0
    """CPUs the engine's containers may use (`docker info`'s NCPU; 0: unknown). The engine refuses
    a CPU limit above it, so a policy's `cpus` is capped to it."""

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.arch}"

    def runs(self, platform: str) -> tuple[bool, bool]:
        """(can run, through an emulator) for an `os/arch[/variant]` image platform."""
        parts = platform.split("/")
        if len(parts) < 2 or parts[0] != self.os:
            return False, False
        if parts[1] == self.arch:
            return True, False
        return (parts[1] in self.emulated), True

    def close(self) -> None:
        self.client.close()


def shown_host(host: str) -> str:
    """A DOCKER_HOST fit for messages: `ssh://user:pw@host` loses its user info."""
    return re.sub(r"//[^/@]*@", "//", host)


def connect(timeout: int = API_TIMEOUT) -> Engine:
    """Connect as the docker CLI would (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).

    What the engine said about itself is kept for the process: the images of a run connect once each,
    at once, and only the first asks (three round trips, ~20 ms here); the others reuse its answers."""
    import docker
    from docker.errors import DockerException

    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    known = _KNOWN.get(host)
    try:
        if known is not None:
            client = docker.from_env(version=known.api_version, timeout=timeout)
            return dataclasses.replace(known.engine, client=client)
        client = docker.from_env(version="auto", timeout=timeout)
        version = client.version()
    except (DockerException, OSError) as exc:
        raise EngineError(f"no Docker engine answers at {shown_host(host)} ({_reason(exc)})", hint=START_HINT) from None
    local = host.startswith("unix://")
    engine = Engine(
        client=client,
        host=shown_host(host),
        os=str(version.get("Os", "linux")),
        arch=str(version.get("Arch", "")),
        version=str(version.get("Version", "?")),
        emulated=registered_emulators() if local else frozenset(),
        ncpu=_ncpu(client),
    )
    _KNOWN[host] = _Known(engine, str(client.api.api_version))
    return engine


@record
class _Known:
    """What one engine said once: reused by every image of the run."""

    engine: Engine
    api_version: str


_KNOWN: dict[str, _Known] = {}
"""DOCKER_HOST -> what its engine said (dict writes are atomic: two first connects just both ask)."""


def _ncpu(client: Any) -> int:
    """The engine's CPU count; 0 when `docker info` fails (the engine then judges the limit itself)."""
    from docker.errors import DockerException

    try:
        count = client.info().get("NCPU")
    except (DockerException, OSError):
        return 0
    return count if isinstance(count, int) and count > 0 else 0


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (
        ("No such file or directory", "no socket there"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied: add yourself to the docker group or use sudo"),
        ("timed out", "timed out"),
    ):
        if needle in text:
            return reason
    return text.splitlines()[0][:160] if text else type(exc).__name__


def registered_emulators(binfmt_dir: Path = BINFMT_DIR) -> frozenset[str]:
    """Architectures with an enabled qemu binfmt_misc handler that has the F (fix binary) flag,
    which is what lets it run inside a container's own root filesystem."""
    found = set()
    for arch, name in QEMU_NAMES.items():
        try:
            text = (binfmt_dir / name).read_text()
        except OSError:
            continue
        lines = text.splitlines()
        flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags:")), "")
        if lines and lines[0].strip() == "enabled" and "F" in flags:
            found.add(arch)
    return frozenset(found)


def engine_cpus() -> int | None:
    """The engine's CPU count (what `connect` keeps for the process: asked once per DOCKER_HOST); None
    when no engine answers or it does not say (each image's own collect then reports the engine's absence)."""
    try:
        engine = connect()
    except EngineError:
        return None
    engine.close()
    return engine.ncpu or None


MIN_ENGINE_JOBS = 4
"""Images that use the engine at once by default, however few CPUs it has: a pull mostly waits (on the
network, on disk) and each run is held to its own CPU quota, so overlapping more images than CPUs costs
nothing but shortens the waits (bench/RESULTS.md: 3 images on a 2-CPU engine, 3 at once beat 2 at once
at 30 and 150 MB layers)."""


def engine_jobs() -> int | None:
    """How many images may pull and run at once by default: the engine's CPUs, at least MIN_ENGINE_JOBS;
    None when no engine answers (each image then reports the engine's absence itself)."""
    cpus = engine_cpus()
    return None if cpus is None else max(cpus, MIN_ENGINE_JOBS)
