"""The audit history's SQLite schema, its versioned migrations, and the queries whose plans matter.

Kept apart from store.py (which runs them) because these statements are the part to read with
`EXPLAIN QUERY PLAN` (bench/history.py prints the plans) and to migrate with care: a migration is
appended, never edited, since users' files were created by the earlier ones.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema.
    (
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,"
        " policy TEXT NOT NULL, imgcheck_version TEXT NOT NULL, status TEXT NOT NULL, verdict TEXT)",
        "CREATE TABLE observations (run_id INTEGER NOT NULL REFERENCES runs(id), image TEXT NOT NULL,"
        " repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (run_id, image, tag))",
        "CREATE TABLE releases (run_id INTEGER NOT NULL REFERENCES runs(id), image TEXT NOT NULL,"
        " digest TEXT NOT NULL, tags TEXT NOT NULL, created TEXT, compressed_size INTEGER,"
        " verdict TEXT NOT NULL, error TEXT, PRIMARY KEY (run_id, image, digest))",
        "CREATE TABLE verdicts (run_id INTEGER NOT NULL REFERENCES runs(id), image TEXT NOT NULL,"
        " digest TEXT NOT NULL, rule TEXT NOT NULL, platform TEXT, verdict TEXT NOT NULL,"
        " message TEXT NOT NULL, details TEXT NOT NULL)",
        "CREATE TABLE blobs (digest TEXT PRIMARY KEY, media_type TEXT NOT NULL, body BLOB NOT NULL)",
    ),
    # 2: drift looks up the previous run's rows by image; the trend reads releases per run.
    (
        "CREATE INDEX verdicts_by_run ON verdicts (run_id, image, digest)",
        "CREATE INDEX runs_by_status ON runs (status, id)",
    ),
    # 3: the previous run's rows found by index, not by grouping the whole history (a year of nights made
    # previous_run 145 ms and last_tags 72 ms, growing with every night; bench/history.py). verified_digests
    # holds every (image, digest) that has releases rows (finish_run adds to it): what previous_run walks,
    # since SQLite cannot skip through an index to its distinct pairs.
    (
        "CREATE INDEX releases_by_digest ON releases (image, digest, run_id)",
        "CREATE INDEX observations_by_image ON observations (image, run_id)",
        "CREATE TABLE verified_digests (image TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (image, digest))"
        " WITHOUT ROWID",
        "INSERT INTO verified_digests (image, digest) SELECT DISTINCT image, digest FROM releases",
    ),
    # 4: a check outcome stored once, not once a night. Every night re-stored each digest's verdict, message and
    # details (and its image and digest once per rule), almost always the previous night's again: 2/3 of a
    # year-old file (bench/history.py). `outcomes` holds each outcome once; a release points at its checks'
    # outcome ids, in order, through `check_lists` (an unchanged digest's release points at last night's list).
    # `verdicts` becomes a view with the old columns and rows; rows no release row holds (none an imgcheck
    # wrote) are kept as they were in `verdicts_without_release`. The two content indexes only find the
    # existing rows' ids here: a run finds them through each digest's last release instead.
    (
        "CREATE TABLE outcomes (id INTEGER PRIMARY KEY, rule TEXT NOT NULL, platform TEXT, verdict TEXT NOT NULL,"
        " message TEXT NOT NULL, details TEXT NOT NULL)",
        "CREATE TABLE check_lists (id INTEGER PRIMARY KEY, outcomes TEXT NOT NULL)",
        "ALTER TABLE releases ADD COLUMN check_list INTEGER REFERENCES check_lists(id)",
        "INSERT INTO outcomes (rule, platform, verdict, message, details)"
        " SELECT rule, platform, verdict, message, details FROM verdicts v WHERE EXISTS (SELECT 1 FROM releases r"
        " WHERE r.run_id = v.run_id AND r.image = v.image AND r.digest = v.digest)"
        " GROUP BY rule, platform, verdict, message, details ORDER BY MIN(v.rowid)",
        "CREATE INDEX outcomes_by_content ON outcomes (rule, platform, verdict, message, details)",
        "CREATE TEMP TABLE release_outcomes (run_id INTEGER NOT NULL, image TEXT NOT NULL, digest TEXT NOT NULL,"
        " outcomes TEXT NOT NULL, PRIMARY KEY (run_id, image, digest))",
        # the window's ORDER BY keeps each list in the verdicts' order (an aggregate's order is not defined)
        "INSERT INTO temp.release_outcomes (run_id, image, digest, outcomes) SELECT run_id, image, digest, ids FROM ("
        "  SELECT v.run_id, v.image, v.digest, json_group_array(o.id) OVER release AS ids,"
        "  row_number() OVER release AS n FROM verdicts v JOIN outcomes o"
        "  ON o.rule = v.rule AND o.platform IS v.platform AND o.verdict = v.verdict AND o.message = v.message"
        "  AND o.details = v.details"
        "  WINDOW release AS (PARTITION BY v.run_id, v.image, v.digest ORDER BY v.rowid"
        "   ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
        ") WHERE n = 1",
        "INSERT INTO check_lists (outcomes) SELECT outcomes FROM temp.release_outcomes GROUP BY outcomes"
        " ORDER BY MIN(run_id)",
        "CREATE INDEX check_lists_by_outcomes ON check_lists (outcomes)",
        "UPDATE releases SET check_list = (SELECT l.id FROM temp.release_outcomes c JOIN check_lists l"
        " ON l.outcomes = c.outcomes"
        " WHERE c.run_id = releases.run_id AND c.image = releases.image AND c.digest = releases.digest)",
        "CREATE TABLE verdicts_without_release (run_id INTEGER NOT NULL REFERENCES runs(id), image TEXT NOT NULL,"
        " digest TEXT NOT NULL, rule TEXT NOT NULL, platform TEXT, verdict TEXT NOT NULL, message TEXT NOT NULL,"
        " details TEXT NOT NULL)",
        "INSERT INTO verdicts_without_release SELECT run_id, image, digest, rule, platform, verdict, message, details"
        " FROM verdicts v WHERE NOT EXISTS (SELECT 1 FROM releases r"
        " WHERE r.run_id = v.run_id AND r.image = v.image AND r.digest = v.digest) ORDER BY rowid",
        "DROP TABLE temp.release_outcomes",
        "DROP INDEX outcomes_by_content",
        "DROP INDEX check_lists_by_outcomes",
        "DROP TABLE verdicts",
        "CREATE VIEW verdicts (run_id, image, digest, rule, platform, verdict, message, details) AS"
        " SELECT r.run_id, r.image, r.digest, o.rule, o.platform, o.verdict, o.message, o.details"
        " FROM releases r JOIN check_lists l ON l.id = r.check_list JOIN json_each(l.outcomes) e"
        " JOIN outcomes o ON o.id = e.value"
        " UNION ALL SELECT * FROM verdicts_without_release",
    ),
    # 5: the Trivy DB each release was scanned with (`audit --scan`): its UpdatedAt, NULL when not scanned.
    ("ALTER TABLE releases ADD COLUMN scan_db TEXT",),
)
SCHEMA_VERSION = len(MIGRATIONS)
DEDUPED_VERSION = 4
"""The migration that drops the repeated verdicts: a file migrated through it is vacuumed once."""


LAST_VERDICTS = (
    "SELECT v.image, v.digest, o.rule, o.verdict, o.message, o.details"
    # CROSS: each digest's last release first, then its check list in order, then each outcome
    " FROM verified_digests p CROSS JOIN releases v"
    " ON v.image = p.image AND v.digest = p.digest AND v.run_id = ("
    "  SELECT r.run_id FROM releases r JOIN runs ON runs.id = r.run_id"
    "  WHERE r.image = p.image AND r.digest = p.digest AND r.run_id < ? AND runs.status = 'complete'"
    "  ORDER BY r.run_id DESC LIMIT 1)"
    " CROSS JOIN check_lists l ON l.id = v.check_list CROSS JOIN json_each(l.outcomes) e"
    " CROSS JOIN outcomes o ON o.id = e.value"
)
"""Per (image, digest) ever verified, the verdicts of the last complete run before `?` that verified it:
one index seek per digest (releases_by_digest), however many nights the history holds, then its check
list (`json_each` yields the ids in their order) and each outcome by id."""
LAST_CHECKS = (
    "WITH recent(list) AS ("
    "  SELECT r.check_list FROM json_each(?) w CROSS JOIN releases r ON r.rowid IN ("
    "   SELECT x.rowid FROM releases x"
    "   WHERE x.image = json_extract(w.value, '$[0]') AND x.digest = json_extract(w.value, '$[1]')"
    "   AND x.check_list IS NOT NULL ORDER BY x.run_id DESC LIMIT ?))"
    " SELECT l.id, l.outcomes, o.id, o.rule, o.platform, o.verdict, o.message, o.details"
    " FROM check_lists l CROSS JOIN json_each(l.outcomes) e CROSS JOIN outcomes o ON o.id = e.value"
    " WHERE l.id IN (SELECT list FROM recent)"
)
"""The check lists and outcomes of the last `?` releases with checks (any run's: they are content) of each
(image, digest) in the JSON array `?`, each list once: what tonight's releases of those digests reuse. One
index seek per digest (releases_by_digest); an unchanged digest's releases all share one list."""
REUSED_RELEASES = 2
"""How many of a digest's last releases tonight's outcomes are looked up in: an outcome back after one night
of another (a check that errored on a registry hiccup, then passes again) is found, not stored again; one
gone longer is stored again. Not an index of every outcome ever stored: its random inserts cost a page write
per new outcome, finish_run 63 ms instead of ~25 when every outcome changes (bench/history.py --details
nightly), for the few rows a lookup in the last releases misses."""
LAST_TAGS = (
    "WITH RECURSIVE listed(image) AS ("
    "  SELECT MIN(image) FROM observations"
    "  UNION ALL SELECT (SELECT MIN(image) FROM observations WHERE image > listed.image)"
    "  FROM listed WHERE listed.image IS NOT NULL)"
    " SELECT o.image, o.tag, o.digest FROM listed CROSS JOIN observations o"  # CROSS: each image, then its rows
    " ON o.image = listed.image AND o.run_id = ("
    "  SELECT l.run_id FROM observations l JOIN runs ON runs.id = l.run_id"
    "  WHERE l.image = listed.image AND l.run_id < ? AND runs.status = 'complete'"
    "  ORDER BY l.run_id DESC LIMIT 1)"
)
"""Per image ever listed, its tags as the last complete run before `?` that listed it saw them. The images
are walked one index seek each (observations_by_image; SQLite has no loose index scan), so the cost is a
few seeks per image rather than a pass over every night's observations."""
