"""A developer's first run, through the real `imgcheck` process: which policy ran, `--registry` with a
scheme, `policy validate` reading every file a policy names, hints in the command's own syntax, and
`--help` describing every argument."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.images import ImageConfig, busybox_base_layer, push_image
from imgcheck.cli_common import parse_registry_option
from imgcheck.errors import UsageError
from imgcheck.registry.transport import Transport
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, free_port

KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "keys"
BUNDLED_NOTE = "imgcheck: policy: bundled k2.yaml (no --policy and no ./imgcheck.yaml)"


def imgcheck(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("IMGCHECK_POLICY", None)
    return subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def one_image_policy(path: Path, rules: str = "  config: {non_root: true}\n") -> Path:
    path.write_text(f"version: 1\nimages: [{{name: app, repository: first-run/app}}]\nrules:\n{rules}")
    return path


@pytest.fixture(scope="module")
def app(pusher: Pusher) -> str:
    return push_image(pusher, "first-run/app", [busybox_base_layer()], ImageConfig(user="1000"), ("latest",)).digest


# --- which policy ran -------------------------------------------------------------------------------------------


def test_stderr_says_the_bundled_policy_ran_when_none_was_given(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    done = imgcheck("verify", "--registry", dead, "--no-smoke", "--timeout", "5", cwd=tmp_path)
    assert done.returncode == 2  # nothing answers; what matters is the first line
    assert done.stderr.splitlines()[0] == BUNDLED_NOTE
    quiet = imgcheck("verify", "--registry", dead, "--no-smoke", "--timeout", "5", "--quiet", cwd=tmp_path)
    assert "policy:" not in quiet.stderr


def test_stderr_names_the_local_policy_and_nothing_when_one_is_given(
    registry: RegistryServer, app: str, tmp_path: Path
) -> None:
    one_image_policy(tmp_path / "imgcheck.yaml")
    local = imgcheck("verify", "--registry", registry.host, "--no-smoke", cwd=tmp_path)
    assert local.returncode == 0, local.stdout + local.stderr
    assert local.stderr.splitlines()[0] == "imgcheck: policy: ./imgcheck.yaml (no --policy given)"
    given = imgcheck("verify", "--registry", registry.host, "--policy", "imgcheck.yaml", "--no-smoke", cwd=tmp_path)
    assert given.returncode == 0 and "policy:" not in given.stderr


# --- --registry with a scheme ------------------------------------------------------------------------------------


def test_registry_with_a_scheme_is_honoured(registry: RegistryServer, app: str, tmp_path: Path) -> None:
    policy = str(one_image_policy(tmp_path / "p.yaml"))
    plain = imgcheck("verify", "--registry", f"http://{registry.host}", "--policy", policy, "--format", "json")
    assert plain.returncode == 0, plain.stderr
    [image] = json.loads(plain.stdout)["images"]
    assert image["digest"] == app and image["reference"] == f"{registry.host}/first-run/app:latest"
    # https is TLS even to a loopback registry (imgcheck's default there is plain HTTP): this one has none
    tls = imgcheck("verify", "--registry", f"https://{registry.host}/", "--policy", policy, "--timeout", "10")
    assert tls.returncode == 2
    assert "cannot resolve host" not in tls.stderr and "http" not in tls.stderr.split(registry.host)[0].lower()
    assert re.search(r"TLS|SSL|certificate|handshake", tls.stdout + tls.stderr, re.I), tls.stdout + tls.stderr


@pytest.mark.parametrize("bad", ["ftp://ghcr.io", "ghcr.io/org", "http://", "http://host:port", "user@host:5000"])
def test_registry_that_is_not_host_port_says_what_to_give(bad: str, tmp_path: Path) -> None:
    done = imgcheck("verify", "--registry", bad, "--policy", str(one_image_policy(tmp_path / "p.yaml")))
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line == (
        f"imgcheck: error: --registry {bad!r}: give HOST[:PORT] (e.g. ghcr.io, 127.0.0.1:5000), "
        "or http://HOST[:PORT] for plain HTTP, https://HOST[:PORT] for TLS"
    )


def test_registry_option_parsing_and_the_transport_it_configures() -> None:
    assert parse_registry_option("ghcr.io") == ("ghcr.io", None)
    assert parse_registry_option("HTTP://mirror.example:5000/") == ("mirror.example:5000", "http")
    assert parse_registry_option("https://127.0.0.1:5000") == ("127.0.0.1:5000", "https")
    with pytest.raises(UsageError):
        parse_registry_option("ghcr.io:99999")
    transport = Transport(schemes={"mirror.example:5000": "http", "127.0.0.1:5000": "https"})
    assert transport.base_url("mirror.example:5000") == "http://mirror.example:5000"
    assert transport.base_url("127.0.0.1:5000") == "https://127.0.0.1:5000"
    assert transport.base_url("ghcr.io") == "https://ghcr.io"  # a host not named keeps the default
    assert transport.allows_plain_http("http://mirror.example:5000/v2/")
    assert not transport.allows_plain_http("http://elsewhere.example/v2/")


# --- policy validate reads every file the policy names ------------------------------------------------------------

OPENVEX = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://example.com/vex/1",
    "author": "security@acme.example",
    "timestamp": "2026-05-01T00:00:00Z",
    "version": 1,
    "statements": [{"vulnerability": {"name": "CVE-2024-1"}, "products": [{"@id": "pkg:oci/app"}], "status": "fixed"}],
}
FILES_POLICY = """\
  signature: {keys: [keys/cosign.pub], trusted_root: trust/trusted_root.json}
  provenance: {keys: [keys/cosign.pub], require_signed: true}
  vulnerabilities:
    vex: [vex/app.openvex.json]
    ignore_files: [.trivyignore, .trivyignore.yaml]
"""


def files_policy(folder: Path) -> Path:
    """A policy naming a key (twice), a trusted root, a VEX document and two ignore files, all real and valid."""
    from imgcheck.supplychain.bundles import embedded_public_root

    for sub in ("keys", "trust", "vex"):
        (folder / sub).mkdir()
    shutil.copy(KEYS / "demo-cosign.pub", folder / "keys" / "cosign.pub")
    (folder / "trust" / "trusted_root.json").write_bytes(embedded_public_root())
    (folder / "vex" / "app.openvex.json").write_text(json.dumps(OPENVEX))
    (folder / ".trivyignore").write_text("# accepted until the base image moves\nCVE-2023-45853 exp:2027-01-31\n")
    (folder / ".trivyignore.yaml").write_text("vulnerabilities:\n  - id: CVE-2024-1\n    statement: not used\n")
    return one_image_policy(folder / "imgcheck.yaml", FILES_POLICY)


def test_policy_validate_reads_every_named_file(tmp_path: Path) -> None:
    done = imgcheck("policy", "validate", str(files_policy(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith("imgcheck.yaml: valid (5 files it names read)")


@pytest.mark.parametrize(
    ("file", "key", "content"),
    [
        ("keys/cosign.pub", "signature.keys", None),
        ("keys/cosign.pub", "signature.keys", "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"),
        ("trust/trusted_root.json", "signature.trusted_root", None),
        ("trust/trusted_root.json", "signature.trusted_root", '{"mediaType": "not a trusted root"}'),
        ("vex/app.openvex.json", "vulnerabilities.vex", None),
        ("vex/app.openvex.json", "vulnerabilities.vex", "{not json"),
        (".trivyignore.yaml", "vulnerabilities.ignore_files", None),
        (".trivyignore.yaml", "vulnerabilities.ignore_files", "vulnerabilities: [{id: CVE-1, expired_at: someday}]"),
    ],
)
def test_policy_validate_names_a_missing_or_unparsable_file(
    tmp_path: Path, file: str, key: str, content: str | None
) -> None:
    policy = files_policy(tmp_path)
    target = tmp_path / file
    if content is None:
        target.unlink()
    else:
        target.write_text(content)
    done = imgcheck("policy", "validate", str(policy))
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith(f"imgcheck: error: {policy}: {key}: ") and str(target) in line
    assert ("does not exist" if content is None else "does not load") in line
    assert "Traceback" not in done.stderr


def test_policy_validate_hint_uses_its_own_syntax(tmp_path: Path) -> None:
    done = imgcheck("policy", "validate", "nofile.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "imgcheck: error: nofile.yaml: no such policy file (usage: imgcheck policy validate FILE)\n"
    folder = imgcheck("policy", "validate", str(tmp_path))
    assert folder.returncode == 2
    assert folder.stderr.endswith(": a folder, not a policy file (usage: imgcheck policy validate FILE)\n")
    assert "--policy" not in done.stderr + folder.stderr  # verify's syntax, not this command's


# --- --help describes every argument ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        (("verify",), {"targets": "Default: latest."}),
        (("diff",), {"old": "The old release", "new": "The new release"}),
        (("audit", "merge"), {"paths": "Shard reports"}),
        (("policy", "validate"), {"file": "The policy YAML file"}),
    ],
)
def test_help_describes_every_argument(command: tuple[str, ...], arguments: dict[str, str]) -> None:
    done = imgcheck(*command, "--help")
    assert done.returncode == 0, done.stderr
    panel = done.stdout.split("Arguments")[1].split("Options")[0]
    names = [m.group(1) for line in panel.splitlines() if (m := re.match(r"│ {1,5}(?:\* {1,5})?([a-z]+) ", line))]
    assert names == list(arguments)  # every argument is listed (continuation lines are not rows)
    for name, text in arguments.items():
        assert text in " ".join(panel.split()), (name, panel)


def test_policy_validate_shows_each_rules_hint() -> None:
    import imgcheck as package

    done = imgcheck("policy", "validate", str(Path(package.__file__).parent / "policies" / "k2.yaml"))
    assert done.returncode == 0, done.stderr
    sbom = next(line for line in done.stdout.splitlines() if line.startswith("  sbom:"))
    assert sbom.endswith(
        "[warn only] (to pass: in post-merge.yml, set `sbom: true` on docker/build-push-action "
        "(buildx attaches an SPDX SBOM to each image))"
    )
