"""The test registry helper itself: a server it starts is the server it stops."""

from __future__ import annotations

import socket
import subprocess

from imgcheck.testing.registry_server import start_registry


def servers_for(config: str) -> list[str]:
    """PIDs of docker-registry processes serving this config file."""
    done = subprocess.run(["pgrep", "-f", f"docker-registry serve {config}"], capture_output=True, text=True)
    return done.stdout.split()


def test_a_registry_used_as_a_context_manager_is_stopped_on_exit() -> None:
    """`with start_registry() as r:` used to start a second server on the same port: the first one,
    which answered every request, outlived the block (one leaked process per test run)."""
    with start_registry() as server:
        config = str(server.root / "config.yml")
        assert len(servers_for(config)) == 1
        port = server.port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert servers_for(config) == []
    refused = False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        refused = True
    assert refused
