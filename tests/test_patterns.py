"""Policy patterns are RE2: linear time on hostile values, refusals named with the fix, and every pattern
the bundled policies and the docs show still means what it meant under Python's `re`."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_pipeline import FACTS

from fixtures.images import ImageConfig, busybox_base_layer, push_image, script_layer
from imgcheck.checks.config import RULE as ConfigRule
from imgcheck.checks.interface import RunContext
from imgcheck.pipeline import _judge
from imgcheck.policy.loader import load_policy
from imgcheck.policy.patterns import MAX_MATCH_CHARS, PatternError, ValueTooLong, compile_pattern, escape
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 0.5
"""Seconds any one match may take, on a slow shared runner; RE2 takes well under a millisecond."""
PATTERN_KEYS = ("forbid_env", "identity", "builder", "source", "expect_output")
DOCUMENTS = (
    sorted((ROOT / "policies").glob("*.yaml"))
    + sorted((ROOT / "src" / "imgcheck" / "policies").glob("*.yaml"))
    + [ROOT / "README.md"]
    + sorted((ROOT / "docs").rglob("*.md"))
    + sorted((ROOT / "docs").rglob("*.yml"))
)
SAMPLES = (
    # tags
    "latest", "main", "main-3f2a9c1", "main-3F2A9C1", "v1.4.2", "1.4.2", "1.4.2-rc.1+b5", "sha-" + "a" * 40,
    "a" * 40, "v1.4", "",
    # labels, identities, provenance
    "https://github.com/rjdscott/k2-market-data-platform",
    "https://github.com/rjdscott/k2-market-data-platform/",
    "https://github.com/rjdscott/k2-market-data-platform/.github/workflows/post-merge.yml@refs/heads/main",
    "https://github.com/rjdscott/k2-market-data-platform/.github/workflows/post-merge.yml@refs/heads/dev",
    "github.com/rjdscott/k2-market-data-platform", "https://github.com/", "https://gitlab.com/x", "http://x",
    # env names, unicode
    "API_TOKEN", "PATH", "db_password", "APIKEY", "API_KEY", "api-key", "HOME", "SECRET\n", "tökén", "ﬁ",
)  # fmt: skip
OUTPUTS = ("imgcheck 0.1.0\n", "k2-producer main (3f2a9c1)\n", "version 1.4.2", "no version here\n")


def _walk(node: Any, parent: str = "") -> Iterator[str]:
    """Every policy value that the loader compiles as a pattern (by its key)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "match" and isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, str))
            elif key in PATTERN_KEYS and isinstance(value, str):
                yield value
            elif (key == "forbid_env" or (parent == "tags" and key == "required")) and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            else:
                yield from _walk(value, str(key))
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, parent)


_WRITTEN = re.compile(r"^\s*#?\s*(?:-\s*)?(?:match|required|" + "|".join(PATTERN_KEYS) + r"|[\w.]+\.source):(.*)$")


def documented_patterns() -> list[tuple[str, str]]:
    """(where, pattern) for every pattern in a bundled policy, README or docs: parsed from the YAML,
    plus quoted values of pattern keys written anywhere (commented-out examples, Markdown)."""
    found: set[tuple[str, str]] = set()
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".yaml":
            found.update((path.name, p) for p in _walk(yaml.safe_load(text)))
        for line in text.splitlines():
            m = _WRITTEN.match(line)
            if m:
                found.update((path.name, q) for q in re.findall(r"'([^']*)'", m.group(1).split(" # ")[0]))
    return sorted(found)


def test_the_documents_hold_the_patterns_this_test_means_to_check() -> None:
    patterns = {p for _where, p in documented_patterns()}
    assert {"main-[0-9a-f]{7}", "(?i).*(password|secret|token|api_?key).*", ".*{version}.*"} <= patterns
    assert any(p.startswith("https://github\\.com/rjdscott") for p in patterns)


@pytest.mark.parametrize(("where", "pattern"), documented_patterns())
def test_every_documented_pattern_is_re2_and_means_what_python_re_meant(where: str, pattern: str) -> None:
    """Full match (and `(?i)`) as before: the same answer as `re.fullmatch` on every sample value;
    `expect_output` patterns (searched) the same answer as `re.search` on real version lines."""
    compiled = compile_pattern(pattern.replace("{version}", escape("0.1.0")))
    python = re.compile(pattern.replace("{version}", re.escape("0.1.0")))
    for value in (*SAMPLES, pattern):
        assert compiled.fullmatch(value) is (python.fullmatch(value) is not None), (where, pattern, value)
    for output in OUTPUTS:
        found = python.search(output)
        assert compiled.search(output) == (found.group(0) if found else None), (where, pattern, output)


def test_the_bundled_policies_load_with_re2() -> None:
    for path in sorted((ROOT / "src" / "imgcheck" / "policies").glob("*.yaml")):
        assert load_policy(path).images


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("(a+)+b", "a" * 100_000 + "!"),
        ("(X+)+Y", "X" * 100_000),
        (r"(\w+\.?)+", "a." * 50_000 + "!"),
        ("(.*,)*", "," * 100_000 + "x"),
        ("(?i)(a|aa)+$", "A" * 100_000 + "b"),
        ("(.*a){20}", "a" * 100_000 + "b"),
    ],
)
def test_nested_quantifiers_match_hostile_values_in_linear_time(pattern: str, value: str) -> None:
    compiled = compile_pattern(pattern)
    started = time.perf_counter()
    assert compiled.fullmatch(value) is False
    compiled.search(value)
    assert time.perf_counter() - started < BUDGET


def test_search_keeps_pythons_dollar_before_a_final_newline() -> None:
    assert compile_pattern(r"app 1\.0$").search("app 1.0\n") == "app 1.0"
    assert compile_pattern(r"app 1\.0$").search("app 1.0\nmore\n") is None


def test_escape_matches_exactly_the_text() -> None:
    for text in ("1.0+(rc", "a b#c~&-[x]{2}\\", "ünï.code", "$^*?|"):
        assert compile_pattern(escape(text)).fullmatch(text)
        assert not compile_pattern(escape(text)).fullmatch(text + "x")


def test_a_lone_surrogate_in_a_value_is_matched_not_raised() -> None:
    assert compile_pattern(".*").fullmatch("abc\ud800def")
    assert not compile_pattern("abc").fullmatch("abc\ud800")


def test_refusals_say_nothing_on_stderr() -> None:
    """RE2 logs parse errors through absl unless told not to: the policy error is the only line."""
    code = (
        "from imgcheck.policy.patterns import compile_pattern, PatternError\n"
        "try:\n    compile_pattern('(?=x)')\nexcept PatternError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert (done.stdout, done.stderr) == ("(?= is lookaround, which RE2 does not have: match the text itself\n", "")


def test_a_pattern_too_large_for_re2_is_refused_not_slow() -> None:
    with pytest.raises(PatternError, match="repeats more than RE2's limit"):
        compile_pattern("((a{1000}){1000}){1000}")
    with pytest.raises(PatternError, match=r"too large once compiled \(119703 RE2 instructions, at most 10000\)"):
        compile_pattern(r"\p{L}{1,100}")
    assert compile_pattern(".{1000}").fullmatch("x" * 1000)


def test_a_value_too_long_to_match_is_that_rules_error_never_a_pass() -> None:
    """RE2 is linear, but on its NFA path each character costs up to the pattern's size: no value may
    be long enough to set the run's time. Refusing it must fail closed (forbid_env would pass on a miss)."""
    config = ConfigRule.config(forbid_env=(compile_pattern("(?i).*(secret|token).*"),))
    platform = FACTS.platforms[0]
    hostile = dataclasses.replace(platform, config={"config": {"Env": ["A" * (MAX_MATCH_CHARS + 1) + "_TOKEN=x"]}})
    facts = dataclasses.replace(FACTS, platforms=(hostile,))
    (finding,) = _judge(ConfigRule, facts, config, RunContext(now=datetime.now(UTC)))
    assert finding.verdict is Verdict.ERROR
    assert f"a value of {MAX_MATCH_CHARS + 7} characters is too long to match" in finding.message
    with pytest.raises(ValueTooLong):
        compile_pattern(".*").search("x" * (MAX_MATCH_CHARS + 1))


# --- the attacker's image, end to end ---------------------------------------------------------------

ATTACK_POLICY = """\
version: 1
registry: {host}
images:
  - name: attack
    repository: attack/app
rules:
  labels:
    match:
      org.opencontainers.image.source: '(a+)+b'
  config:
    forbid_env: ['(X+)+Y']
"""


@pytest.fixture(scope="module")
def attack_image(pusher: Pusher) -> None:
    layers = [busybox_base_layer(), script_layer("usr/local/bin/app", "#!/bin/sh\necho app\n")]
    config = ImageConfig(
        entrypoint=["/usr/local/bin/app"],
        labels={"org.opencontainers.image.source": "a" * 64 + "!"},
        env=["PATH=/bin", "X" * 64 + "=1"],
    )
    push_image(pusher, "attack/app", layers, config, tags=("latest",))


def test_an_attackers_image_cannot_hang_the_gate(attack_image: None, registry: RegistryServer, tmp_path: Path) -> None:
    """The issue's image: under Python's `re` both matches ran for minutes; here the run ends at once
    with the right verdicts (the label does not match, the env name is not forbidden)."""
    policy = tmp_path / "attack.yaml"
    policy.write_text(ATTACK_POLICY.format(host=registry.host))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", "verify", "--policy", str(policy), "--format", "json", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    checks = {c["rule"]: c for c in json.loads(done.stdout)["images"][0]["checks"]}
    assert checks["labels"]["verdict"] == "fail"
    assert "(a+)+b" in checks["labels"]["message"]
    assert checks["config"]["verdict"] == "pass"
    assert elapsed < 5


def test_no_module_hands_a_pattern_it_did_not_write_to_pythons_re() -> None:
    """Python's `re` only ever sees imgcheck's own literal patterns; anything else (a policy's, a
    signer's identity) goes through imgcheck.policy.patterns. This caught fulcio.py's identity."""
    calls = {"compile", "fullmatch", "search", "match", "findall", "finditer", "sub", "subn", "split"}
    found = []
    for path in sorted((ROOT / "src" / "imgcheck").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in calls
                and not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [f.partition(":")[0] for f in found] == ["src/imgcheck/policy/patterns.py"], found  # RE2's refusals
