"""labels: required OCI labels present, matching, consistent with the tag and the clock.

All label problems of an image go into one finding (a release is fixed in one rebuild, so the list
is the to-do list); platforms are reported apart only when their labels disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field
from datetime import UTC, datetime, timedelta

from imgcheck import semver as _semver
from imgcheck.checks._common import per_platform, quoted, tags_of
from imgcheck.checks.interface import Finding, RuleConfig, RuleSpec, RunContext
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.policy.patterns import Pattern
from imgcheck.record import record
from imgcheck.verdict import Verdict

VERSION_LABEL = "org.opencontainers.image.version"
CREATED_LABEL = "org.opencontainers.image.created"
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future `created` may be: build machines' clocks drift."""

_RFC3339_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?(?P<tz>[Zz]|[+-]\d{2}:\d{2})"
)


@record
class Config(RuleConfig):
    required: tuple[str, ...] = ()
    match: Mapping[str, Pattern] = field(default_factory=dict)
    version_matches_tag: bool = False
    created_not_in_future: bool = False


def parse_rfc3339(text: str) -> datetime | None:
    """An aware datetime for a full RFC 3339 date-time (offset required), else None.

    `datetime.fromisoformat` alone accepts dates without a time or an offset, which RFC 3339 does not.
    """
    m = _RFC3339_RE.fullmatch(text)
    if not m:
        return None
    frac = (m.group("frac") or "")[:7]  # Go writes nanoseconds; Python keeps microseconds
    tz = "+00:00" if m.group("tz") in ("Z", "z") else m.group("tz")
    try:
        return datetime.fromisoformat(f"{m.group('date')}T{m.group('time')}{frac}{tz}")
    except ValueError:
        return None


def check(facts: ImageFacts, config: Config, run: RunContext) -> list[Finding]:
    if not facts.platforms:
        return [Finding(Verdict.ERROR, "no runnable platform manifest, so no image config to read labels from")]
    tags = tags_of(facts)
    semver_tags = [r.tag for r in _semver.releases(tags)]
    return per_platform(facts.platforms, lambda p: _judge(p, config, run, semver_tags, tags))


def _judge(
    platform: PlatformFacts, config: Config, run: RunContext, semver_tags: list[str], tags: list[str]
) -> Finding:
    labels = platform.labels
    problems: list[str] = []
    missing = [k for k in config.required if k not in labels]
    empty = [k for k in config.required if k in labels and not labels[k].strip()]
    missing += [k for k in config.match if k not in labels and k not in missing]
    if missing:
        problems.append(f"missing {quoted(missing)}")
    if empty:
        problems.append(f"empty {quoted(empty)}")
    for key, pattern in config.match.items():
        if key in labels and not pattern.fullmatch(labels[key]):
            problems.append(f"{key}={labels[key]!r} does not match {pattern.pattern!r}")
    if config.version_matches_tag:
        problems.extend(_version_problems(labels, semver_tags, tags))
    if config.created_not_in_future:
        problems.extend(_created_problems(platform, labels, run.now))
    details = {"problems": problems, "checked": _checked(config)}
    if problems:
        return Finding(
            Verdict.FAIL,
            f"{'; '.join(problems)}; fix the labels at build time (docker/metadata-action) and push again",
            details=details,
        )
    return Finding(Verdict.PASS, f"labels OK ({', '.join(_checked(config)) or 'nothing required'})", details=details)


def _version_problems(labels: Mapping[str, str], semver_tags: list[str], tags: list[str]) -> list[str]:
    version = labels.get(VERSION_LABEL, "").strip()
    if not version:
        return [f"{VERSION_LABEL} is needed to compare with the semver tag but is missing or empty"]
    if not semver_tags:
        return [
            f"{VERSION_LABEL}={version!r} but no semver tag points at this digest (tags: {quoted(tags)}); "
            "push the release tag, or drop version_matches_tag for branch builds"
        ]
    if _semver.strip_v(version) in {_semver.strip_v(t) for t in semver_tags}:
        return []
    return [f"{VERSION_LABEL}={version!r} but the semver tag on this digest is {quoted(semver_tags)}"]


def _created_problems(platform: PlatformFacts, labels: Mapping[str, str], now: datetime) -> list[str]:
    source, raw = (CREATED_LABEL, labels[CREATED_LABEL]) if CREATED_LABEL in labels else ("config created", None)
    if raw is None:
        raw = platform.created
    if raw is None or not raw.strip():
        return [f"no creation time: neither {CREATED_LABEL} nor the config's created is set"]
    when = parse_rfc3339(raw)
    if when is None:
        return [f"{source}={raw!r} is not an RFC 3339 date-time like 2024-05-01T12:00:00Z"]
    now_utc = now if now.tzinfo else now.replace(tzinfo=UTC)
    if when > now_utc + CLOCK_SKEW:
        return [
            f"{source}={raw!r} is in the future (now {now_utc.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}); "
            "fix the build machine's clock or the label"
        ]
    return []


def _checked(config: Config) -> list[str]:
    parts = []
    if config.required:
        parts.append(f"{len(config.required)} required")
    if config.match:
        parts.append(f"{len(config.match)} matched")
    if config.version_matches_tag:
        parts.append("version = tag")
    if config.created_not_in_future:
        parts.append("created not in future")
    return parts


def describe(config: Config) -> str:
    parts = []
    if config.required:
        parts.append(f"present and non-empty: {', '.join(config.required)}")
    if config.match:
        parts.append("full match: " + ", ".join(f"{k} ~ {p.pattern}" for k, p in config.match.items()))
    if config.version_matches_tag:
        parts.append(f"{VERSION_LABEL} equals the semver tag")
    if config.created_not_in_future:
        parts.append(f"{CREATED_LABEL} is RFC 3339 and not in the future")
    return "; ".join(parts) if parts else "no label checks"


RULE = RuleSpec(
    id="labels",
    summary="required labels are present and match; the version label equals the semver tag",
    config=Config,
    check=check,
    describe=describe,
    needs_tags=True,
)
