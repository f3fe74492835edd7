"""The five metadata rules (size, labels, tags, config, platforms) judged on real image metadata.

Facts are built the way the gatherer builds them, from real manifests, an index and image configs
(tests/data/metadata/README.md); each test varies one field and derives the expected verdict from the data.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imgcheck import semver as _semver
from imgcheck.checks import all_rules
from imgcheck.checks import config as config_rule
from imgcheck.checks import labels as labels_rule
from imgcheck.checks import platforms as platforms_rule
from imgcheck.checks import size as size_rule
from imgcheck.checks import tags as tags_rule
from imgcheck.checks.interface import Finding, RunContext
from imgcheck.facts import Descriptor, ImageFacts, PlatformFacts, TagFacts
from imgcheck.policy.types import ByteSize, Percent, format_bytes
from imgcheck.verdict import Verdict

DATA = Path(__file__).parent / "data" / "metadata"
MANIFEST_FILE = "containers-image__dir-img-cosign-valid__manifest.json"
INDEX_FILE = "slsa-verifier__index-e0a0a765.json"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SECRET_PATTERN = re.compile(r"(?i).*(password|secret|token|api_?key).*")


# ---------------------------------------------------------------- building facts like the gatherer does


def _metadata(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def image_config(name: str) -> dict[str, Any]:
    """The image config JSON of a real image (Trivy's Metadata.ImageConfig)."""
    config: dict[str, Any] = _metadata(name)["ImageConfig"]
    return config


def with_config(config: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy with keys of its `config` section replaced (None deletes the key)."""
    result = copy.deepcopy(dict(config))
    section = result.setdefault("config", {})
    for key, value in changes.items():
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    return result


def with_labels(config: Mapping[str, Any], **labels: str | None) -> dict[str, Any]:
    """`with_labels(c, org_opencontainers_image_version="1.0")`: underscores stand for dots."""
    result = copy.deepcopy(dict(config))
    current = dict(result.get("config", {}).get("Labels") or {})
    for key, value in labels.items():
        name = key.replace("_", ".")
        if value is None:
            current.pop(name, None)
        else:
            current[name] = value
    result.setdefault("config", {})["Labels"] = current
    return result


def platform_name(config: Mapping[str, Any]) -> str:
    parts = [str(config["os"]), str(config["architecture"])]
    if config.get("variant"):
        parts.append(str(config["variant"]))
    return "/".join(parts)


def platform_facts(config: Mapping[str, Any], manifest_bytes: bytes | None = None) -> PlatformFacts:
    raw = manifest_bytes if manifest_bytes is not None else (DATA / MANIFEST_FILE).read_bytes()
    manifest = json.loads(raw)
    layers = tuple(Descriptor(layer["mediaType"], layer["digest"], layer["size"]) for layer in manifest["layers"])
    return PlatformFacts(
        platform=platform_name(config),
        manifest_digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        manifest=manifest,
        config_digest=manifest["config"]["digest"],
        config=config,
        layers=layers,
        config_size=manifest["config"]["size"],
    )


def facts_of(
    *platforms: PlatformFacts,
    name: str = "producer",
    tag: str | None = None,
    tags_on_digest: tuple[str, ...] = (),
    repo_tags: tuple[TagFacts, ...] = (),
    previous_release: TagFacts | None = None,
    extras: Mapping[str, Any] | None = None,
    index: Mapping[str, Any] | None = None,
    digest: str | None = None,
) -> ImageFacts:
    if digest is None:
        digest = (
            "sha256:" + hashlib.sha256(json.dumps(index).encode()).hexdigest()
            if index
            else platforms[0].manifest_digest
        )
    return ImageFacts(
        name=name,
        registry="ghcr.io",
        repository=f"rjdscott/k2-market-data-platform-{name}",
        reference=f"ghcr.io/rjdscott/k2-market-data-platform-{name}:{tag or 'latest'}",
        tag=tag,
        digest=digest,
        media_type=(index or platforms[0].manifest)["mediaType"],
        platforms=platforms,
        index_manifest=index,
        tags_on_digest=tags_on_digest,
        repo_tags=repo_tags,
        previous_release=previous_release,
        extras=extras or {},
    )


def run_of(*images: ImageFacts, now: datetime = NOW) -> RunContext:
    return RunContext(now=now, images={i.name: i for i in images})


@pytest.fixture
def alpine() -> PlatformFacts:
    """alpine 3.10: the real manifest and its real config (manifest config digest = Trivy's ImageID)."""
    meta = _metadata("trivy-alpine-310.metadata.json")
    manifest = json.loads((DATA / MANIFEST_FILE).read_text())
    assert manifest["config"]["digest"] == meta["ImageID"]
    return platform_facts(meta["ImageConfig"])


@pytest.fixture
def juice() -> dict[str, Any]:
    return image_config("juice-shop-v12.10.2.metadata.json")


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


# Real digests from the corpus, used as "other tags" of the repository.
D_INDEX = "sha256:e0a0a765d690a5104331cfbac88ebbbf01736c1f87aaa3cd455c516a5ea586a5"
D_SIGNED = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
D_REKOR = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
D_ATT = "sha256:31cc4fb663c8d34e2e6a0bd5f183d576c2811ee286e0998b4c2965e3b35a0d86"


# ---------------------------------------------------------------- size


@pytest.mark.parametrize("delta", [0, -1, 1_000_000])
def test_size_compressed_budget_at_and_around_the_real_size(alpine: PlatformFacts, delta: int) -> None:
    actual = alpine.config_size + sum(layer.size for layer in alpine.layers)
    budget = ByteSize(actual + delta)
    finding = only(size_rule.check(facts_of(alpine), size_rule.Config(max_compressed=budget), run_of()))
    assert finding.verdict is (Verdict.PASS if actual <= budget else Verdict.FAIL)
    assert finding.platform == "linux/amd64"
    assert format_bytes(actual) in finding.message
    assert finding.details["bytes"] == actual and finding.details["budget"] == budget
    assert finding.details["layers"] == len(alpine.layers)
    if finding.verdict is Verdict.FAIL:
        largest = max(layer.size for layer in alpine.layers)
        assert f"largest {format_bytes(largest)}" in finding.message
        assert "raise size.max_compressed" in finding.message


@pytest.mark.parametrize("previous_ratio", [1.0, 1 / 1.2, 1 / 1.05, 1.5])
def test_size_growth_against_previous_release(alpine: PlatformFacts, previous_ratio: float) -> None:
    actual = alpine.compressed_size
    before = int(actual * previous_ratio)
    previous = TagFacts(tag="v1.4.1", digest=D_SIGNED, compressed_sizes={"linux/amd64": before})
    limit = Percent.parse("10%")
    facts = facts_of(alpine, tag="v1.4.2", previous_release=previous)
    finding = only(size_rule.check(facts, size_rule.Config(max_growth=limit), run_of()))
    growth = (actual - before) / before
    assert finding.verdict is (Verdict.FAIL if growth > limit else Verdict.PASS)
    assert f"since v1.4.1 ({format_bytes(before)} → {format_bytes(actual)}), max 10%" in finding.message
    assert f"{abs(growth) * 100:.1f}%" in finding.message


def test_size_growth_without_previous_release_or_platform_is_a_noted_pass(alpine: PlatformFacts) -> None:
    config = size_rule.Config(max_growth=Percent.parse("10%"))
    first = only(size_rule.check(facts_of(alpine), config, run_of()))
    assert first.verdict is Verdict.PASS and "no previous" in first.message
    arm_only = TagFacts(tag="v1.4.1", digest=D_SIGNED, compressed_sizes={"linux/arm64": 1})
    new_platform = only(size_rule.check(facts_of(alpine, previous_release=arm_only), config, run_of()))
    assert new_platform.verdict is Verdict.PASS and "linux/amd64" in new_platform.message


def test_size_uncompressed_is_skipped_without_a_pull_never_passed(alpine: PlatformFacts) -> None:
    finding = only(size_rule.check(facts_of(alpine), size_rule.Config(max_uncompressed=ByteSize(10**12)), run_of()))
    assert finding.verdict is Verdict.SKIP
    assert "uncompressed size needs a pull (smoke run)" in finding.message


@pytest.mark.parametrize("budget_mb", [5, 6])
def test_size_uncompressed_from_engine_evidence(alpine: PlatformFacts, budget_mb: int) -> None:
    pulled = int(_metadata("trivy-alpine-310.metadata.json")["Size"])  # what the engine reported for this image
    facts = facts_of(alpine, extras={"uncompressed_sizes": {"linux/amd64": pulled}})
    budget = ByteSize.parse(f"{budget_mb}MB")
    finding = only(size_rule.check(facts, size_rule.Config(max_uncompressed=budget), run_of()))
    assert finding.verdict is (Verdict.PASS if pulled <= budget else Verdict.FAIL)
    assert format_bytes(pulled) in finding.message


def test_size_reports_every_platform_and_errors_without_any(alpine: PlatformFacts, juice: dict[str, Any]) -> None:
    arm = platform_facts({**juice, "architecture": "arm64", "variant": "v8"})
    findings = size_rule.check(facts_of(alpine, arm), size_rule.Config(max_compressed=ByteSize(10**9)), run_of())
    assert [f.platform for f in findings] == ["linux/amd64", "linux/arm64/v8"]
    empty = facts_of(alpine)
    empty = ImageFacts(**{**empty.__dict__, "platforms": ()})
    assert only(size_rule.check(empty, size_rule.Config(max_compressed=ByteSize(1)), run_of())).verdict is Verdict.ERROR


# ---------------------------------------------------------------- labels

OCI = "org.opencontainers.image."


def test_labels_real_juice_shop_created_label_is_not_rfc3339(juice: dict[str, Any]) -> None:
    """juice-shop v12.10.2 really ships `created` wrapped in curly quotes: a bad label, never a pass."""
    raw = juice["config"]["Labels"][OCI + "created"]
    assert labels_rule.parse_rfc3339(raw) is None
    config = labels_rule.Config(required=(OCI + "source", OCI + "created"), created_not_in_future=True)
    finding = only(labels_rule.check(facts_of(platform_facts(juice)), config, run_of()))
    assert finding.verdict is Verdict.FAIL
    assert "not an RFC 3339" in finding.message and raw in finding.message


def test_labels_required_missing_and_empty_are_listed_together(juice: dict[str, Any], alpine: PlatformFacts) -> None:
    required = (OCI + "source", OCI + "revision", OCI + "version")
    config = labels_rule.Config(required=required)
    present = only(labels_rule.check(facts_of(platform_facts(juice)), config, run_of()))
    assert present.verdict is (
        Verdict.PASS if all(juice["config"]["Labels"].get(k, "").strip() for k in required) else Verdict.FAIL
    )
    blank = with_labels(juice, org_opencontainers_image_source="  ", org_opencontainers_image_revision=None)
    finding = only(labels_rule.check(facts_of(platform_facts(blank)), config, run_of()))
    assert finding.verdict is Verdict.FAIL
    assert f"missing {OCI}revision" in finding.message and f"empty {OCI}source" in finding.message
    none_at_all = only(labels_rule.check(facts_of(alpine), config, run_of()))  # alpine has no labels
    assert none_at_all.verdict is Verdict.FAIL
    assert all(k in none_at_all.message for k in required)


@pytest.mark.parametrize("pattern", [r"[0-9a-f]{40}", r"[0-9a-f]{7,40}", r"https://github\.com/.+"])
def test_labels_match_is_a_full_match(juice: dict[str, Any], pattern: str) -> None:
    revision = juice["config"]["Labels"][OCI + "revision"]  # a 7-character short sha in the real image
    config = labels_rule.Config(match={OCI + "revision": re.compile(pattern)})
    finding = only(labels_rule.check(facts_of(platform_facts(juice)), config, run_of()))
    assert finding.verdict is (Verdict.PASS if re.fullmatch(pattern, revision) else Verdict.FAIL)
    if finding.verdict is Verdict.FAIL:
        assert repr(revision) in finding.message and repr(pattern) in finding.message


@pytest.mark.parametrize(
    "tags",
    [
        ("v12.10.2", "latest"),
        ("12.10.2", "12.10", "12"),
        ("v12.10.1",),
        ("latest", "main", "main-3d8a93e"),
        ("12.10.2-rc.1",),
    ],
)
def test_labels_version_matches_the_semver_tag(juice: dict[str, Any], tags: tuple[str, ...]) -> None:
    version = juice["config"]["Labels"][OCI + "version"]
    facts = facts_of(platform_facts(juice), tag=tags[0], tags_on_digest=tags)
    finding = only(labels_rule.check(facts, labels_rule.Config(version_matches_tag=True), run_of()))
    semver = [t for t in tags if _semver.parse_release(t)]
    expected = any(t.removeprefix("v") == version for t in semver)
    assert finding.verdict is (Verdict.PASS if expected else Verdict.FAIL)
    if not semver:
        assert "no semver tag points at this digest" in finding.message
    elif not expected:
        assert all(t in finding.message for t in semver) and repr(version) in finding.message


def test_labels_version_label_missing_fails(juice: dict[str, Any]) -> None:
    facts = facts_of(platform_facts(with_labels(juice, org_opencontainers_image_version=None)), tag="v12.10.2")
    finding = only(labels_rule.check(facts, labels_rule.Config(version_matches_tag=True), run_of()))
    assert finding.verdict is Verdict.FAIL and OCI + "version" in finding.message
    # Shown after the rule's name (`labels: missing …`), the message must not start with it again.
    assert not finding.message.startswith("labels") and "labels:" not in finding.message


@pytest.mark.parametrize(
    "offset", [timedelta(days=-400), timedelta(minutes=4), timedelta(minutes=6), timedelta(days=2)]
)
def test_labels_created_not_in_future_allows_five_minutes_of_skew(juice: dict[str, Any], offset: timedelta) -> None:
    created = (NOW + offset).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    facts = facts_of(platform_facts(with_labels(juice, org_opencontainers_image_created=created)))
    finding = only(labels_rule.check(facts, labels_rule.Config(created_not_in_future=True), run_of()))
    assert finding.verdict is (Verdict.PASS if offset <= timedelta(minutes=5) else Verdict.FAIL)
    if finding.verdict is Verdict.FAIL:
        assert "in the future" in finding.message and created in finding.message


def test_labels_created_falls_back_to_the_config(alpine: PlatformFacts) -> None:
    created = labels_rule.parse_rfc3339(str(alpine.config["created"]))  # Go nanoseconds: 2019-08-20T20:19:55.211423266Z
    assert created is not None
    config = labels_rule.Config(created_not_in_future=True)
    for now in (created + timedelta(hours=1), created - timedelta(hours=1)):
        finding = only(labels_rule.check(facts_of(alpine), config, run_of(now=now)))
        assert finding.verdict is (Verdict.PASS if created <= now + timedelta(minutes=5) else Verdict.FAIL)
    missing = platform_facts({k: v for k, v in alpine.config.items() if k != "created"})
    assert only(labels_rule.check(facts_of(missing), config, run_of())).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    "text",
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456789+02:00", "2024-05-01", "2024-05-01T12:00:00", "yesterday"],
)
def test_rfc3339_needs_a_full_date_time_with_offset(text: str) -> None:
    parsed = labels_rule.parse_rfc3339(text)
    has_offset = bool(re.search(r"(Z|[+-]\d\d:\d\d)$", text)) and "T" in text
    assert (parsed is not None) is has_offset
    if parsed is not None:
        assert parsed.tzinfo is not None
        wall = datetime.fromisoformat(text[:19])  # the written clock time, offset applied by hand
        sign, hours, minutes = (
            (1, 0, 0) if text.endswith("Z") else (int(text[-6] + "1"), int(text[-5:-3]), int(text[-2:]))
        )
        offset = sign * timedelta(hours=hours, minutes=minutes)
        assert parsed.astimezone(UTC).replace(tzinfo=None, microsecond=0) == wall - offset


def test_labels_platforms_that_disagree_are_reported_apart(juice: dict[str, Any]) -> None:
    amd = platform_facts(juice)
    arm = platform_facts(with_labels({**juice, "architecture": "arm64"}, org_opencontainers_image_version="12.10.1"))
    facts = facts_of(amd, arm, tag="v12.10.2", tags_on_digest=("v12.10.2",))
    findings = labels_rule.check(facts, labels_rule.Config(version_matches_tag=True), run_of())
    assert {(f.platform, f.verdict) for f in findings} == {("linux/amd64", Verdict.PASS), ("linux/arm64", Verdict.FAIL)}
    same = labels_rule.check(
        facts_of(amd, platform_facts({**juice, "architecture": "arm64"}), tag="v12.10.2"),
        labels_rule.Config(version_matches_tag=True),
        run_of(),
    )
    assert only(same).platform is None and same[0].verdict is Verdict.PASS


# ---------------------------------------------------------------- tags


def release_repo(latest: str | None, *, cosign: bool = True) -> tuple[TagFacts, ...]:
    tags = [
        TagFacts("v1.4.1", D_SIGNED),
        TagFacts("v1.4.2", D_REKOR),
        TagFacts("1.4", D_REKOR),
        TagFacts("v1.5.0-rc.1", D_INDEX),
        TagFacts("main-3d8a93e", D_INDEX),
    ]
    if cosign:  # cosign's signature tag: not an image and not a release
        tags.append(TagFacts(f"sha256-{D_REKOR.split(':')[1]}.sig", D_ATT))
    if latest is not None:
        tags.append(TagFacts("latest", latest))
    return tuple(tags)


@pytest.mark.parametrize("latest", [D_REKOR, D_INDEX, D_SIGNED, None])
def test_tags_latest_is_highest_ignores_prereleases(alpine: PlatformFacts, latest: str | None) -> None:
    repo = release_repo(latest)
    facts = facts_of(alpine, tag="latest", repo_tags=repo)
    finding = only(tags_rule.check(facts, tags_rule.Config(latest_is_highest=True), run_of()))
    releases = [(_semver.parse_release(t.tag), t) for t in repo]
    stable = [(r, t) for r, t in releases if r is not None and not r.prerelease]
    top_release, top_tag = max(stable, key=lambda pair: pair[0].version)
    expected = latest is not None and latest == top_tag.digest
    assert finding.verdict is (Verdict.PASS if expected else Verdict.FAIL)
    if latest is None:
        assert "no `latest` tag" in finding.message
    elif not expected:
        assert top_release.tag in finding.message
        assert latest.split(":")[1][:12] in finding.message and top_tag.digest.split(":")[1][:12] in finding.message


def test_tags_latest_is_highest_without_any_semver_tag_fails(alpine: PlatformFacts) -> None:
    repo = (TagFacts("latest", D_INDEX), TagFacts("main", D_INDEX), TagFacts("main-3d8a93e", D_INDEX))
    finding = only(
        tags_rule.check(facts_of(alpine, repo_tags=repo), tags_rule.Config(latest_is_highest=True), run_of())
    )
    assert finding.verdict is Verdict.FAIL and "no semver release tag" in finding.message


T0 = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("latest_at", [T0 + timedelta(hours=2), T0 + timedelta(hours=1), T0])
def test_tags_latest_is_newest_for_branch_builds(alpine: PlatformFacts, latest_at: datetime) -> None:
    repo = (
        TagFacts("main-0a1b2c3", D_SIGNED, created=T0),
        TagFacts("main-3d8a93e", D_REKOR, created=T0 + timedelta(hours=1)),
        TagFacts("main", D_REKOR, created=T0 + timedelta(hours=1)),
        TagFacts("latest", D_INDEX, created=latest_at),
        TagFacts(f"sha256-{D_REKOR.split(':')[1]}.att", D_ATT),  # no created: ignored
    )
    finding = only(tags_rule.check(facts_of(alpine, repo_tags=repo), tags_rule.Config(latest_is_newest=True), run_of()))
    newest = max(t.created for t in repo if t.created is not None and t.tag != "latest")  # of the other builds
    expected = Verdict.PASS if latest_at > newest else Verdict.WARN if latest_at == newest else Verdict.FAIL
    assert finding.verdict is expected
    if finding.verdict is not Verdict.PASS:  # a tie with another build is no evidence either: both named
        assert D_INDEX.split(":")[1][:12] in finding.message and D_REKOR.split(":")[1][:12] in finding.message
        assert "main-3d8a93e" in finding.message
    assert "by its config `created` (no valid created label)" in finding.message


def _newest(alpine: PlatformFacts, *repo: TagFacts) -> Finding:
    facts = facts_of(alpine, repo_tags=repo)
    return only(tags_rule.check(facts, tags_rule.Config(latest_is_newest=True), run_of()))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_latest_is_newest_reads_the_created_label_before_the_config(alpine: PlatformFacts) -> None:
    """Reproducible builds (and ko) pin config `created`; metadata-action's label carries the build time."""
    old, new = (
        TagFacts("main-0a1b2c3", D_SIGNED, created=EPOCH, created_label=T0),
        TagFacts("main-3d8a93e", D_REKOR, created=EPOCH, created_label=T0 + timedelta(hours=1)),
    )
    moved_back = _newest(alpine, old, new, replace(old, tag="latest"))
    assert moved_back.verdict is Verdict.FAIL
    assert "by its org.opencontainers.image.created label" in moved_back.message
    assert "2025-11-03T09:30:00Z" in moved_back.message and "2025-11-03T10:30:00Z" in moved_back.message
    assert moved_back.details["latest_created_from"] == "by its org.opencontainers.image.created label"
    current = _newest(alpine, old, new, replace(new, tag="latest"))
    assert current.verdict is Verdict.PASS
    assert current.message.endswith("(built 2025-11-03T10:30:00Z by its org.opencontainers.image.created label)")
    label_older_than_config = _newest(
        alpine, replace(new, created=T0 + timedelta(days=9)), replace(old, tag="latest", created=T0 + timedelta(days=1))
    )  # the label decides, whatever the configs say
    assert label_older_than_config.verdict is Verdict.FAIL


def test_latest_is_newest_falls_back_to_config_when_the_label_is_missing_or_invalid(alpine: PlatformFacts) -> None:
    """Only a valid RFC 3339 label counts (gather parses it); without one the config decides, and says so."""
    old = TagFacts("main-0a1b2c3", D_SIGNED, created=T0)
    new = TagFacts("main-3d8a93e", D_REKOR, created=T0 + timedelta(hours=1))
    finding = _newest(alpine, old, new, replace(old, tag="latest"))
    assert finding.verdict is Verdict.FAIL and "by its config `created` (no valid created label)" in finding.message
    mixed = _newest(alpine, old, replace(new, created_label=T0 - timedelta(days=1)), replace(old, tag="latest"))
    assert mixed.verdict is Verdict.PASS  # the newer config, but its label says it was built a day earlier


def test_latest_tied_with_another_build_is_a_warning_naming_both(alpine: PlatformFacts) -> None:
    """Same build time, different content: not evidence that latest is the newest (ko's epoch-0 configs)."""
    old, new = TagFacts("main-0a1b2c3", D_SIGNED, created=EPOCH), TagFacts("main-3d8a93e", D_REKOR, created=EPOCH)
    tied = _newest(alpine, old, new, replace(old, tag="latest"), TagFacts("main", D_SIGNED, created=EPOCH))
    assert tied.verdict is Verdict.WARN
    for digest in (D_SIGNED, D_REKOR):
        assert digest.split(":")[1][:12] in tied.message
    assert "main-3d8a93e" in tied.message and "1970-01-01T00:00:00Z" in tied.message
    assert "set the org.opencontainers.image.created label" in tied.message
    assert tied.details["tied_with"] == [D_REKOR]
    alone = _newest(alpine, old, replace(old, tag="latest"), replace(old, tag="main"))  # same digest: no tie
    assert alone.verdict is Verdict.PASS


def test_tags_latest_is_newest_needs_latest_and_its_created(alpine: PlatformFacts) -> None:
    config = tags_rule.Config(latest_is_newest=True)
    no_latest = (TagFacts("main", D_INDEX, created=T0),)
    assert only(tags_rule.check(facts_of(alpine, repo_tags=no_latest), config, run_of())).verdict is Verdict.FAIL
    undated = (TagFacts("main", D_INDEX, created=T0), TagFacts("latest", D_REKOR))
    assert only(tags_rule.check(facts_of(alpine, repo_tags=undated), config, run_of())).verdict is Verdict.ERROR


@pytest.mark.parametrize(
    "tags", [("v1.4.2", "sha-3d8a93e", "latest"), ("v1.4.2", "latest"), ("latest",), ("1.4", "sha-3d8a93e")]
)
def test_tags_required_patterns_on_this_digest(alpine: PlatformFacts, tags: tuple[str, ...]) -> None:
    patterns = (re.compile(r"v?\d+\.\d+\.\d+"), re.compile(r"sha-[0-9a-f]{7,40}"))
    facts = facts_of(alpine, tag=tags[0], tags_on_digest=tags)
    finding = only(tags_rule.check(facts, tags_rule.Config(required=patterns), run_of()))
    missing = [p.pattern for p in patterns if not any(p.fullmatch(t) for t in tags)]
    assert finding.verdict is (Verdict.FAIL if missing else Verdict.PASS)
    assert all(m in finding.message for m in missing)


def _image(name: str, alpine: PlatformFacts, tags: tuple[str, ...], revision: str | None = None) -> ImageFacts:
    platform = alpine
    if revision is not None:
        platform = platform_facts(with_labels(alpine.config, org_opencontainers_image_revision=revision))
    return facts_of(platform, name=name, tag=tags[0] if tags else None, tags_on_digest=tags)


def test_tags_consistent_across_images_names_the_odd_image(alpine: PlatformFacts) -> None:
    producer = _image("producer", alpine, ("v1.4.2", "1.4", "latest"))
    consumer = _image("consumer", alpine, ("v1.4.2", "v1.4.1"))  # unchanged image, tagged again
    query = _image("query-engine", alpine, ("v1.4.1",))
    run = run_of(producer, consumer, query)
    config = tags_rule.Config(consistent_across_images=True)
    verdicts = {i.name: only(tags_rule.check(i, config, run)) for i in (producer, consumer, query)}
    assert verdicts["producer"].verdict is Verdict.PASS and verdicts["consumer"].verdict is Verdict.PASS
    assert verdicts["query-engine"].verdict is Verdict.FAIL
    assert "query-engine is the odd image out" in verdicts["query-engine"].message
    assert "1.4.1" in verdicts["query-engine"].message and "1.4.2" in verdicts["query-engine"].message
    alone = only(tags_rule.check(producer, config, run_of(producer)))
    assert alone.verdict is Verdict.PASS


def test_tags_consistent_for_branch_builds_uses_required_tags_then_revision(alpine: PlatformFacts) -> None:
    required = (re.compile(r"main-[0-9a-f]{7}"),)
    a = _image("producer", alpine, ("main-3d8a93e", "main", "latest"))
    b = _image("consumer", alpine, ("main-3d8a93e", "main"))
    c = _image("query-engine", alpine, ("main-0a1b2c3", "main"))
    by_tags = tags_rule.Config(required=required, consistent_across_images=True)
    run = run_of(a, b, c)
    results = {i.name: tags_rule.check(i, by_tags, run)[-1] for i in (a, b, c)}
    assert [results[n].verdict for n in ("producer", "consumer", "query-engine")] == [
        Verdict.PASS,
        Verdict.PASS,
        Verdict.FAIL,
    ]
    sha = "3d8a93e0c0ffee00000000000000000000000000"
    r1, r2 = _image("producer", alpine, ("main",), sha), _image("consumer", alpine, ("main",), sha[::-1])
    by_revision = tags_rule.Config(consistent_across_images=True)
    tie = only(tags_rule.check(r1, by_revision, run_of(r1, r2)))
    assert tie.verdict is Verdict.FAIL and "do not agree" in tie.message and sha in tie.message
    r2_same = _image("consumer", alpine, ("main",), sha)
    assert only(tags_rule.check(r1, by_revision, run_of(r1, r2_same))).verdict is Verdict.PASS
    bare1, bare2 = _image("producer", alpine, ("main",)), _image("consumer", alpine, ("main",))
    assert only(tags_rule.check(bare1, by_revision, run_of(bare1, bare2))).verdict is Verdict.FAIL


def test_tags_consistent_per_release_judges_each_distinct_release_once(alpine: PlatformFacts) -> None:
    """The audit's form: each release tag on the digest names its images; one finding for the digest."""
    config = tags_rule.Config(consistent_across_images=True)
    p = replace(_image("producer", alpine, ("v1.4.2", "sha-3d8a93e", "latest")), digest=D_INDEX)
    c = replace(_image("consumer", alpine, ("v1.4.2", "sha-3d8a93e")), digest=D_SIGNED)
    q = replace(_image("query-engine", alpine, ("v1.4.2", "v1.4.3", "sha-0a1b2c3")), digest=D_REKOR)
    same = {"v1.4.2": {"consumer": c, "query-engine": q}, "sha-3d8a93e": {"consumer": c}}
    mine = tags_rule.consistent_per_release(p, config, same)
    assert mine.verdict is Verdict.PASS and "odd one out: query-engine" in mine.message
    assert set(mine.details["releases"]) == {"v1.4.2", "sha-3d8a93e"}
    odd = tags_rule.consistent_per_release(q, config, {"v1.4.2": {"producer": p, "consumer": c}, "v1.4.3": {}})
    assert odd.verdict is Verdict.FAIL and odd.message.startswith("release v1.4.2: query-engine is the odd image out")
    assert odd.details["releases"]["v1.4.2"]["images"]["query-engine"] == "1.4.3"
    # v1.4.2 and sha-3d8a93e name the same two images here: judged once, named together.
    twins = {"v1.4.2": {"consumer": c}, "sha-3d8a93e": {"consumer": c}}
    assert tags_rule.consistent_per_release(p, config, twins).message.startswith("release v1.4.2 = sha-3d8a93e: ")
    alone = tags_rule.consistent_per_release(p, config, {"v1.4.2": {}, "sha-3d8a93e": {}})
    assert alone.verdict is Verdict.PASS and "nothing to compare" in alone.message
    assert alone.details == {"check": "consistent_across_images", "releases": {}}


def test_an_image_without_the_release_tag_is_named_in_a_sentence(alpine: PlatformFacts) -> None:
    """Read aloud: "it carries no release tag, but consumer, query-engine carry 1.4.1" (not "its release
    tag is nothing to compare")."""
    config = tags_rule.Config(consistent_across_images=True)
    p = replace(_image("producer", alpine, ("sha-3d8a93e",)), digest=D_INDEX)
    c = replace(_image("consumer", alpine, ("v1.4.1", "sha-3d8a93e")), digest=D_SIGNED)
    q = replace(_image("query-engine", alpine, ("v1.4.1", "sha-3d8a93e")), digest=D_REKOR)
    found = tags_rule.consistent_per_release(p, config, {"sha-3d8a93e": {"consumer": c, "query-engine": q}})
    assert found.verdict is Verdict.FAIL
    assert "producer is the odd image out: it carries no release tag, but consumer, query-engine carry 1.4.1" in (
        found.message
    )
    assert "nothing to compare" not in found.message
    other = tags_rule.consistent_per_release(c, config, {"sha-3d8a93e": {"producer": p, "query-engine": q}})
    assert "odd one out: producer (no release tag)" in other.message


def test_tags_repository_lookups_are_per_tag_listing(alpine: PlatformFacts) -> None:
    """Lookups are remembered per `repo_tags` tuple: facts with another listing never see stale ones."""
    config = tags_rule.Config(latest_is_highest=True)
    on_top, behind = release_repo(D_REKOR), release_repo(D_SIGNED)
    for _ in range(2):
        assert only(tags_rule.check(facts_of(alpine, repo_tags=on_top), config, run_of())).verdict is Verdict.PASS
        assert only(tags_rule.check(facts_of(alpine, repo_tags=behind), config, run_of())).verdict is Verdict.FAIL
        rebuilt = tuple(replace(t) for t in behind)  # equal, not identical: judged from its own lookups
        assert only(tags_rule.check(facts_of(alpine, repo_tags=rebuilt), config, run_of())).verdict is Verdict.FAIL


def test_tags_only_enabled_subchecks_run(alpine: PlatformFacts) -> None:
    facts = facts_of(alpine, repo_tags=release_repo(None))
    assert only(tags_rule.check(facts, tags_rule.Config(), run_of())).verdict is Verdict.PASS
    both = tags_rule.check(facts, tags_rule.Config(latest_is_highest=True, latest_is_newest=True), run_of())
    assert [f.details["check"] for f in both] == ["latest_is_highest", "latest_is_newest"]


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("user", [None, "", "root", "0", "00", "0:0", "root:root", ":0", "1001", "node", "1000:0"])
def test_config_non_root(juice: dict[str, Any], user: str | None) -> None:
    facts = facts_of(platform_facts(with_config(juice, User=user) if user is not None else juice))
    effective = juice["config"].get("User", "") if user is None else user
    finding = only(config_rule.check(facts, config_rule.Config(non_root=True), run_of()))
    user_part = effective.split(":")[0]
    is_root = user_part in ("", "root") or (user_part.isdigit() and int(user_part) == 0)
    assert finding.verdict is (Verdict.FAIL if is_root else Verdict.PASS)
    if is_root:
        assert "non-root" in finding.message and "USER" in finding.message


def test_config_non_root_on_a_real_image_without_user(alpine: PlatformFacts) -> None:
    assert "User" not in alpine.config["config"]
    finding = only(config_rule.check(facts_of(alpine), config_rule.Config(non_root=True), run_of()))
    assert finding.verdict is Verdict.FAIL and "no User is set" in finding.message


@pytest.mark.parametrize(
    "test",
    [None, [], ["NONE"], ["CMD-SHELL", "wget -qO- http://admin:pw@localhost:3000/ || exit 1"], ["CMD", "/bin/true"]],
)
def test_config_healthcheck(juice: dict[str, Any], test: list[str] | None) -> None:
    config = juice if test is None else with_config(juice, Healthcheck={"Test": test, "Interval": 30_000_000_000})
    finding = only(config_rule.check(facts_of(platform_facts(config)), config_rule.Config(healthcheck=True), run_of()))
    assert finding.verdict is (Verdict.PASS if test and test[0] != "NONE" else Verdict.FAIL)
    assert "admin:pw" not in finding.message and "admin:pw" not in json.dumps(finding.details)


def test_config_forbid_env_names_variables_never_values(juice: dict[str, Any]) -> None:
    secrets = {"DB_PASSWORD": "hunter2-Sup3rS3cret", "GITHUB_TOKEN": "ghp_d41d8cd98f00b204e9800998ecf8427e"}
    env = [*juice["config"]["Env"], *(f"{k}={v}" for k, v in secrets.items()), "API_KEY=", "TOKEN_FILE"]
    config = config_rule.Config(forbid_env=(SECRET_PATTERN,))
    clean = only(config_rule.check(facts_of(platform_facts(juice)), config, run_of()))
    baked_in_real = [e.split("=")[0] for e in juice["config"]["Env"] if SECRET_PATTERN.fullmatch(e.split("=")[0])]
    assert clean.verdict is (Verdict.FAIL if baked_in_real else Verdict.PASS)
    finding = only(config_rule.check(facts_of(platform_facts(with_config(juice, Env=env))), config, run_of()))
    assert finding.verdict is Verdict.FAIL
    assert finding.details["variables"] == sorted(secrets)  # API_KEY has no value, TOKEN_FILE no `=`
    everything = finding.message + json.dumps(finding.details) + repr(finding)
    for name, value in secrets.items():
        assert name in finding.message
        assert value not in everything


def test_config_checks_each_platform_and_merges_agreement(juice: dict[str, Any]) -> None:
    amd = platform_facts(juice)
    arm_root = platform_facts(with_config({**juice, "architecture": "arm64"}, User="root"))
    findings = config_rule.check(facts_of(amd, arm_root), config_rule.Config(non_root=True), run_of())
    assert {(f.platform, f.verdict) for f in findings} == {("linux/amd64", Verdict.PASS), ("linux/arm64", Verdict.FAIL)}
    arm = platform_facts({**juice, "architecture": "arm64"})
    assert only(config_rule.check(facts_of(amd, arm), config_rule.Config(non_root=True), run_of())).platform is None


# ---------------------------------------------------------------- platforms


def index_facts(juice: dict[str, Any]) -> ImageFacts:
    """The real buildx index: its runnable entries (attestations excluded, as the gatherer does)."""
    raw = (DATA / INDEX_FILE).read_bytes()
    index = json.loads(raw)
    platforms = []
    for entry in index["manifests"]:
        p = entry["platform"]
        if (p["os"], p["architecture"]) == ("unknown", "unknown"):
            continue
        platforms.append(platform_facts({**juice, "os": p["os"], "architecture": p["architecture"]}))
    return facts_of(*platforms, index=index, digest="sha256:" + hashlib.sha256(raw).hexdigest())


@pytest.mark.parametrize(
    "required", [("linux/amd64",), ("linux/amd64", "linux/arm64"), ("unknown/unknown",), ("linux/amd64/v2",), ()]
)
def test_platforms_of_a_real_buildx_index(juice: dict[str, Any], required: tuple[str, ...]) -> None:
    facts = index_facts(juice)
    assert facts.digest == D_INDEX  # the bytes are the real index
    present = [
        (e["platform"]["os"], e["platform"]["architecture"])
        for e in facts.index_manifest["manifests"]  # type: ignore[index]
        if e["platform"]["os"] != "unknown"
    ]
    finding = only(platforms_rule.check(facts, platforms_rule.Config(required=required), run_of()))
    ok = all(tuple(r.split("/")[:2]) in present and len(r.split("/")) == 2 for r in required)
    assert finding.verdict is (Verdict.PASS if ok else Verdict.FAIL)
    if not ok:
        assert "the index lacks" in finding.message


def test_platforms_single_platform_image_says_so(alpine: PlatformFacts) -> None:
    config = platforms_rule.Config(required=("linux/amd64", "linux/arm64"))
    finding = only(platforms_rule.check(facts_of(alpine), config, run_of()))
    assert finding.verdict is Verdict.FAIL and "single-platform (linux/amd64)" in finding.message
    assert "linux/arm64" in finding.details["missing"]


@pytest.mark.parametrize(
    ("actual", "required"),
    [("linux/arm64/v8", "linux/arm64"), ("linux/arm/v6", "linux/arm/v7"), ("linux/arm/v7", "linux/arm/v7")],
)
def test_platforms_variant_counts_only_when_required(juice: dict[str, Any], actual: str, required: str) -> None:
    os_, arch, variant = actual.split("/")
    facts = facts_of(platform_facts({**juice, "os": os_, "architecture": arch, "variant": variant}))
    finding = only(platforms_rule.check(facts, platforms_rule.Config(required=(required,)), run_of()))
    r = required.split("/")
    ok = r[:2] == [os_, arch] and (len(r) < 3 or r[2] == variant)
    assert finding.verdict is (Verdict.PASS if ok else Verdict.FAIL)


# ---------------------------------------------------------------- wiring


def test_rules_are_implemented_and_describe_their_configuration() -> None:
    rules = all_rules()
    configs = {
        "size": size_rule.Config(max_compressed=ByteSize.parse("500MB"), max_growth=Percent.parse("10%")),
        "labels": labels_rule.Config(required=(OCI + "source",), version_matches_tag=True),
        "tags": tags_rule.Config(required=(re.compile(r"v?\d+\.\d+\.\d+"),), latest_is_highest=True),
        "config": config_rule.Config(non_root=True, forbid_env=(SECRET_PATTERN,)),
        "platforms": platforms_rule.Config(required=("linux/amd64", "linux/arm64")),
    }
    for rule_id, config in configs.items():
        spec = rules[rule_id]
        assert spec.describe is not None
        line = spec.describe(config)
        assert line and "\n" not in line
        assert "not_implemented" not in spec.check.__qualname__
    assert "500.0 MB" in rules["size"].describe(configs["size"])  # type: ignore[misc]


@pytest.mark.parametrize("latest_version", ["10.2.0", "12.10.2"])
def test_tags_on_two_real_juice_shop_releases(alpine: PlatformFacts, latest_version: str) -> None:
    """Both sub-checks on real release configs: `created` and version labels as the gatherer reads them."""
    releases = {}
    for name, digest in (
        ("juice-shop-v10.2.0.metadata.json", D_SIGNED),
        ("juice-shop-v12.10.2.metadata.json", D_REKOR),
    ):
        config = image_config(name)
        version = config["config"]["Labels"][OCI + "version"]
        created = labels_rule.parse_rfc3339(config["created"])
        releases[version] = TagFacts(f"v{version}", digest, created=created, version_label=version)
    latest = releases[latest_version]
    repo = (*releases.values(), TagFacts("latest", latest.digest, created=latest.created, version_label=latest_version))
    both = tags_rule.Config(latest_is_highest=True, latest_is_newest=True)
    highest, newest = tags_rule.check(facts_of(alpine, repo_tags=repo), both, run_of())
    top = max(releases.values(), key=lambda t: _semver.parse_release(t.tag).version)  # type: ignore[union-attr]
    youngest = max(releases.values(), key=lambda t: t.created or NOW)
    assert highest.verdict is (Verdict.PASS if latest is top else Verdict.FAIL)
    assert newest.verdict is (Verdict.PASS if latest is youngest else Verdict.FAIL)
