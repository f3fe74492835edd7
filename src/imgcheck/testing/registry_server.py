"""Start Debian's `docker-registry` (the real CNCF distribution server) on a free loopback port.

Used by the test suite, the demo and the benchmarks. Nothing is mocked: this is the same server
many private registries run.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from imgcheck.tools import find_tool

REGISTRY_BINARY_CANDIDATES = ("docker-registry", "registry")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_registry_binary() -> str:
    for name in REGISTRY_BINARY_CANDIDATES:
        path = find_tool(name)
        if path:
            return path
    raise RuntimeError("docker-registry is not installed: run scripts/setup.sh (apt-get install docker-registry)")


@dataclass
class RegistryServer:
    """A running registry; `host` is `127.0.0.1:PORT` (loopback, so imgcheck speaks plain HTTP)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    owns_root: bool = False
    """Remove `root` on stop (when start_registry made it)."""
    extra_config: str = ""
    """YAML appended to the server's config.yml (e.g. an `auth:` section for auth tests)."""
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def start(self) -> RegistryServer:
        self.storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  formatter: json\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            "  cache:\n    blobdescriptor: inmemory\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: imgcheck-test-only\n" + self.extra_config
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [find_registry_binary(), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited early; see {self.log_path}")
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.host} within 20 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def blob_path(self, digest: str) -> Path:
        """Where the registry stores a blob's bytes (tests overwrite it to simulate tampering)."""
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def bytes_served(self) -> int:
        """Total response bytes the registry wrote, from its JSON request log (`http.response.written`)."""
        total = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            written = entry.get("http.response.written")
            if isinstance(written, int):
                total += written
        return total

    def __enter__(self) -> RegistryServer:
        """Start unless already running: `with start_registry() as r:` must not start a second server on
        the same port (the first one then outlived the block, one leaked process per test run)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_registry(root: Path | None = None) -> RegistryServer:
    """A registry with its own temporary storage on a free port, started and answering."""
    if root is not None:
        return RegistryServer(root=root, port=free_port()).start()
    base = Path(tempfile.mkdtemp(prefix="imgcheck-registry-"))
    return RegistryServer(root=base, port=free_port(), owns_root=True).start()
