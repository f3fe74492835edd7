"""The pipeline's guarantees that no single rule can break: a crash is that rule's error, never a pass."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fixtures.k2 import SampleRelease, publish_sample_release
from imgcheck.checks.interface import (
    CollectContext,
    Finding,
    RuleConfig,
    RuleSpec,
    RunContext,
    VerifyOptions,
    apply_mode,
)
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.gather import parallel_map
from imgcheck.pipeline import _collect, _judge, verify
from imgcheck.policy.loader import load_policy
from imgcheck.record import record
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

FACTS = ImageFacts(
    name="app",
    registry="127.0.0.1:5000",
    repository="x/app",
    reference="127.0.0.1:5000/x/app:latest",
    tag="latest",
    digest="sha256:" + "a" * 64,
    media_type="application/vnd.oci.image.manifest.v1+json",
    platforms=(PlatformFacts("linux/amd64", "sha256:" + "a" * 64, {}, "sha256:" + "b" * 64, {"config": {}}, (), 2),),
)


@record
class Config(RuleConfig):
    pass


def crashing_collect(_ctx: CollectContext, _facts: ImageFacts, _config: Config) -> Any:
    raise KeyError("boom")


def crashing_check(_facts: ImageFacts, _config: Config, _run: RunContext) -> list[Finding]:
    return [Finding(Verdict.PASS, "unreachable")] if {}["missing"] else []


def silent_check(_facts: ImageFacts, _config: Config, _run: RunContext) -> list[Finding]:
    return []


def spec(**kwargs: Any) -> RuleSpec:  # type: ignore[type-arg]
    return RuleSpec(id="crashy", summary="test rule", config=Config, check=kwargs.pop("check", silent_check), **kwargs)


def test_a_crashing_collector_is_that_rules_error() -> None:
    ctx = CollectContext(registry=None, options=VerifyOptions())  # type: ignore[arg-type]
    evidence, failure = _collect(spec(collect=crashing_collect), ctx, FACTS, Config())
    assert evidence is None and failure is not None
    assert failure.verdict is Verdict.ERROR and "crashy" in failure.message and "KeyError" in failure.message


def test_a_crashing_check_is_an_error_and_no_verdict_is_an_error() -> None:
    run = RunContext(now=datetime.now(UTC))
    crashed = _judge(spec(check=crashing_check), FACTS, Config(), run)
    assert [f.verdict for f in crashed] == [Verdict.ERROR]
    silent = _judge(spec(), FACTS, Config(), run)
    assert [f.verdict for f in silent] == [Verdict.ERROR] and "no verdict" in silent[0].message


def test_warn_mode_softens_failures_but_never_errors() -> None:
    warn = Config(mode="warn")
    assert apply_mode(Finding(Verdict.FAIL, "too big"), warn).verdict is Verdict.WARN
    assert apply_mode(Finding(Verdict.ERROR, "unreadable"), warn).verdict is Verdict.ERROR
    assert apply_mode(Finding(Verdict.FAIL, "too big"), Config()).verdict is Verdict.FAIL


def test_hint_ends_every_failure_warned_or_not_and_nothing_else() -> None:
    hint = "set `sbom: true` on docker/build-push-action"
    warned = apply_mode(Finding(Verdict.FAIL, "no SBOM attached"), Config(mode="warn", hint=hint))
    assert (warned.verdict, warned.message) == (Verdict.WARN, f"no SBOM attached (mode: warn). To pass: {hint}")
    enforced = apply_mode(Finding(Verdict.FAIL, "no SBOM attached"), Config(hint=hint))
    assert (enforced.verdict, enforced.message) == (Verdict.FAIL, f"no SBOM attached. To pass: {hint}")
    for verdict in (Verdict.PASS, Verdict.WARN, Verdict.ERROR, Verdict.SKIP):
        assert apply_mode(Finding(verdict, "as found"), Config(hint=hint)).message == "as found"


def test_parallel_map_keeps_order_and_runs_exactly_the_worker_count_at_once() -> None:
    workers = 4
    meet = threading.Barrier(workers, timeout=60)  # every round needs `workers` tasks running together
    lock = threading.Lock()
    active, most = 0, 0

    def task(n: int) -> int:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        meet.wait()
        with lock:
            active -= 1
        return n * n

    assert parallel_map(task, list(range(8)), workers) == [n * n for n in range(8)]
    assert most == workers


def test_parallel_map_raises_a_tasks_exception() -> None:
    def task(n: int) -> int:
        if n == 3:
            raise ValueError("item 3 is bad")
        return n

    with pytest.raises(ValueError, match="item 3 is bad"):
        parallel_map(task, list(range(6)), 3)


@pytest.fixture(scope="module")
def release(registry: RegistryServer, pusher: Pusher) -> SampleRelease:
    return publish_sample_release(pusher, registry.host, namespace="pipeline-order")


def test_concurrent_gathering_keeps_plan_order_and_each_images_own_error(
    release: SampleRelease, tmp_path: Path
) -> None:
    """Repositories are read on several threads; tags of one repository on one. The report does not show it:
    images come in plan order, and the one whose repository does not exist has its own error."""
    producer, consumer, query = (release.image(n) for n in ("producer", "consumer", "query-engine"))
    ghost = "pipeline-order/k2-market-data-platform-ghost"
    images = [(producer.name, producer.repository), (consumer.name, consumer.repository), ("ghost", ghost)]
    images.append((query.name, query.repository))
    policy = tmp_path / "imgcheck.yaml"
    policy.write_text(
        f"version: 1\nregistry: {release.host}\nimages:\n"
        + "".join(f"  - {{name: {name}, repository: {repo}}}\n" for name, repo in images)
        + "rules:\n  tags: {required: ['main-[0-9a-f]{7}']}\n  platforms: {required: [linux/amd64]}\n"
    )
    sha_tag = f"main-{producer.build.sha7}"
    report = verify(load_policy(policy), ["latest", sha_tag], VerifyOptions(policy_dir=tmp_path))

    names = [name for name, _ in images]
    assert [(r.name, r.reference.rsplit(":", 1)[-1]) for r in report.images] == [
        *((n, "latest") for n in names),
        *((n, sha_tag) for n in names),
    ]
    for result in report.images:
        if result.name == "ghost":
            assert result.digest is None and result.error and "ghost" in result.error
            continue
        assert result.error is None and result.digest == release.image(result.name).digest
        assert {c.verdict for c in result.checks} == {Verdict.PASS}, result.checks
