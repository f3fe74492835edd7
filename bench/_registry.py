"""What the benchmarks read off the local registry and the timed processes: requests it answered (its
JSON log) and CPU seconds (the registry's from /proc, the timed commands' from getrusage). On 2 shared
cores the server's work per request is part of every client's wall time, so both are reported."""

from __future__ import annotations

import json
import os
import resource
from collections import Counter
from pathlib import Path

from imgcheck.testing.registry_server import RegistryServer


def requests_served(registry: RegistryServer) -> Counter[str]:
    """Requests by `METHOD status` from the registry's JSON log (it logs after each response)."""
    counts: Counter[str] = Counter()
    for line in registry.log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "http.request.method" in entry and "http.response.status" in entry:
            counts[f"{entry['http.request.method']} {entry['http.response.status']}"] += 1
    return counts


def registry_cpu(registry: RegistryServer) -> float | None:
    """The registry process's user + system CPU seconds so far (Linux /proc), None where unavailable."""
    if registry.process is None:
        return None
    try:
        fields = Path(f"/proc/{registry.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds used by this script's finished child processes (the timed commands)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
