"""Fuzz the policy patterns: random patterns (nested quantifiers, counted repeats, `(?i)`, what RE2
refuses) in every key that takes one, judged against hostile values up to imgcheck's size caps.

The contract: a policy loads or is a one-line PolicyError at the pattern's key; a loaded policy's
rules end with a verdict (a value over the cap is that rule's `error`, never a pass); and no example
takes longer than BUDGET seconds, however the pattern and the value are drawn. On short ASCII values
RE2 answers exactly what Python's `re` answers, so the switch changed no verdict.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from test_fuzz_kit import FUZZ, PATTERN_ATOMS, any_pattern, hostile_text, patterns
from test_pipeline import FACTS

from imgcheck.checks import config as config_rule
from imgcheck.checks import labels as labels_rule
from imgcheck.checks import provenance as provenance_rule
from imgcheck.checks import smoke as smoke_rule
from imgcheck.checks import tags as tags_rule
from imgcheck.checks.interface import RunContext
from imgcheck.engine.output import HEAD_BYTES, TAIL_BYTES
from imgcheck.engine.run import RunResult
from imgcheck.engine.session import PlatformRun, SmokeEvidence
from imgcheck.errors import PolicyError
from imgcheck.pipeline import _judge
from imgcheck.policy.loader import load_policy
from imgcheck.policy.patterns import MAX_MATCH_CHARS, compile_pattern
from imgcheck.supplychain.slsa import Provenance
from imgcheck.verdict import Verdict

pytestmark = pytest.mark.fuzz

BUDGET = 3.0
"""Seconds one example may take end to end (policy load, every rule, values at the caps) on a shared
2-core runner. Python's `re` takes minutes on `(a+)+b` against 64 `a`s and a `!`."""
TAG_CHARS = 128
"""The OCI distribution spec's longest tag."""
OUTPUT_CHARS = HEAD_BYTES + TAIL_BYTES
"""Smoke output as captured: head and tail kept, the middle dropped."""
SOURCE = "org.opencontainers.image.source"
KEYS = ("labels.match", "tags.required", "config.forbid_env", "provenance.builder", "provenance.source")


def policy_text(drawn: dict[str, str]) -> str:
    rules: dict[str, Any] = {
        "labels": {"match": {SOURCE: drawn["labels.match"]}},
        "tags": {"required": [drawn["tags.required"]]},
        "config": {"forbid_env": [drawn["config.forbid_env"]]},
        "provenance": {
            "builder": drawn["provenance.builder"],
            "source": drawn["provenance.source"],
            "keyless": {"issuer": "https://token.actions.githubusercontent.com", "identity": drawn["identity"]},
        },
        "smoke": {"expect_output": drawn["smoke.expect_output"]},
    }
    return yaml.safe_dump({"version": 1, "images": [{"name": "app", "repository": "o/app"}], "rules": rules})


def load(text: str) -> Any:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_policy(path).images[0].rules
        except PolicyError as exc:
            message = str(exc)
            assert message.startswith(f"{path}:") and "\n" not in message, message
            assert "regular expression" in message or "not a valid regex" in message, message
            return None


def judge_all(rules: Any, label: str, env_name: str, tag: str, output: str, source: str) -> list[Verdict]:
    """Every pattern-taking rule of the loaded policy, through the pipeline's own `_judge`."""
    platform = dataclasses.replace(
        FACTS.platforms[0],
        config={"config": {"Labels": {SOURCE: label, smoke_rule.VERSION_LABEL: "1.0"}, "Env": [f"{env_name}=1"]}},
    )
    ran = PlatformRun("linux/amd64", platform.manifest_digest, "r@sha256:x", result=RunResult(0, output, 1, False, 0.1))
    facts = dataclasses.replace(
        FACTS, platforms=(platform,), tags_on_digest=(tag,), extras={"smoke": SmokeEvidence(runs=(ran,))}
    )
    run = RunContext(now=datetime.now(UTC))
    verdicts = [
        f.verdict
        for rule in (labels_rule.RULE, tags_rule.RULE, config_rule.RULE, smoke_rule.RULE)
        for f in _judge(rule, facts, rules[rule.id], run)
    ]
    mismatch = provenance_rule._mismatch(
        Provenance("https://slsa.dev/provenance/v1", source, (source,)), rules["provenance"]
    )
    verdicts.append(Verdict.FAIL if mismatch else Verdict.PASS)
    rules["provenance"].keyless.identity.fullmatch(source[:MAX_MATCH_CHARS])
    return verdicts


@FUZZ
@given(
    drawn=st.fixed_dictionaries({key: any_pattern for key in (*KEYS, "identity", "smoke.expect_output")}),
    label=hostile_text(MAX_MATCH_CHARS + 8),
    env_name=hostile_text(MAX_MATCH_CHARS, alphabet="XXY_A"),
    tag=hostile_text(TAG_CHARS, alphabet="aab.-_09"),
    output=hostile_text(OUTPUT_CHARS),
    source=hostile_text(MAX_MATCH_CHARS),
)
def test_random_patterns_against_values_at_the_caps_end_in_time(
    drawn: dict[str, str], label: str, env_name: str, tag: str, output: str, source: str
) -> None:
    started = time.monotonic()
    rules = load(policy_text(drawn))
    if rules is not None:
        verdicts = judge_all(rules, label, env_name, tag, output, source)
        assert set(verdicts) <= {Verdict.PASS, Verdict.FAIL, Verdict.ERROR}
        if len(label) <= MAX_MATCH_CHARS and len(env_name) + 2 <= MAX_MATCH_CHARS:
            assert Verdict.ERROR not in verdicts[:3], verdicts  # labels, tags, config: every value was matched
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET, f"{elapsed:.2f} s for {drawn}"


@FUZZ
@given(pattern=patterns, value=st.text(alphabet="aabXY!./-_ \n", max_size=12))
def test_re2_answers_what_python_re_answered_on_short_ascii_values(pattern: str, value: str) -> None:
    """Short values keep Python's backtracking affordable, so it can be the oracle: full match as before.
    One documented difference: Python's `$` also matches before a final newline *inside* a pattern
    (`a$\\s` fully matches "a\\n"); RE2's only at the end (imgcheck's `search` keeps Python's rule)."""
    assert all(atom.isascii() for atom in PATTERN_ATOMS)
    assume(not ("$" in pattern and "\n" in value))
    expected = re.fullmatch(pattern, value) is not None
    assert compile_pattern(pattern).fullmatch(value) is expected, (pattern, value)
    found = re.search(pattern, value)
    if found is not None and not value.endswith("\n"):
        assert compile_pattern(pattern).search(value) is not None


@FUZZ
@given(pattern=patterns)
def test_the_issues_hostile_values_take_no_time_against_any_drawn_pattern(pattern: str) -> None:
    compiled = compile_pattern(pattern)
    started = time.monotonic()
    for value in ("a" * 64 + "!", "X" * 64, ("a" * 64 + "!") * 2000, "ab" * (MAX_MATCH_CHARS // 2)):
        compiled.fullmatch(value)
        compiled.search(value)
    assert time.monotonic() - started < BUDGET, pattern
