"""`imgcheck audit` against the real registry: a release history made by the fixture builder, changed
between audit runs the way things go wrong in a registry (a release tag re-pushed, a signature
deleted, a new critical CVE reported for an old release, a release deleted)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from needs import require_tool

from fixtures.k2 import K2_NAMES, PREVIOUS_SEMVER, PublishedImage, SampleRelease, publish_sample_release, push_k2_image
from fixtures.security import BUSYBOX_AWK_UAF, XZ_BACKDOOR, trivy_report
from fixtures.supplychain import DEMO_PUBLIC_KEY, sign_image
from imgcheck.audit.cache import CachingClient
from imgcheck.audit.command import run_audit, run_merge
from imgcheck.audit.store import HistoryStore
from imgcheck.checks.interface import VerifyOptions
from imgcheck.errors import InputError
from imgcheck.gather import Gatherer
from imgcheck.policy.loader import load_policy
from imgcheck.policy.model import Policy
from imgcheck.registry.reference import Reference
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parents[1]
OLDER_SEMVER = replace(PREVIOUS_SEMVER, revision="7" * 40, version="1.3.0", created="2026-11-06T09:00:00Z")


def audit_policy(path: Path, namespace: str) -> Path:
    images = "\n".join(f"  - {{name: {n}, repository: {namespace}/k2-market-data-platform-{n}}}" for n in K2_NAMES)
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            registry: 127.0.0.1:5000
            images:
            {{images}}
            rules:
              size: {{max_compressed: 500MB}}
              labels:
                required: [org.opencontainers.image.source, org.opencontainers.image.revision]
                version_matches_tag: true
                created_not_in_future: true
              tags: {{required: ['v?\\d+\\.\\d+\\.\\d+', 'sha-[0-9a-f]{{7,40}}']}}
              config: {{non_root: true, healthcheck: true}}
              platforms: {{required: [linux/amd64]}}
              signature: {{keys: ['{DEMO_PUBLIC_KEY}']}}
              vulnerabilities: {{fail_on: [CRITICAL], max_age: 24h}}
            """
        ).replace("{images}", images)
    )
    return path


@dataclass
class History:
    """A published history of three k2 releases (1.3.0, 1.4.1, 1.4.2), signed and scanned."""

    host: str
    pusher: Pusher
    release: SampleRelease
    older: dict[str, PublishedImage]
    signatures: dict[str, str]
    """image digest -> its `.sig` manifest digest."""
    reports: Path
    policy: Policy

    def all_images(self) -> list[PublishedImage]:
        return [*self.release.images, *self.older.values()]

    def scan(self, image: PublishedImage, findings: list[dict[str, Any]]) -> None:
        doc = trivy_report(image, findings, created=datetime.now(UTC))
        (self.reports / f"{image.name}-{image.digest[7:19]}.trivy.json").write_text(json.dumps(doc))

    def options(self) -> VerifyOptions:
        return VerifyOptions(
            registry_override=self.host, no_smoke=True, trivy_reports=(self.reports,), policy_dir=self.policy.base_dir
        )


def publish_history(registry: RegistryServer, pusher: Pusher, tmp: Path, namespace: str) -> History:
    release = publish_sample_release(
        pusher, registry.host, namespace=namespace, semver=True, platforms=("linux/amd64",)
    )
    older = {}
    for name in K2_NAMES:
        repo = f"{namespace}/k2-market-data-platform-{name}"
        older[name] = push_k2_image(
            pusher, repo, name=name, build=OLDER_SEMVER, tags=("v1.3.0", f"sha-{OLDER_SEMVER.sha7}")
        )
    reports = tmp / "reports"
    reports.mkdir()
    history = History(
        registry.host, pusher, release, older, {}, reports, load_policy(audit_policy(tmp / "audit.yaml", namespace))
    )
    for image in history.all_images():
        history.signatures[image.digest] = sign_image(pusher, registry.host, image.repository, image.digest)
        history.scan(image, [BUSYBOX_AWK_UAF])
    return history


def audit_json(history: History, db: Path, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    code = run_audit(history.policy, history.options(), history=db, output_format="json", out=out, **kwargs)
    return code, json.loads(out.getvalue())


def kinds(doc: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    return {(d["kind"], d["image"], d["subject"]): d["severity"] for d in doc["drift"]}


def test_audit_finds_drift_between_runs_and_keeps_history(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    h = publish_history(registry, pusher, tmp_path, "audit-drift")
    db = tmp_path / "history.sqlite"

    code, first = audit_json(h, db)
    assert code == 0, [
        (r["image"], r["tags"], r["verdict"], r.get("error"), r["checks"])
        for r in first["releases"]
        if r["verdict"] != "pass"
    ]
    assert first["schema"] == "imgcheck.audit/v1"
    assert first["drift_checked"] and first["previous_run"] is None and first["drift"] == []
    producer = next(i for i in first["images"] if i["name"] == "producer")
    assert len(producer["tags"]) == 7 and len(producer["verified"]) == 3  # 3 digests, each verified once
    rel = next(r for r in first["releases"] if r["image"] == "producer" and "v1.4.2" in r["tags"])
    assert sorted(rel["tags"]) == sorted(["latest", "v1.4.2", f"sha-{h.release.current[0].build.sha7}"])

    # What goes wrong overnight.
    prod_new, prod_old = h.release.image("producer"), h.release.image("producer", previous=True)
    h.pusher.tag(prod_new.repository, prod_new.digest, "v1.4.1")  # a release tag re-pushed: must fail
    cons_old = h.release.image("consumer", previous=True)
    h.pusher.tag(cons_old.repository, cons_old.digest, "latest")  # latest moving: shown, expected
    qe_old = h.release.image("query-engine", previous=True)
    h.pusher.delete_manifest(qe_old.repository, h.signatures[qe_old.digest])  # signature deleted
    h.scan(cons_old, [BUSYBOX_AWK_UAF, XZ_BACKDOOR])  # tonight's scan: a new CRITICAL in an old release
    h.pusher.delete_manifest(h.older["query-engine"].repository, h.older["query-engine"].digest)  # release deleted

    code, second = audit_json(h, db)
    assert code == 1
    drift = kinds(second)
    assert drift[("tag-moved", "producer", "v1.4.1")] == "fail"
    assert drift[("tag-moved", "consumer", "latest")] == "info"
    assert drift[("attachment-vanished", "query-engine", qe_old.digest)] == "fail"
    assert drift[("new-cve", "consumer", cons_old.digest)] == "fail"
    assert drift[("tag-disappeared", "query-engine", "v1.3.0")] == "fail"
    assert ("tag-moved", "producer", "sha-" + prod_old.build.sha7) not in drift
    assert second["drift"][0]["severity"] == "fail"  # most serious first
    assert second["previous_run"] == first["started_at"]
    cve = next(d for d in second["drift"] if d["kind"] == "new-cve")
    assert "CVE-2024-3094" in cve["message"] and "xz-utils" in cve["message"]

    # A third run: the same state, so nothing new drifted; the history holds all three runs.
    code, third = audit_json(h, db)
    assert [d for d in third["drift"] if d["severity"] == "fail"] == []
    assert code == 1  # the old consumer release still fails on its CRITICAL and the signature is still gone
    with HistoryStore.open(db) as store:
        runs = store.runs()
        assert [r[2] for r in runs] == ["complete"] * 3
        assert [r[3] for r in runs] == ["pass", "fail", "fail"]
        assert len(store.nights()) == 3
    assert len(third["history"]) == 3


def test_tags_bound_and_smoke_latest_choose_digests(registry: RegistryServer, pusher: Pusher, tmp_path: Path) -> None:
    h = publish_history(registry, pusher, tmp_path, "audit-bounds")
    code, doc = audit_json(h, tmp_path / "h.sqlite", tags=1)
    assert code == 0
    for image in doc["images"]:
        assert len(image["verified"]) == 1 and image["not_selected"] == 2
    assert all("v1.4.2" in r["tags"] for r in doc["releases"])
    _code, since = audit_json(h, tmp_path / "h2.sqlite", since="2026-11-10")
    assert sorted({v for r in since["releases"] for v in r["tags"] if v.startswith("v")}) == ["v1.4.1", "v1.4.2"]


def test_cache_serves_immutable_content_without_the_registry(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    h = publish_history(registry, pusher, tmp_path, "audit-cache")
    db = tmp_path / "h.sqlite"
    assert audit_json(h, db)[0] == 0
    image = h.release.image("producer")
    # An unreachable registry: every byte must come from the cache, re-verified by digest.
    with HistoryStore.open(db) as store, CachingClient(store, timeout=5, max_attempts=1) as client:
        facts = Gatherer(client).gather(
            "producer", Reference("127.0.0.1:9", image.repository, digest=image.digest), need_tags=False
        )
        assert facts.digest == image.digest
        assert facts.platforms[0].compressed_size == image.compressed_sizes["linux/amd64"]
        assert client.network_reads == 0


def test_shards_partition_digests_and_merge_into_one_report(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    h = publish_history(registry, pusher, tmp_path, "audit-shards")
    paths = []
    seen: list[str] = []
    for index in (1, 2, 3):
        _code, doc = audit_json(h, tmp_path / f"cache-{index}.sqlite", shard=f"{index}/3")
        assert doc["shard"] == f"{index}/3" and not doc["drift_checked"]
        seen += [r["digest"] for r in doc["releases"]]
        path = tmp_path / f"shard-{index}.json"
        path.write_text(json.dumps(doc))
        paths.append(path)
    assert sorted(seen) == sorted({i.digest for i in h.all_images()})  # each digest in exactly one shard
    db = tmp_path / "merged.sqlite"
    out = io.StringIO()
    assert run_merge(paths, history=db, output_format="json", out=out) == 0
    merged = json.loads(out.getvalue())
    assert len(merged["releases"]) == 9 and merged["shard"] is None and merged["drift_checked"]
    with HistoryStore.open(db) as store:
        assert [r[2] for r in store.runs()] == ["complete"]
    with pytest.raises(InputError, match=r"expected each of 1\.\.N"):
        run_merge(paths[:2], history=db, out=io.StringIO())


KILL_SCRIPT = """
import sys, os, time
from pathlib import Path
sys.path.insert(0, {root!r})
from imgcheck.audit.command import run_audit
from imgcheck.checks.interface import VerifyOptions
from imgcheck.policy.loader import load_policy
policy = load_policy(Path({policy!r}))
options = VerifyOptions(registry_override={host!r}, no_smoke=True, trivy_reports=(Path({reports!r}),))
def progress(message):
    if message.startswith("query-engine"):
        Path({marker!r}).write_text("mid-audit")
        time.sleep(600)
run_audit(policy, options, history=Path({db!r}), progress=progress, out=open(os.devnull, "w"))
"""


def kill_at(script: str, marker: Path, where: str, cwd: Path | None = None) -> None:
    """Run `script` in a real interpreter and SIGKILL it once it writes `marker` (it then waits there)."""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, cwd=cwd)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, f"the audit subprocess never reached {where}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_mid_audit_leaves_history_usable(registry: RegistryServer, pusher: Pusher, tmp_path: Path) -> None:
    h = publish_history(registry, pusher, tmp_path, "audit-kill")
    db = tmp_path / "h.sqlite"
    code, first = audit_json(h, db)
    assert code == 0
    marker = tmp_path / "marker"
    script = KILL_SCRIPT.format(
        root=str(ROOT), policy=str(h.policy.path), host=h.host, reports=str(h.reports), marker=str(marker), db=str(db)
    )
    kill_at(script, marker, "query-engine")
    with HistoryStore.open(db) as store:
        runs = store.runs()
        assert [r[2] for r in runs] == ["complete", "running"]  # the killed run never became a "previous run"
        previous = store.previous_run()
        assert previous is not None and previous.started_at == first["started_at"]
        assert previous.tags["producer"]["v1.4.2"] == h.release.image("producer").digest
    code, after = audit_json(h, db)
    assert code == 0 and after["previous_run"] == first["started_at"] and after["drift"] == []


def chromium() -> str:
    return require_tool("chromium", "apt-get install chromium")


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(registry: RegistryServer, pusher: Pusher, tmp_path: Path) -> None:
    from PIL import Image

    browser = chromium()
    h = publish_history(registry, pusher, tmp_path, "audit-html")
    db, page = tmp_path / "h.sqlite", tmp_path / "audit.html"
    audit_json(h, db)
    h.pusher.tag(h.release.image("producer").repository, h.release.image("producer").digest, "v1.4.1")
    run_audit(h.policy, h.options(), history=db, report_files=[("html", page)], out=io.StringIO())
    html = page.read_text()
    assert "http://" not in html.replace(h.host, "") and "<script" not in html  # self-contained, nothing fetched
    base = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('<table class="releases">') == 3 and '<table id="drift">' in dom
    assert 'id="chart"' in dom and "tag-moved" in dom
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1600)
    # The chart's lines are drawn in matplotlib's default blue/orange/green: the PNG decoded and painted.
    colors = {color for _count, color in image.getcolors(maxcolors=1 << 24) or []}
    assert any(abs(r - 31) < 12 and abs(g - 119) < 12 and abs(b - 180) < 12 for r, g, b in colors)
    assert any(abs(r - 255) < 12 and abs(g - 127) < 12 and abs(b - 14) < 12 for r, g, b in colors)
    # The to-do list is above the fold: its box (#fff8c5) is painted within the first 720 pixels of a laptop
    # screen, and holds the re-pushed release first.
    fold = image.crop((0, 0, 1280, 720))
    assert (255, 248, 197) in {color for _count, color in fold.getcolors(maxcolors=1 << 24) or []}
    todo = dom[dom.index('<ol id="todo">') : dom.index("</ol>", dom.index('<ol id="todo">'))]
    assert todo.index("producer:v1.4.1 was re-pushed") < len(todo)


@pytest.mark.engine
def test_smoke_latest_runs_the_newest_release_only_in_a_real_engine(
    engine: EngineHandle, registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """`audit --smoke latest`: the newest release is run (locked down, by digest); older ones say skip."""
    h = publish_history(registry, pusher, tmp_path, "audit-smoke")
    policy_path = Path(str(h.policy.path))
    smoke_rule = "  smoke: {args: ['--version'], timeout: 30s}\n  platforms:"
    policy_path.write_text(policy_path.read_text().replace("  platforms:", smoke_rule))
    h.policy = load_policy(policy_path)
    code, doc = audit_json(h, tmp_path / "h.sqlite", smoke="latest")
    assert code == 0, doc
    newest = {image.digest for image in h.release.current}
    for release in doc["releases"]:
        smoke = [c for c in release["checks"] if c["rule"] == "smoke"]
        assert smoke, release["tags"]
        if release["digest"] in newest:
            assert release["smoke"] is True and {c["verdict"] for c in smoke} == {"pass"}, smoke
            assert any("exited 0" in c["message"] for c in smoke)
        else:
            assert release["smoke"] is False and {c["verdict"] for c in smoke} == {"skip"}, smoke
