"""Drift grouped by cause, worst first, each cause with the fix a person applies.

One night's raw drift (audit/drift.py: one item per tag and per release and rule) says the same thing
many times: `latest` moved to an older release, so `tags` (latest_is_highest) now fails on every
release of the image; a re-pushed release tag makes the digest it now names fail `labels` (its version
label disagrees) and the release's other images fail `tags` (consistent_across_images). Here each such
regression is folded into the tag change that caused it, so one cause is one row listing the releases it
affects, and no row contradicts another (a moved `latest` that breaks rules is a failing row, never an
"expected" one). What is left is grouped too: one new CVE in several releases of an image is one row,
one rule regressing on several releases is one row; new tags of one new digest are one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from imgcheck.audit.inventory import is_immutable_tag
from imgcheck.audit.model import GROUP_ORDER, SEVERITY_ORDER, DriftGroup, DriftItem
from imgcheck.semver import parse_release

_REGRESSIONS = ("verdict-regressed", "attachment-vanished")
_TAG_RULES = ("tags", "labels")
"""The rules whose verdict on a digest depends on the tags pointing at it."""
_MOVE_TO = re.compile(r"move (\S+) to (\S+?)[;,.]?(?:\s|$)")
"""The tags rule's own advice, `…; move latest to v1.4.2`."""
_REATTACH = {
    "signature": "sign it again: `cosign sign --key <key> {ref}`",
    "sbom": "attach the SBOM again: `cosign attest --type cyclonedx --predicate sbom.json --key <key> {ref}`",
    "provenance": "attach the provenance again (rebuild with `docker buildx build --provenance=mode=max`)",
}


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _release(item: DriftItem) -> str:
    return str(item.details.get("release") or _short(item.subject))


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _listing(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def group_causes(items: Iterable[DriftItem], repositories: Mapping[str, str]) -> tuple[DriftItem, ...]:
    """`repositories`: image name -> `registry/repository`, for the commands in the fixes."""
    raw = list(items)
    tags = sorted(
        (d for d in raw if d.kind in ("tag-moved", "tag-disappeared")), key=lambda d: (_tag_rank(d), d.image, d.subject)
    )
    caused: dict[int, list[DriftItem]] = {id(t): [] for t in tags}
    rest: list[DriftItem] = []
    for item in raw:
        if item.kind in _REGRESSIONS:
            cause = _cause_of(item, tags)
            if cause is not None:
                caused[id(cause)].append(item)
                continue
        if item.kind not in ("tag-moved", "tag-disappeared"):
            rest.append(item)
    rows = [_tag_row(t, caused[id(t)], repositories.get(t.image, t.image)) for t in tags]
    rows = _with_new_tags(rows, _grouped(rest, repositories))
    position = {name: n for n, name in enumerate(repositories)}
    rows.sort(
        key=lambda d: (
            GROUP_ORDER[d.group],
            SEVERITY_ORDER[d.severity],
            -len(d.releases),
            position.get(d.image, len(position)),
            d.subject,
        )
    )
    return tuple(rows)


def _tag_rank(item: DriftItem) -> int:
    """Which tag change a regression is blamed on first: release tags, then moving tags, then build tags."""
    if parse_release(item.subject):
        return 0
    return 2 if is_immutable_tag(item.subject) else 1


def _cause_of(item: DriftItem, tags: Sequence[DriftItem]) -> DriftItem | None:
    """The tag change that made this release regress. Only rules that read tags can regress because a tag
    moved (a digest's content never changes; a vanished signature or a new size failure is its own cause):
    `labels` (version_matches_tag) and `tags` regress with a tag that named or now names the digest; `tags`
    (which reads every tag of the repository and the release's other images) also with a moving tag of
    its image or a release tag this release carries."""
    if item.kind != "verdict-regressed" or item.details.get("rule") not in _TAG_RULES:
        return None
    digests = (item.subject,)
    for tag in tags:
        if tag.image == item.image and {tag.details.get("from"), tag.details.get("to")} & set(digests):
            return tag
    if item.details.get("rule") != "tags":
        return None
    carried = set(item.details.get("tags") or ())
    for tag in tags:
        floating = tag.kind == "tag-moved" and not is_immutable_tag(tag.subject)
        if (tag.image == item.image and floating) or (parse_release(tag.subject) and tag.subject in carried):
            return tag
    return None


def _tag_row(tag: DriftItem, regressions: list[DriftItem], repository: str) -> DriftItem:
    releases = list(dict.fromkeys(_where(r, tag.image) for r in regressions))
    release_tag = parse_release(tag.subject) is not None
    group: DriftGroup
    if tag.severity == "fail" and (tag.kind == "tag-moved" or release_tag):
        group = "immutable-tag"
    elif regressions:
        group = "regression"
    else:
        group = "warning" if tag.severity == "warn" else "change"
    message = tag.message
    if regressions:
        rules = _and(list(dict.fromkeys(str(r.details.get("rule")) for r in regressions)))
        first = str(regressions[0].details.get("message") or "")
        verb = "fail" if " and " in rules else "fails"
        message += f"; since then {rules} {verb} on {_listing(releases)}" + (f": {first}" if first else "")
    severity = "fail" if regressions or tag.severity == "fail" else tag.severity
    old, new = tag.details.get("from"), tag.details.get("to")
    fix: str | None = None
    if tag.kind == "tag-moved" and is_immutable_tag(tag.subject):
        fix = (
            f"find out who re-pushed {tag.image}:{tag.subject}, then point it back: "
            f"`docker buildx imagetools create --tag {repository}:{tag.subject} {repository}@{old}`"
        )
    elif tag.kind == "tag-moved" and regressions:
        target = _MOVE_TO.search(" ".join(str(r.details.get("message") or "") for r in regressions))
        fix = (
            f"point {tag.subject} at {target[2]}: `docker buildx imagetools create --tag {repository}:{tag.subject}"
            f" {repository}:{target[2]}`"
            if target and target[1] == tag.subject
            else f"find out why {tag.image}:{tag.subject} moved to {_short(str(new))} and move it back"
        )
    elif tag.kind == "tag-disappeared" and tag.severity != "info":
        fix = (
            f"find out who deleted {tag.image}:{tag.subject}; if {_short(str(old))} is still stored, restore it: "
            f"`docker buildx imagetools create --tag {repository}:{tag.subject} {repository}@{old}`"
        )
    details = {**tag.details, "regressions": [_regression(r) for r in regressions]} if regressions else tag.details
    return replace(
        tag,
        severity=severity,
        group=group,
        message=message,
        details=details,
        releases=tuple(dict.fromkeys([tag.subject, *releases] if is_immutable_tag(tag.subject) else releases))
        or (tag.subject,),
        fix=fix,
    )


def _where(item: DriftItem, image: str) -> str:
    """A release as a row names it: `v1.4.1`, or `consumer v1.4.1` when it is another image's."""
    return _release(item) if item.image == image else f"{item.image} {_release(item)}"


def _regression(item: DriftItem) -> dict[str, object]:
    keep = ("rule", "from", "to", "release", "message")
    return {"image": item.image, "digest": item.subject, **{k: item.details.get(k) for k in keep}}


def _with_new_tags(tag_rows: list[DriftItem], rows: list[DriftItem]) -> list[DriftItem]:
    """A moving tag that only followed a new release (`latest` onto tonight's v1.4.3) is that release's row."""
    new = {(d.image, d.details.get("to")): n for n, d in enumerate(rows) if d.kind == "tag-appeared"}
    kept: list[DriftItem] = []
    for row in tag_rows:
        n = new.get((row.image, row.details.get("to")))
        if n is None or row.kind != "tag-moved" or row.severity != "info":
            kept.append(row)
            continue
        base = rows[n]
        moved = f"{row.subject} moved here from {_short(str(row.details.get('from')))}"
        rows[n] = replace(base, message=f"{base.message}; {moved}", details={**base.details, "moved": [row.subject]})
    return kept + rows


def _grouped(items: list[DriftItem], repositories: Mapping[str, str]) -> list[DriftItem]:
    """New CVEs by (image, CVE, package); regressions by (image, kind, rule); new tags by (image, digest)."""
    groups: dict[tuple[str, ...], list[DriftItem]] = {}
    for item in items:
        key: tuple[str, ...]
        if item.kind == "new-cve":
            key = (item.kind, item.image, str(item.details.get("id")), str(item.details.get("package")))
        elif item.kind in _REGRESSIONS:
            key = (item.kind, item.image, str(item.details.get("rule")))
        elif item.kind == "tag-appeared":
            key = (item.kind, item.image, str(item.details.get("to")))
        else:
            key = (item.kind, item.image, item.subject)
        groups.setdefault(key, []).append(item)
    return [_group_row(found, repositories.get(found[0].image, found[0].image)) for found in groups.values()]


def _group_row(found: list[DriftItem], repository: str) -> DriftItem:
    first = found[0]
    releases = tuple(dict.fromkeys(_release(d) for d in found))
    if first.kind == "new-cve":
        message = first.message if len(found) == 1 else f"{first.message}; also in {_listing(releases[1:])}"
        finding = first.details.get("finding") or {}
        fixed = finding.get("fixed") if isinstance(finding, Mapping) else None
        fix = (
            f"rebuild {first.image} with {first.details.get('package')} {fixed} and release it"
            if fixed
            else f"no fixed {first.details.get('package')} yet: assess it, then waive it"
            " (vulnerabilities.ignore) or withdraw the release"
        )
        return replace(first, message=message, group="new-cve", releases=releases, fix=fix)
    if first.kind in _REGRESSIONS:
        rule = str(first.details.get("rule"))
        message = first.message
        if len(found) > 1:
            message = f"{first.image}: {rule} regressed on {len(found)} releases ({_listing(releases)}): " + str(
                first.details.get("message") or ""
            )
        template = _REATTACH.get(rule) if first.kind == "attachment-vanished" else None
        ref = f"{repository}@{first.subject}"
        fix = template.format(ref=ref) if template else f"fix {rule} on {first.image} {releases[0]}: see its finding"
        details = {**first.details, "digests": [d.subject for d in found]} if len(found) > 1 else first.details
        return replace(first, message=message, details=details, group="regression", releases=releases, fix=fix)
    if first.kind == "tag-appeared" and len(found) > 1:
        names = [d.subject for d in found]
        message = f"{first.image}: new tags {_listing(names)} on {_short(str(first.details.get('to')))}"
        return replace(first, message=message, releases=tuple(names), details={**first.details, "tags": names})
    group: DriftGroup = "warning" if first.severity == "warn" else "change"
    return replace(first, group=group, releases=(first.subject,) if first.kind.startswith("tag-") else releases)


def headline(item: DriftItem) -> str:
    """The to-do line's "what": a few words a person reads before the fix."""
    subject = item.subject if item.kind.startswith("tag-") else ", ".join(item.releases[:3]) or _short(item.subject)
    rules = _and(list(dict.fromkeys(str(r.get("rule")) for r in item.details.get("regressions") or ())) or [""])
    if item.kind == "tag-moved":
        if is_immutable_tag(item.subject):
            return f"{item.image}:{subject} was re-pushed"
        verb = "fail" if " and " in rules else "fails"
        breaks = f" and {rules} now {verb} on {len(item.releases)} releases" if rules else ""
        return f"{item.image}:{subject} moved{breaks}"
    if item.kind == "tag-disappeared":
        return f"{item.image}:{subject} was deleted"
    if item.kind == "new-cve":
        return f"{item.image} {subject}: new {item.details.get('id')} in {item.details.get('package')}"
    if item.kind == "attachment-vanished":
        return f"{item.image} {subject}: its {item.details.get('rule')} no longer verifies"
    if item.kind == "verdict-regressed":
        return f"{item.image} {subject}: {item.details.get('rule')} regressed"
    return item.message
