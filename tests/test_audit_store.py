"""The SQLite history: versioned migrations, locked and corrupt files as one-line errors, crashed runs,
and the pure parts of the audit (drift rules, digest selection, shards) on real stored rows."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imgcheck.audit.drift import compute_drift, tag_drift
from imgcheck.audit.inventory import in_shard, is_immutable_tag, parse_shard, select_digests
from imgcheck.audit.model import AuditReport, ImageInventory, Release, from_dict, to_dict
from imgcheck.audit.store import BLOBS_PER_QUERY, MIGRATIONS, SCHEMA_VERSION, HistoryStore, default_history_path
from imgcheck.errors import InputError, UsageError
from imgcheck.report.model import CheckResult
from imgcheck.verdict import Verdict

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def release(digest: str, tags: tuple[str, ...], *checks: tuple[str, Verdict, str]) -> Release:
    return Release(
        "producer",
        "r.example",
        "org/producer",
        digest,
        tags,
        checks=tuple(CheckResult(rule, verdict, message) for rule, verdict, message in checks),
    )


def report(tags: dict[str, str], *releases: Release, started: str = "2026-11-23T23:00:00Z") -> AuditReport:
    inventory = ImageInventory("producer", "r.example", "org/producer", tags, tuple(r.digest for r in releases))
    return AuditReport("0.1.0", "p.yaml", started, (inventory,), releases)


def record(store: HistoryStore, audit: AuditReport) -> int:
    run = store.begin_run(audit.started_at, audit.policy, audit.imgcheck_version)
    store.finish_run(run, audit, audit.started_at)
    return run


def test_default_history_path_follows_xdg() -> None:
    assert default_history_path({"XDG_STATE_HOME": "/s"}) == Path("/s/imgcheck/history.sqlite")
    assert default_history_path({"HOME": "/h"}) == Path("/h/.local/state/imgcheck/history.sqlite")


def test_migrations_upgrade_an_older_file_and_refuse_a_newer_one(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    conn = sqlite3.connect(db)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (started_at, policy, imgcheck_version, status) VALUES ('t', 'p', 'v', 'complete')")
    conn.commit()
    conn.close()
    with HistoryStore.open(db) as store:
        assert store.version == SCHEMA_VERSION == 5
        assert store.runs() == [(1, "t", "complete", None)]  # data kept across the migration
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="schema version 6"):
        HistoryStore.open(db)


def test_corrupt_file_is_one_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    db.write_bytes(b"this is not a database, it is a text file " * 200)
    with pytest.raises(InputError) as err:
        HistoryStore.open(db)
    assert "corrupt" in str(err.value) and "\n" not in str(err.value)


def test_locked_file_is_one_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    HistoryStore.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with HistoryStore.open(db, busy_timeout=0.2) as store, pytest.raises(InputError, match="locked"):
            store.begin_run("t", "p", "v")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_cli_reports_a_corrupt_history_on_one_line_with_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    db.write_bytes(b"garbage" * 1000)
    policy = Path(__file__).resolve().parents[1] / "fixtures" / "demo-policy.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "imgcheck", "audit", "--policy", str(policy), "--history", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "corrupt" in result.stderr and "Traceback" not in result.stderr


def test_a_crashed_run_is_never_the_previous_run(tmp_path: Path) -> None:
    with HistoryStore.open(tmp_path / "h.sqlite") as store:
        first = record(store, report({"v1.0.0": D1}, release(D1, ("v1.0.0",))))
        store.begin_run("2026-11-24T23:00:00Z", "p.yaml", "0.1.0")  # never finished: killed
        previous = store.previous_run()
        assert previous is not None and previous.run_id == first


def test_drift_rules_on_stored_history(tmp_path: Path) -> None:
    night1 = report(
        {"v1.0.0": D1, "v1.1.0": D2, "latest": D2, "main-abcdef1": D2, "v0.9.0": D3},
        release(D1, ("v1.0.0",), ("signature", Verdict.PASS, "signed"), ("size", Verdict.PASS, "ok")),
        release(D2, ("latest", "main-abcdef1", "v1.1.0"), ("size", Verdict.PASS, "ok")),
    )
    night2 = report(
        {"v1.0.0": D2, "v1.1.0": D2, "latest": D1, "main-abcdef1": D2, "v1.2.0": D3},
        release(D1, ("latest",), ("signature", Verdict.FAIL, "no signature found"), ("size", Verdict.PASS, "ok")),
        release(D2, ("main-abcdef1", "v1.0.0", "v1.1.0"), ("size", Verdict.FAIL, "1.2 GB > 500 MB")),
        started="2026-11-24T23:00:00Z",
    )
    with HistoryStore.open(tmp_path / "h.sqlite") as store:
        record(store, night1)
        previous = store.previous_run()
    assert previous is not None
    drift = compute_drift(previous, night2.images, night2.releases)
    found = {(d.kind, d.subject): d.severity for d in drift}
    assert found == {
        ("tag-moved", "v1.0.0"): "fail",
        ("tag-moved", "latest"): "info",
        ("tag-disappeared", "v0.9.0"): "fail",
        ("tag-appeared", "v1.2.0"): "info",
        ("attachment-vanished", D1): "fail",
        ("verdict-regressed", D2): "fail",
    }
    assert [d.severity for d in drift] == sorted((d.severity for d in drift), key=["fail", "warn", "info"].index)
    regressed = next(d for d in drift if d.kind == "verdict-regressed")
    assert "1.2 GB > 500 MB" in regressed.message and "pass → fail" in regressed.message


def test_build_tags_are_immutable_and_their_removal_warns() -> None:
    assert is_immutable_tag("v1.4.2") and is_immutable_tag("sha-3f2a9c1") and is_immutable_tag("main-3f2a9c1")
    assert not is_immutable_tag("latest") and not is_immutable_tag("main") and not is_immutable_tag("1.4")
    (item,) = tag_drift("producer", {"main-3f2a9c1": D1}, {})
    assert item.kind == "tag-disappeared" and item.severity == "warn"


def test_select_newest_releases_plus_latest_and_since() -> None:
    groups = {D1: ("v1.0.0",), D2: ("v1.1.0", "v1.1.1"), D3: ("latest", "main-abcdef1")}
    created = {D1: datetime(2026, 1, 1, tzinfo=UTC), D2: datetime(2026, 2, 1, tzinfo=UTC), D3: None}
    assert select_digests(groups, newest=1, since=None, created=created.get) == [D2, D3]
    assert select_digests(groups, newest=2, since=None, created=created.get) == [D1, D2, D3]
    since = datetime(2026, 1, 15, tzinfo=UTC)
    assert select_digests(groups, newest=None, since=since, created=created.get) == [D2, D3]  # unknown: kept
    no_releases = {D1: ("main-1111111",), D2: ("main-2222222",)}
    assert select_digests(no_releases, newest=1, since=None, created=created.get) == [D2]


def test_shards_are_a_partition() -> None:
    digests = [f"sha256:{i:064x}" for i in range(200)]
    owners = [[s for s in range(1, 5) if in_shard(d, (s, 4))] for d in digests]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {1, 2, 3, 4}
    for bad in ("0/4", "5/4", "x", "2"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_json_round_trip_for_merge() -> None:
    audit = report({"v1.0.0": D1}, release(D1, ("v1.0.0",), ("size", Verdict.WARN, "close to the budget")))
    back = from_dict(to_dict(audit), "x.json")
    assert to_dict(back) == to_dict(audit)
    with pytest.raises(InputError, match=r"not an imgcheck\.audit/v1 report"):
        from_dict({"schema": "imgcheck.report/v1"}, "x.json")


def test_bulk_blob_reads_span_several_queries_and_skip_what_is_not_held(tmp_path: Path) -> None:
    held = {f"sha256:{i:064x}": (f"type-{i}", f"body {i}".encode()) for i in range(BLOBS_PER_QUERY * 2 + 3)}
    with HistoryStore.open(tmp_path / "h.sqlite") as store:
        for digest, (media_type, body) in held.items():
            store.put_blob(digest, media_type, body)
        missing = [f"sha256:{'f' * 63}{c}" for c in "ab"]
        asked = [*missing[:1], *reversed(held), *missing[1:], next(iter(held))]  # duplicates asked once
        assert store.get_blobs(asked) == held
        assert store.get_blobs([]) == {}


def test_previous_verdict_details_read_back_as_stored(tmp_path: Path) -> None:
    """Details are parsed when drift reads them (new CVEs), not for every stored verdict up front."""
    details = {"findings": [{"id": "CVE-2024-3094", "outcome": "fail", "package": "xz"}], "n": 1.5, "none": None}
    check = CheckResult("vulnerabilities", Verdict.FAIL, "1 critical", None, details)
    with HistoryStore.open(tmp_path / "h.sqlite") as store:
        record(store, report({"v1.0.0": D1}, replace(release(D1, ("v1.0.0",)), checks=(check,))))
        previous = store.previous_run()
    assert previous is not None
    ((verdict, message, stored),) = previous.verdicts[("producer", D1)]["vulnerabilities"]
    assert (verdict, message) == ("fail", "1 critical")
    assert dict(stored) == details and stored["n"] == 1.5 and len(stored) == 3 and "none" in stored
