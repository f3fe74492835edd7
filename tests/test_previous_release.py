"""`previous_tag` (what `Gatherer.previous_release` reads) finds the same tag as the straightforward pass over
every release and every tag it replaced, on random repositories: equal versions under two spellings
(`v1.0.0`, `1.0.0`), pre-releases, build metadata, non-semver tags, digests created at the same time,
tags without a `created`, and a digest whose own `created` differs from its tags' (a platform filter)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from imgcheck.facts import TagFacts
from imgcheck.gather import _RepoTags, parse_time, previous_tag
from imgcheck.semver import highest

DIGESTS = tuple(f"sha256:{n:064x}" for n in range(6))
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def reference(repo: _RepoTags, on_digest: Sequence[str], created: str | None, digest: str) -> TagFacts | None:
    """The selection as `previous_release` made it before the bisect: a pass over every release or tag."""
    current = highest(on_digest)
    if current is not None:
        lower = [r for r in repo.releases if r.version < current.version and not r.prerelease]
        return repo.by_tag[lower[-1].tag] if lower else None
    if repo.releases:
        return None
    own = parse_time(created)
    older = [t for t in repo.tags if t.digest != digest and t.created and own and t.created < own]
    return max(older, key=lambda t: t.created or datetime.min) if older else None


semver_tags = st.builds(
    lambda v, major, minor, patch, pre, build: f"{v}{major}.{minor}.{patch}{pre}{build}",
    st.sampled_from(["", "v"]),
    st.integers(0, 2),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(["", "", "-rc.1", "-rc.2", "-alpha", "-beta.1", "-foo", "-0.3.7"]),
    st.sampled_from(["", "", "+build.1", "+abc"]),
)
other_tags = st.one_of(
    st.sampled_from(["latest", "main", "1.4", "1", "v2", "nightly", "1.2.3.4", "v1.02.3"]),
    st.text("abcdef0123456789", min_size=7, max_size=7).map(lambda h: f"main-{h}"),
    st.text("abcdef0123456789", min_size=7, max_size=7).map(lambda h: f"sha-{h}"),
)
times = st.one_of(
    st.none(),
    st.builds(
        lambda days, hours, offset: (BASE + timedelta(days=days, hours=hours)).astimezone(
            timezone(timedelta(hours=offset))
        ),
        st.integers(0, 4),
        st.sampled_from([0, 12]),
        st.sampled_from([0, 2, -5]),  # the same instant written in other zones is equally old
    ),
)


@st.composite
def repositories(draw: st.DrawFn, tags: st.SearchStrategy[str]) -> _RepoTags:
    names = draw(st.lists(tags, max_size=30, unique=True))
    created = {d: draw(times) for d in DIGESTS}
    facts = []
    for name in names:
        digest = draw(st.sampled_from(DIGESTS))
        own = created[digest] if draw(st.booleans()) else draw(times)  # mostly one time per digest
        facts.append(TagFacts(name, digest, own))
    return _RepoTags(tuple(draw(st.permutations(facts))))


@st.composite
def question(draw: st.DrawFn, repo: _RepoTags) -> tuple[tuple[str, ...], str | None, str]:
    """A digest of the repository (or not), its tags, and its own `created` as its config says it."""
    digest = draw(st.sampled_from([*DIGESTS, "sha256:" + "f" * 64]))
    on_digest = repo.by_digest.get(digest, ())
    stamps = [t.created for t in repo.tags if t.digest == digest and t.created]
    later = [s + timedelta(hours=1) for s in stamps]  # its own tags are then the newest older ones
    own = draw(st.sampled_from([*stamps, *later, None]) | times)
    created = draw(st.sampled_from([own.isoformat() if isinstance(own, datetime) else None, "not a time"]))
    return on_digest, created, digest


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from(["mixed", "builds only"]))
def test_previous_tag_is_what_a_pass_over_every_tag_finds(data: st.DataObject, kind: str) -> None:
    tags = st.one_of(semver_tags, other_tags) if kind == "mixed" else other_tags
    repo = data.draw(repositories(tags))
    for _ in range(4):
        on_digest, created, digest = data.draw(question(repo))
        assert previous_tag(repo, on_digest, created, digest) == reference(repo, on_digest, created, digest)


def test_previous_tag_examples() -> None:
    """What the property stands on: a release's previous one skips pre-releases; of two spellings of one
    version the later sorted wins; branch builds take the newest older build on another digest."""
    d1, d2, d3, d4 = DIGESTS[:4]
    at = [BASE + timedelta(days=n) for n in range(4)]
    repo = _RepoTags(
        (
            TagFacts("1.0.0", d1, at[0]),
            TagFacts("v1.0.0", d1, at[0]),
            TagFacts("v1.1.0-rc.1", d2, at[1]),
            TagFacts("v1.1.0", d3, at[2]),
            TagFacts("latest", d3, at[2]),
        )
    )
    found = previous_tag(repo, ("latest", "v1.1.0"), None, d3)
    assert found is not None and found.tag == "v1.0.0"
    assert previous_tag(repo, ("v1.0.0",), None, d1) is None
    assert previous_tag(repo, ("latest",), at[3].isoformat(), d4) is None  # not a release, in a repo with some
    builds = _RepoTags(
        (
            TagFacts("main-1111111", d1, at[0]),
            TagFacts("main-2222222", d2, at[1]),
            TagFacts("sha-2222222", d2, at[1]),
            TagFacts("main-3333333", d3, at[2]),
            TagFacts("main-4444444", d4, None),
        )
    )
    found = previous_tag(builds, ("main-3333333",), at[2].isoformat(), d3)
    assert found is not None and found.tag == "main-2222222"
    found = previous_tag(builds, ("main-3333333",), at[3].isoformat(), d3)  # its own tags never count
    assert found is not None and found.tag == "main-2222222"
    assert previous_tag(builds, ("main-1111111",), at[0].isoformat(), d1) is None
    assert previous_tag(builds, ("main-4444444",), None, d4) is None
