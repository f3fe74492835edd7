"""The audit history in SQLite: runs, tag -> digest observations, per-rule verdicts, and the
content-addressed cache of manifests and configs.

Why SQLite: one file a nightly job can keep as a CI cache, transactions so a crash mid-run loses no
earlier history (WAL journal; a run's results are written in one transaction at its end), and
`PRAGMA user_version` for versioned migrations. A locked or corrupt file is one clear error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import field
from itertools import chain
from pathlib import Path
from typing import Any

from imgcheck.audit.model import AuditReport, Night
from imgcheck.audit.schema import (
    DEDUPED_VERSION,
    LAST_CHECKS,
    LAST_TAGS,
    LAST_VERDICTS,
    MIGRATIONS,
    REUSED_RELEASES,
    SCHEMA_VERSION,
)
from imgcheck.errors import InputError
from imgcheck.record import record

BUSY_TIMEOUT = 10.0
BLOBS_PER_QUERY = 500
"""Below SQLite's oldest bound-parameter limit (999)."""


def default_history_path(env: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/imgcheck/history.sqlite`, else `~/.local/state/imgcheck/history.sqlite`."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "imgcheck" / "history.sqlite"


@record
class PreviousRun:
    """What drift compares with: the last complete run's tag map and verdicts."""

    run_id: int
    started_at: str
    tags: Mapping[str, Mapping[str, str]]
    """image -> tag -> digest."""
    verdicts: Mapping[tuple[str, str], Mapping[str, list[tuple[str, str, Mapping[str, Any]]]]] = field(
        default_factory=dict
    )
    """(image, digest) -> rule -> [(verdict, message, details)]."""


class StoredDetails(Mapping[str, Any]):
    """A verdict's stored `details`, parsed on first use: drift reads the details of few rules (new CVEs),
    and parsing every previous verdict's JSON up front was half the time of reading the previous run."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._parsed: dict[str, Any] | None = None

    def _doc(self) -> dict[str, Any]:
        if self._parsed is None:
            parsed = json.loads(self._text)
            self._parsed = parsed if isinstance(parsed, dict) else {}
        return self._parsed

    def __getitem__(self, key: str) -> Any:
        return self._doc()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._doc())

    def __len__(self) -> int:
        return len(self._doc())


def _history_error(path: Path, err: sqlite3.Error) -> InputError:
    text = str(err)
    if "locked" in text or "busy" in text:
        return InputError(
            f"history database {path} is locked by another process",
            hint="another imgcheck audit is running on it; wait for it or pass another --history file",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return InputError(
            f"history database {path} is corrupt ({text})",
            hint="restore it from a backup or move it away to start a new history",
        )
    return InputError(f"history database {path}: {text}", hint="check the path and its permissions")


class HistoryStore:
    """One open history file. Use `HistoryStore.open(path)`; every failure is an InputError."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        """One statement or transaction at a time: the gatherer's worker threads read and write the
        content cache while the run's thread records verdicts (a transaction is never split)."""

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = BUSY_TIMEOUT) -> HistoryStore:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create the folder of history database {path}: {err.strerror or err}") from None
        try:
            conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise _history_error(path, err) from None
        store = cls(path, conn)
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            store._migrate()
        except sqlite3.Error as err:
            conn.close()
            raise _history_error(path, err) from None
        except InputError:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Apply the migrations this file has not seen, each in its own transaction with its version."""
        current = self.version
        if current > SCHEMA_VERSION:
            raise InputError(
                f"history database {self.path} has schema version {current}; this imgcheck knows up to"
                f" {SCHEMA_VERSION}",
                hint="upgrade imgcheck, or pass another --history file",
            )
        for number in range(current + 1, SCHEMA_VERSION + 1):
            with self._transaction() as conn:
                for statement in MIGRATIONS[number - 1]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        if 0 < current < DEDUPED_VERSION <= SCHEMA_VERSION:
            self._compact()

    def _compact(self) -> None:
        """Give back the pages of the dropped `verdicts` table (2/3 of a year-old file) at once, so the file a
        CI cache keeps shrinks now rather than only refilling its free pages night by night. Best effort:
        the migration is committed, and a VACUUM that cannot run (disk full, another reader) loses nothing."""
        try:
            self._conn.execute("VACUUM")
        except sqlite3.Error:
            return

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """The store's lock, and sqlite3 errors as one-line InputErrors that name the file."""
        with self._lock, _Guard(self.path):
            yield

    # --- runs ----------------------------------------------------------------------------------------

    def begin_run(self, started_at: str, policy: str, version: str) -> int:
        """Record that a run started (committed at once: a crash leaves it `running`, never `complete`)."""
        with self._guard(), self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (started_at, policy, imgcheck_version, status) VALUES (?, ?, ?, 'running')",
                (started_at, policy, version),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, report: AuditReport, finished_at: str) -> None:
        """Everything the run observed, in one transaction: all of it or (after a crash) none of it.
        A few statements per table (a warm run writes thousands of rows; per-release statements cost more).
        Each check's outcome and each release's check list is looked up among those of its digest's last
        releases (an unchanged digest finds all of them there) and only what is new is inserted."""
        observations = [
            (run_id, image.image, image.repository, tag, digest)
            for image in report.images
            if image.error is None  # not listed tonight: drift keeps comparing with the last night that listed it
            for tag, digest in sorted(image.tags.items())
        ]
        checks = [
            [(c.rule, c.platform, c.verdict.value, c.message, _details_json(c.details)) for c in r.checks]
            for r in report.releases
        ]
        with self._guard(), self._transaction() as conn:
            known_outcomes, known_lists = _last_checks(conn, [(r.image, r.digest) for r in report.releases if r.checks])
            outcome_ids = _add_rows(
                conn,
                "outcomes",
                "rule, platform, verdict, message, details",
                known_outcomes,
                chain.from_iterable(checks),
            )
            lists = [(_id_list(outcome_ids[outcome] for outcome in found),) if found else None for found in checks]
            list_ids = _add_rows(conn, "check_lists", "outcomes", known_lists, filter(None, lists))
            releases = [
                (
                    run_id,
                    r.image,
                    r.digest,
                    json.dumps(list(r.tags)),
                    r.created,
                    r.compressed_size,
                    r.verdict.value,
                    r.error,
                    None if text is None else list_ids[text],  # None: no checks (the digest could not be verified)
                    _scan_db(r.checks),
                )
                for r, text in zip(report.releases, lists, strict=True)
            ]
            conn.executemany(
                "INSERT INTO observations (run_id, image, repository, tag, digest) VALUES (?, ?, ?, ?, ?)", observations
            )
            conn.executemany(
                "INSERT INTO releases (run_id, image, digest, tags, created, compressed_size, verdict, error,"
                " check_list, scan_db) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                releases,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO verified_digests (image, digest) VALUES (?, ?)", [r[1:3] for r in releases]
            )
            conn.execute(
                "UPDATE runs SET status = 'complete', finished_at = ?, verdict = ? WHERE id = ?",
                (finished_at, report.verdict.value, run_id),
            )

    def previous_run(self, before: int | None = None) -> PreviousRun | None:
        """What the last complete run(s) before run `before` saw: per image, the tags of the last run that
        listed it; per digest, the verdicts of the last run that verified it (so --tags, --since and an
        image that could not be listed last night compare with the right night). Crashed runs never count."""
        limit = before if before is not None else 1 << 62
        with self._guard():
            row = self._conn.execute(
                "SELECT id, started_at FROM runs WHERE status = 'complete' AND id < ? ORDER BY id DESC LIMIT 1",
                (limit,),
            ).fetchone()
            if row is None:
                return None
            tags = self._last_tags(limit)
            verdicts: dict[tuple[str, str], dict[str, list[tuple[str, str, Mapping[str, Any]]]]] = {}
            for image, digest, rule, verdict, message, details in self._conn.execute(LAST_VERDICTS, (limit,)):
                rules = verdicts.setdefault((image, digest), {})
                rules.setdefault(rule, []).append((verdict, message, StoredDetails(details)))
        return PreviousRun(int(row[0]), str(row[1]), tags, verdicts)

    def last_tags(self, before: int | None = None) -> dict[str, dict[str, str]]:
        """image -> tag -> digest as the last complete run that listed each image saw them (before run
        `before`): what tonight's tag reads revalidate instead of reading again."""
        with self._guard():
            return self._last_tags(before if before is not None else 1 << 62)

    def _last_tags(self, limit: int) -> dict[str, dict[str, str]]:
        tags: dict[str, dict[str, str]] = {}
        for image, tag, digest in self._conn.execute(LAST_TAGS, (limit,)):
            tags.setdefault(image, {})[tag] = digest
        return tags

    def nights(self, limit: int = 60) -> list[Night]:
        """Releases per verdict for the last `limit` complete runs, oldest first (the trend chart)."""
        with self._guard():
            runs = self._conn.execute(
                "SELECT id, started_at FROM runs WHERE status = 'complete' ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
            nights = []
            for run_id, started_at in reversed(runs):
                counts = {"pass": 0, "fail": 0, "error": 0}
                for verdict, number in self._conn.execute(
                    "SELECT verdict, COUNT(*) FROM releases WHERE run_id = ? GROUP BY verdict", (run_id,)
                ):
                    counts[str(verdict)] = int(number)
                nights.append(Night(str(started_at), counts))
        return nights

    def runs(self) -> list[tuple[int, str, str, str | None]]:
        """(id, started_at, status, verdict) of every run, oldest first."""
        with self._guard():
            rows = self._conn.execute("SELECT id, started_at, status, verdict FROM runs ORDER BY id").fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    # --- content-addressed cache ---------------------------------------------------------------------

    def get_blob(self, digest: str) -> tuple[str, bytes] | None:
        with self._guard():
            row = self._conn.execute("SELECT media_type, body FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return (str(row[0]), bytes(row[1])) if row else None

    def get_blobs(self, digests: Iterable[str]) -> dict[str, tuple[str, bytes]]:
        """`get_blob` for many digests in a few statements: a warm run reads hundreds of cached
        manifests and configs, and one query per digest (each taking the lock) costs more than the rows."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, tuple[str, bytes]] = {}
        with self._guard():
            for start in range(0, len(wanted), BLOBS_PER_QUERY):
                chunk = wanted[start : start + BLOBS_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                for digest, media_type, body in self._conn.execute(
                    f"SELECT digest, media_type, body FROM blobs WHERE digest IN ({marks})", chunk
                ):
                    found[str(digest)] = (str(media_type), bytes(body))
        return found

    def put_blob(self, digest: str, media_type: str, body: bytes) -> None:
        """Immutable content under its own digest (the caller verified it): written once, never updated."""
        with self._guard():
            self._conn.execute(
                "INSERT OR IGNORE INTO blobs (digest, media_type, body) VALUES (?, ?, ?)", (digest, media_type, body)
            )


Outcome = tuple[str, str | None, str, str, str]
"""One check's stored outcome: rule, platform, verdict, message and details (JSON text)."""


def _id_list(ids: Iterable[int]) -> str:
    """A check list as `check_lists.outcomes` holds it: the text migration 4's `json_group_array` writes."""
    return "[" + ",".join(map(str, ids)) + "]"


def _last_checks(
    conn: sqlite3.Connection, digests: list[tuple[str, str]]
) -> tuple[dict[Outcome, int], dict[tuple[str], int]]:
    """The outcomes and check lists (`(text,)`), with their ids, of the digests' last releases with checks."""
    outcomes: dict[Outcome, int] = {}
    lists: dict[tuple[str], int] = {}
    for list_id, text, outcome_id, rule, platform, verdict, message, details in conn.execute(
        LAST_CHECKS, (json.dumps(digests), REUSED_RELEASES)
    ):
        lists[(str(text),)] = int(list_id)
        outcomes[(rule, platform, verdict, message, details)] = int(outcome_id)
    return outcomes, lists


def _add_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: str,
    known: Mapping[tuple[Any, ...], int],
    wanted: Iterable[tuple[Any, ...]],
) -> dict[tuple[Any, ...], int]:
    """The id of each wanted row: the known one, else a new row's, numbered after the table's last id (the
    caller's transaction holds the write lock, so no other writer takes them)."""
    ids = dict(known)
    missing = [row for row in dict.fromkeys(wanted) if row not in ids]
    if missing:
        (last,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        ids.update((row, int(last) + n) for n, row in enumerate(missing, start=1))
        marks = ", ".join("?" * (len(missing[0]) + 1))
        conn.executemany(f"INSERT INTO {table} (id, {columns}) VALUES ({marks})", [(ids[row], *row) for row in missing])
    return ids


def _scan_db(checks: Iterable[Any]) -> str | None:
    """The newest Trivy DB (UpdatedAt) the release's vulnerability scans used, if it was scanned."""
    found = [
        str(scan.get("db_updated_at"))
        for check in checks
        if check.rule == "vulnerabilities"
        for scan in check.details.get("scans") or ()
        if isinstance(scan, Mapping) and scan.get("db_updated_at")
    ]
    return max(found) if found else None


def _details_json(details: Mapping[str, Any]) -> str:
    """`json.dumps(dict(details), default=str)`, the same text, without building an encoder per call
    unless a value needs `str` (the plain call reuses the standard library's shared encoder)."""
    try:
        return json.dumps(dict(details))
    except TypeError:
        return json.dumps(dict(details), default=str)


class _Guard:
    """Turns sqlite3 errors into one-line InputErrors that name the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise _history_error(self.path, exc) from None
