"""The policy loader: real policy files in, typed rules out, and one precise line for every mistake."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_kit import any_pattern

from imgcheck.checks import all_rules
from imgcheck.checks.interface import RuleConfig
from imgcheck.errors import PolicyError
from imgcheck.policy.fields import FieldError, check_annotation, field_types, init_fields, parse_dataclass
from imgcheck.policy.loader import default_policy_path, explain, load_policy
from imgcheck.policy.model import Policy
from imgcheck.policy.types import ByteSize, Percent
from imgcheck.policy.yamltree import Map, read_tree

DATA = Path(__file__).parent / "data" / "policies"
PACKAGE_POLICIES = Path(__file__).parents[1] / "src" / "imgcheck" / "policies"


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "policy.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str | bytes) -> str:
    """The PolicyError message, with the temp folder cut off so tests read `policy.yaml:LINE: ...`."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message.replace(str(tmp_path) + "/", "")


# --- the bundled and documented policies ----------------------------------------------------------


def test_bundled_k2_policy_models_todays_pipeline() -> None:
    policy = load_policy(PACKAGE_POLICIES / "k2.yaml")
    assert [i.name for i in policy.images] == ["producer", "consumer", "query-engine"]
    for image in policy.images:
        assert image.registry == "ghcr.io"
        assert image.repository == f"rjdscott/k2-market-data-platform-{image.name}"
        assert list(image.rules) == list(all_rules())  # every rule, in report order
        r = image.rules
        assert r["size"].max_compressed == 500_000_000 and r["size"].max_uncompressed == 500_000_000
        labels = r["labels"]
        assert labels.version_matches_tag is False  # the version label is `main`
        assert labels.created_not_in_future is True
        assert labels.match["org.opencontainers.image.revision"].fullmatch("a" * 40)
        assert not labels.match["org.opencontainers.image.source"].fullmatch("https://github.com/evil/k2")
        tags = r["tags"]
        assert tags.latest_is_newest and not tags.latest_is_highest and tags.consistent_across_images
        assert tags.required[0].fullmatch("main-3f2a9c1") and not tags.required[0].fullmatch("v1.2.3")
        assert r["config"].forbid_env[0].fullmatch("DB_PASSWORD")
        assert r["platforms"].required == ("linux/amd64",)
        assert r["smoke"].command is None and r["smoke"].args == ("--version",)
        assert r["smoke"].timeout == dt.timedelta(seconds=30)
        keyless = r["signature"].keyless
        assert keyless.issuer == "https://token.actions.githubusercontent.com"
        assert keyless.identity.fullmatch(
            "https://github.com/rjdscott/k2-market-data-platform/.github/workflows/post-merge.yml@refs/heads/main"
        )
        assert r["sbom"].formats == ("cyclonedx", "spdx") and r["sbom"].min_components == 1
        assert r["provenance"].builder.fullmatch("https://github.com/actions/runner")
        vulns = r["vulnerabilities"]
        assert vulns.report == "reports/{name}.trivy.json"
        assert (vulns.fail_on, vulns.warn_on, vulns.fixable_only) == (("CRITICAL",), ("HIGH",), True)
        assert vulns.max_age == dt.timedelta(hours=24)


def test_release_policy_is_the_spec_example_and_merges_query_engine_override() -> None:
    policy = load_policy(PACKAGE_POLICIES / "k2-release.yaml")
    example = load_policy(DATA / "spec-example.yaml")
    signer = {"keys": ("keys/cosign.pub",), "keyless": policy.images[0].rules["signature"].keyless}
    for image, spec_image in zip(policy.images, example.images, strict=True):
        provenance = image.rules["provenance"]  # the spec's names no signer (always `error`); ours, the signature's
        assert {"keys": provenance.keys, "keyless": provenance.keyless} == signer
        unsigned = dataclasses.replace(provenance, keys=(), keyless=None)
        assert dataclasses.replace(image, rules={**image.rules, "provenance": unsigned}) == spec_image
    by_name = {i.name: i for i in policy.images}
    engine, producer = by_name["query-engine"].rules["size"], by_name["producer"].rules["size"]
    assert engine.max_compressed == ByteSize(600_000_000)  # the override ...
    assert engine.max_uncompressed == ByteSize(500_000_000)  # ... keeps the other default size keys
    assert engine.max_growth == pytest.approx(0.10)
    assert producer.max_compressed == ByteSize(500_000_000)
    assert by_name["query-engine"].rules["labels"] == by_name["producer"].rules["labels"]
    waiver = by_name["producer"].rules["vulnerabilities"].ignore[0]
    assert (waiver.id, waiver.expires) == ("CVE-2023-45853", dt.date(2027, 1, 31))
    assert by_name["producer"].rules["signature"].keys == ("keys/cosign.pub",)
    assert by_name["producer"].rules["sbom"].deny_licenses == ("AGPL-3.0-only", "AGPL-3.0-or-later")


def test_default_policy_path_prefers_local_file(tmp_path: Path) -> None:
    bundled = default_policy_path(tmp_path)
    assert bundled.name == "k2.yaml" and isinstance(load_policy(bundled), Policy)
    local = tmp_path / "imgcheck.yaml"
    local.write_text((DATA / "minimal.yaml").read_text())
    assert default_policy_path(tmp_path) == local


# --- values and merge semantics -------------------------------------------------------------------


def test_units_and_merge_semantics() -> None:
    policy = load_policy(DATA / "overrides.yaml")
    a, b = policy.images
    assert policy.registry == a.registry == "localhost:5000"
    assert b.registry == "mirror.example:8443"
    size = a.rules["size"]
    assert isinstance(size.max_compressed, ByteSize) and size.max_compressed == 500_000_000
    assert isinstance(size.max_growth, Percent) and size.max_growth == pytest.approx(0.025)
    assert size.mode == "warn"
    assert a.rules["smoke"].timeout == dt.timedelta(minutes=15)
    assert a.rules["vulnerabilities"].max_age == dt.timedelta(days=7)
    assert a.rules["vulnerabilities"].fail_on == ("CRITICAL", "HIGH")
    assert "smoke" not in b.rules  # `smoke: false` turns a default rule off for one image
    assert "tags" in b.rules and "tags" not in a.rules  # an image may add a rule, `{}` = its defaults
    assert b.rules["labels"].version_matches_tag is True  # overridden key ...
    assert b.rules["labels"].required == ("org.opencontainers.image.version",)  # ... others kept
    assert b.rules["signature"].keyless.identity.pattern == r"https://github\.com/org/.+"
    assert list(b.rules) == [r for r in all_rules() if r in b.rules]  # report order, not file order
    assert load_policy(DATA / "minimal.yaml").images[0].rules["size"].max_compressed == 1.5 * 1024**3


def test_empty_rule_means_defaults_for_every_rule(tmp_path: Path) -> None:
    rules = "".join(f"  {rule_id}:\n" for rule_id in all_rules())
    text = f"version: 1\nimages: [{{name: a, repository: o/a}}]\nrules:\n{rules}"
    image = load_policy(write(tmp_path, text)).images[0]
    for rule_id, spec in all_rules().items():
        if all(not _required(f) for f in dataclasses.fields(spec.config)):
            assert image.rules[rule_id] == spec.config()


def _required(f: dataclasses.Field) -> bool:  # type: ignore[type-arg]
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def test_every_rule_config_uses_supported_types() -> None:
    """Guards rule authors: a new key with a type the loader cannot parse fails here, not at runtime."""
    for spec in all_rules().values():
        assert issubclass(spec.config, RuleConfig)
        for name in init_fields(spec.config):
            check_annotation(field_types(spec.config)[name])
        config = spec.config()  # every key has a default: an empty rule means the defaults
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.mode = "warn"  # a parsed policy is immutable


def test_explain_renders_units_and_modes() -> None:
    lines = explain(load_policy(DATA / "overrides.yaml"))
    assert lines[0].endswith("policy version 1, 2 images, registry localhost:5000")
    assert "a: localhost:5000/org/a" in lines
    assert "b: mirror.example:8443/org/b" in lines
    text = "\n".join(lines)
    assert "500.0 MB" in text and "2.5%" in text and "[warn only]" in text
    assert "15 min" in text and "7 d" in text
    b_lines = lines[lines.index("b: mirror.example:8443/org/b") :]
    assert not any(line.startswith("  smoke:") for line in b_lines)


def _known(rule_id: str) -> str:
    """The key list an unknown-key error offers: the rule's own keys first, `mode` last."""
    names = list(init_fields(all_rules()[rule_id].config))
    assert names[-1] == "mode" and names[0] != "mode"
    return ", ".join(names)


def test_known_keys_list_rule_keys_in_declaration_order() -> None:
    assert _known("labels").startswith("required, match, version_matches_tag, created_not_in_future")
    assert _known("size").startswith("max_compressed, max_uncompressed, max_growth")


# --- every kind of mistake, with its line -------------------------------------------------------

BASE = """\
version: 1
images:
  - name: producer
    repository: org/producer
  - name: consumer
    repository: org/consumer
rules:
  labels:
    required: [org.opencontainers.image.version]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE + "registy: ghcr.io\n",
            "policy.yaml:10: registy: unknown key; did you mean registry? (known: version, registry, images, rules)",
            id="unknown-top-key",
        ),
        pytest.param(
            BASE + "    requird: [x]\n",
            f"policy.yaml:10: rules.labels.requird: unknown key; did you mean required? (known: {_known('labels')})",
            id="typo-rule-key",
        ),
        pytest.param(
            BASE.replace(
                "    repository: org/consumer\n",
                "    repository: org/consumer\n    rules:\n      size:\n        max_compresed: 1GB\n",
            ),
            "policy.yaml:9: images[1].rules.size.max_compresed: unknown key; did you mean max_compressed? "
            f"(known: {_known('size')})",
            id="typo-in-image-override",
        ),
        pytest.param(
            BASE + "  sise: {max_compressed: 1GB}\n",
            f"policy.yaml:10: rules.sise: unknown rule; did you mean size? (known: {', '.join(all_rules())})",
            id="unknown-rule-near-miss",
        ),
        pytest.param(
            BASE + "  licence_scan: {}\n",
            f"policy.yaml:10: rules.licence_scan: unknown rule (known: {', '.join(all_rules())})",
            id="unknown-rule",
        ),
        pytest.param(
            BASE + '    created_not_in_future: "yes"\n',
            "policy.yaml:10: rules.labels.created_not_in_future: expected true or false, got a string ('yes')",
            id="string-for-bool",
        ),
        pytest.param(
            BASE + "    match: [a, b]\n",
            "policy.yaml:10: rules.labels.match: expected a mapping, got a list",
            id="list-for-mapping",
        ),
        pytest.param(
            BASE + "    match:\n      org.opencontainers.image.source: '[unclosed'\n",
            "policy.yaml:11: rules.labels.match.org.opencontainers.image.source: bad regular expression "
            "'[unclosed': missing ] at '[unclosed' (RE2 syntax: github.com/google/re2/wiki/Syntax)",
            id="bad-regex",
        ),
        pytest.param(
            BASE + "    match:\n      org.opencontainers.image.source: '(a+)\\1'\n",
            "policy.yaml:11: rules.labels.match.org.opencontainers.image.source: bad regular expression "
            "'(a+)\\\\1': \\1 is a backreference, which RE2 does not have: write the text out",
            id="re2-backreference",
        ),
        pytest.param(
            BASE + "  config:\n    forbid_env: ['(?!PATH).*']\n",
            "policy.yaml:11: rules.config.forbid_env[0]: bad regular expression '(?!PATH).*': "
            "(?! is lookaround, which RE2 does not have: match the text itself",
            id="re2-lookahead",
        ),
        pytest.param(
            BASE + "  tags:\n    required:\n      - 'v[0-9]+\\Z'\n",
            "policy.yaml:12: rules.tags.required[0]: bad regular expression 'v[0-9]+\\\\Z': "
            "\\Z is Python's end of text: RE2 writes it \\z",
            id="re2-python-end-of-text",
        ),
        pytest.param(
            BASE + "  size:\n    max_compressed: 500 MBs\n",
            "policy.yaml:11: rules.size.max_compressed: bad size: expected a size like 500MB or 1.5GiB, got '500 MBs'",
            id="bad-size",
        ),
        pytest.param(
            BASE + "  size: {max_growth: 10}\n",
            "policy.yaml:10: rules.size.max_growth: expected a percentage, got a number (10) (like 10%)",
            id="number-for-percent",
        ),
        pytest.param(
            BASE + "  smoke:\n    timeout: soon\n",
            "policy.yaml:11: rules.smoke.timeout: bad duration: expected a duration like 30s, 15m, 24h or 7d, "
            "got 'soon'",
            id="bad-duration",
        ),
        pytest.param(
            BASE + "  vulnerabilities:\n    fail_on: [CRITICAL, SEVERE]\n",
            "policy.yaml:11: rules.vulnerabilities.fail_on[1]: unknown value 'SEVERE' "
            "(allowed: CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN)",
            id="bad-literal",
        ),
        pytest.param(
            BASE + "  vulnerabilities:\n    ignore:\n      - id: CVE-1\n        reason: x\n        expires: someday\n",
            "policy.yaml:14: rules.vulnerabilities.ignore[0].expires: expected a date, got a string "
            "('someday') (like 2027-01-31)",
            id="bad-date",
        ),
        pytest.param(
            BASE + "  sbom: {min_components: true}\n",
            "policy.yaml:10: rules.sbom.min_components: expected a whole number, got a boolean (true)",
            id="bool-for-int",
        ),
        pytest.param(
            BASE + "  smoke: {args: [--version, 1]}\n",
            "policy.yaml:10: rules.smoke.args[1]: expected a string, got a number (1) (quote the value)",
            id="int-for-str",
        ),
        pytest.param(
            BASE + "  platforms: {required: linux/amd64}\n",
            "policy.yaml:10: rules.platforms.required: expected a list, got a string ('linux/amd64') "
            "(write [a, b] or one '- item' per line)",
            id="string-for-list",
        ),
        pytest.param(
            BASE + "  signature:\n    keyless:\n      issuer: https://token.actions.githubusercontent.com\n",
            "policy.yaml:11: rules.signature.keyless: missing required key: identity",
            id="missing-required-field",
        ),
        pytest.param(
            BASE + "  labels:\n    created_not_in_future: true\n",
            "policy.yaml:10: rules.labels: duplicate key (first defined on line 8) (keep only one)",
            id="duplicate-key",
        ),
        pytest.param(
            BASE + "    required: []\n",
            "policy.yaml:10: rules.labels.required: duplicate key (first defined on line 9) (keep only one)",
            id="duplicate-nested-key",
        ),
        pytest.param(
            BASE.replace("version: 1", "version: 2"),
            "policy.yaml:1: version: unsupported policy version 2 (this imgcheck reads version 1; "
            "upgrade imgcheck for newer policies)",
            id="version-2",
        ),
        pytest.param(
            BASE.replace("version: 1", "version: '1'"),
            "policy.yaml:1: version: unsupported policy version '1'",
            id="version-as-string",
        ),
        pytest.param(
            BASE.replace("version: 1\n", ""),
            "policy.yaml:1: missing required key: version (add 'version: 1' at the top)",
            id="missing-version",
        ),
        pytest.param("", "policy.yaml:1: the policy is empty", id="empty-file"),
        pytest.param("# only a comment\n\n", "policy.yaml:1: the policy is empty", id="comment-only"),
        pytest.param("- version: 1\n", "policy.yaml:1: the policy must be a mapping, got a list", id="list-top"),
        pytest.param("version: 1\nimages: [\n  {name: a\n", "policy.yaml:4: invalid YAML: ", id="invalid-yaml"),
        pytest.param("version: 1\n\tregistry: x\n", "policy.yaml:2: invalid YAML: ", id="tab-indentation"),
        pytest.param(
            BASE.replace("name: consumer", "name: producer"),
            "policy.yaml:5: images[1]: duplicate image name 'producer' (also on line 3)",
            id="duplicate-image-names",
        ),
        pytest.param(
            "version: 1\nimages: []\n",
            "policy.yaml:2: images: expected a non-empty list of images, got an empty list",
            id="no-images",
        ),
        pytest.param(
            "version: 1\nimages:\n  - name: a\n    repository: o/a\n",
            "policy.yaml:3: images[0]: image 'a' has no rules, so nothing would be checked",
            id="no-rules",
        ),
        pytest.param(
            BASE.replace("org/consumer", "Org/Consumer"),
            "policy.yaml:6: images[1].repository: invalid value 'Org/Consumer' (a lower-case path",
            id="bad-repository",
        ),
        pytest.param(
            BASE.replace("version: 1\n", "version: 1\nregistry: https://ghcr.io\n"),
            "policy.yaml:2: registry: invalid value 'https://ghcr.io' (a host[:port]",
            id="registry-url",
        ),
        pytest.param(
            BASE.replace("  - name: consumer\n", "  - name: ../consumer\n"),
            "policy.yaml:5: images[1].name: invalid value '../consumer'",
            id="path-in-name",
        ),
        pytest.param(
            BASE.replace("    repository: org/producer\n", ""),
            "policy.yaml:3: images[0]: missing required key: repository",
            id="missing-repository",
        ),
        pytest.param(
            BASE + "  size: [500MB]\n",
            "policy.yaml:10: rules.size: expected the rule's settings as a mapping, got a list",
            id="rule-as-list",
        ),
        pytest.param(
            BASE + "  smoke: !!python/object/apply:os.system [echo pwned]\n",
            "policy.yaml:10: rules.smoke: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
            id="python-tag",
        ),
        pytest.param(
            BASE + "  size: !!binary aGVsbG8=\n",
            "policy.yaml:10: rules.size: YAML tag 'tag:yaml.org,2002:binary' is not allowed",
            id="binary-tag",
        ),
        pytest.param(
            BASE + "  tags: &t {required: [*t]}\n",
            "policy.yaml:10: rules.tags.required[0]: a YAML alias refers to the value that contains it",
            id="alias-cycle",
        ),
        pytest.param(
            BASE + "  size: &s {max_compressed: 1GB}\n  smoke:\n    <<: *s\n",
            "policy.yaml:12: rules.smoke: YAML merge keys (<<) are not supported",
            id="merge-key",
        ),
        pytest.param(
            BASE + "  smoke: {1: x}\n",
            "policy.yaml:10: rules.smoke: key 1 is not a string (quote it)",
            id="non-string-key",
        ),
        pytest.param(
            BASE + "  smoke: {timeout: 99999999999999999d}\n",
            "policy.yaml:10: rules.smoke.timeout: bad duration: ",
            id="duration-overflow",
        ),
    ],
)
def test_policy_errors_name_file_line_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text).startswith(expected)


def test_a_bad_duration_gives_its_examples_once(tmp_path: Path) -> None:
    """Read aloud, the error says "like 30s, 15m, 24h or 7d" one time, not twice."""
    message = error_of(tmp_path, BASE + "  smoke:\n    timeout: soon\n")
    assert message.count("30s") == 1 and message.endswith("got 'soon'")


def test_runaway_aliases_are_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    message = error_of(tmp_path, "\n".join(lines) + "\n")
    assert "more than 100000 values" in message


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(tmp_path)  # a directory
    assert error_of(tmp_path, b"version: 1\nregistry: gh\xffcr.io\n").startswith("policy.yaml:2: ")


def test_quoted_yes_is_not_a_bool_but_yaml_true_is(tmp_path: Path) -> None:
    ok = load_policy(write(tmp_path, BASE + "    created_not_in_future: true\n"))
    assert ok.images[0].rules["labels"].created_not_in_future is True


# --- a rule's own value checks point at the key at fault -----------------------------------------

OVERRIDE = BASE.replace("    repository: org/consumer\n", "    repository: org/consumer\n    rules:\n      smoke:\n")
"""BASE with an `images[1].rules.smoke:` mapping on line 8; a test writes its keys right after it."""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE + "  smoke:\n    timeout: 5s\n    cpus: 0\n",
            "12: rules.smoke.cpus: smoke `cpus` must be a number of CPUs from 0.01 to 64 "
            "(like docker's --cpus: 0.5, 1, 2), got 0",
            id="smoke-cpus",
        ),
        pytest.param(
            BASE + "  smoke:\n    pids: 0\n    cpus: 2\n",
            "11: rules.smoke.pids: smoke `pids` must be at least 1, got 0",
            id="smoke-pids",
        ),
        pytest.param(
            BASE + "  smoke: {pids: 10,\n    memory: 1MiB}\n",
            "11: rules.smoke.memory: smoke `memory` must be at least 6MiB (the engine's minimum), got 1048576",
            id="smoke-memory-in-flow-mapping",
        ),
        pytest.param(
            BASE + "  smoke:\n    timeout: 0s\n",
            "11: rules.smoke.timeout: smoke `timeout` must be positive (e.g. 30s)",
            id="smoke-timeout",
        ),
        pytest.param(
            BASE + "  smoke:\n    args: []\n    command: []\n",
            "12: rules.smoke.command: smoke `command` must name a program (e.g. [python, -m, app]); "
            "leave it out instead",
            id="smoke-command",
        ),
        pytest.param(
            BASE + "  smoke:\n    expect_output: '(['\n",
            "11: rules.smoke.expect_output: smoke `expect_output` '([' is not a valid regex: ",
            id="smoke-expect-output",
        ),
        pytest.param(
            BASE + "  smoke:\n    expect_output: '(?<=v){version}'\n",
            "11: rules.smoke.expect_output: smoke `expect_output` '(?<=v){version}' is not a valid regex: "
            "(?<= is lookaround, which RE2 does not have: match the text itself",
            id="smoke-expect-output-lookbehind",
        ),
        pytest.param(
            BASE + "  vulnerabilities:\n    fail_on: [HIGH]\n    min_cvss: 11\n",
            "12: rules.vulnerabilities.min_cvss: min_cvss must be between 0 and 10, got 11.0",
            id="vulnerabilities-min-cvss",
        ),
        pytest.param(
            BASE + "  vulnerabilities:\n    grace_days: -1\n",
            "11: rules.vulnerabilities.grace_days: grace_days cannot be negative",
            id="vulnerabilities-grace-days",
        ),
        pytest.param(
            BASE + "  vulnerabilities:\n    ignore:\n      - id: CVE-1\n        expires: 2030-01-01\n"
            "        reason: ' '\n",
            "14: rules.vulnerabilities.ignore[0].reason: waiver CVE-1 needs a non-empty `reason`",
            id="waiver-reason",
        ),
        pytest.param(
            OVERRIDE.replace("      smoke:\n", "      smoke:\n        timeout: 5s\n        cpus: 0\n"),
            "10: images[1].rules.smoke.cpus: smoke `cpus` must be a number of CPUs from 0.01 to 64 "
            "(like docker's --cpus: 0.5, 1, 2), got 0",
            id="per-image-override",
        ),
        pytest.param(
            OVERRIDE.replace("      smoke:\n", "      smoke:\n        timeout: 5s\n") + "  smoke:\n    pids: 0\n",
            "14: rules.smoke.pids: smoke `pids` must be at least 1, got 0",
            id="default-key-under-an-override",
        ),
        pytest.param(
            BASE + "  vulnerabilities:\n    fail_on: [HIGH]\n    warn_on: [HIGH]\n",
            "10: rules.vulnerabilities: severities ['HIGH'] are in both fail_on and warn_on; pick one",
            id="keys-at-odds-stay-at-the-rule",
        ),
    ],
)
def test_rule_value_errors_name_the_key_and_its_line(tmp_path: Path, text: str, expected: str) -> None:
    """`policy validate` is where users meet these: one stderr line at the offending key, exit 2."""
    path = write(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", "policy", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"imgcheck: error: {path}:{expected}")


@dataclasses.dataclass(frozen=True)
class _Window:
    low: int = 0
    high: int = 10

    def __post_init__(self) -> None:
        if self.high <= self.low:
            raise FieldError("high", f"high must be above low ({self.low})")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("window:\n  low: 1\n  high: 0\n", "policy.yaml:3: window.high: high must be above low (1)"),
        ("window:\n  low: 20\n", "policy.yaml:1: window: high must be above low (20)"),
    ],
    ids=["key-written", "key-left-at-its-default"],
)
def test_field_error_falls_back_to_the_mapping_when_the_key_is_not_written(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A FieldError about a default the user never wrote has no line of its own: the mapping's it is."""
    root = read_tree(write(tmp_path, text))
    assert isinstance(root, Map) and isinstance(root.entries["window"], Map)
    with pytest.raises(PolicyError) as info:
        parse_dataclass(_Window, root.entries["window"])
    assert str(info.value).replace(str(tmp_path) + "/", "") == expected


# --- property: anything in, a Policy or a PolicyError out ---------------------------------------

_FIELD_NAMES = sorted({n for s in all_rules().values() for n in init_fields(s.config)} | {"keyless", "issuer"})
_KEYS = st.sampled_from(
    [*_FIELD_NAMES, *all_rules(), "version", "registry", "images", "rules", "name", "repository", "<<", "1"]
) | st.text(max_size=6)
_LEAVES = (
    st.none()
    | any_pattern  # patterns RE2 takes (nested quantifiers) and refuses, in any key
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.dates()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "500MB",
            "1.5GiB",
            "10%",
            "24h",
            "30s",
            "2027-01-31",
            "[bad",
            "(?i).*",
            "linux/amd64",
            "CRITICAL",
            "cyclonedx",
            "warn",
            "enforce",
            "org/app",
            "ghcr.io",
            "main-[0-9a-f]{7}",
            "1e309d",
            "9" * 30 + "d",
        ]
    )
)
_VALUES = st.recursive(
    _LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3), max_leaves=12
)


def _mostly(good: st.SearchStrategy[object], other: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """`good` 9 times in 10, so most examples get past the first check and reach the rule parser."""
    return st.integers(0, 9).flatmap(lambda n: good if n else other)


_RULE_SETTINGS = st.none() | st.booleans() | st.dictionaries(st.sampled_from(_FIELD_NAMES), _VALUES, max_size=4)
_RULES = st.dictionaries(st.sampled_from([*all_rules(), "sise"]), _RULE_SETTINGS, max_size=4)
_IMAGE = st.fixed_dictionaries(
    {
        "name": _mostly(st.sampled_from(["a", "b", "c"]), _LEAVES),
        "repository": _mostly(st.sampled_from(["o/a", "o/b"]), _LEAVES),
    },
    optional={
        "registry": _mostly(st.just("localhost:5000"), _LEAVES),
        "rules": _mostly(_RULES, _VALUES),
        "extra": _VALUES,
    },
)
_POLICY = st.fixed_dictionaries(
    {"version": _mostly(st.just(1), _LEAVES), "images": _mostly(st.lists(_IMAGE, min_size=1, max_size=3), _VALUES)},
    optional={"registry": _mostly(st.just("ghcr.io"), _LEAVES), "rules": _mostly(_RULES, _VALUES)},
)
_YAML_TEXT = st.text(alphabet=" \n\t:-[]{}#&*!|>'\",?%@`~.0123456789abcdefgtruenulxyz<", max_size=120)
_K2_LINES = (PACKAGE_POLICIES / "k2.yaml").read_text().splitlines()


LOAD_BUDGET = 2.0
"""Seconds one policy may take to load, patterns compiled (RE2 compiles in time linear in the pattern)."""


def _assert_policy_or_policy_error(text: str) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            message = str(exc)
            assert message.startswith(str(path)) and "\n" not in message
            return
        finally:
            assert time.monotonic() - started < LOAD_BUDGET
    assert isinstance(policy, Policy) and policy.images
    for image in policy.images:
        assert image.rules and all(isinstance(c, RuleConfig) for c in image.rules.values())


_PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(_POLICY, st.booleans())
def test_random_policy_structures_load_or_raise_policy_error(doc: dict[str, object], flow: bool) -> None:
    _assert_policy_or_policy_error(yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True))


@_PROPERTY
@given(_YAML_TEXT)
def test_random_yaml_text_loads_or_raises_policy_error(text: str) -> None:
    _assert_policy_or_policy_error(text)


@_PROPERTY
@given(st.data())
def test_mutated_k2_policy_loads_or_raises_policy_error(data: st.DataObject) -> None:
    lines = list(_K2_LINES)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        key, _sep, _value = lines[index].partition(":")
        replacement = data.draw(_LEAVES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))
        action = data.draw(st.sampled_from(["value", "delete", "duplicate", "indent"]))
        if action == "value":
            lines[index] = f"{key}: {replacement.splitlines()[0] if replacement else ''}"
        elif action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        else:
            lines[index] = "  " + lines[index]
    _assert_policy_or_policy_error("\n".join(lines) + "\n")


def test_relative_paths_of_the_bundled_policy_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reports/{name}.trivy.json` in the bundled k2 policy means the user's folder, not site-packages."""
    from imgcheck.policy.loader import default_policy_path

    monkeypatch.chdir(tmp_path)
    bundled = load_policy(default_policy_path(tmp_path))
    assert bundled.base_dir == tmp_path
    own = tmp_path / "conf" / "imgcheck.yaml"
    own.parent.mkdir()
    own.write_text(default_policy_path(tmp_path).read_text())
    assert load_policy(own).base_dir == own.parent


def test_explain_lists_rules_once_for_images_that_share_them(tmp_path: Path) -> None:
    """The bundled k2 policy: three images with the same effective rules read as one block."""
    from imgcheck.policy.loader import default_policy_path, explain

    lines = explain(load_policy(default_policy_path(tmp_path)))
    assert sum(1 for line in lines if line.startswith("  size:")) == 1
    assert [line.split(":")[0] for line in lines[1:4]] == ["producer", "consumer", "query-engine"]


# --- libyaml composes, the pure-Python loader explains --------------------------------------------

SAME_TREE_TEXTS = [
    BASE,
    BASE + "  smoke: {args: ['--version', \"x: y\"], timeout: 30s}\n",
    "a: &x {b: [1, 2.5, true, null, 2026-11-25, '0x1F', ~]}\nc: *x\nd: |\n  block\n  text\n",
    "# only a comment\nk: 'it''s'\nl: \"\\u00e9\\t\"\nm: >-\n  folded\n  lines\n",
]


@pytest.mark.parametrize("text", SAME_TREE_TEXTS)
def test_libyaml_and_pure_python_compose_the_same_tree(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imgcheck.policy.yamltree as yamltree

    assert yamltree._LIBYAML_LOADER is not None, "PyYAML without libyaml: the fast path is never taken"
    path = write(tmp_path, text)
    fast = read_tree(path)
    monkeypatch.setattr(yamltree, "_LIBYAML_LOADER", None)
    assert read_tree(path) == fast  # values, kinds, lines and key paths


def test_bundled_policies_compose_the_same_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imgcheck.policy.yamltree as yamltree

    bundled = sorted(default_policy_path(tmp_path).parent.glob("*.yaml"))
    assert len(bundled) >= 3
    fast = [read_tree(p) for p in bundled]
    monkeypatch.setattr(yamltree, "_LIBYAML_LOADER", None)
    assert [read_tree(p) for p in bundled] == fast


def test_syntax_errors_are_worded_by_the_pure_python_loader(tmp_path: Path) -> None:
    # libyaml refuses this too, in other words; the message must be the one PyYAML's own loader gives
    text = "version: 1\nimages: [a, b\nrules: {}\n"
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.compose(text, Loader=yaml.SafeLoader)
    message = error_of(tmp_path, text)
    assert message.startswith("policy.yaml:")
    assert str(pure.value.problem) in message
