"""Schema 4 of the audit history: a check outcome is stored once, not once a night. A file written by an
imgcheck of schema 1, 2 or 3 (their statements, their rows) migrates in one transaction and answers exactly
as it did; identical outcomes across nights are one row, distinct ones are all kept; a migration that fails
or is killed half-way leaves the file at its version."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_history_migration import (
    D1,
    D2,
    D3,
    D4,
    answers,
    checks,
    legacy_file,
    night,
    nights,
    record,
    reference,
    release,
    schema,
)

from imgcheck.audit.model import AuditReport
from imgcheck.audit.store import SCHEMA_VERSION, HistoryStore
from imgcheck.errors import InputError
from imgcheck.report.model import CheckResult
from imgcheck.verdict import Verdict

Row = tuple[Any, ...]
"""A verdicts row: run_id, image, digest, rule, platform, verdict, message, details."""
COLUMNS = "run_id, image, digest, rule, platform, verdict, message, details"
OLD_RELEASE_COLUMNS = "run_id, image, digest, tags, created, compressed_size, verdict, error"


@contextmanager
def opened(db: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, committed and closed at the end."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def history() -> list[AuditReport | None]:
    """The five nights of test_history_migration (two crashed) and a sixth: night 4 again, plus a digest
    that could not be verified (a release without checks)."""
    again = nights()[3]
    assert again is not None
    broken = replace(release("producer", D3, ("v0.9.0",), ()), error="manifest unknown")
    return [*nights(), replace(again, started_at="2026-11-25T23:00:00Z", releases=(*again.releases, broken))]


def extra_rows(db: Path) -> None:
    """What a file may hold besides what finish_run wrote: rows under crashed run 3 (a writer that died
    mid-way in schema 2), and a verdict no release row holds (no imgcheck wrote one; kept all the same)."""
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO releases VALUES (3, 'producer', ?, '[]', NULL, NULL, 'fail', NULL)", (D2,))
    conn.execute("INSERT INTO verdicts VALUES (3, 'producer', ?, 'size', NULL, 'fail', 'crashed', '{}')", (D2,))
    conn.execute("INSERT INTO verdicts VALUES (2, 'consumer', ?, 'labels', NULL, 'warn', 'stray', '{}')", (D4,))
    conn.execute("INSERT INTO blobs VALUES ('sha256:' || hex(randomblob(32)), 'blob', x'00')")
    conn.commit()
    conn.close()


def per_release(rows: list[Row]) -> dict[tuple[Any, ...], list[Row]]:
    grouped: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        grouped.setdefault(row[:3], []).append(row)
    return grouped


def legacy_verdicts(db: Path) -> dict[tuple[Any, ...], list[Row]]:
    """The verdicts table of a file before schema 4, per release in the order it was written."""
    with opened(db) as conn:
        return per_release(conn.execute(f"SELECT {COLUMNS} FROM verdicts ORDER BY rowid").fetchall())


def stored_verdicts(db: Path) -> dict[tuple[Any, ...], list[Row]]:
    """The same rows from schema 4: each release's check list in its order, and the rows kept aside."""
    with opened(db) as conn:
        listed = conn.execute(
            "SELECT r.run_id, r.image, r.digest, o.rule, o.platform, o.verdict, o.message, o.details"
            " FROM releases r JOIN check_lists l ON l.id = r.check_list JOIN json_each(l.outcomes) e"
            " JOIN outcomes o ON o.id = e.value ORDER BY r.run_id, r.image, r.digest, e.key"
        ).fetchall()
        aside = conn.execute(f"SELECT {COLUMNS} FROM verdicts_without_release ORDER BY rowid").fetchall()
    return per_release(listed + aside)


def view_rows(db: Path) -> list[Row]:
    with opened(db) as conn:
        return sorted(conn.execute(f"SELECT {COLUMNS} FROM verdicts").fetchall(), key=repr)


def table_rows(db: Path, sql: str) -> list[Row]:
    with opened(db) as conn:
        return conn.execute(sql).fetchall()


def row_counts(db: Path) -> dict[str, int]:
    tables = ("outcomes", "check_lists", "releases", "verdicts")
    with opened(db) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


def distinct_lists(grouped: dict[tuple[Any, ...], list[Row]]) -> set[tuple[Row, ...]]:
    return {tuple(row[3:] for row in rows) for rows in grouped.values()}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_history_migrates_to_4_in_one_go_and_answers_as_before(tmp_path: Path, version: int) -> None:
    db = tmp_path / "h.sqlite"
    runs = legacy_file(db, version, history())
    extra_rows(db)
    befores = [None, *runs, runs[-1] + 1]
    expected = {before: reference(db, before) for before in befores}
    written = legacy_verdicts(db)
    releases = table_rows(db, f"SELECT {OLD_RELEASE_COLUMNS} FROM releases ORDER BY rowid")
    other = [table_rows(db, f"SELECT * FROM {t} ORDER BY rowid") for t in ("runs", "observations", "blobs")]
    old_view = sorted((row for rows in written.values() for row in rows), key=repr)

    with HistoryStore.open(db) as store:
        assert store.version == SCHEMA_VERSION == 5
        assert {before: answers(store, before) for before in befores} == expected
        assert [r[2] for r in store.runs()] == ["complete", "complete", "running", "complete", "running", "complete"]

    version_now, names = schema(db)
    assert version_now == 5 and {"outcomes", "check_lists", "verdicts_without_release"} <= names
    assert not {"outcomes_by_content", "check_lists_by_outcomes", "verdicts_by_run", "release_outcomes"} & names
    assert stored_verdicts(db) == written  # every row, each release's in its order
    assert view_rows(db) == old_view  # and the old table's rows through the view of that name
    assert table_rows(db, f"SELECT {OLD_RELEASE_COLUMNS} FROM releases ORDER BY rowid") == releases
    assert [table_rows(db, f"SELECT * FROM {t} ORDER BY rowid") for t in ("runs", "observations", "blobs")] == other
    with_release = {key: rows for key, rows in written.items() if key != (2, "consumer", D4)}
    outcomes = {row[3:] for rows in with_release.values() for row in rows}
    assert row_counts(db)["outcomes"] == len(outcomes) < sum(map(len, with_release.values()))
    assert row_counts(db)["check_lists"] == len(distinct_lists(with_release)) < len(with_release)
    assert table_rows(db, "SELECT * FROM verdicts_without_release") == [
        (2, "consumer", D4, "labels", None, "warn", "stray", "{}")
    ]
    assert table_rows(db, "PRAGMA freelist_count") == [(0,)]  # the dropped table's pages given back

    before = row_counts(db)
    repeat = history()[-1]
    assert repeat is not None
    with HistoryStore.open(db) as store:  # a night like the last: its outcomes and lists are the migrated rows
        run = record(store, [replace(repeat, started_at="2026-11-26T23:00:00Z")])[0]
        previous = store.previous_run()
    assert previous is not None and previous.run_id == run
    assert row_counts(db) == {**before, "releases": before["releases"] + 4, "verdicts": before["verdicts"] + 5}


def same_night(started: str, *releases: Any) -> AuditReport:
    return night(started, {"producer": {"v1": D1, "v2": D2}}, *releases)


def test_identical_outcomes_across_nights_are_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    platforms = checks(
        ("size", Verdict.PASS, None), ("smoke", Verdict.PASS, "linux/amd64"), ("smoke", Verdict.FAIL, "linux/arm64")
    )
    size = checks(("size", Verdict.PASS, None))  # the same outcome as D1's first check
    ten: list[AuditReport | None] = [
        same_night(
            f"2026-11-{n:02}T23:00:00Z",
            release("producer", D1, ("v1",), platforms),
            release("producer", D2, ("v2",), size),
        )
        for n in range(1, 11)
    ]
    with HistoryStore.open(db) as store:
        record(store, ten)
    assert row_counts(db) == {"outcomes": 3, "check_lists": 2, "releases": 20, "verdicts": 40}
    assert view_rows(db) == sorted(
        (
            (run, "producer", digest, c.rule, c.platform, c.verdict.value, c.message, json.dumps(dict(c.details)))
            for run in range(1, 11)
            for digest, found in ((D1, platforms), (D2, size))
            for c in found
        ),
        key=repr,
    )

    # arm64's smoke test passes for a night, then fails again as before: one new outcome and list, then none
    fixed = checks(
        ("size", Verdict.PASS, None), ("smoke", Verdict.PASS, "linux/amd64"), ("smoke", Verdict.PASS, "linux/arm64")
    )
    with HistoryStore.open(db) as store:
        record(store, [same_night("2026-11-11T23:00:00Z", release("producer", D1, ("v1",), fixed))])
        assert row_counts(db) == {"outcomes": 4, "check_lists": 3, "releases": 21, "verdicts": 43}
        record(store, [same_night("2026-11-12T23:00:00Z", release("producer", D1, ("v1",), platforms))])
        assert row_counts(db) == {"outcomes": 4, "check_lists": 3, "releases": 22, "verdicts": 46}
        previous = store.previous_run()
    assert previous is not None
    smoke = [(v, m, dict(d)) for v, m, d in previous.verdicts[("producer", D1)]["smoke"]]
    assert smoke == [
        ("pass", "smoke pass", {"platform": "linux/amd64", "rule": "smoke"}),
        ("fail", "smoke fail", {"platform": "linux/arm64", "rule": "smoke"}),
    ]
    assert [(v, m) for v, m, _ in previous.verdicts[("producer", D2)]["size"]] == [("pass", "size pass")]


def test_distinct_outcomes_are_all_kept_in_their_order(tmp_path: Path) -> None:
    """Outcomes that differ in one column only are different rows; a check reported twice is listed twice."""
    base = CheckResult("size", Verdict.PASS, "ok", None, {"bytes": 1})
    found = (
        base,
        replace(base, platform=""),
        replace(base, platform="linux/amd64"),
        replace(base, verdict=Verdict.WARN),
        replace(base, message="ok "),
        replace(base, message="größe ok ✓"),
        replace(base, details={"bytes": 1.0}),
        replace(base, details={"bytes": "1"}),
        replace(base, details={}),
        replace(base, rule="Size"),
        base,
    )
    db = tmp_path / "h.sqlite"
    with HistoryStore.open(db) as store:
        record(store, [same_night("2026-11-01T23:00:00Z", release("producer", D1, ("v1",), found))])
        assert row_counts(db) == {"outcomes": 10, "check_lists": 1, "releases": 1, "verdicts": 11}
        shuffled = tuple(reversed(found[1:]))
        record(store, [same_night("2026-11-02T23:00:00Z", release("producer", D1, ("v1",), shuffled))])
        assert row_counts(db) == {"outcomes": 10, "check_lists": 2, "releases": 2, "verdicts": 21}
        first = store.previous_run(before=2)
        second = store.previous_run()
    expected = [
        (1, "producer", D1, c.rule, c.platform, c.verdict.value, c.message, json.dumps(dict(c.details))) for c in found
    ]
    assert stored_verdicts(db)[(1, "producer", D1)] == expected
    assert stored_verdicts(db)[(2, "producer", D1)] == [(2, *row[1:]) for row in reversed(expected[1:])]
    for previous, checked in ((first, found), (second, shuffled)):
        assert previous is not None
        read = {
            rule: [(v, m, dict(d)) for v, m, d in rows] for rule, rows in previous.verdicts[("producer", D1)].items()
        }
        wanted: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for c in checked:
            wanted.setdefault(c.rule, []).append((c.verdict.value, c.message, dict(c.details)))
        assert read == wanted


def extras_file(db: Path) -> list[int]:
    runs = legacy_file(db, 3, history())
    extra_rows(db)
    return runs


def assert_still_version_3(
    db: Path, expected: dict[int | None, Any], written: dict[tuple[Any, ...], list[Row]]
) -> None:
    version, names = schema(db)
    assert version == 3 and not {"outcomes", "check_lists", "verdicts_without_release"} & names
    with opened(db) as conn:
        assert "check_list" not in {r[1] for r in conn.execute("PRAGMA table_info(releases)")}
        assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'verdicts'").fetchone() == ("table",)
    assert legacy_verdicts(db) == written
    assert {before: reference(db, before) for before in expected} == expected


def test_a_migration_to_4_that_fails_half_way_leaves_the_file_at_3(tmp_path: Path) -> None:
    """Migration 4 is one transaction: a statement failing after the outcomes, the check lists and the new
    column were written (here: a table a foreign tool left under the name of one created late) rolls all of
    it back, and the file answers as before; once the obstacle is gone the migration runs."""
    db = tmp_path / "h.sqlite"
    runs = extras_file(db)
    expected = {before: reference(db, before) for before in (None, *runs)}
    written = legacy_verdicts(db)
    with opened(db) as conn:
        conn.execute("CREATE TABLE verdicts_without_release (x)")
    with pytest.raises(InputError, match="verdicts_without_release already exists") as err:
        HistoryStore.open(db)
    assert "\n" not in str(err.value)
    with opened(db) as conn:
        conn.execute("DROP TABLE verdicts_without_release")
    assert_still_version_3(db, expected, written)
    with HistoryStore.open(db) as store:
        assert {before: answers(store, before) for before in expected} == expected
    assert stored_verdicts(db) == written


KILLED = """
import os, sqlite3, sys
from pathlib import Path

connect = sqlite3.connect


def killed_at(*args, **kwargs):
    conn = connect(*args, **kwargs)
    conn.set_trace_callback(lambda sql: sql.startswith(sys.argv[2]) and os._exit(9))
    return conn


sqlite3.connect = killed_at
from imgcheck.audit.store import HistoryStore

HistoryStore.open(Path(sys.argv[1]))
"""
"""Opens the history and dies (no cleanup, no rollback: a killed process) as the statement starting with
argv[2] begins."""


@pytest.mark.parametrize("statement", ["UPDATE releases SET check_list", "DROP TABLE verdicts", "COMMIT"])
def test_a_migration_to_4_killed_half_way_leaves_the_file_at_3(tmp_path: Path, statement: str) -> None:
    db = tmp_path / "h.sqlite"
    runs = extras_file(db)
    expected = {before: reference(db, before) for before in (None, *runs)}
    written = legacy_verdicts(db)
    died = subprocess.run([sys.executable, "-c", KILLED, str(db), statement], capture_output=True, timeout=60)
    assert died.returncode == 9, died.stderr
    assert_still_version_3(db, expected, written)
    with HistoryStore.open(db) as store:
        assert {before: answers(store, before) for before in expected} == expected
    assert stored_verdicts(db) == written
