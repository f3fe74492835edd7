"""Gather ImageFacts for one image: resolve its reference once, then read everything by digest.

Only manifests, configs and (when the rules need them) the repository's tags are read: a few KB per
image. Layers are never downloaded here.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from imgcheck.errors import RegistryError
from imgcheck.facts import Descriptor, ImageFacts, PlatformFacts, TagFacts
from imgcheck.record import record
from imgcheck.registry.client import MAX_CONFIG_BYTES, Manifest, RegistryClient, TagState
from imgcheck.registry.reference import Reference
from imgcheck.semver import Release, highest, releases

if TYPE_CHECKING:
    from packaging.version import Version

ATTESTATION_TYPE = "attestation-manifest"
MAX_TAGS_RESOLVED = 1000
"""Repositories with more tags are checked against their first tags only (and the facts say so)."""
TAG_WORKERS = 4
"""Other tags are resolved concurrently: on a remote registry that is round-trip bound."""

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def parallel_map(fn: Callable[[_In], _Out], items: Sequence[_In], workers: int) -> list[_Out]:
    """`fn` over `items` on up to `workers` threads, results in order. After the first exception no new
    item starts, and it is raised once the running ones end. Plain threads, not concurrent.futures:
    importing that (and the logging it pulls in) costs ~3 ms of every run."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    results: list[Any] = [None] * len(items)
    failures: list[BaseException] = []
    pending = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while not failures:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            try:
                results[index] = fn(items[index])
            except BaseException as err:  # handed to the caller's thread below
                failures.append(err)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as err:  # Ctrl-C: let no new item start; the daemon threads die with the process
        failures.append(err)
        raise
    if failures:
        raise failures[0]
    return results


class _Background:
    """One call on a daemon thread, joined by `result()` (which re-raises its exception): lets a round
    trip that does not depend on the current one (the tag listing) overlap it."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as err:  # handed to the thread that asks for the result
            self._error = err

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Done:
    """A `_Background` whose answer was already at hand: no thread for work the run has done."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


def parse_descriptor(entry: Mapping[str, Any]) -> Descriptor:
    """A descriptor from manifest JSON, with the platform flattened to `os/arch[/variant]`."""
    platform = entry.get("platform")
    platform_text = None
    if isinstance(platform, Mapping):
        parts = [str(platform.get("os", "")), str(platform.get("architecture", ""))]
        if platform.get("variant"):
            parts.append(str(platform["variant"]))
        platform_text = "/".join(parts)
    digest = entry.get("digest")
    size = entry.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"malformed descriptor in manifest: {json.dumps(dict(entry))[:200]}")
    annotations = entry.get("annotations") or {}
    return Descriptor(
        media_type=str(entry.get("mediaType", "")),
        digest=digest,
        size=size,
        platform=platform_text,
        annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, Mapping) else {},
        artifact_type=entry.get("artifactType") if isinstance(entry.get("artifactType"), str) else None,
    )


def is_attestation(desc: Descriptor) -> bool:
    """buildx puts attestation manifests in the index with platform unknown/unknown: not a platform."""
    return desc.annotations.get("vnd.docker.reference.type") == ATTESTATION_TYPE or desc.platform == "unknown/unknown"


def platform_matches(have: str, want: str) -> bool:
    """`linux/arm64` matches `linux/arm64/v8`; a wanted variant must match exactly."""
    have_parts, want_parts = have.split("/"), want.split("/")
    return have_parts[: len(want_parts)] == want_parts


class Gatherer:
    """Reads facts through one RegistryClient, caching per digest within the run.

    The caches are plain dicts keyed by repository, without locks: threads may share a Gatherer only
    while each works on its own repositories (the pipeline keeps one repository's targets on one thread)."""

    def __init__(self, client: RegistryClient, progress: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.progress = progress or (lambda _m: None)
        self._platform_cache: dict[tuple[str, str, str], PlatformFacts] = {}
        self._tag_cache: dict[tuple[str, str], Manifest] = {}
        self._manifest_cache: dict[tuple[str, str, str], Manifest] = {}
        self._summaries: dict[tuple[str, str, str], _DigestSummary] = {}
        self._repos: dict[tuple[str, str, tuple[str, ...]], _RepoTags] = {}
        self._listings: dict[tuple[str, str], tuple[list[str], tuple[str, ...]]] = {}
        """A repository's tag listing and its considered tags, read once per run: one snapshot for every
        check, and an audit's hundreds of digests do not sort the same listing hundreds of times."""

    def manifest(self, registry: str, repo: str, digest: str) -> Manifest:
        """A manifest by digest, read once per run (content addressed: it cannot change)."""
        key = (registry, repo, digest)
        if key not in self._manifest_cache:
            self._manifest_cache[key] = self.client.get_manifest(registry, repo, digest)
        return self._manifest_cache[key]

    def platform_facts(self, registry: str, repo: str, manifest: Manifest, platform_hint: str | None) -> PlatformFacts:
        key = (registry, repo, manifest.digest)
        if key in self._platform_cache:
            return self._platform_cache[key]
        doc = manifest.json
        config_entry = doc.get("config")
        layers_raw = doc.get("layers")
        if not isinstance(config_entry, Mapping) or not isinstance(layers_raw, list):
            raise RegistryError(
                f"malformed image manifest {manifest.digest} in {registry}/{repo}: no config or layers",
                hint="the registry returned something that is not an OCI/Docker image manifest",
            )
        config_desc = parse_descriptor(config_entry)
        raw = self.client.get_blob(registry, repo, config_desc.digest, max_bytes=MAX_CONFIG_BYTES)
        try:
            config = json.loads(raw)
        except (ValueError, RecursionError):
            config = None
        if not isinstance(config, dict):
            raise RegistryError(f"malformed image config {config_desc.digest} in {registry}/{repo}: not a JSON object")
        if not isinstance(config.get("config") or {}, dict):
            raise RegistryError(
                f"malformed image config {config_desc.digest} in {registry}/{repo}: `config` is not a JSON object",
                hint="the image's config blob is corrupt or hand-made; rebuild and push the image",
            )
        os_name, arch = config.get("os"), config.get("architecture")
        platform = platform_hint
        if not platform or platform == "/":
            platform = f"{os_name}/{arch}" + (f"/{config['variant']}" if config.get("variant") else "")
        facts = PlatformFacts(
            platform=platform,
            manifest_digest=manifest.digest,
            manifest=manifest.json,
            config_digest=config_desc.digest,
            config=config,
            layers=tuple(parse_descriptor(layer) for layer in layers_raw if isinstance(layer, Mapping)),
            config_size=config_desc.size,
        )
        self._platform_cache[key] = facts
        return facts

    def expand(
        self, registry: str, repo: str, top: Manifest, platform_filter: str | None = None
    ) -> tuple[tuple[PlatformFacts, ...], tuple[Descriptor, ...]]:
        """Platforms and attestation entries of a manifest or index."""
        if not top.is_index:
            if "config" not in top.json and top.json.get("schemaVersion") == 1:
                raise RegistryError(
                    f"{registry}/{repo}@{top.digest} is a Docker schema 1 manifest, which is unsupported"
                )
            facts = self.platform_facts(registry, repo, top, None)
            if platform_filter and not platform_matches(facts.platform, platform_filter):
                return (), ()
            return (facts,), ()
        entries = top.json.get("manifests")
        if not isinstance(entries, list):
            raise RegistryError(f"malformed image index {top.digest} in {registry}/{repo}: no manifests list")
        platforms: list[PlatformFacts] = []
        attestations: list[Descriptor] = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise RegistryError(f"malformed image index {top.digest} in {registry}/{repo}: bad entry")
            desc = parse_descriptor(entry)
            if is_attestation(desc):
                attestations.append(desc)
                continue
            if platform_filter and desc.platform and not platform_matches(desc.platform, platform_filter):
                continue
            child = self.manifest(registry, repo, desc.digest)
            if child.is_index:
                raise RegistryError(f"nested image index {desc.digest} in {registry}/{repo} is not supported")
            platforms.append(self.platform_facts(registry, repo, child, desc.platform))
        return tuple(platforms), tuple(attestations)

    def resolve_tag(self, registry: str, repo: str, tag: str) -> Manifest:
        """A tag's manifest, resolved at most once per run: the first answer is the one every check sees."""
        key = (f"{registry}/{repo}", tag)
        if key not in self._tag_cache:
            self._tag_cache[key] = self.client.resolve(Reference(registry, repo, tag=tag))
        return self._tag_cache[key]

    def other_tags(self, registry: str, repo: str, tags: Sequence[str], known: Manifest) -> dict[str, Manifest]:
        """Where each of `tags` points (tags deleted since the listing left out), each resolved at most
        once per run. `known` is the image being checked: tags still on it cost the registry a 304
        instead of the manifest (If-None-Match); the rest are read and verified as by `resolve_tag`."""
        self._manifest_cache.setdefault((registry, repo, known.digest), known)
        repo_key = f"{registry}/{repo}"
        todo: list[str] = []
        for tag in tags:
            if (repo_key, tag) in self._tag_cache:
                continue
            pinned = self.client.pinned_digest(registry, repo, tag)
            if pinned is None:
                todo.append(tag)
            else:
                self._tag_cache[(repo_key, tag)] = self.manifest(registry, repo, pinned)

        def one(tag: str) -> tuple[str, TagState | None]:
            return tag, self.client.revalidate_tag(registry, repo, tag, known.digest)

        # the threads only ask the registry; the caches are written back on this thread
        for tag, state in parallel_map(one, todo, TAG_WORKERS):
            if state is not None:
                manifest = state.manifest or self.manifest(registry, repo, state.digest)
                self._tag_cache.setdefault((repo_key, tag), manifest)
        return {t: self._tag_cache[(repo_key, t)] for t in tags if (repo_key, t) in self._tag_cache}

    def tag_facts(self, registry: str, repo: str, tag: str, *, with_sizes: bool = False) -> TagFacts:
        """Digest, `created` and version label of another tag (first platform's config)."""
        return self._summary(registry, repo, self.resolve_tag(registry, repo, tag)).facts(tag, with_sizes=with_sizes)

    def _summary(self, registry: str, repo: str, manifest: Manifest) -> _DigestSummary:
        """What the tag rules need of one digest, worked out once however many tags point at it."""
        key = (registry, repo, manifest.digest)
        found = self._summaries.get(key)
        if found is None:
            platforms, _ = self.expand(registry, repo, manifest)
            found = _DigestSummary(
                digest=manifest.digest,
                created=parse_time(platforms[0].created) if platforms else None,
                created_label=_created_label(platforms[0].labels) if platforms else None,
                version=platforms[0].labels.get("org.opencontainers.image.version") if platforms else None,
                sizes={p.platform: p.compressed_size for p in platforms},
            )
            self._summaries[key] = found
        return found

    def gather(
        self,
        name: str,
        ref: Reference,
        *,
        need_tags: bool,
        platform_filter: str | None = None,
    ) -> ImageFacts:
        """Resolve `ref` once and read everything the metadata rules need, by digest."""
        self.progress(f"{name}: resolving {ref}")
        # the listing and the other tags' lookups do not depend on the image's own manifest and config:
        # they run beside them (a remote registry is round-trip bound: ~7 sequential trips become ~4)
        known_listing = self._listings.get((ref.registry, ref.repository))
        listing: _Background | _Done | None = None
        if need_tags:
            listing = _Done(known_listing[0]) if known_listing else _Background(lambda: self._listing(ref))
        top = self.client.resolve(ref)
        if ref.tag and not ref.digest:
            self._tag_cache.setdefault((f"{ref.registry}/{ref.repository}", ref.tag), top)
        lookups: _Background | _Done | None = None
        if listing is not None:
            if known_listing and (ref.registry, ref.repository, known_listing[1]) in self._repos:
                lookups = _Done((known_listing[0], {}))  # every tag's facts are built already
            else:
                lookups = _Background(lambda: self._lookup_tags(ref.registry, ref.repository, listing.result(), top))
        platforms, attestations = self.expand(ref.registry, ref.repository, top, platform_filter)
        if not platforms:
            wanted = f" for platform {platform_filter}" if platform_filter else ""
            raise RegistryError(f"{ref} ({top.digest[:19]}) has no runnable image manifest{wanted}")
        facts = ImageFacts(
            name=name,
            registry=ref.registry,
            repository=ref.repository,
            reference=str(ref),
            tag=ref.tag,
            digest=top.digest,
            media_type=top.media_type,
            platforms=platforms,
            index_manifest=top.json if top.is_index else None,
            attestation_manifests=attestations,
        )
        if lookups is None:
            return facts
        self.progress(f"{name}: reading tags")
        tags, resolved = lookups.result()
        return self.add_tags(facts, top, listed=(tags, resolved))

    def add_tags(
        self,
        facts: ImageFacts,
        top: Manifest | None = None,
        *,
        listed: tuple[list[str], Mapping[str, Manifest]] | None = None,
    ) -> ImageFacts:
        """Tags on the same digest, every tag's digest and age, and the previous release. `listed` is the
        listing and its lookups when the caller already has them (`gather` reads them in the background)."""
        from dataclasses import replace

        known = top or self.manifest(facts.registry, facts.repository, facts.digest)
        if listed is None:
            self.progress(f"{facts.name}: listing tags")
            tags = self._listing(Reference(facts.registry, facts.repository, digest=facts.digest))
            listed = self._lookup_tags(facts.registry, facts.repository, tags, known)
        tags, resolved = listed
        repo = self._repo_tags(facts.registry, facts.repository, tags, known, resolved)
        on_digest = repo.by_digest.get(facts.digest, ())
        previous = self.previous_release(facts, repo, on_digest)
        extras: dict[str, Any] = dict(facts.extras)
        if len(tags) > MAX_TAGS_RESOLVED:
            extras["tags_truncated"] = len(tags)
        return replace(facts, tags_on_digest=on_digest, repo_tags=repo.tags, previous_release=previous, extras=extras)

    def _listing(self, ref: Reference) -> list[str]:
        """The repository's tags, listed once per run (see `_listings`)."""
        key = (ref.registry, ref.repository)
        found = self._listings.get(key)
        if found is None:
            tags = self.client.list_tags(ref.registry, ref.repository)
            found = self._listings.setdefault(key, (tags, _considered(tags)))
        return found[0]

    def _considered(self, registry: str, repo: str, tags: Sequence[str]) -> tuple[str, ...]:
        found = self._listings.get((registry, repo))
        return found[1] if found is not None and found[0] is tags else _considered(tags)

    def _lookup_tags(
        self, registry: str, repo: str, tags: list[str], known: Manifest
    ) -> tuple[list[str], Mapping[str, Manifest]]:
        """The listing and where each considered tag points (once per listing: see `_repo_tags`)."""
        considered = self._considered(registry, repo, tags)
        if (registry, repo, considered) in self._repos:
            return tags, {}
        return tags, self.other_tags(registry, repo, considered, known)

    def _repo_tags(
        self, registry: str, repo: str, tags: Sequence[str], known: Manifest, resolved: Mapping[str, Manifest]
    ) -> _RepoTags:
        """Every considered tag's facts, built once per tag listing: an audit checks a hundred digests
        of one repository against the same few hundred tags. Each digest's config is read once, and
        the digests concurrently (a cold audit of a remote registry is round-trip bound)."""
        considered = self._considered(registry, repo, tags)
        key = (registry, repo, considered)
        found = self._repos.get(key)
        if found is not None:
            return found
        self._summary(registry, repo, known)  # its platforms are read already: no thread needed
        distinct = list({m.digest: m for t, m in resolved.items() if t in considered}.values())

        def summarize(manifest: Manifest) -> _DigestSummary | None:
            try:
                return self._summary(registry, repo, manifest)
            except RegistryError as err:
                if err.status != 404:
                    raise  # a child manifest deleted in between is like a deleted tag; the rest is not
                return None

        summaries = dict(zip((m.digest for m in distinct), parallel_map(summarize, distinct, TAG_WORKERS), strict=True))
        facts: list[TagFacts] = []
        for tag in considered:
            summary = summaries.get(resolved[tag].digest) if tag in resolved else None
            if summary is not None:  # else deleted between the listing and the read
                facts.append(summary.facts(tag))
        found = _RepoTags(tuple(facts))
        self._repos[key] = found
        return found

    def previous_release(self, facts: ImageFacts, repo: _RepoTags, on_digest: tuple[str, ...]) -> TagFacts | None:
        """The next-lower semver release; for branch builds with no semver tags, the newest older build."""
        created = facts.platforms[0].created if facts.platforms else None
        candidate = previous_tag(repo, on_digest, created, facts.digest)
        if candidate is None:
            return None
        return self.tag_facts(facts.registry, facts.repository, candidate.tag, with_sizes=True)


def previous_tag(repo: _RepoTags, on_digest: Sequence[str], created: str | None, digest: str) -> TagFacts | None:
    """The tag `previous_release` reads: below the highest release on the digest, the highest final
    release; on a digest with no release tag in a repository without any, the newest build created
    before it (`created`: its config's) on another digest. None when there is no such tag."""
    current = highest(on_digest)
    if current is not None:
        return repo.release_below(current.version)
    if repo.releases:
        return None
    own = parse_time(created)
    return repo.build_before(own, digest) if own is not None else None


@record
class _DigestSummary:
    """One digest's `created`, version label and sizes: shared by every tag on it."""

    digest: str
    created: datetime | None
    created_label: datetime | None
    version: str | None
    sizes: Mapping[str, int]

    def facts(self, tag: str, *, with_sizes: bool = False) -> TagFacts:
        sizes = dict(self.sizes) if with_sizes else {}
        return TagFacts(
            tag=tag,
            digest=self.digest,
            created=self.created,
            created_label=self.created_label,
            compressed_sizes=sizes,
            version_label=self.version,
        )


def _created_label(labels: Mapping[str, str]) -> datetime | None:
    """The build time docker/metadata-action stamps, when it is a valid RFC 3339 date-time."""
    from imgcheck.checks.labels import parse_rfc3339

    value = labels.get("org.opencontainers.image.created")
    return parse_rfc3339(value) if value else None


@record
class _RepoTags:
    """A repository's tag facts with the lookups every digest's rules need, built once."""

    tags: tuple[TagFacts, ...]
    by_tag: Mapping[str, TagFacts] = field(init=False)
    by_digest: Mapping[str, tuple[str, ...]] = field(init=False)
    releases: tuple[Release, ...] = field(init=False)
    _finals: tuple[Release, ...] = field(init=False, repr=False)
    """The releases that are not pre-releases, lowest first, and their versions (for bisect)."""
    _final_versions: tuple[Version, ...] = field(init=False, repr=False)
    _dated: tuple[TagFacts, ...] = field(init=False, repr=False)
    """The tags with a `created`, oldest first (equally old ones in `tags` order), and their times."""
    _created: tuple[datetime, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_digest: dict[str, list[str]] = {}
        for t in self.tags:
            by_digest.setdefault(t.digest, []).append(t.tag)
        object.__setattr__(self, "by_tag", {t.tag: t for t in self.tags})
        object.__setattr__(self, "by_digest", {d: tuple(tags) for d, tags in by_digest.items()})
        object.__setattr__(self, "releases", tuple(releases(self.by_tag)))
        finals = tuple(r for r in self.releases if not r.prerelease)
        object.__setattr__(self, "_finals", finals)
        object.__setattr__(self, "_final_versions", tuple(r.version for r in finals))
        dated = sorted(((t.created, t) for t in self.tags if t.created is not None), key=lambda pair: pair[0])
        object.__setattr__(self, "_dated", tuple(t for _, t in dated))
        object.__setattr__(self, "_created", tuple(created for created, _ in dated))

    def release_below(self, version: Version) -> TagFacts | None:
        """The highest final release below `version` (of equal ones, the last as sorted): a bisect, not a
        pass over every release for each of an audit's hundreds of digests."""
        index = bisect_left(self._final_versions, version)
        return self.by_tag[self._finals[index - 1].tag] if index else None

    def build_before(self, created: datetime, digest: str) -> TagFacts | None:
        """The newest tag created before `created` that is not on `digest` (of equally new ones, the first
        in `tags` order). The newest times are tried first, so only tags as old as the answer are read."""
        end = bisect_left(self._created, created)
        while end:
            start = bisect_left(self._created, self._created[end - 1], 0, end)
            for tag in self._dated[start:end]:
                if tag.digest != digest:
                    return tag
            end = start
        return None


def _considered(tags: Sequence[str]) -> tuple[str, ...]:
    """The tags whose facts are read: not cosign signatures, attestations or the referrers fallback
    (`sha256-…`), which are not releases; at most MAX_TAGS_RESOLVED."""
    return tuple(t for t in sorted(tags)[:MAX_TAGS_RESOLVED] if not t.startswith("sha256-"))


def parse_time(value: str | None) -> datetime | None:
    """RFC 3339 (with `Z` or an offset, any fraction digits) to an aware datetime; None if unparseable."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
