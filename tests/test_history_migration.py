"""Schema 3 of the audit history: an existing schema-2 file migrates in one transaction (on through 4) and
keeps its rows, and the indexed previous_run / last_tags answer exactly as the version-2 queries (kept here
as the reference) did, on a multi-night history with crashed runs, unlisted images and digests not verified
every night. Schema 4 (outcomes stored once): tests/test_history_dedupe.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from imgcheck.audit.model import AuditReport, ImageInventory, Release
from imgcheck.audit.store import MIGRATIONS, SCHEMA_VERSION, HistoryStore
from imgcheck.errors import InputError
from imgcheck.report.model import CheckResult
from imgcheck.verdict import Verdict

D1, D2, D3, D4 = ("sha256:" + c * 64 for c in "1234")

REFERENCE_VERDICTS = (
    "SELECT v.image, v.digest, v.rule, v.verdict, v.message, v.details FROM verdicts v JOIN ("
    " SELECT image, digest, MAX(run_id) AS last FROM releases JOIN runs ON runs.id = run_id"
    " WHERE status = 'complete' AND run_id < ? GROUP BY image, digest"
    ") l ON v.image = l.image AND v.digest = l.digest AND v.run_id = l.last"
)
"""The version-2 query for the previous verdicts: one group over the whole history."""
REFERENCE_TAGS = (
    "SELECT o.image, o.tag, o.digest FROM observations o JOIN ("
    " SELECT image, MAX(run_id) AS last FROM observations JOIN runs ON runs.id = run_id"
    " WHERE status = 'complete' AND run_id < ? GROUP BY image"
    ") l ON o.image = l.image AND o.run_id = l.last"
)

Answers = tuple[int | None, dict[str, dict[str, str]], dict[tuple[str, str], dict[str, list[tuple[str, str, Any]]]]]


def reference(db: Path, before: int | None) -> Answers:
    """previous_run's run id, tags and verdicts as the version-2 queries found them."""
    limit = before if before is not None else 1 << 62
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT id FROM runs WHERE status = 'complete' AND id < ? ORDER BY id DESC LIMIT 1", (limit,)
        ).fetchone()
        tags: dict[str, dict[str, str]] = {}
        for image, tag, digest in conn.execute(REFERENCE_TAGS, (limit,)):
            tags.setdefault(image, {})[tag] = digest
        verdicts: dict[tuple[str, str], dict[str, list[tuple[str, str, Any]]]] = {}
        for image, digest, rule, verdict, message, details in conn.execute(REFERENCE_VERDICTS, (limit,)):
            verdicts.setdefault((image, digest), {}).setdefault(rule, []).append(
                (verdict, message, json.loads(details))
            )
    finally:
        conn.close()
    return (int(row[0]) if row else None), tags, verdicts


def answers(store: HistoryStore, before: int | None) -> Answers:
    previous = store.previous_run(before=before)
    if previous is None:
        return None, store.last_tags(before=before), {}
    assert previous.tags == store.last_tags(before=before)
    verdicts = {
        key: {rule: [(v, m, dict(d)) for v, m, d in rows] for rule, rows in rules.items()}
        for key, rules in previous.verdicts.items()
    }
    return previous.run_id, {k: dict(v) for k, v in previous.tags.items()}, verdicts


def checks(*items: tuple[str, Verdict, str | None]) -> tuple[CheckResult, ...]:
    return tuple(
        CheckResult(rule, verdict, f"{rule} {verdict.value}", platform, {"platform": platform, "rule": rule})
        for rule, verdict, platform in items
    )


def release(image: str, digest: str, tags: tuple[str, ...], found: tuple[CheckResult, ...]) -> Release:
    return Release(image, "r.example", f"org/{image}", digest, tags, checks=found)


def night(started: str, listed: dict[str, dict[str, str] | None], *releases: Release) -> AuditReport:
    """One audit: per image its tags (None: the listing failed), and the releases it verified."""
    images = tuple(
        ImageInventory(name, "r.example", f"org/{name}", tags or {}, error=None if tags is not None else "502")
        for name, tags in listed.items()
    )
    return AuditReport("0.1.0", "p.yaml", started, images, releases)


def nights() -> list[AuditReport | None]:
    """Five nights; None is a run killed before it finished."""
    platforms = checks(
        ("size", Verdict.PASS, None), ("smoke", Verdict.PASS, "linux/amd64"), ("smoke", Verdict.FAIL, "linux/arm64")
    )
    return [
        night(
            "2026-11-20T23:00:00Z",
            {"producer": {"v1.0.0": D1, "latest": D2}, "consumer": {"v2.0.0": D3}},
            release("producer", D1, ("v1.0.0",), platforms),
            release("producer", D2, ("latest",), checks(("size", Verdict.PASS, None))),
            release("consumer", D3, ("v2.0.0",), checks(("labels", Verdict.WARN, None))),
        ),
        night(  # --tags 1: D1 not verified; consumer could not be listed
            "2026-11-21T23:00:00Z",
            {"producer": {"v1.0.0": D1, "v1.1.0": D2, "latest": D4}, "consumer": None},
            release("producer", D2, ("v1.1.0",), checks(("size", Verdict.FAIL, None))),
            release("producer", D4, ("latest",), checks(("size", Verdict.PASS, None), ("tags", Verdict.PASS, None))),
        ),
        None,
        night(  # the same digest in two images; producer verifies only its newest
            "2026-11-23T23:00:00Z",
            {"producer": {"v1.0.0": D1, "v1.1.0": D2, "v1.2.0": D4, "latest": D4}, "consumer": {"v2.0.0": D3, "x": D1}},
            release("producer", D4, ("latest", "v1.2.0"), checks(("size", Verdict.WARN, None))),
            release("consumer", D3, ("v2.0.0",), checks(("labels", Verdict.PASS, None))),
            release("consumer", D1, ("x",), platforms),
        ),
        None,
    ]


def record(store: HistoryStore, history: list[AuditReport | None]) -> list[int]:
    runs = []
    for audit in history:
        if audit is None:
            runs.append(store.begin_run("2026-11-22T23:00:00Z", "p.yaml", "0.1.0"))  # killed
            continue
        run = store.begin_run(audit.started_at, audit.policy, audit.imgcheck_version)
        store.finish_run(run, audit, audit.started_at)
        runs.append(run)
    return runs


def test_previous_run_and_last_tags_answer_as_the_version_2_queries(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    with HistoryStore.open(db) as store:
        runs = record(store, nights())
        for before in [None, *runs, runs[-1] + 1]:
            assert answers(store, before) == reference(db, before), before
        _, tags, verdicts = answers(store, runs[-1])
    assert tags["consumer"] == {"v2.0.0": D3, "x": D1}
    assert verdicts[("producer", D1)]["smoke"] == [  # night 1's, in their order: D1 was not verified since
        ("pass", "smoke pass", {"platform": "linux/amd64", "rule": "smoke"}),
        ("fail", "smoke fail", {"platform": "linux/arm64", "rule": "smoke"}),
    ]
    assert verdicts[("producer", D2)]["size"][0][0] == "fail"  # night 2's
    with HistoryStore.open(db) as store:
        _, tags, _ = answers(store, runs[1])  # before night 2: night 1 only
    assert tags == {"producer": {"v1.0.0": D1, "latest": D2}, "consumer": {"v2.0.0": D3}}


def legacy_record(conn: sqlite3.Connection, history: list[AuditReport | None], *, verified: bool) -> list[int]:
    """Rows as the store of schemas 1 to 3 wrote them, with its statements (kept here as the reference):
    begin_run, then finish_run's rows in one go; `verified`: schema 3's verified_digests too."""
    runs = []
    for audit in history:
        started = audit.started_at if audit is not None else "2026-11-22T23:00:00Z"
        cursor = conn.execute(
            "INSERT INTO runs (started_at, policy, imgcheck_version, status) VALUES (?, ?, ?, 'running')",
            (started, "p.yaml", "0.1.0"),
        )
        run = int(cursor.lastrowid or 0)
        runs.append(run)
        if audit is None:  # killed
            continue
        conn.executemany(
            "INSERT INTO observations (run_id, image, repository, tag, digest) VALUES (?, ?, ?, ?, ?)",
            [
                (run, i.image, i.repository, tag, digest)
                for i in audit.images
                if i.error is None
                for tag, digest in sorted(i.tags.items())
            ],
        )
        conn.executemany(
            "INSERT INTO releases (run_id, image, digest, tags, created, compressed_size, verdict, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run,
                    r.image,
                    r.digest,
                    json.dumps(list(r.tags)),
                    r.created,
                    r.compressed_size,
                    r.verdict.value,
                    r.error,
                )
                for r in audit.releases
            ],
        )
        if verified:
            conn.executemany(
                "INSERT OR IGNORE INTO verified_digests (image, digest) VALUES (?, ?)",
                [(r.image, r.digest) for r in audit.releases],
            )
        conn.executemany(
            "INSERT INTO verdicts (run_id, image, digest, rule, platform, verdict, message, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (run, r.image, r.digest, c.rule, c.platform, c.verdict.value, c.message, json.dumps(dict(c.details)))
                for r in audit.releases
                for c in r.checks
            ],
        )
        conn.execute(
            "UPDATE runs SET status = 'complete', finished_at = ?, verdict = ? WHERE id = ?",
            (audit.started_at, audit.verdict.value, run),
        )
    return runs


def legacy_file(db: Path, version: int, history: list[AuditReport | None]) -> list[int]:
    """A file an imgcheck of schema `version` (1 to 3) wrote: its migrations' statements, then its rows."""
    conn = sqlite3.connect(db)
    for statements in MIGRATIONS[:version]:
        for statement in statements:
            conn.execute(statement)
    runs = legacy_record(conn, history, verified=version >= 3)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()
    return runs


def schema_2_file(db: Path) -> None:
    """A file an imgcheck of schema 2 wrote: nights 1, 2 and 4 recorded, night 3 crashed, rows as it wrote them."""
    legacy_file(db, 2, nights()[:4])
    conn = sqlite3.connect(db)
    # rows under the crashed run 3 (as a writer that died mid-way could leave them): never counted
    conn.execute("INSERT INTO observations VALUES (3, 'producer', 'org/producer', 'latest', ?)", (D3,))
    conn.execute("INSERT INTO releases VALUES (3, 'producer', ?, '[]', NULL, NULL, 'fail', NULL)", (D2,))
    conn.execute("INSERT INTO verdicts VALUES (3, 'producer', ?, 'size', NULL, 'fail', 'crashed', '{}')", (D2,))
    conn.execute("INSERT INTO blobs VALUES ('sha256:' || hex(randomblob(32)), 'blob', x'00')")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


def counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        tables = ("runs", "observations", "releases", "verdicts", "blobs")
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def schema(db: Path) -> tuple[int, set[str]]:
    conn = sqlite3.connect(db)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
        return conn.execute("PRAGMA user_version").fetchone()[0], names
    finally:
        conn.close()


def test_a_schema_2_audit_history_migrates_through_3_to_4_and_keeps_its_rows_and_answers(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    schema_2_file(db)
    before_rows = counts(db)
    expected = {before: reference(db, before) for before in (None, 1, 2, 3, 4, 5)}
    assert schema(db)[0] == 2 and "verified_digests" not in schema(db)[1]
    with HistoryStore.open(db) as store:
        assert store.version == SCHEMA_VERSION == 5
        assert {before: answers(store, before) for before in expected} == expected
        assert [r[2] for r in store.runs()] == ["complete", "complete", "running", "complete"]
    version, names = schema(db)
    assert version == 5 and {"verified_digests", "releases_by_digest", "observations_by_image", "outcomes"} <= names
    assert counts(db) == before_rows
    conn = sqlite3.connect(db)
    pairs = set(conn.execute("SELECT image, digest FROM verified_digests"))
    conn.close()
    assert pairs == {("producer", D1), ("producer", D2), ("producer", D4), ("consumer", D3), ("consumer", D1)}
    with HistoryStore.open(db) as store:  # and the migrated file records the next night as a new one would
        run = store.begin_run("2026-11-25T23:00:00Z", "p.yaml", "0.1.0")
        web = release("web", D2, ("v1",), checks(("size", Verdict.PASS, None)))
        store.finish_run(run, night("2026-11-25T23:00:00Z", {"web": {"v1": D2}}, web), "t")
        previous = store.previous_run()
    assert previous is not None and previous.run_id == run and ("web", D2) in previous.verdicts


def test_an_audit_history_migration_that_fails_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    """Migration 3 is one transaction: a statement failing half-way (here a table a foreign tool left under
    the new table's name) rolls back the indexes created before it, and the file stays at version 2."""
    db = tmp_path / "h.sqlite"
    schema_2_file(db)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE verified_digests (x)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="verified_digests already exists") as err:
        HistoryStore.open(db)
    assert "\n" not in str(err.value)
    version, names = schema(db)
    assert version == 2 and not {"releases_by_digest", "observations_by_image"} & names


def test_an_audit_history_of_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    schema_2_file(db)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    rows = counts(db)
    newer = f"schema version {SCHEMA_VERSION + 1}; this imgcheck knows up to {SCHEMA_VERSION}"
    with pytest.raises(InputError, match=newer) as err:
        HistoryStore.open(db)
    assert "upgrade imgcheck" in (err.value.hint or "") and "\n" not in str(err.value)
    version, names = schema(db)
    assert version == SCHEMA_VERSION + 1 and "verified_digests" not in names
    assert counts(db) == rows


def test_a_schema_4_history_gains_the_scan_db_of_each_release_as_null(tmp_path: Path) -> None:
    """Migration 5 adds `releases.scan_db` (the Trivy DB an `audit --scan` used); older rows were not scanned."""
    db = tmp_path / "h.sqlite"
    conn = sqlite3.connect(db)
    for statements in MIGRATIONS[:4]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("INSERT INTO runs (started_at, policy, imgcheck_version, status) VALUES ('t', 'p', 'v', 'complete')")
    conn.execute(
        "INSERT INTO releases (run_id, image, digest, tags, verdict) VALUES (1, 'producer', ?, '[]', 'pass')", (D2,)
    )
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with HistoryStore.open(db) as store:
        assert store.version == SCHEMA_VERSION == 5
        assert store.runs() == [(1, "t", "complete", None)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT image, digest, scan_db FROM releases").fetchall() == [("producer", D2, None)]
