"""Audit the registry: per policy image, snapshot the tags, pick the digests, verify each digest once.

Verification goes through the same pipeline as `imgcheck verify` (every rule, the same messages),
with the digests as full `host/repo@sha256:…` targets, over a CachingClient whose pinned snapshot makes
every rule see the tags as they were at the start of the run. The one cross-image check, the tags
rule's consistent_across_images, is then judged per release across images (audit/releases.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from imgcheck.audit.cache import CachingClient
from imgcheck.audit.inventory import Snapshot, in_shard, newest_digest, select_digests, take_snapshot
from imgcheck.audit.model import ImageInventory, Release
from imgcheck.audit.releases import Published, judge_releases
from imgcheck.checks import load_rules
from imgcheck.checks import tags as tags_rule
from imgcheck.checks.interface import VerifyOptions
from imgcheck.errors import ImgcheckError
from imgcheck.facts import ImageFacts
from imgcheck.gather import Gatherer, parse_time
from imgcheck.pipeline import verify
from imgcheck.policy.model import ImageSpec, Policy
from imgcheck.record import record
from imgcheck.registry.reference import Reference

Progress = Callable[[str], None]
SmokeMode = Literal["none", "latest", "all"]


@record
class AuditOptions:
    """What bounds the audit's work (the verify options say how to reach and check images)."""

    newest: int | None = None
    """`--tags N`: the newest N releases plus `latest`."""
    since: datetime | None = None
    smoke: SmokeMode = "none"
    shard: tuple[int, int] | None = None
    workers: int = 8


def audit_images(
    policy: Policy,
    options: VerifyOptions,
    audit: AuditOptions,
    *,
    client: CachingClient,
    now: datetime,
    progress: Progress | None = None,
    known_tags: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[list[ImageInventory], list[Release]]:
    """`known_tags` (image -> tag -> digest, from the last run) lets unmoved tags be revalidated.

    Every image's tags are snapshotted before any is verified: a release spans images, and the tags
    rule's consistent_across_images is judged per release once every image's digests are verified."""
    say = progress or (lambda _m: None)
    listed: list[_Listed | ImageInventory] = []
    for image in policy.images:
        last = (known_tags or {}).get(image.name, {})
        listed.append(_list_image(image, options, audit, client, say, last))
    inventories: list[ImageInventory] = []
    releases: list[Release] = []
    for item in listed:
        if isinstance(item, ImageInventory):
            inventories.append(item)
            continue
        inventory, found = _verify_image(policy, item, options, audit, client, now, say)
        inventories.append(inventory)
        releases.extend(found)
    published = [item.published() for item in listed if isinstance(item, _Listed)]
    return inventories, judge_releases(published, releases)


@dataclass
class _Listed:
    """One policy image whose tags were listed: its snapshot and its facts, read once per digest."""

    image: ImageSpec
    registry: str
    snapshot: Snapshot
    groups: dict[str, tuple[str, ...]]
    gatherer: Gatherer
    platform: str | None
    facts: dict[str, ImageFacts | str] = field(default_factory=dict)

    def facts_of(self, digest: str) -> ImageFacts | str:
        """Facts by digest (no tags), or why they could not be read."""
        if digest not in self.facts:
            try:
                ref = Reference(self.registry, self.image.repository, digest=digest)
                self.facts[digest] = self.gatherer.gather(
                    self.image.name, ref, need_tags=False, platform_filter=self.platform
                )
            except ImgcheckError as err:
                self.facts[digest] = str(err)
        return self.facts[digest]

    def created(self, digest: str) -> datetime | None:
        found = self.facts_of(digest)
        return parse_time(found.platforms[0].created) if isinstance(found, ImageFacts) else None

    def published(self) -> Published:
        """What release grouping needs of this image (audit/releases.py)."""
        config = self.image.rules.get(tags_rule.RULE.id)
        judged = config if isinstance(config, tags_rule.Config) and config.consistent_across_images else None
        return Published(self.image.name, judged, self.groups, self.facts_of)


def _list_image(
    image: ImageSpec,
    options: VerifyOptions,
    audit: AuditOptions,
    client: CachingClient,
    say: Progress,
    last: Mapping[str, str],
) -> _Listed | ImageInventory:
    """Snapshot one image's tags and pin them for the run; a listing that fails is this image's error."""
    registry = options.registry_override or image.registry
    say(f"{image.name}: listing and resolving tags of {registry}/{image.repository}")
    try:
        held = client.held_manifests(last)  # a damaged cache is this image's error, like a registry's
        snapshot = take_snapshot(client, registry, image.repository, held=held, workers=audit.workers)
    except ImgcheckError as err:
        say(f"{image.name}: could not list tags: {err}")
        return ImageInventory(image.name, registry, image.repository, error=str(err))
    client.pin_tags(registry, image.repository, snapshot.tags, snapshot.resolved)
    return _Listed(image, registry, snapshot, snapshot.groups(), Gatherer(client, say), options.platform)


def _verify_image(
    policy: Policy,
    listed: _Listed,
    options: VerifyOptions,
    audit: AuditOptions,
    client: CachingClient,
    now: datetime,
    say: Progress,
) -> tuple[ImageInventory, list[Release]]:
    image, registry, groups = listed.image, listed.registry, listed.groups
    facts_of, created = listed.facts_of, listed.created
    # the cached content in a few queries rather than one per digest: every digest's when a rule reads the
    # repository's tag facts (they need each tag's config), else only the digests this run verifies
    manifests = {m.digest: m for m in listed.snapshot.resolved.values()}
    reads_every_digest = any(spec.needs_tags for spec in load_rules(image.rules).values())
    if reads_every_digest:
        client.prefetch(manifests.values())
    selected = select_digests(groups, newest=audit.newest, since=audit.since, created=created)
    mine = [d for d in selected if in_shard(d, audit.shard)]
    if not reads_every_digest:
        client.prefetch(manifests[d] for d in mine)
    smoke: set[str] = set()
    if audit.smoke == "all":
        smoke = set(mine)
    elif audit.smoke == "latest":
        top = newest_digest(groups, created)
        smoke = {top} & set(mine) if top else set()
    say(f"{image.name}: {len(listed.snapshot.resolved)} tags on {len(groups)} digests; verifying {len(mine)}")
    results: list[Release] = []
    for with_smoke in (False, True):
        batch = [d for d in mine if (d in smoke) == with_smoke]
        if not batch:
            continue
        run_options = dataclasses.replace(options, no_smoke=not with_smoke)  # the audit's --smoke decides
        targets = [f"{registry}/{image.repository}@{d}" for d in batch]
        report = verify(policy, targets, run_options, progress=say, client=client, now=now)
        for digest, result in zip(batch, report.images, strict=True):
            found = facts_of(digest)
            sizes = [p.compressed_size for p in found.platforms] if isinstance(found, ImageFacts) else []
            results.append(
                Release(
                    image=image.name,
                    registry=registry,
                    repository=image.repository,
                    digest=digest,
                    tags=groups[digest],
                    created=found.platforms[0].created if isinstance(found, ImageFacts) else None,
                    compressed_size=max(sizes) if sizes else None,
                    checks=result.checks,
                    error=result.error,
                    smoke=with_smoke,
                )
            )
    order = {d: i for i, d in enumerate(mine)}
    results.sort(key=lambda r: order[r.digest])
    inventory = ImageInventory(
        image.name,
        registry,
        image.repository,
        tags=listed.snapshot.tag_digests,
        verified=tuple(mine),
        not_selected=len(groups) - len(selected),
    )
    return inventory, results
