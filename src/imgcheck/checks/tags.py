"""tags: required tag patterns on this digest; `latest` is the highest (or newest) release; images agree.

Each enabled sub-check gives one finding, so a report says which promise about tags was broken.

`consistent_across_images` compares the images of one release. Which images those are depends on the
command: `imgcheck verify v1.4.2` compares the images that target resolved (RunContext.images); an
audit checks one digest at a time, so it calls `consistent_per_release` with the release's images
itself. For the audit, a release is a release tag (semver `v1.4.2`, pre-releases included, or a build
tag `sha-<sha7>` / `main-<sha7>`): the digests of different policy images that carry it are one
release. `latest`, `main` and `1.4` move, so they name no release. Within a release the images are
compared exactly as `verify <that tag>` compares them (see `_compare`), so an audit reports for each
release tag what verify would. A digest whose release tags no other image carries is alone, as in
a verify of one image: nothing to compare, a pass.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from datetime import UTC, datetime

from imgcheck import semver as _semver
from imgcheck.checks._common import is_cosign_tag, quoted, short, tags_of
from imgcheck.checks.interface import Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts, TagFacts
from imgcheck.policy.patterns import Pattern
from imgcheck.record import record
from imgcheck.verdict import Verdict

REVISION_LABEL = "org.opencontainers.image.revision"


@record
class Config(RuleConfig):
    required: tuple[Pattern, ...] = ()
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


def _required(facts: ImageFacts, patterns: Sequence[Pattern]) -> Finding:
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


@record
class _RepoLookups:
    """A repository's image tags and the lookups the `latest_*` checks read, built once per tag listing."""

    tags: tuple[TagFacts, ...]
    """Tags that name images (cosign's `sha256-….sig/.att/.sbom` tags are not releases)."""
    by_tag: Mapping[str, TagFacts]
    by_digest: Mapping[str, Sequence[str]]
    first_latest: TagFacts | None
    top: _semver.Release | None
    """The highest release (pre-releases aside)."""
    top_digests: frozenset[str]
    """Every digest a tag of the highest version points at (`v1.4.2` and `1.4.2` may differ)."""
    newest: tuple[datetime, TagFacts] | None
    """The first tag with the latest build time (`build_time`), and that time in UTC."""
    dated: tuple[tuple[datetime, TagFacts], ...]
    """Every tag with a build time, and that time in UTC (ties with `latest` are looked for here)."""

    @classmethod
    def build(cls, repo_tags: Sequence[TagFacts]) -> _RepoLookups:
        tags = tuple(t for t in repo_tags if not is_cosign_tag(t.tag))
        by_tag = {t.tag: t for t in tags}
        by_digest: dict[str, list[str]] = defaultdict(list)
        for t in tags:
            by_digest[t.digest].append(t.tag)
        top = _semver.highest(by_tag)
        top_digests = frozenset(
            by_tag[r.tag].digest for r in _semver.releases(by_tag) if top is not None and r.version == top.version
        )
        dated = tuple((_utc(when), t) for t in tags if (when := build_time(t)[0]) is not None)
        return cls(
            tags=tags,
            by_tag=by_tag,
            by_digest={digest: tuple(names) for digest, names in by_digest.items()},
            first_latest=next((t for t in tags if t.tag == "latest"), None),
            top=top,
            top_digests=top_digests,
            newest=max(dated, key=lambda pair: pair[0]) if dated else None,
            dated=dated,
        )


_LOOKUPS: dict[int, tuple[tuple[TagFacts, ...], _RepoLookups]] = {}
_LOOKUPS_KEPT = 32
"""Tag listings remembered: one per repository of the run is what repeats."""
_LOOKUPS_LOCK = threading.Lock()


def _lookups(facts: ImageFacts) -> _RepoLookups:
    """The lookups of `facts.repo_tags`, built once per tag listing: the gatherer hands every digest of a
    repository the same tuple, and an audit judges a hundred digests against the same few hundred tags.
    Keyed by the tuple's identity (TagFacts hold dicts, so they do not hash); each entry keeps its tuple
    alive, so an id is never reused while remembered."""
    repo_tags = facts.repo_tags
    with _LOOKUPS_LOCK:
        hit = _LOOKUPS.get(id(repo_tags))
    if hit is not None and hit[0] is repo_tags:
        return hit[1]
    built = _RepoLookups.build(repo_tags)
    with _LOOKUPS_LOCK:
        if len(_LOOKUPS) >= _LOOKUPS_KEPT:
            del _LOOKUPS[next(iter(_LOOKUPS))]
        _LOOKUPS[id(repo_tags)] = (repo_tags, built)
    return built


def _no_latest(facts: ImageFacts, check: str) -> Finding:
    return Finding(
        Verdict.FAIL,
        f"no `latest` tag among the {len(facts.repo_tags)} tags of {facts.repository}; "
        "push `latest` with the release or drop " + check,
        details={"check": check, "latest": None},
    )


def _latest_is_highest(facts: ImageFacts) -> Finding:
    repo = _lookups(facts)
    by_tag, by_digest, top = repo.by_tag, repo.by_digest, repo.top
    latest = by_tag.get("latest")
    if latest is None:
        return _no_latest(facts, "latest_is_highest")
    if top is None:
        return Finding(
            Verdict.FAIL,
            f"latest_is_highest: no semver release tag (pre-releases aside) among the {len(repo.tags)} tags of "
            f"{facts.repository}; push a release tag like v1.0.0, or use latest_is_newest for branch builds",
            details={"check": "latest_is_highest", "latest": latest.digest, "highest": None},
        )
    details = {
        "check": "latest_is_highest",
        "latest": latest.digest,
        "highest": top.tag,
        "highest_digest": by_tag[top.tag].digest,
    }
    if latest.digest in repo.top_digests:
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


CREATED_LABEL = "org.opencontainers.image.created"


def build_time(tag: TagFacts) -> tuple[datetime | None, str]:
    """When the image was built, and from where: the `created` label when valid RFC 3339 (the workflow's
    time, as docker/metadata-action sets it), else the config's `created` (which reproducible builds and
    ko pin to one value for every build)."""
    if tag.created_label is not None:
        return tag.created_label, f"by its {CREATED_LABEL} label"
    return tag.created, "by its config `created` (no valid created label)"


def _at(when: datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%SZ}"


def _latest_is_newest(facts: ImageFacts) -> Finding:
    repo = _lookups(facts)
    by_digest, latest = repo.by_digest, repo.first_latest
    if latest is None:
        return _no_latest(facts, "latest_is_newest")
    latest_when, source = build_time(latest)
    if latest_when is None:
        return Finding(
            Verdict.ERROR,
            f"latest → {short(latest.digest)} has no valid {CREATED_LABEL} label and no readable `created` in its "
            "config, so its age is unknown; check that latest is a container image",
            details={"check": "latest_is_newest", "latest": latest.digest},
        )
    latest_at = _utc(latest_when)
    newest_at, newest = repo.newest or (latest_at, latest)  # never None: latest itself has a build time
    details = {
        "check": "latest_is_newest",
        "latest": latest.digest,
        "latest_created": latest_at.isoformat(),
        "latest_created_from": source,
        "newest": newest.digest,
        "newest_created": newest_at.isoformat(),
        "newest_created_from": build_time(newest)[1],
    }
    if latest_at < newest_at:
        return Finding(
            Verdict.FAIL,
            f"latest → {short(latest.digest)} (tags: {quoted(by_digest[latest.digest])}, built {_at(latest_at)} "
            f"{source}) but {short(newest.digest)} (tags: {quoted(by_digest[newest.digest])}) is newer (built "
            f"{_at(newest_at)} {build_time(newest)[1]}); move latest to the newest build",
            details=details,
        )
    tied = [t for when, t in repo.dated if when == latest_at and t.digest != latest.digest]
    if tied:
        other = tied[0]
        others = len({t.digest for t in tied})
        more = f" and {others - 1} other build{'s' if others > 2 else ''}" if others > 1 else ""
        return Finding(
            Verdict.WARN,
            f"latest → {short(latest.digest)} and {short(other.digest)} (tags: {quoted(by_digest[other.digest])})"
            f"{more} are different builds with the same build time {_at(latest_at)} (latest {source}, "
            f"{short(other.digest)} {build_time(other)[1]}), so nothing shows latest is the newest; set the "
            f"{CREATED_LABEL} label to the build time (docker/metadata-action does)",
            details={**details, "tied_with": sorted({t.digest for t in tied})},
        )
    return Finding(
        Verdict.PASS,
        f"latest → {short(latest.digest)} is the newest build (built {_at(latest_at)} {source})",
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
        return "none"
    if isinstance(key, frozenset):
        return quoted(str(k) for k in key)
    return str(key)


def _consistent(facts: ImageFacts, config: Config, run: RunContext) -> Finding:
    """`imgcheck verify`: the images of this digest's target (RunContext.images) are its release."""
    images = {**run.images, facts.name: facts}
    if len(images) < 2:
        return Finding(
            Verdict.PASS,
            f"{facts.name} is the only image of this run; nothing to compare",
            details={"check": "consistent_across_images"},
        )
    return _compare(facts, config, images)


def consistent_per_release(
    facts: ImageFacts, config: Config, releases: Mapping[str, Mapping[str, ImageFacts]]
) -> Finding:
    """`imgcheck audit`: consistent_across_images for one digest, compared within each of its releases.

    `releases`: each release tag on this digest -> the images (by policy name) whose digest carries
    that tag, this one included. Releases with the same images compare the same thing, so they are
    judged once (`v1.4.2` and `sha-3f2a9c1` usually name one build). One finding for the digest: it
    fails when any of its releases disagrees, naming which; a digest no other image shares a release
    with passes, as a single image does in verify.
    """
    judged: dict[frozenset[tuple[str, str]], list[str]] = {}
    for tag, images in sorted(releases.items(), key=lambda item: (_semver.parse_release(item[0]) is None, item[0])):
        members = {**images, facts.name: facts}
        if len(members) > 1:
            judged.setdefault(frozenset((n, i.digest) for n, i in members.items()), []).append(tag)
    if not judged:
        return Finding(
            Verdict.PASS,
            f"{facts.name} {facts.short_digest}: no other image carries its release tags "
            f"({quoted(releases)}); nothing to compare",
            details={"check": "consistent_across_images", "releases": {}},
        )
    found = [(tags, _compare(facts, config, {**releases[tags[0]], facts.name: facts})) for tags in judged.values()]
    failed = [(tags, f) for tags, f in found if f.verdict is not Verdict.PASS]
    message = "; ".join(f"release {' = '.join(tags)}: {f.message}" for tags, f in failed or found)
    per_release = {tag: {k: v for k, v in f.details.items() if k != "check"} for tags, f in found for tag in tags}
    verdict = Verdict.FAIL if failed else Verdict.PASS
    return Finding(verdict, message, details={"check": "consistent_across_images", "releases": per_release})


def _compare(facts: ImageFacts, config: Config, images: Mapping[str, ImageFacts]) -> Finding:
    """Whether `images` (this one among them) agree on their release: by semver tag when any carries
    one, else by the build tags the policy requires, else by the revision label."""
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
        odd = [f"{n} ({_show(k) if k is not None else 'no ' + what})" for n, k in keys.items() if k != majority]
        return Finding(
            Verdict.PASS,
            f"{facts.name} carries {what} {_show(mine)} like most images; odd one out: {', '.join(odd)} "
            "(reported there)",
            details=details,
        )
    if has_majority and majority is not None:
        peers = [n for n, k in keys.items() if k == majority]
        carries = f"it carries no {what}" if mine is None else f"its {what} is {_show(mine)}"
        message = (
            f"{facts.name} is the odd image out: {carries}, but {', '.join(peers)} carry "
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
        parts.append("latest is the newest build (created label, else config created)")
    if config.consistent_across_images:
        parts.append("the images of each release agree on it (verify: one target; audit: one release tag)")
    return "; ".join(parts) if parts else "no tag checks"


RULE = RuleSpec(
    id="tags",
    summary="required tag patterns point at this digest and latest is the newest release",
    config=Config,
    check=check,
    describe=describe,
    needs_tags=True,
)
