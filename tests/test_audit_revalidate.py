"""Cheap warm audits without trusting less: tags are revalidated with `If-None-Match` only when the
digest they pointed at last night is held, verified, in the history's content-addressed cache; a 304
only ever confirms content already held; a moved tag is read and verified in full; the registry's
word (304, digest header) never replaces hashing the bytes imgcheck actually uses.

Requests are read from the real registry's JSON log (each test uses its own repositories) and, where
the headers matter, from the fault proxy's record of what imgcheck sent.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from faultproxy import Fault, FaultProxy

from fixtures.images import FileEntry, ImageConfig, Pushed, build_layer, push_image
from imgcheck import semver
from imgcheck.audit.command import run_audit
from imgcheck.audit.inventory import take_snapshot
from imgcheck.checks.interface import VerifyOptions
from imgcheck.errors import DigestMismatchError, RegistryError
from imgcheck.gather import Gatherer
from imgcheck.policy.loader import load_policy
from imgcheck.registry.client import ACCEPT_MANIFESTS, RegistryClient
from imgcheck.registry.reference import Reference
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

POLICY = """\
version: 1
registry: 127.0.0.1:5000
images:
  - {{name: app, repository: {repo}}}
rules:
  labels: {{required: [org.opencontainers.image.revision]}}
  tags: {{required: ['v?\\d+\\.\\d+\\.\\d+'], latest_is_highest: true}}
  config: {{non_root: true}}
"""


def release(pusher: Pusher, repo: str, n: int, tags: tuple[str, ...]) -> Pushed:
    """A tiny image with its own content (so its own digest), pushed under `tags`."""
    revision = hashlib.sha1(f"{repo}-{n}".encode()).hexdigest()
    layer = build_layer({"app/version": FileEntry(f"{repo} {n}\n".encode())})
    config = ImageConfig(
        created=f"2026-11-{1 + n:02d}T10:00:00Z", labels={"org.opencontainers.image.revision": revision}
    )
    return push_image(pusher, repo, [layer], config, tags)


def publish(pusher: Pusher, repo: str) -> dict[str, Pushed]:
    return {
        "1.0.0": release(pusher, repo, 0, ("v1.0.0", "sha-aaaaaaa")),
        "1.0.1": release(pusher, repo, 1, ("v1.0.1", "sha-bbbbbbb")),
        "1.1.0": release(pusher, repo, 2, ("v1.1.0", "sha-ccccccc", "latest")),
    }


def log_mark(registry: RegistryServer) -> int:
    return len(registry.log_path.read_bytes())


def requests_since(registry: RegistryServer, mark: int, repo: str) -> Counter[tuple[str, str, int]]:
    """(kind, name, status) of every request for `repo` the registry logged after `mark`:
    kind is `manifests`, `blobs` or `tags`; name is the tag or digest."""
    seen: Counter[tuple[str, str, int]] = Counter()
    for line in registry.log_path.read_bytes()[mark:].decode(errors="replace").splitlines():
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        uri = str(entry.get("http.request.uri", ""))
        status = entry.get("http.response.status")
        if f"/v2/{repo}/" not in uri or not isinstance(status, int):
            continue
        kind, _, name = uri.split(f"/v2/{repo}/", 1)[1].partition("/")
        seen[(kind, name.split("?")[0], status)] += 1
    return seen


def audit(host: str, repo: str, tmp: Path, db: Path) -> tuple[int, dict[str, Any]]:
    path = tmp / f"{repo.replace('/', '-')}.yaml"
    path.write_text(POLICY.format(repo=repo))
    out = io.StringIO()
    code = run_audit(
        load_policy(path),
        VerifyOptions(registry_override=host, no_smoke=True),
        history=db,
        output_format="json",
        out=out,
    )
    return code, json.loads(out.getvalue())


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    return {r["digest"]: r["verdict"] for r in doc["releases"]}


def test_warm_audit_gets_304s_for_unmoved_tags_and_reads_a_moved_tag_in_full(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    repo = "revalidate/warm"
    pushed = publish(pusher, repo)
    db = tmp_path / "h.sqlite"
    mark = log_mark(registry)
    cold_code, cold = audit(registry.host, repo, tmp_path, db)
    cold_requests = requests_since(registry, mark, repo)
    assert cold_code == 0, cold
    assert all(status == 200 for _kind, _name, status in cold_requests)
    assert sum(n for (kind, _, _), n in cold_requests.items() if kind == "blobs") == 3  # one config per digest

    moved = release(pusher, repo, 3, ("v1.0.1",))  # a release tag re-pushed: must be seen, read and verified
    mark = log_mark(registry)
    warm_code, warm = audit(registry.host, repo, tmp_path, db)
    warm_requests = requests_since(registry, mark, repo)

    tags_seen = {name: status for (kind, name, status) in warm_requests if kind == "manifests"}
    assert tags_seen["v1.0.1"] == 200
    assert {s for t, s in tags_seen.items() if t != "v1.0.1"} == {304}
    assert len(tags_seen) == 7, tags_seen  # every tag asked once, nothing skipped
    # The only content read is the moved tag's config; every other byte came from the verified cache.
    assert [(kind, name) for (kind, name, _s) in warm_requests if kind == "blobs"] == [
        ("blobs", json.loads(registry_manifest(registry, repo, moved.digest))["config"]["digest"])
    ]
    assert warm["images"][0]["tags"]["v1.0.1"] == moved.digest
    assert warm["images"][0]["tags"]["v1.1.0"] == pushed["1.1.0"].digest
    drift = {(d["kind"], d["subject"]): d["severity"] for d in warm["drift"]}
    assert any(subject == "v1.0.1" and severity == "fail" for (_k, subject), severity in drift.items())
    assert warm_code == 1  # a release tag moved
    assert verdicts(warm)[pushed["1.1.0"].digest] == verdicts(cold)[pushed["1.1.0"].digest] == "pass"


def registry_manifest(registry: RegistryServer, repo: str, digest: str) -> bytes:
    with RegistryClient() as client:
        return client.get_manifest(registry.host, repo, digest).raw


def test_tags_whose_content_is_not_cached_are_read_in_full(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    repo = "revalidate/uncached"
    publish(pusher, repo)
    db = tmp_path / "h.sqlite"
    with FaultProxy(registry.host) as proxy:
        assert audit(proxy.host, repo, tmp_path, db)[0] == 0
        assert not [s for s in proxy.seen if "If-None-Match" in s.headers]  # nothing held on a first run
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM blobs")  # the cache is gone; last night's tag map is not
        proxy.clear()
        code, doc = audit(proxy.host, repo, tmp_path, db)
        asked = [s for s in proxy.seen if "/manifests/" in s.path]
    assert code == 0 and doc["drift"] == []
    assert asked and not [s for s in asked if "If-None-Match" in s.headers]
    assert len([s for s in proxy.seen if "/blobs/" in s.path]) == 3  # re-read and re-verified


def test_a_304_nobody_asked_for_is_an_error_not_a_tag(registry: RegistryServer, pusher: Pusher) -> None:
    repo = "revalidate/hostile304"
    pushed = publish(pusher, repo)
    with FaultProxy(registry.host) as proxy, RegistryClient(max_attempts=1) as client:
        proxy.add(Fault("serve", rf"/v2/{repo}/manifests/latest$", count=-1, status=304))
        with pytest.raises(RegistryError, match="HTTP 304"):
            client.resolve(Reference(proxy.host, repo, tag="latest"))
        with pytest.raises(RegistryError, match="HTTP 304"):
            client.find_manifest(proxy.host, repo, "latest")
        # Asked about a digest, a 304 confirms only that digest: the caller already holds its content.
        state = client.revalidate_tag(proxy.host, repo, "latest", pushed["1.0.0"].digest)
    assert state is not None and state.digest == pushed["1.0.0"].digest and state.manifest is None


def test_a_digest_header_that_disagrees_with_the_body_fails_revalidation(
    registry: RegistryServer, pusher: Pusher
) -> None:
    repo = "revalidate/lying-header"
    pushed = publish(pusher, repo)
    good = registry_manifest(registry, repo, pushed["1.1.0"].digest)
    tampered = good.replace(b'"size":', b'"size": ', 1)
    assert tampered != good
    headers = (
        ("Content-Type", ACCEPT_MANIFESTS.split(",")[1].strip()),
        ("Docker-Content-Digest", pushed["1.1.0"].digest),
    )
    with FaultProxy(registry.host) as proxy, RegistryClient(max_attempts=1) as client:
        proxy.add(
            Fault("serve", rf"/v2/{repo}/manifests/latest$", count=-1, status=200, body=tampered, headers=headers)
        )
        with pytest.raises(DigestMismatchError):
            client.revalidate_tag(proxy.host, repo, "latest", pushed["1.0.0"].digest)
        with pytest.raises(DigestMismatchError):
            client.revalidate_tag(proxy.host, repo, "latest", pushed["1.1.0"].digest)  # 200 ≠ 304: verified


def test_tampered_registry_content_never_passes_cold_or_warm(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """After a good night the registry's stored bytes for a config are replaced. Warm: tags still
    resolve to the same digests, whose content comes from the verified cache (the tampered bytes are
    never read, so they cannot change a verdict). Cold, with nothing cached: exit 2, not a pass."""
    repo = "revalidate/tampered"
    pushed = publish(pusher, repo)
    db = tmp_path / "h.sqlite"
    code, before = audit(registry.host, repo, tmp_path, db)
    assert code == 0
    config = json.loads(registry_manifest(registry, repo, pushed["1.1.0"].digest))["config"]["digest"]
    blob = registry.blob_path(config)
    original = blob.read_bytes()
    try:
        assert b"1000" in original  # the user; same length, so only the hash can tell
        blob.write_bytes(original.replace(b"1000", b"0000", 1))
        warm_code, warm = audit(registry.host, repo, tmp_path, db)
        assert warm_code == 0 and verdicts(warm) == verdicts(before)
        cold_code, cold = audit(registry.host, repo, tmp_path, tmp_path / "fresh.sqlite")
        assert cold_code == 2
        release_of = {r["digest"]: r for r in cold["releases"]}
        assert release_of[pushed["1.1.0"].digest]["verdict"] == "error"
        assert "hash" in (release_of[pushed["1.1.0"].digest]["error"] or "")
    finally:
        blob.write_bytes(original)


def test_verify_reads_a_digest_once_however_many_tags_point_at_it(registry: RegistryServer, pusher: Pusher) -> None:
    """`latest`, `main`, `main-<sha>` on one digest: the target is resolved with one GET, the other tags
    on it cost a 304 each; a tag elsewhere is read and verified."""
    repo = "revalidate/verify"
    here = release(pusher, repo, 0, ("latest", "main", "main-1111111"))
    other = release(pusher, repo, 1, ("main-2222222",))
    mark = log_mark(registry)
    with RegistryClient() as client:
        facts = Gatherer(client).gather("app", Reference(registry.host, repo, tag="latest"), need_tags=True)
    seen = requests_since(registry, mark, repo)
    assert facts.digest == here.digest
    assert facts.tags_on_digest == ("latest", "main", "main-1111111")
    assert {t.tag: t.digest for t in facts.repo_tags} == {
        "latest": here.digest,
        "main": here.digest,
        "main-1111111": here.digest,
        "main-2222222": other.digest,
    }
    manifests = {(name, status): n for (kind, name, status), n in seen.items() if kind == "manifests"}
    assert manifests == {("latest", 200): 1, ("main", 304): 1, ("main-1111111", 304): 1, ("main-2222222", 200): 1}


def test_semver_memo_hands_out_fresh_lists() -> None:
    tags = ["v1.2.0", "latest", "1.10.0", "v1.9.9", "1.4", "2.0.0-rc.1"]
    first = semver.releases(tags)
    first.clear()  # a caller mutating its list must not change what the next caller gets
    again = semver.releases(iter(tags))
    assert [r.tag for r in again] == ["v1.2.0", "v1.9.9", "1.10.0", "2.0.0-rc.1"]
    assert semver.highest(tags) is not None and semver.highest(tags).tag == "1.10.0"  # type: ignore[union-attr]
    assert semver.parse_release("v1.9.9") is semver.parse_release("v1.9.9")
    assert semver.parse_release("main-1a2b3c4") is None


def test_damaged_cache_entries_are_errors_however_they_are_read(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """A warm run reads last night's manifests and their configs from the cache in bulk; an entry that
    no longer hashes to its digest is never used: a manifest makes the image an error, a config the
    digests whose facts need it (the repository's tag facts read every config), exit 2 either way."""
    repo = "revalidate/damaged"
    pushed = publish(pusher, repo)
    config = json.loads(registry_manifest(registry, repo, pushed["1.0.1"].digest))["config"]["digest"]
    for digest in (config, pushed["1.0.1"].digest):
        db = tmp_path / f"{digest[7:19]}.sqlite"
        assert audit(registry.host, repo, tmp_path, db)[0] == 0
        with sqlite3.connect(db) as conn:
            (body,) = conn.execute("SELECT body FROM blobs WHERE digest = ?", (digest,)).fetchone()
            conn.execute("UPDATE blobs SET body = ? WHERE digest = ?", (bytes(body) + b" ", digest))
        code, doc = audit(registry.host, repo, tmp_path, db)
        assert code == 2
        errors = [i["error"] for i in doc["images"]] + [r["error"] for r in doc["releases"]]
        damaged = [e for e in errors if e and f"cached content for {digest}" in e and "damaged" in e]
        if digest == config:
            assert doc["images"][0]["error"] is None
            assert len(damaged) == len(doc["releases"]) == 3 and all(r["checks"] == [] for r in doc["releases"])
        else:
            assert damaged == [doc["images"][0]["error"]] and doc["releases"] == []


def test_a_failed_tag_read_is_reported_for_the_first_failing_tag_in_listing_order(
    registry: RegistryServer, pusher: Pusher
) -> None:
    repo = "revalidate/failing"
    publish(pusher, repo)
    with FaultProxy(registry.host) as proxy, RegistryClient(max_attempts=1) as client:
        proxy.add(Fault("status", rf"/v2/{repo}/manifests/(v1\.1\.0|sha-bbbbbbb)$", count=-1, status=500))
        with pytest.raises(RegistryError) as err:
            take_snapshot(client, proxy.host, repo, workers=8)
        asked = {s.path.rsplit("/", 1)[-1] for s in proxy.seen if "/manifests/" in s.path}
    assert "sha-bbbbbbb" in str(err.value) and "v1.1.0" not in str(err.value)  # the listing is sorted
    assert asked == {"latest", "sha-aaaaaaa", "sha-bbbbbbb", "sha-ccccccc", "v1.0.0", "v1.0.1", "v1.1.0"}
