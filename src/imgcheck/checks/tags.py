"""tags: required tag patterns on this digest; `latest` is the highest (or newest) release; images agree.

Each enabled sub-check gives one finding, so a report says which promise about tags was broken.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from imgcheck import semver as _semver
from imgcheck.checks._common import is_cosign_tag, quoted, short, tags_of
from imgcheck.checks.interface import Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts, TagFacts
from imgcheck.verdict import Verdict

REVISION_LABEL = "org.opencontainers.image.revision"


@dataclass(frozen=True)
class Config(RuleConfig):
    required: tuple[re.Pattern[str], ...] = ()
    latest_is_highest: bool = False
    latest_is_newest: bool = False
    consistent_across_images: bool = False


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    findings: list[Finding] = []
    if config.required:
        findings.append(_required(facts, config.required))
    if config.latest_is_highest:
        findings.append(_latest_is_highest(facts))
    if config.latest_is_newest:
        findings.append(_latest_is_newest(facts))
    if config.consistent_across_images:
        findings.append(_consistent(facts, config, run))
    return findings or [Finding(Verdict.PASS, "no tag checks configured")]


def _required(facts: ImageFacts, patterns: Sequence[re.Pattern[str]]) -> Finding:
    tags = tags_of(facts)
    matched = {p.pattern: sorted(t for t in tags if p.fullmatch(t)) for p in patterns}
    missing = [pattern for pattern, hits in matched.items() if not hits]
    details = {"check": "required", "tags_on_digest": sorted(tags), "matched": matched}
    if missing:
        return Finding(
            Verdict.FAIL,
            f"no tag on {facts.short_digest} fully matches {quoted(missing)} (tags on this digest: {quoted(tags)}); "
            "push the missing tag with the release (docker/metadata-action `tags`)",
            details=details,
        )
    shown = ", ".join(f"{pattern} → {hits[0]}" for pattern, hits in matched.items())
    return Finding(Verdict.PASS, f"required tags present: {shown}", details=details)


def _image_tags(facts: ImageFacts) -> list[TagFacts]:
    """Repository tags that name images (cosign's `sha256-….sig/.att/.sbom` tags are not releases)."""
    return [t for t in facts.repo_tags if not is_cosign_tag(t.tag)]


def _tags_by_digest(tags: Sequence[TagFacts]) -> dict[str, list[str]]:
    by_digest: dict[str, list[str]] = defaultdict(list)
    for t in tags:
        by_digest[t.digest].append(t.tag)
    return by_digest


def _no_latest(facts: ImageFacts, check: str) -> Finding:
    return Finding(
        Verdict.FAIL,
        f"no `latest` tag among the {len(facts.repo_tags)} tags of {facts.repository}; "
        "push `latest` with the release or drop " + check,
        details={"check": check, "latest": None},
    )


def _latest_is_highest(facts: ImageFacts) -> Finding:
    tags = _image_tags(facts)
    by_tag = {t.tag: t for t in tags}
    by_digest = _tags_by_digest(tags)
    latest = by_tag.get("latest")
    if latest is None:
        return _no_latest(facts, "latest_is_highest")
    top = _semver.highest(by_tag)
    if top is None:
        return Finding(
            Verdict.FAIL,
            f"latest_is_highest: no semver release tag (pre-releases aside) among the {len(tags)} tags of "
            f"{facts.repository}; push a release tag like v1.0.0, or use latest_is_newest for branch builds",
            details={"check": "latest_is_highest", "latest": latest.digest, "highest": None},
        )
    top_digests = {by_tag[r.tag].digest for r in _semver.releases(by_tag) if r.version == top.version}
    details = {
        "check": "latest_is_highest",
        "latest": latest.digest,
        "highest": top.tag,
        "highest_digest": by_tag[top.tag].digest,
    }
    if latest.digest in top_digests:
        return Finding(Verdict.PASS, f"latest → {short(latest.digest)}, the highest release {top.tag}", details=details)
    return Finding(
        Verdict.FAIL,
        f"latest → {short(latest.digest)} (tags: {quoted(by_digest[latest.digest])}) but the highest release "
        f"{top.tag} → {short(by_tag[top.tag].digest)} (tags: {quoted(by_digest[by_tag[top.tag].digest])}); "
        f"move latest to {top.tag}",
        details=details,
    )


def _utc(value: datetime) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def _latest_is_newest(facts: ImageFacts) -> Finding:
    tags = _image_tags(facts)
    by_digest = _tags_by_digest(tags)
    latest = next((t for t in tags if t.tag == "latest"), None)
    if latest is None:
        return _no_latest(facts, "latest_is_newest")
    if latest.created is None:
        return Finding(
            Verdict.ERROR,
            f"latest → {short(latest.digest)} has no readable `created` in its config, so its age is unknown; "
            "check that latest is a container image",
            details={"check": "latest_is_newest", "latest": latest.digest},
        )
    latest_at = _utc(latest.created)
    newest_at, newest = max(((_utc(t.created), t) for t in tags if t.created is not None), key=lambda pair: pair[0])
    details = {
        "check": "latest_is_newest",
        "latest": latest.digest,
        "latest_created": latest_at.isoformat(),
        "newest": newest.digest,
        "newest_created": newest_at.isoformat(),
    }
    if latest_at >= newest_at:
        return Finding(
            Verdict.PASS,
            f"latest → {short(latest.digest)} is the newest build (created {latest_at:%Y-%m-%dT%H:%M:%SZ})",
            details=details,
        )
    return Finding(
        Verdict.FAIL,
        f"latest → {short(latest.digest)} (tags: {quoted(by_digest[latest.digest])}, created "
        f"{latest_at:%Y-%m-%dT%H:%M:%SZ}) but {short(newest.digest)} (tags: {quoted(by_digest[newest.digest])}) "
        f"is newer (created {newest_at:%Y-%m-%dT%H:%M:%SZ}); move latest to the newest build",
        details=details,
    )


def _release_key(facts: ImageFacts, config: Config, mode: str) -> Hashable:
    """What "the same release" means: the highest semver tag, else the build tags the policy requires,
    else the source revision."""
    tags = tags_of(facts)
    if mode == "semver":
        top = _semver.highest(tags, include_prereleases=True)
        return top.name if top else None
    if mode == "tags":
        found = frozenset(t for t in tags if any(p.fullmatch(t) for p in config.required))
        return found or None
    return facts.labels.get(REVISION_LABEL) or None


def _show(key: Hashable) -> str:
    if key is None:
        return "nothing to compare"
    if isinstance(key, frozenset):
        return quoted(str(k) for k in key)
    return str(key)


def _consistent(facts: ImageFacts, config: Config, run: RunContext) -> Finding:
    images = {**run.images, facts.name: facts}
    if len(images) < 2:
        return Finding(
            Verdict.PASS,
            f"{facts.name} is the only image of this run; nothing to compare",
            details={"check": "consistent_across_images"},
        )
    if any(_semver.releases(tags_of(i)) for i in images.values()):
        mode, what = "semver", "release tag"
    elif config.required and any(_release_key(i, config, "tags") for i in images.values()):
        mode, what = "tags", "build tags"
    else:
        mode, what = "revision", REVISION_LABEL
    keys = {name: _release_key(image, config, mode) for name, image in sorted(images.items())}
    details = {"check": "consistent_across_images", "compared": what, "images": {n: _show(k) for n, k in keys.items()}}
    mine = keys[facts.name]
    if all(k is None for k in keys.values()):
        return Finding(
            Verdict.FAIL,
            f"no image of the run carries a release tag, a required build tag or {REVISION_LABEL}; "
            "tag the release or set the revision label so the images can be compared",
            details=details,
        )
    ranked = Counter(keys.values()).most_common()
    majority = ranked[0][0]
    has_majority = len(ranked) == 1 or ranked[0][1] > ranked[1][1]
    if len(ranked) == 1:
        return Finding(Verdict.PASS, f"all {len(keys)} images carry {what} {_show(mine)}", details=details)
    if has_majority and mine == majority and mine is not None:
        odd = [f"{n} ({_show(k)})" for n, k in keys.items() if k != majority]
        return Finding(
            Verdict.PASS,
            f"{facts.name} carries {what} {_show(mine)} like most images; odd one out: {', '.join(odd)} "
            "(reported there)",
            details=details,
        )
    if has_majority and majority is not None:
        peers = [n for n, k in keys.items() if k == majority]
        message = (
            f"{facts.name} is the odd image out: its {what} is {_show(mine)}, but {', '.join(peers)} carry "
            f"{_show(majority)}; tag {facts.name} with the same release"
        )
    else:
        listing = "; ".join(f"{n}: {_show(k)}" for n, k in keys.items())
        message = f"the images do not agree on the {what} ({listing}); tag every image of the release alike"
    return Finding(Verdict.FAIL, message, details=details)


def describe(config: Config) -> str:
    parts = []
    if config.required:
        parts.append("a tag on the digest fully matches each of " + ", ".join(p.pattern for p in config.required))
    if config.latest_is_highest:
        parts.append("latest is the highest semver release")
    if config.latest_is_newest:
        parts.append("latest is the newest build by created")
    if config.consistent_across_images:
        parts.append("every image of the run carries the same release")
    return "; ".join(parts) if parts else "no tag checks"


RULE = RuleSpec(
    id="tags",
    summary="required tag patterns point at this digest and latest is the newest release",
    config=Config,
    check=check,
    describe=describe,
    needs_tags=True,
)
