"""The pipeline's guarantees that no single rule can break: a crash is that rule's error, never a pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imgcheck.checks.interface import CollectContext, Finding, RuleConfig, RuleSpec, RunContext, VerifyOptions
from imgcheck.facts import ImageFacts, PlatformFacts
from imgcheck.pipeline import _apply_mode, _collect, _judge
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


@dataclass(frozen=True)
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
    assert _apply_mode(Finding(Verdict.FAIL, "too big"), warn).verdict is Verdict.WARN
    assert _apply_mode(Finding(Verdict.ERROR, "unreadable"), warn).verdict is Verdict.ERROR
    assert _apply_mode(Finding(Verdict.FAIL, "too big"), Config()).verdict is Verdict.FAIL
