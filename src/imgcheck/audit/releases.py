"""Which digests of different policy images are one release, and `tags.consistent_across_images` per release.

The audit verifies each digest on its own (a pipeline run per image), so the tags rule would only ever
see one image and compare nothing. A release, for the audit, is a release tag: a semver tag (`v1.4.2`,
pre-releases included) or a build tag (`sha-3f2a9c1`, `main-3f2a9c1`): the tags drift holds immutable.
The digests of different policy images that carry the same release tag are that release's images, and
are compared as `imgcheck verify <that tag>` compares them. `latest`, `main` and `1.4` move, so they
name no release. Membership comes from the run's tag snapshot, which every shard lists in full, so a
shard judges a release with the same images as an unsharded run (reading its peers' facts by digest).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from imgcheck.audit.inventory import is_immutable_tag
from imgcheck.audit.model import Release
from imgcheck.checks import tags as tags_rule
from imgcheck.checks.interface import apply_mode
from imgcheck.facts import ImageFacts
from imgcheck.report.model import CheckResult

CHECK = "consistent_across_images"


@dataclass
class Published:
    """One policy image as its releases need it: its tags rule, its tag snapshot, its facts by digest."""

    name: str
    config: tags_rule.Config | None
    """Its tags rule when that checks consistent_across_images, else None (nothing to re-judge)."""
    groups: Mapping[str, tuple[str, ...]]
    """digest -> every tag on it, as resolved at the start of the run (attachment tags left out)."""
    facts_of: Callable[[str], ImageFacts | str]
    """Facts of a digest (read by digest, cached), or why they could not be read."""
    _members: dict[str, ImageFacts | None] = field(default_factory=dict)

    def member(self, digest: str) -> ImageFacts | None:
        """The digest as a release member: its facts with every tag on it; None if it cannot be read
        (like an image that does not resolve in verify, it is left out of the comparison)."""
        if digest not in self._members:
            found = self.facts_of(digest)
            on_digest = tuple(self.groups.get(digest, ()))
            self._members[digest] = (
                dataclasses.replace(found, tags_on_digest=on_digest) if isinstance(found, ImageFacts) else None
            )
        return self._members[digest]


def release_images(published: Sequence[Published]) -> dict[str, dict[str, str]]:
    """release tag -> policy image -> the digest that image's tag points at."""
    found: dict[str, dict[str, str]] = {}
    for image in published:
        for digest, tags in image.groups.items():
            for tag in tags:
                if is_immutable_tag(tag):
                    found.setdefault(tag, {})[image.name] = digest
    return found


def judge_releases(published: Sequence[Published], results: Sequence[Release]) -> list[Release]:
    """Each audited digest's consistent_across_images finding, judged again within its releases (the
    pipeline saw the digest alone). Policies without the check cost nothing."""
    by_name = {p.name: p for p in published}
    if not any(p.config is not None for p in published):
        return list(results)
    releases = release_images(published)
    return [_rejudged(r, by_name.get(r.image), releases, by_name) for r in results]


def _rejudged(
    result: Release,
    image: Published | None,
    releases: Mapping[str, Mapping[str, str]],
    by_name: Mapping[str, Published],
) -> Release:
    position = next(
        (n for n, c in enumerate(result.checks) if c.rule == tags_rule.RULE.id and c.details.get("check") == CHECK),
        None,
    )
    if image is None or image.config is None or position is None:
        return result  # the rule did not get as far as the check (or is off): nothing to replace
    own = image.member(result.digest)
    if own is None:
        return result
    mine = [t for t in image.groups.get(result.digest, ()) if t in releases]
    groups: dict[str, dict[str, ImageFacts]] = {}
    for tag in mine:
        members = {n: by_name[n].member(d) for n, d in releases[tag].items() if n != image.name and n in by_name}
        groups[tag] = {n: f for n, f in members.items() if f is not None}
    finding = apply_mode(tags_rule.consistent_per_release(own, image.config, groups), image.config)
    checks = list(result.checks)
    checks[position] = CheckResult(tags_rule.RULE.id, finding.verdict, finding.message, None, dict(finding.details))
    return dataclasses.replace(result, checks=tuple(checks))
