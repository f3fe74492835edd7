"""Audit the registry: per policy image, snapshot the tags, pick the digests, verify each digest once.

Verification goes through the same pipeline as `imgcheck verify` (every rule, the same messages),
with the digests as full `host/repo@sha256:…` targets, over a CachingClient whose pinned snapshot makes
every rule see the tags as they were at the start of the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from imgcheck.audit.cache import CachingClient
from imgcheck.audit.inventory import in_shard, newest_digest, select_digests, take_snapshot
from imgcheck.audit.model import ImageInventory, Release
from imgcheck.checks.interface import VerifyOptions
from imgcheck.errors import ImgcheckError
from imgcheck.facts import ImageFacts
from imgcheck.gather import Gatherer, parse_time
from imgcheck.pipeline import verify
from imgcheck.policy.model import ImageSpec, Policy
from imgcheck.registry.reference import Reference

Progress = Callable[[str], None]
SmokeMode = Literal["none", "latest", "all"]


@dataclass(frozen=True)
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
    """`known_tags` (image -> tag -> digest, from the last run) lets unmoved tags be revalidated."""
    say = progress or (lambda _m: None)
    inventories: list[ImageInventory] = []
    releases: list[Release] = []
    for image in policy.images:
        last = (known_tags or {}).get(image.name, {})
        inventory, found = _audit_image(policy, image, options, audit, client, now, say, last)
        inventories.append(inventory)
        releases.extend(found)
    return inventories, releases


def _audit_image(
    policy: Policy,
    image: ImageSpec,
    options: VerifyOptions,
    audit: AuditOptions,
    client: CachingClient,
    now: datetime,
    say: Progress,
    last: Mapping[str, str],
) -> tuple[ImageInventory, list[Release]]:
    registry = options.registry_override or image.registry
    say(f"{image.name}: listing and resolving tags of {registry}/{image.repository}")
    try:
        held = client.held_manifests(last)  # a damaged cache is this image's error, like a registry's
        snapshot = take_snapshot(client, registry, image.repository, held=held, workers=audit.workers)
    except ImgcheckError as err:
        say(f"{image.name}: could not list tags: {err}")
        return ImageInventory(image.name, registry, image.repository, error=str(err)), []
    client.pin_tags(registry, image.repository, snapshot.tags, snapshot.resolved)
    groups = snapshot.groups()
    gatherer = Gatherer(client, say)
    facts: dict[str, ImageFacts | str] = {}

    def facts_of(digest: str) -> ImageFacts | str:
        if digest not in facts:
            try:
                ref = Reference(registry, image.repository, digest=digest)
                facts[digest] = gatherer.gather(image.name, ref, need_tags=False, platform_filter=options.platform)
            except ImgcheckError as err:
                facts[digest] = str(err)
        return facts[digest]

    def created(digest: str) -> datetime | None:
        found = facts_of(digest)
        return parse_time(found.platforms[0].created) if isinstance(found, ImageFacts) else None

    selected = select_digests(groups, newest=audit.newest, since=audit.since, created=created)
    mine = [d for d in selected if in_shard(d, audit.shard)]
    smoke: set[str] = set()
    if audit.smoke == "all":
        smoke = set(mine)
    elif audit.smoke == "latest":
        top = newest_digest(groups, created)
        smoke = {top} & set(mine) if top else set()
    say(f"{image.name}: {len(snapshot.resolved)} tags on {len(groups)} digests; verifying {len(mine)}")
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
        tags=snapshot.tag_digests,
        verified=tuple(mine),
        not_selected=len(groups) - len(selected),
    )
    return inventory, results
