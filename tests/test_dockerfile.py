"""imgcheck's own Dockerfile, built for real and then verified by imgcheck with its own policy.

No base image can be pulled here, so the test makes one: mmdebstrap builds Debian 12 (minbase +
python3 + python3-venv) from the mirror apt already uses, and the engine imports it. The engine
runs without a network bridge, so the build installs from a wheelhouse made on the host with pip
(the Dockerfile's documented offline mode). The image is pushed to the real registry and checked
with `policies/imgcheck-self.yaml`: size, labels, non-root, and a `--version` smoke run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from needs import require_tool

from imgcheck import __version__

pytestmark = [pytest.mark.slow, pytest.mark.engine]

ROOT = Path(__file__).resolve().parent.parent
SELF_POLICY = ROOT / "src" / "imgcheck" / "policies" / "imgcheck-self.yaml"
SUITE = "bookworm"
REVISION = "0123456789abcdef0123456789abcdef01234567"
GOOD_ARGS = {
    "VERSION": __version__,
    "REVISION": REVISION,
    "CREATED": "2026-11-24T00:00:00Z",
    "SOURCE": "https://github.com/example/imgcheck",
}


def debian_mirror(suite: str = SUITE, sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses for `suite` (deb822 `.sources` or one-line `.list` files)."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or not path.name.endswith((".list", ".sources")):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, flags=re.M))
                if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                    return fields["URIs"].split()[0]
        for line in text.splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                return parts[1]
    raise AssertionError(f"no apt source for Debian {suite} under {sources}: cannot build the test base image")


@pytest.fixture(scope="module")
def docker_client(engine: Any) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=engine.docker_host, version="auto", timeout=600)
    yield client
    client.close()


@pytest.fixture(scope="module")
def base_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian 12 minbase with python3 and venv, made by mmdebstrap and imported into the engine."""
    mmdebstrap = require_tool("mmdebstrap", "apt-get install mmdebstrap")
    tar = tmp_path_factory.mktemp("base") / "base.tar"
    command = [
        mmdebstrap,
        "--variant=minbase",
        "--include=python3,python3-venv",
        "--mode=root",
        "--quiet",
        SUITE,
        str(tar),
        debian_mirror(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    tag = "imgcheck-test-base:bookworm"
    docker_client.api.import_image(src=str(tar), repository="imgcheck-test-base", tag="bookworm")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context: what .dockerignore lets through, plus a wheelhouse for the offline build."""
    ctx = tmp_path_factory.mktemp("context")
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, ctx / name)
    shutil.copytree(
        ROOT / "src", ctx / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache")
    )
    wheelhouse = ctx / "wheelhouse"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--wheel-dir",
        str(wheelhouse),
        str(ROOT),
        "setuptools",
        "wheel",
    ]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for own in wheelhouse.glob("imgcheck-*.whl"):
        own.unlink()  # the Dockerfile must build imgcheck's wheel itself
    return ctx


def build(docker_client: Any, context: Path, base: str, tag: str, args: dict[str, str]) -> Any:
    buildargs = {"BASE": base, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/src/wheelhouse", **args}
    try:
        image, _logs = docker_client.images.build(
            path=str(context), tag=tag, buildargs=buildargs, network_mode="none", rm=True, forcerm=True
        )
    except Exception as err:  # docker.errors.BuildError carries the log
        log = "".join(str(chunk.get("stream", chunk)) for chunk in getattr(err, "build_log", []))
        raise AssertionError(f"docker build failed: {err}\n{log[-4000:]}") from None
    return image


@pytest.fixture(scope="module")
def pushed(docker_client: Any, base_image: str, context: Path, registry: Any) -> Iterator[dict[str, str]]:
    """The image built with real metadata and without it, pushed to the real registry."""
    refs = {}
    for name, args in (("good", GOOD_ARGS), ("unlabelled", {"VERSION": __version__})):
        repository = f"{registry.host}/imgcheck/{name}"
        image = build(docker_client, context, base_image, f"{repository}:{__version__}", args)
        for line in docker_client.images.push(repository, tag=__version__, stream=True, decode=True):
            assert "error" not in line, line
        refs[name] = f"{repository}:{__version__}"
        refs[f"{name}-id"] = image.id
    yield refs
    for name in ("good", "unlabelled"):
        docker_client.images.remove(refs[name], force=True)


def run_imgcheck(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_own_image_passes_its_own_policy(pushed: dict[str, str]) -> None:
    result = run_imgcheck("verify", pushed["good"], "--policy", str(SELF_POLICY), "--format", "json")
    doc = json.loads(result.stdout or "{}")
    assert result.returncode == 0, result.stderr + json.dumps(doc, indent=1)[:4000]
    (image,) = doc["images"]
    verdicts = {(c["rule"], c["verdict"]) for c in image["checks"]}
    assert {rule for rule, _ in verdicts} == {"size", "labels", "config", "smoke"}
    assert {verdict for _, verdict in verdicts} == {"pass"}


def test_own_policy_fails_an_image_built_without_metadata(pushed: dict[str, str]) -> None:
    result = run_imgcheck("verify", pushed["unlabelled"], "--policy", str(SELF_POLICY), "--format", "json")
    assert result.returncode == 1, result.stderr
    checks = json.loads(result.stdout)["images"][0]["checks"]
    labels = [c for c in checks if c["rule"] == "labels"]
    assert labels and labels[0]["verdict"] == "fail"
    assert "org.opencontainers.image.revision" in labels[0]["message"]


def test_image_is_small_non_root_and_has_no_build_tools(docker_client: Any, pushed: dict[str, str]) -> None:
    image = docker_client.images.get(pushed["good"])
    config = image.attrs["Config"]
    assert config["Entrypoint"] == ["imgcheck"]
    assert config["User"] and config["User"].split(":")[0] not in ("", "0", "root")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == REVISION

    version = docker_client.containers.run(image.id, ["--version"], remove=True, network_mode="none")
    assert version.decode().strip() == f"imgcheck {__version__}"

    probe = (
        "id -u; for tool in gcc cc c++ make; do command -v $tool; done; "
        "for left in /src /tmp/dist /opt/imgcheck/bin/pip; do test -e $left && echo $left; done; true"
    )
    out = docker_client.containers.run(
        image.id, ["-c", probe], entrypoint="/bin/sh", remove=True, network_mode="none"
    ).decode()
    uid, *leftovers = out.split()
    assert uid != "0" and leftovers == []
