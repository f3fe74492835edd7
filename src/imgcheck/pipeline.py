"""The verify pipeline: targets -> references -> facts (once per digest) -> evidence -> checks -> Report.

Data flows one way. Each image is resolved once; every rule sees the same digest. One image that
cannot be verified does not stop the others: it is reported as `error` with the reason.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from imgcheck import __version__
from imgcheck.checks import RULE_MODULES, RULE_ORDER, load_rules
from imgcheck.checks.interface import (
    CollectContext,
    Finding,
    RuleConfig,
    RuleSpec,
    RunContext,
    VerifyOptions,
    apply_mode,
)
from imgcheck.deadline import Deadline
from imgcheck.errors import ImgcheckError, UsageError
from imgcheck.facts import ImageFacts
from imgcheck.gather import Gatherer, parallel_map
from imgcheck.policy.model import ImageSpec, Policy
from imgcheck.record import record
from imgcheck.registry.client import RegistryClient
from imgcheck.registry.reference import Reference, is_tag, looks_like_reference, parse_reference
from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

Progress = Callable[[str], None]
GATHER_WORKERS = 4
"""Images of different repositories are read concurrently: each read is a few round trips, no bytes."""
COLLECT_FIRST = ("smoke",)
"""Rules whose evidence others read: the smoke pull measures the uncompressed sizes `size` judges."""
_NO_RULES = (
    "the policy has no rules for this image: name its repository under `images:` or add default `rules:`"
    " (nothing checked is never a pass)"
)


@record
class Target:
    """One image to verify: its policy name, the reference to resolve, and its effective rules."""

    name: str
    reference: Reference
    rules: Mapping[str, RuleConfig]
    group: str = ""
    """The command-line target it came from: cross-image rules compare images of one group only."""


def plan_targets(policy: Policy, targets: Sequence[str], options: VerifyOptions) -> list[Target]:
    """A bare tag applies to every image of the policy; a full reference verifies just that image."""
    planned: list[Target] = []
    for text in targets or ["latest"]:
        if looks_like_reference(text):
            ref = parse_reference(text, default_registry=policy.registry)
            spec = _image_for(policy, ref)
            name = spec.name if spec else ref.repository.rsplit("/", 1)[-1]
            rules = spec.rules if spec else policy.defaults
            planned.append(Target(name, ref, rules, group=text))
            continue
        if not is_tag(text):
            raise UsageError(
                f"{text!r} is neither a tag nor an image reference (e.g. latest, v1.4.2, ghcr.io/org/repo:tag)"
            )
        for image in policy.images:
            registry = options.registry_override or image.registry
            planned.append(Target(image.name, Reference(registry, image.repository, tag=text), image.rules, group=text))
    return planned


def _image_for(policy: Policy, ref: Reference) -> ImageSpec | None:
    for image in policy.images:
        if image.repository == ref.repository:
            return image
    return None


def _to_result(rule_id: str, finding: Finding) -> CheckResult:
    return CheckResult(rule_id, finding.verdict, finding.message, finding.platform, dict(finding.details))


def _rules_in_order(rules: Mapping[str, RuleConfig]) -> list[str]:
    return [r for r in RULE_ORDER if r in rules] + sorted(r for r in rules if r not in RULE_ORDER)


def _collect(
    spec: RuleSpec,  # type: ignore[type-arg]
    ctx: CollectContext,
    facts: ImageFacts,
    config: RuleConfig,
) -> tuple[Any, Finding | None]:
    """Run a rule's edge I/O; an ImgcheckError becomes that rule's `error`, never the whole run's."""
    if spec.collect is None:
        return None, None
    deadline = ctx.options.deadline
    if deadline is not None and deadline.expired():
        return None, Finding(Verdict.ERROR, deadline.message(f"waiting to collect {spec.id} evidence (not started)"))
    try:
        return spec.collect(ctx, facts, config), None
    except ImgcheckError as err:
        return None, Finding(Verdict.ERROR, str(err))
    except Exception as err:  # a crashing collector is this rule's error, not the run's
        return None, Finding(Verdict.ERROR, f"internal error collecting '{spec.id}': {type(err).__name__}: {err}")


def _judge(
    spec: RuleSpec,  # type: ignore[type-arg]
    facts: ImageFacts,
    config: RuleConfig,
    run: RunContext,
) -> list[Finding]:
    """A pure check; a bug inside it is an `error` for that rule, never a pass."""
    deadline = run.options.deadline
    if deadline is not None and deadline.expired():
        return [Finding(Verdict.ERROR, deadline.message(f"waiting to evaluate rule '{spec.id}' (not evaluated)"))]
    try:
        findings = spec.check(facts, config, run)
    except ImgcheckError as err:
        return [Finding(Verdict.ERROR, str(err))]
    except Exception as err:
        return [Finding(Verdict.ERROR, f"internal error in rule '{spec.id}': {type(err).__name__}: {err}")]
    if not findings:
        return [Finding(Verdict.ERROR, f"rule '{spec.id}' produced no verdict")]
    return findings


@dataclasses.dataclass
class _Planned:
    """One target on its way through the pipeline: facts (or why there are none), then evidence."""

    target: Target
    facts: ImageFacts | None = None
    error: str | None = None
    collect_errors: dict[str, Finding] = dataclasses.field(default_factory=dict)


def verify(
    policy: Policy,
    targets: Sequence[str],
    options: VerifyOptions,
    *,
    progress: Progress | None = None,
    client: RegistryClient | None = None,
    now: datetime | None = None,
) -> Report:
    """Verify every planned image and return one Report (the caller renders it and sets the exit code)."""
    say = progress or (lambda _m: None)
    started = now or datetime.now(UTC)
    planned = plan_targets(policy, targets, options)
    named = {r for t in planned for r in t.rules}
    unknown = named - RULE_MODULES.keys()
    if unknown:
        raise UsageError(f"policy names rules this imgcheck does not know: {', '.join(sorted(unknown))}")
    rules = load_rules(named)  # only these rule modules load: a metadata run never imports the engine
    if options.deadline is None:  # the CLI starts it with the command; a library caller starts it here
        options = dataclasses.replace(options, deadline=Deadline(options.timeout))
    own_client = client is None
    registry = client or RegistryClient(
        insecure=options.insecure,
        timeout=options.timeout,
        progress=say,
        schemes=options.schemes,
        deadline=options.deadline,
    )
    try:
        items = _gather_all(registry, planned, rules, options, say)
        _collect_every(items, rules, CollectContext(registry=registry, options=options, progress=say))
        results = _judge_all(items, rules, started, options)
    finally:
        if own_client:
            registry.close()
    return Report(
        imgcheck_version=__version__,
        policy=str(policy.path),
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        images=tuple(results),
        target=" ".join(targets) if targets else "latest",
    )


def _gather_all(
    registry: RegistryClient,
    planned: list[Target],
    rules: Mapping[str, RuleSpec],  # type: ignore[type-arg]
    options: VerifyOptions,
    say: Progress,
) -> list[_Planned]:
    """Resolve each target once and read its facts; one image that cannot be read does not stop the rest.

    Repositories are read concurrently, but the targets of one repository stay on one worker, in plan
    order: they share its tag listing and the Gatherer's per-repository caches, so nothing is read twice
    and no cache entry is written by two threads. Results keep the plan's order."""
    gatherer = Gatherer(registry, say)
    items = [_Planned(target) for target in planned]
    by_repository: dict[tuple[str, str], list[_Planned]] = {}
    for item in items:
        ref = item.target.reference
        by_repository.setdefault((ref.registry, ref.repository), []).append(item)

    def gather_repository(group: list[_Planned]) -> None:
        for item in group:
            _gather_one(gatherer, item, rules, options, say)

    parallel_map(gather_repository, list(by_repository.values()), GATHER_WORKERS)
    return items


def _gather_one(
    gatherer: Gatherer,
    item: _Planned,
    rules: Mapping[str, RuleSpec],  # type: ignore[type-arg]
    options: VerifyOptions,
    say: Progress,
) -> None:
    """One target's facts, or the reason it has none (that image's error, never the run's)."""
    target = item.target
    need_tags = any(rules[r].needs_tags for r in target.rules)
    try:
        item.facts = gatherer.gather(
            target.name, target.reference, need_tags=need_tags, platform_filter=options.platform
        )
    except ImgcheckError as err:
        say(f"{target.name}: could not verify: {err}")
        item.error = str(err)
    except Exception as err:  # one image's bug must not hide the others' verdicts
        item.error = f"internal error reading facts: {type(err).__name__}: {err}"


def _collect_every(items: list[_Planned], rules: Mapping[str, RuleSpec], ctx: CollectContext) -> None:  # type: ignore[type-arg]
    """Every image's evidence, images at once: pulls, runs and scans wait (on the engine, the network,
    a scanner), so one image's wait overlaps another's. Up to --jobs images at a time, else one per image
    up to the lowest bound the run's rules set (smoke: the engine's CPUs, at least 4). Each image keeps its own
    rules' order and its own errors; the report keeps the plan's order (results are stored per item)."""
    collecting = [i for i in items if i.facts is not None and any(rules[r].collect for r in i.target.rules)]
    ctx = dataclasses.replace(ctx, images=tuple(i.facts for i in collecting if i.facts is not None))
    jobs = ctx.options.jobs or _default_jobs(collecting, rules, ctx.options)
    names = Counter(i.target.name for i in collecting)

    def collect(item: _Planned) -> None:
        target = item.target
        label = target.name if names[target.name] == 1 else f"{target.name} ({target.reference})"
        keyed = getattr(ctx.progress, "for_image", None)
        say = keyed(label) if callable(keyed) else ctx.progress
        _collect_all(item, rules, dataclasses.replace(ctx, progress=say))

    if len(collecting) > 1:
        ctx.progress(f"collecting evidence for {len(collecting)} images, {min(jobs, len(collecting))} at a time")
    try:
        parallel_map(collect, collecting, jobs)
    finally:
        ctx.shared.close()


def _default_jobs(collecting: list[_Planned], rules: Mapping[str, RuleSpec], options: VerifyOptions) -> int:  # type: ignore[type-arg]
    """One per image, up to the lowest bound a collecting rule sets (else as many as registry reads)."""
    bounds = {
        bound
        for item in collecting
        for rule_id, config in item.target.rules.items()
        if (limit := rules[rule_id].collect_bound) is not None and (bound := limit(config, options))
    }
    return max(1, min(len(collecting), *bounds)) if bounds else max(1, min(len(collecting), GATHER_WORKERS))


def _collect_all(item: _Planned, rules: Mapping[str, RuleSpec], ctx: CollectContext) -> None:  # type: ignore[type-arg]
    """Each rule's edge I/O, smoke first (its pull measures what `size` judges), into `facts.extras`."""
    if item.facts is None:
        return
    for rule_id in sorted(_rules_in_order(item.target.rules), key=lambda r: r not in COLLECT_FIRST):
        spec = rules[rule_id]
        evidence, failure = _collect(spec, ctx, item.facts, item.target.rules[rule_id])
        if failure is not None:
            item.collect_errors[rule_id] = failure
        elif spec.collect is not None:
            extras = {**item.facts.extras, rule_id: evidence, **_shared_evidence(evidence)}
            item.facts = dataclasses.replace(item.facts, extras=extras)


def _judge_all(
    items: list[_Planned],
    rules: Mapping[str, RuleSpec],  # type: ignore[type-arg]
    started: datetime,
    options: VerifyOptions,
) -> list[ImageResult]:
    """The pure checks, each image seeing the other images of its own target (one release) only."""
    groups: dict[str, dict[str, ImageFacts]] = {}
    for item in items:
        if item.facts is not None:
            groups.setdefault(item.target.group, {})[item.target.name] = item.facts
    results: list[ImageResult] = []
    for item in items:
        target, facts = item.target, item.facts
        if facts is None:
            results.append(ImageResult(target.name, str(target.reference), None, (), item.error))
            continue
        if not target.rules:
            results.append(ImageResult(target.name, str(target.reference), facts.digest, (), _NO_RULES))
            continue
        run = RunContext(now=started, images=groups.get(target.group, {}), options=options)
        checks: list[CheckResult] = []
        for rule_id in _rules_in_order(target.rules):
            config = target.rules[rule_id]
            if rule_id in item.collect_errors:
                findings = [item.collect_errors[rule_id]]
            else:
                findings = _judge(rules[rule_id], facts, config, run)
            checks.extend(_to_result(rule_id, apply_mode(f, config)) for f in findings)
        results.append(ImageResult(target.name, str(target.reference), facts.digest, tuple(checks)))
    return results


def _shared_evidence(evidence: Any) -> dict[str, Any]:
    """Evidence one rule gathers that another reads (the smoke pull measures uncompressed sizes)."""
    sizes = evidence if isinstance(evidence, Mapping) else getattr(evidence, "uncompressed_sizes", None)
    return {"uncompressed_sizes": sizes} if isinstance(sizes, Mapping) and sizes else {}
