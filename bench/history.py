#!/usr/bin/env python3
"""Benchmark: the audit's history calls as the SQLite file grows over a year of nights (no registry).

A synthetic but realistic history is recorded through the store's own API, night by night, as
`imgcheck audit` records a run (begin_run, then finish_run with the night's report): 3 images x 100
digests each, 3-4 tags per digest (`vX.Y.Z`, `sha-<7>`, `main-<7>`, `latest` on the newest), 6 rule
verdicts per digest with small JSON details. Each image gets a new release every few nights (its oldest
digest leaves the window of 100, `latest` moves); a run crashes now and then (left `running`).

At 30, 180 and 365 complete nights it times what a run asks of the store around its work, in the order
`imgcheck audit` asks it: open (migrations), begin_run, last_tags, previous_run, nights and finish_run;
the read-only calls are repeated (median). It prints the timings, the ratio 365-night / 30-night for each
call, and the query plans of the history reads (`EXPLAIN QUERY PLAN`: a `SCAN` of a big table or a
`TEMP B-TREE` is what makes a call grow with the history, here 12x). What a call should grow with instead:
nothing for last_tags and finish_run; the last 60 nights for nights (the trend chart); and for previous_run
the digests ever verified, which it returns (printed: 2x over the year, as the window of 100 moves).

It also prints the file's size at each checkpoint (after a WAL checkpoint: what a CI cache keeps), the
bytes of every table and index (SQLite's `dbstat`), and at the last checkpoint the text bytes per column
(details vs messages vs keys). The rules' details are those of an unchanged digest: the same every night
(size, labels, tags, config, platforms and signature judge immutable content), except the signature verdict
that flips now and then; `--details nightly` puts the night in every rule's details (the worst case: every
outcome new every night, as smoke's `seconds` or a Trivy report's age would make it).

    python bench/history.py [--nights 30,180,365] [--digests 100] [--reps 5] [--details stable|nightly]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from imgcheck.audit.model import AuditReport, ImageInventory, Release  # noqa: E402
from imgcheck.audit.store import HistoryStore  # noqa: E402
from imgcheck.report.model import CheckResult  # noqa: E402
from imgcheck.verdict import Verdict  # noqa: E402

IMAGES = ("api", "worker", "web")
RULES = ("size", "labels", "tags", "config", "platforms", "signature")
RELEASE_EVERY = 3
"""Nights between two releases of one image (the images release on different nights)."""
CRASH_EVERY = 47
"""Every so many nights a run is killed before it finishes (it stays `running`, never counted)."""
CALLS = ("open", "begin_run", "last_tags", "previous_run", "nights", "finish_run")
START = datetime(2026, 1, 1, 23, 0, tzinfo=UTC)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Repository:
    """One image's releases: a rolling window of the newest `size` digests, `latest` on the newest."""

    image: str
    size: int
    pushed: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    """(digest, release tags, created), oldest first."""

    def push(self, when: datetime) -> None:
        n = len(self.pushed)
        revision = hashlib.sha1(f"{self.image}-{n}".encode()).hexdigest()
        tags = (f"v1.{n // 10}.{n % 10}", f"sha-{revision[:7]}", f"main-{revision[:7]}")
        self.pushed.append((_digest(f"{self.image}-{n}"), tags, when.strftime("%Y-%m-%dT%H:%M:%SZ")))

    def window(self) -> list[tuple[str, tuple[str, ...], str]]:
        return self.pushed[-self.size :]

    def tags(self) -> dict[str, str]:
        found = {tag: digest for digest, tags, _ in self.window() for tag in tags}
        found["latest"] = self.pushed[-1][0]
        return found


def night_report(repos: list[Repository], night: int, started: str, nightly: bool = False) -> AuditReport:
    """What one audit of every digest reports: the tag inventory and 6 rule verdicts per digest (`nightly`:
    with the night in every rule's details)."""
    inventories, releases = [], []
    for repo in repos:
        tags = repo.tags()
        window = repo.window()
        inventories.append(
            ImageInventory(repo.image, "r.example", f"org/{repo.image}", tags, tuple(d for d, _, _ in window))
        )
        newest = window[-1][0]
        for index, (digest, release_tags, created) in enumerate(window):
            checks = []
            for rule in RULES:
                failing = rule == "signature" and (index + night) % 41 == 0  # a verdict flips now and then
                verdict = Verdict.FAIL if failing else Verdict.PASS
                details: dict[str, object] = {
                    "rule": rule,
                    "digest": digest[:19],
                    "limit": 500_000_000,
                    "ok": not failing,
                }
                if nightly:
                    details["night"] = night
                checks.append(
                    CheckResult(rule, verdict, f"{rule}: {'no signature found' if failing else 'ok'}", None, details)
                )
            on_digest = (*release_tags, "latest") if digest == newest else release_tags
            releases.append(
                Release(
                    repo.image,
                    "r.example",
                    f"org/{repo.image}",
                    digest,
                    tuple(sorted(on_digest)),
                    created,
                    12_345_678 + index,
                    tuple(checks),
                )
            )
    return AuditReport("0.1.0", "policy.yaml", started, tuple(inventories), tuple(releases))


def _stamp(night: int) -> str:
    return (START + timedelta(days=night)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure_night(
    path: Path, repos: list[Repository], night: int, reps: int, nightly: bool
) -> tuple[dict[str, float], list[str]]:
    """One audit's calls on the history, each timed; and the SELECTs previous_run and last_tags run."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    store = HistoryStore.open(path)
    timings["open"] = (time.perf_counter() - start) * 1000
    try:
        started = _stamp(night)
        start = time.perf_counter()
        run = store.begin_run(started, "policy.yaml", "0.1.0")
        timings["begin_run"] = (time.perf_counter() - start) * 1000
        timings["last_tags"] = _median_ms(lambda: store.last_tags(before=run), reps)
        timings["previous_run"] = _median_ms(lambda: store.previous_run(before=run), reps)
        previous = store.previous_run(before=run)
        timings["digests"] = len(previous.verdicts) if previous is not None else 0
        timings["nights"] = _median_ms(store.nights, reps)
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)  # the bench reads the store's own SQL
        store.last_tags(before=run)
        store.previous_run(before=run)
        store._conn.set_trace_callback(None)
        report = night_report(repos, night, started, nightly)
        start = time.perf_counter()
        store.finish_run(run, report, started)
        timings["finish_run"] = (time.perf_counter() - start) * 1000
    finally:
        store.close()
    return timings, [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]


def query_plans(path: Path, statements: list[str]) -> list[str]:
    """`EXPLAIN QUERY PLAN` of each statement (as traced, with its parameters inlined) on a second connection."""
    lines = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for statement in dict.fromkeys(statements):
            lines.append(" ".join(statement.split()))
            for _id, _parent, _unused, detail in conn.execute(f"EXPLAIN QUERY PLAN {statement}"):
                lines.append(f"    {detail}")
    finally:
        conn.close()
    return lines


def release_day(repos: list[Repository], night: int) -> None:
    """The images release on different nights, each every RELEASE_EVERY nights."""
    for n, repo in enumerate(repos):
        if night % RELEASE_EVERY == n % RELEASE_EVERY:
            repo.push(START + timedelta(days=night, hours=-12))


def record_nights(store: HistoryStore, repos: list[Repository], first: int, last: int, nightly: bool) -> None:
    """Nights `first`..`last - 1`, each recorded as an audit records it (plus the odd crashed run)."""
    for night in range(first, last):
        release_day(repos, night)
        started = _stamp(night)
        if night % CRASH_EVERY == CRASH_EVERY - 1:
            store.begin_run(started, "policy.yaml", "0.1.0")  # killed: never finished
        run = store.begin_run(started, "policy.yaml", "0.1.0")
        store.finish_run(run, night_report(repos, night, started, nightly), started)


def file_bytes(path: Path) -> tuple[int, dict[str, int]]:
    """The file's size once its WAL is checkpointed into it, and the bytes of each table and index
    (`dbstat`; an SQLite built without it gives only the total)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        try:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
            rows = []
    finally:
        conn.close()
    return path.stat().st_size, {str(name): int(size) for name, size in rows}


def column_bytes(path: Path) -> list[tuple[str, int]]:
    """Bytes of text and blob values per table column (the payload: details vs messages vs keys)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    found = []
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table.startswith("sqlite_"):
                continue
            for _cid, column, declared, *_ in conn.execute(f"PRAGMA table_info({table})"):
                if str(declared).upper() in {"TEXT", "BLOB", ""}:
                    (size,) = conn.execute(f"SELECT TOTAL(length(CAST({column} AS BLOB))) FROM {table}").fetchone()
                    found.append((f"{table}.{column}", int(size)))
    finally:
        conn.close()
    return sorted(found, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", default="30,180,365", help="history sizes measured (complete nights)")
    parser.add_argument("--digests", type=int, default=100, help="digests per image")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each read-only call (median)")
    parser.add_argument("--plans", action=argparse.BooleanOptionalAction, default=True, help="print query plans")
    parser.add_argument(
        "--details", choices=("stable", "nightly"), default="stable", help="nightly: the night in every rule's details"
    )
    args = parser.parse_args(argv)
    checkpoints = sorted({int(n) for n in args.nights.split(",")})
    nightly = args.details == "nightly"
    results: dict[int, dict[str, float]] = {}
    sizes: dict[int, tuple[int, dict[str, int]]] = {}
    columns: list[tuple[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="imgcheck-bench-history-") as tmp:
        path = Path(tmp) / "history.sqlite"
        repos = [Repository(image, args.digests) for image in IMAGES]
        for repo in repos:
            for n in range(args.digests):
                repo.push(START - timedelta(days=args.digests - n))
        done = 0
        statements: list[str] = []
        build = time.perf_counter()
        for checkpoint in checkpoints:
            with HistoryStore.open(path) as store:
                record_nights(store, repos, done, checkpoint - 1, nightly)
            # the checkpoint's own night is the measured audit: N - 1 complete nights before it, N after
            release_day(repos, checkpoint - 1)
            results[checkpoint], statements = measure_night(path, repos, checkpoint - 1, args.reps, nightly)
            done = checkpoint
            size = path.stat().st_size + (
                path.with_name(path.name + "-wal").stat().st_size if path.with_name(path.name + "-wal").exists() else 0
            )
            print(f"recorded {checkpoint} nights ({size / 1e6:.0f} MB) in {time.perf_counter() - build:.0f} s")
            sizes[checkpoint] = file_bytes(path)
        plans = query_plans(path, statements) if args.plans else []
        columns = column_bytes(path)
    width = max(len(c) for c in CALLS)
    print()
    print(f"{'call (ms)':<{width}}  " + "  ".join(f"{n:>8} n" for n in checkpoints) + "   last/first")
    for call in CALLS:
        cells = "  ".join(f"{results[n][call]:>10.2f}" for n in checkpoints)
        ratio = results[checkpoints[-1]][call] / max(results[checkpoints[0]][call], 1e-6)
        print(f"{call:<{width}}  {cells}   {ratio:>9.2f}")
    counts = "  ".join(f"{int(results[n]['digests']):>10}" for n in checkpoints)
    grew = results[checkpoints[-1]]["digests"] / max(results[checkpoints[0]]["digests"], 1)
    print(f"{'(digests)':<{width}}  {counts}   {grew:>9.2f}  <- what previous_run returns: every digest ever verified")
    print(
        f"(history grew {checkpoints[-1] / checkpoints[0]:.1f}x; {len(IMAGES)} images x {args.digests} digests x"
        f" {len(RULES)} rules per night)"
    )
    print()
    print(f"{'file (MB, checkpointed)':<32}  " + "  ".join(f"{sizes[n][0] / 1e6:>10.1f}" for n in checkpoints))
    names = sorted(
        {name for _, parts in sizes.values() for name in parts}, key=lambda n: -sizes[checkpoints[-1]][1].get(n, 0)
    )
    for name in names:
        cells = "  ".join(f"{sizes[n][1].get(name, 0) / 1e6:>10.2f}" for n in checkpoints)
        print(f"  {name:<30}  {cells}")
    print()
    print(f"text and blob bytes per column at {checkpoints[-1]} nights (MB; the rest: keys, headers, free space):")
    for column, size in columns:
        if size >= 10_000:
            print(f"  {column:<28}  {size / 1e6:>10.2f}")
    if plans:
        print()
        print(f"query plans at {checkpoints[-1]} nights:")
        print("\n".join(plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
