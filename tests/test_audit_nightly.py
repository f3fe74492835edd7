"""The nightly audit as the on-call engineer meets it (issue 16), against the real registry: drift is never
lost (a report that cannot be written, a killed or full-disk run leaves last night as the baseline), one
row per cause worst first under a short to-do list, and the same order in Markdown, HTML and JSON."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_audit_registry import ROOT, History, audit_json, kill_at, publish_history

from fixtures.k2 import push_k2_image
from fixtures.security import BUSYBOX_AWK_UAF, XZ_BACKDOOR
from imgcheck.audit.command import run_audit
from imgcheck.audit.store import HistoryStore
from imgcheck.errors import UsageError
from imgcheck.policy.loader import load_policy
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

TINY_POLICY = (
    "version: 1\nregistry: 127.0.0.1:9\nimages:\n  - {name: a, repository: x/a}\n"
    "rules:\n  size: {max_compressed: 1GB}\n"
)


def strict(h: History) -> History:
    """The release policy's tag rules too: latest_is_highest and consistent_across_images."""
    path = Path(str(h.policy.path))
    text = path.read_text().replace(
        "tags: {required: [", "tags: {latest_is_highest: true, consistent_across_images: true, required: ["
    )
    path.write_text(text)
    h.policy = load_policy(path)
    return h


def night_two(h: History) -> None:
    """What went wrong overnight: a release tag re-pushed, `latest` moved back, a new critical CVE."""
    prod_new = h.release.image("producer")
    h.pusher.tag(prod_new.repository, prod_new.digest, "v1.4.1")
    cons_old = h.release.image("consumer", previous=True)
    h.pusher.tag(cons_old.repository, cons_old.digest, "latest")
    h.scan(cons_old, [BUSYBOX_AWK_UAF, XZ_BACKDOOR])


def audit_md(h: History, db: Path, **kwargs: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = run_audit(h.policy, h.options(), history=db, out=out, **kwargs)
    return code, out.getvalue()


def test_an_unwritable_report_fails_fast_and_the_next_night_still_reports_the_drift(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """The issue's reproduction: audit; re-push a release tag; audit with `--report markdown=/proc/x/…`
    (exit 2 before any registry work, nothing recorded); audit again: the re-push is reported."""
    h = publish_history(registry, pusher, tmp_path, "nightly-unwritable")
    db = tmp_path / "h.sqlite"
    assert audit_json(h, db)[0] == 0
    prod_new = h.release.image("producer")
    h.pusher.tag(prod_new.repository, prod_new.digest, "v1.4.1")
    for bad in (Path("/proc/x/audit.md"), tmp_path):  # a folder that cannot exist; a folder, not a file
        with pytest.raises(UsageError, match=r"cannot write --report markdown="):
            run_audit(h.policy, h.options(), history=db, report_files=[("markdown", bad)], out=io.StringIO())
    with HistoryStore.open(db) as store:
        assert [r[2] for r in store.runs()] == ["complete"]  # the failed runs never started
    code, doc = audit_json(h, db)
    assert code == 1
    assert doc["drift"][0]["kind"] == "tag-moved" and doc["drift"][0]["subject"] == "v1.4.1"


def test_the_cli_says_one_line_and_exits_2_before_auditing(tmp_path: Path) -> None:
    """No registry is reachable here (port 9): the report check comes first, so that is the error."""
    policy = tmp_path / "p.yaml"
    policy.write_text(TINY_POLICY)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgcheck",
            "audit",
            "--policy",
            str(policy),
            "--history",
            str(tmp_path / "h.sqlite"),
            "--report",
            "markdown=/proc/x/audit.md",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "cannot write --report markdown=/proc/x/audit.md" in run.stderr
    assert not (tmp_path / "h.sqlite").exists()  # nothing opened, nothing audited


def test_html_without_matplotlib_fails_before_any_registry_work(tmp_path: Path) -> None:
    """A real interpreter where matplotlib cannot be imported (a meta-path blocker, as an install without
    the `html` extra): exit 2 and one line naming the extra, before the unreachable registry is tried."""
    policy = tmp_path / "p.yaml"
    policy.write_text(TINY_POLICY)
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'matplotlib':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from imgcheck.cli import main\n"
        f"sys.argv = ['imgcheck', 'audit', '--policy', {str(policy)!r}, '--history', "
        f"{str(tmp_path / 'h.sqlite')!r}, '--report', 'html={tmp_path / 'a.html'}']\n"
        "main()\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "matplotlib" in run.stderr and "imgcheck[html]" in run.stderr
    assert not (tmp_path / "h.sqlite").exists()


def test_a_full_disk_while_writing_the_report_records_nothing(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """/dev/full takes the open and fails the write with ENOSPC, as a full disk does: exit 2, and the run
    stays `running` (never the baseline), so the next night reports the re-push."""
    h = publish_history(registry, pusher, tmp_path, "nightly-full")
    db = tmp_path / "h.sqlite"
    assert audit_json(h, db)[0] == 0
    prod_new = h.release.image("producer")
    h.pusher.tag(prod_new.repository, prod_new.digest, "v1.4.1")
    with pytest.raises(UsageError, match=r"cannot write --report json=/dev/full: No space left"):
        run_audit(h.policy, h.options(), history=db, report_files=[("json", Path("/dev/full"))], out=io.StringIO())
    with HistoryStore.open(db) as store:
        assert [r[2] for r in store.runs()] == ["complete", "running"]
    code, doc = audit_json(h, db)
    assert code == 1 and ("tag-moved", "v1.4.1") in [(d["kind"], d["subject"]) for d in doc["drift"]]


KILL_AT_REPORT = """
import sys, os, time
from pathlib import Path
sys.path.insert(0, {root!r})
import imgcheck.audit.command as command
from imgcheck.checks.interface import VerifyOptions
from imgcheck.policy.loader import load_policy
policy = load_policy(Path({policy!r}))
options = VerifyOptions(registry_override={host!r}, no_smoke=True, trivy_reports=(Path({reports!r}),))
real_render = command.render
def render(report, fmt):
    Path({marker!r}).write_text("writing the report")
    time.sleep(600)
command.render = render
command.run_audit(policy, options, history=Path({db!r}), out=open(os.devnull, "w"))
"""


def test_sigkill_while_the_report_is_written_keeps_last_night_as_the_baseline(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """A real subprocess killed with SIGKILL after the audit, while its report is being written: its drift
    was computed but never seen, so it must not become the baseline; the next run reports the re-push."""
    h = publish_history(registry, pusher, tmp_path, "nightly-kill")
    db = tmp_path / "h.sqlite"
    code, first = audit_json(h, db)
    assert code == 0
    prod_new = h.release.image("producer")
    h.pusher.tag(prod_new.repository, prod_new.digest, "v1.4.1")
    marker = tmp_path / "marker"
    script = KILL_AT_REPORT.format(
        root=str(ROOT / "src"),
        policy=str(h.policy.path),
        host=h.host,
        reports=str(h.reports),
        marker=str(marker),
        db=str(db),
    )
    kill_at(script, marker, "its report", cwd=ROOT)
    with HistoryStore.open(db) as store:
        assert [r[2] for r in store.runs()] == ["complete", "running"]
    code, after = audit_json(h, db)
    assert code == 1 and after["previous_run"] == first["started_at"]
    assert after["drift"][0]["kind"] == "tag-moved" and after["drift"][0]["subject"] == "v1.4.1"


def test_drift_is_one_row_per_cause_worst_first_with_a_short_to_do_list(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """The issue's night: a re-pushed release tag, `latest` moved back (latest_is_highest then fails on
    every consumer release), a new critical CVE, and a hotfix release. Three causes need a person; the
    re-push is the first row and the first to-do line; the moved `latest` is one failing row listing
    the releases it breaks, and no row calls it expected."""
    h = strict(publish_history(registry, pusher, tmp_path, "nightly-causes"))
    db = tmp_path / "h.sqlite"
    code, first = audit_json(h, db)
    assert code == 0, [(r["image"], r["tags"], r["checks"]) for r in first["releases"] if r["verdict"] != "pass"]
    night_two(h)
    hotfix = h.release.current[2].build
    qe = h.release.image("query-engine")
    from dataclasses import replace

    fixed = replace(hotfix, version="1.4.3", created="2026-11-21T10:00:00Z", revision="9" * 40)
    push_k2_image(
        h.pusher, qe.repository, name="query-engine", build=fixed, tags=("v1.4.3", f"sha-{fixed.sha7}", "latest")
    )
    reports = [("html", tmp_path / "a.html"), ("json", tmp_path / "a.json")]
    code, md = audit_md(h, db, report_files=reports)
    assert code == 1
    doc = json.loads((tmp_path / "a.json").read_text())
    drift = doc["drift"]
    causes = [(d["group"], d["kind"], d["image"], d["subject"]) for d in drift]
    assert causes[0] == ("immutable-tag", "tag-moved", "producer", "v1.4.1"), causes
    assert causes[1][:3] == ("new-cve", "new-cve", "consumer"), causes
    latest = [d for d in drift if d["kind"] == "tag-moved" and d["subject"] == "latest"]
    assert len(latest) == 1 and latest[0]["severity"] == "fail" and latest[0]["group"] == "regression"
    assert sorted(latest[0]["releases"]) == ["v1.3.0", "v1.4.1", "v1.4.2"]
    assert "expected" not in " ".join(d["message"] for d in drift)
    # No other row repeats what a cause row already says: every tags regression was folded into a tag row.
    assert not [d for d in drift if d["kind"] == "verdict-regressed" and d["details"].get("rule") == "tags"]
    groups = [d["group"] for d in drift]
    order = ["immutable-tag", "new-cve", "regression", "warning", "change"]
    assert groups == sorted(groups, key=order.index)
    fails = [d for d in drift if d["severity"] == "fail"]
    assert len(fails) == 3, [d["message"] for d in fails]
    hotfix_rows = [d for d in drift if d["image"] == "query-engine" and d["kind"] == "tag-appeared"]
    assert len(hotfix_rows) == 1 and sorted(hotfix_rows[0]["releases"]) == sorted(["v1.4.3", f"sha-{fixed.sha7}"])
    assert hotfix_rows[0]["severity"] == "info" and "latest moved here" in hotfix_rows[0]["message"]
    assert not [d for d in drift if d["image"] == "query-engine" and d["subject"] == "latest"]  # the same cause
    todo = doc["todo"]
    assert 1 <= len(todo) <= 5 and todo[0]["image"] == "producer" and "re-pushed" in todo[0]["what"]
    assert "docker buildx imagetools create --tag" in todo[0]["fix"] and "v1.4.1" in todo[0]["fix"]
    assert any("move" in t["fix"] or "point latest" in t["fix"] for t in todo)

    # The same order in Markdown and HTML, with the to-do list above everything but the verdict.
    assert md.index("## To do") < md.index("## Drift") < md.index("## Releases")
    todo_block = md[md.index("## To do") : md.index("## Drift")]
    assert 1 <= len(re.findall(r"^\d+\. ", todo_block, re.M)) <= 5
    rows = [line for line in md[md.index("## Drift") : md.index("## Releases")].splitlines() if line.startswith("| ")]
    assert len(rows) - 1 == len(drift)  # one table row per cause (plus the heading row)
    assert [row.split(" | ")[1] for row in rows[1:]] == [d["kind"] for d in drift]
    assert rows[1].split(" | ")[2].startswith("producer v1.4.1")
    html = (tmp_path / "a.html").read_text()
    assert html.index('id="todo"') < html.index('id="drift"') < html.index('id="chart"')
    table = html[html.index('id="drift"') : html.index("</table>", html.index('id="drift"'))]
    assert re.findall(r'<td class="nw kind">([a-z-]+)</td>', table) == [d["kind"] for d in drift]
    assert html.index("v1.4.1", html.index('id="drift"')) < html.index("latest", html.index('id="drift"'))
    # Tags and dates never break at their hyphens in HTML tables.
    assert '<td class="nw">2026-11-20T10:00:00Z</td>' in html and '<span class="nw">sha-' in html
    assert ".nw{white-space:nowrap" in html
    assert "-&gt;" not in md and "&gt;" not in md  # read on a terminal: no HTML entities


def test_a_run_without_a_baseline_says_so_at_the_top(registry: RegistryServer, pusher: Pusher, tmp_path: Path) -> None:
    """An empty (or evicted) history: never a calm "nothing changed" — every report says no baseline."""
    h = publish_history(registry, pusher, tmp_path, "nightly-baseline")
    db = tmp_path / "h.sqlite"
    code, md = audit_md(h, db, report_files=[("json", tmp_path / "a.json"), ("html", tmp_path / "a.html")])
    assert code == 0
    head = md.split("## To do")[0]
    assert "no baseline: drift not checked".lower() in head.lower()
    assert "Nothing changed" not in md and "nothing changed" not in md.lower()
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["no_baseline"].startswith("no baseline: drift not checked")
    html = (tmp_path / "a.html").read_text()
    assert html.index('id="baseline"') < html.index('id="todo"')
    code, md = audit_md(h, db)
    assert "no baseline" not in md.lower() and "Nothing changed since the run of" in md
