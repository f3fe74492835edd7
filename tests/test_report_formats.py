"""JUnit, SARIF and Markdown renderers: every format parses, and every format tells the same story.

One hand-built report covers every verdict and the awkward text real checks produce (pipes,
newlines, `%`, HTML, ANSI codes from smoke output, very long messages); a second report comes from
a real run of the pipeline against the real registry. Each format is parsed back (ElementTree, the
OASIS SARIF 2.1.0 schema, a Markdown table reader) and its counts are compared with
`Report.counts()` and the JSON report.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from imgcheck.report import json_report, junit, markdown, sarif
from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

SCHEMA = Path(__file__).parent / "data" / "sarif" / "sarif-schema-2.1.0.json"
DIGEST = "sha256:" + "ab" * 32
TRICKY = "expected a | b\nfound 50% of <script>alert(1)</script>, key: value \x1b[31mred\x1b[0m `tick` *star*"
LONG = "layer list: " + ", ".join(f"sha256:{i:064x}" for i in range(8))


def sample_report(policy: str = "imgcheck.yaml", message: str = "compressed size 182.4 MB ≤ 500 MB") -> Report:
    """Every verdict, per-platform checks, a rule listed twice, tricky text and an image that errored."""
    producer = ImageResult(
        "producer",
        "ghcr.io/rjdscott/k2-market-data-platform-producer:main-3f2a9c1",
        DIGEST,
        (
            CheckResult("size", Verdict.PASS, message, "linux/amd64", {"compressed": 182_400_000}),
            CheckResult("size", Verdict.PASS, message, "linux/arm64", {"compressed": 180_000_000}),
            CheckResult("labels", Verdict.WARN, "label org.opencontainers.image.version is empty (mode: warn)"),
            CheckResult("config", Verdict.FAIL, "runs as root: set USER to a non-root uid", None, {"user": "root"}),
            CheckResult("config", Verdict.FAIL, TRICKY, None, {"env": ["API_KEY"]}),
            CheckResult("smoke", Verdict.SKIP, "--no-smoke given: the image was not run"),
            CheckResult("signature", Verdict.ERROR, LONG, None, {"keys": ["keys/cosign.pub"]}),
        ),
    )
    consumer = ImageResult(
        "consumer",
        "ghcr.io/rjdscott/k2-market-data-platform-consumer:main-3f2a9c1",
        "sha256:" + "cd" * 32,
        (CheckResult("size", Verdict.PASS, message, "linux/amd64"), CheckResult("config", Verdict.PASS, "user 1000")),
    )
    broken = ImageResult(
        "query-engine",
        "ghcr.io/rjdscott/k2-market-data-platform-query-engine:main-3f2a9c1",
        None,
        (),
        "manifest unknown: tag main-3f2a9c1 not found (push it, or check the tag)",
    )
    return Report("0.1.0", policy, "2026-11-23T23:00:00Z", (producer, consumer, broken), target="main-3f2a9c1")


def errored_images(report: Report) -> int:
    return sum(1 for image in report.images if image.error is not None)


# --- JUnit --------------------------------------------------------------------------------------


def junit_counts(report: Report) -> dict[str, int]:
    root = ET.fromstring(junit.render(report))
    assert root.tag == "testsuites"
    totals: Counter[str] = Counter()
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        seen = Counter(child.tag for case in cases for child in case if child.tag in ("failure", "error", "skipped"))
        assert int(suite.get("tests", "-1")) == len(cases)
        assert int(suite.get("failures", "-1")) == seen["failure"]
        assert int(suite.get("errors", "-1")) == seen["error"]
        assert int(suite.get("skipped", "-1")) == seen["skipped"]
        for case in cases:
            outcomes = [c.tag for c in case if c.tag in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1, ET.tostring(case)
        for key in ("tests", "failures", "errors", "skipped"):
            totals[key] += int(suite.get(key, "0"))
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key, "-1")) == totals[key]
    return dict(totals)


def test_junit_counts_agree_with_the_report_and_the_json() -> None:
    report = sample_report()
    counts = junit_counts(report)
    doc = json.loads(json_report.render(report))
    assert doc["counts"] == report.counts()
    checks = sum(report.counts().values())
    assert counts["tests"] == checks + errored_images(report)
    assert counts["failures"] == doc["counts"]["fail"] == 2
    assert counts["errors"] == doc["counts"]["error"] + errored_images(report) == 2
    assert counts["skipped"] == doc["counts"]["skip"] == 1


def test_junit_suites_cases_and_properties() -> None:
    report = sample_report()
    root = ET.fromstring(junit.render(report))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["producer", "consumer", "query-engine"]
    props = {p.get("name"): p.get("value") for p in suites["producer"].iter("property")}
    assert props["digest"] == DIGEST
    assert props["reference"] == report.images[0].reference
    assert props["verdict"] == "error"
    names = [c.get("name") for c in suites["producer"].findall("testcase")]
    assert names == [
        "size (linux/amd64)",
        "size (linux/arm64)",
        "labels",
        "config",
        "config [2]",
        "smoke",
        "signature",
    ]
    assert {c.get("classname") for c in suites["producer"].findall("testcase")} == {"imgcheck.producer"}

    warn = suites["producer"].findall("testcase")[2]
    assert [c.tag for c in warn] == ["system-out"] and "empty (mode: warn)" in (warn.findtext("system-out") or "")

    tricky = suites["producer"].findall("testcase")[4].find("failure")
    assert tricky is not None
    # ANSI escapes are not legal XML 1.0: they come out visible, everything else verbatim
    assert tricky.get("message") == TRICKY.replace("\x1b", "\\x1b")
    assert '"API_KEY"' in (tricky.text or "")

    resolve = suites["query-engine"].findall("testcase")
    assert [c.get("name") for c in resolve] == ["resolve"]
    error = resolve[0].find("error")
    assert error is not None and "manifest unknown" in (error.get("message") or "")
    assert next(p.get("value") for p in suites["query-engine"].iter("property") if p.get("name") == "digest") == ""


def test_junit_of_a_run_with_no_image_is_an_error_not_green() -> None:
    report = Report("0.1.0", "imgcheck.yaml", "2026-11-23T23:00:00Z", ())
    assert report.verdict is Verdict.ERROR
    assert junit_counts(report)["errors"] == 1


# --- SARIF --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def validate_sarif(validator: Any, doc: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    # the draft-04 checker does not check `uri`/`uri-reference`: do it here for the URIs we write
    assert urlsplit(doc["$schema"]).scheme == "https"
    run = doc["runs"][0]
    if "informationUri" in run["tool"]["driver"]:
        assert urlsplit(run["tool"]["driver"]["informationUri"]).scheme in ("http", "https")
    for result in run["results"]:
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert " " not in uri and not uri.startswith("/"), uri


def test_sarif_is_valid_against_the_oasis_schema(sarif_validator: Any) -> None:
    validate_sarif(sarif_validator, sarif.to_dict(sample_report()))
    validate_sarif(sarif_validator, json.loads(sarif.render(Report("0.1.0", "p.yaml", "2026-11-23T23:00:00Z", ()))))


def test_the_schema_check_is_not_vacuous(sarif_validator: Any) -> None:
    doc = sarif.to_dict(sample_report())
    doc["runs"][0]["results"][0]["level"] = "fatal"
    del doc["runs"][0]["tool"]["driver"]["name"]
    paths = {tuple(e.path) for e in sarif_validator.iter_errors(doc)}
    assert ("runs", 0, "results", 0, "level") in paths
    assert ("runs", 0, "tool", "driver") in paths


def test_sarif_results_agree_with_the_report(sarif_validator: Any) -> None:
    report = sample_report()
    doc = json.loads(sarif.render(report))
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and doc["$schema"] == sarif.SCHEMA_URI
    driver = run["tool"]["driver"]
    assert driver["name"] == "imgcheck" and driver["version"] == report.imgcheck_version
    levels = Counter(r["level"] for r in run["results"])
    counts = report.counts()
    assert levels["error"] == counts["fail"] + counts["error"] + errored_images(report)
    assert levels["warning"] == counts["warn"]
    assert set(levels) <= {"error", "warning"}
    assert run["properties"]["counts"] == json.loads(json_report.render(report))["counts"]
    assert run["invocations"][0]["executionSuccessful"] is False  # one image could not be verified


def test_sarif_rules_are_declared_with_help(sarif_validator: Any) -> None:
    from imgcheck.checks import all_rules

    doc = sarif.to_dict(sample_report())
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert set(all_rules()) | {"resolve"} == set(ids) and len(ids) == len(set(ids))
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["help"]["text"] and rule["fullDescription"]["text"]
    assert rules[ids.index("size")]["shortDescription"]["text"] == all_rules()["size"].summary
    for result in doc["runs"][0]["results"]:
        assert result["ruleId"] in ids
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_locations_name_the_policy_and_the_image() -> None:
    doc = sarif.to_dict(sample_report(policy="deploy/imgcheck.yaml"))
    results = doc["runs"][0]["results"]
    for result in results:
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "deploy/imgcheck.yaml"
        assert location["physicalLocation"]["region"]["startLine"] == 1
        (logical,) = location["logicalLocations"]
        assert logical["name"] in result["message"]["text"]
    config = next(r for r in results if r["ruleId"] == "config")
    assert config["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == (
        f"ghcr.io/rjdscott/k2-market-data-platform-producer:main-3f2a9c1@{DIGEST}"
    )
    resolve = next(r for r in results if r["ruleId"] == "resolve")
    assert resolve["locations"][0]["logicalLocations"][0]["name"] == "query-engine"


def test_sarif_fingerprints_are_stable_and_distinct() -> None:
    first = sarif.to_dict(sample_report(message="compressed size 182.4 MB"))["runs"][0]["results"]
    again = sarif.to_dict(sample_report(message="compressed size 999 MB"))["runs"][0]["results"]
    prints = [r["partialFingerprints"][sarif.FINGERPRINT_KEY] for r in first]
    assert prints == [r["partialFingerprints"][sarif.FINGERPRINT_KEY] for r in again]
    assert len(prints) == len(set(prints))  # the two config failures of one image stay two alerts


def test_sarif_artifact_uri(tmp_path: Path) -> None:
    assert sarif.artifact_uri("imgcheck.yaml") == "imgcheck.yaml"
    assert sarif.artifact_uri("./ci/my policy.yaml") == "ci/my%20policy.yaml"
    assert sarif.artifact_uri(str(tmp_path / "ci" / "imgcheck.yaml"), cwd=tmp_path) == "ci/imgcheck.yaml"
    outside = sarif.artifact_uri("/opt/imgcheck/policies/k2.yaml", cwd=tmp_path)
    assert outside == "file:///opt/imgcheck/policies/k2.yaml"


# --- Markdown -----------------------------------------------------------------------------------


def split_row(row: str) -> list[str]:
    """Cells of a GitHub table row: split on pipes not escaped with a backslash."""
    assert row.startswith("| ") and row.endswith(" |"), row
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row[1:-1])]


def unescape_cell(cell: str) -> str:
    text = cell.replace("<br>", "\n")
    text = re.sub(r"\\(.)", r"\1", text)
    return html.unescape(text)


def markdown_tables(text: str) -> dict[str, list[list[str]]]:
    """Image heading -> table rows (cells), read the way a Markdown renderer would."""
    tables: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = line[4:].split(":")[0]
            tables[current] = []
        elif current and line.startswith("| ") and not line.startswith("| rule |"):
            tables[current].append(split_row(line))
    return tables


def test_markdown_tables_hold_every_check_verbatim() -> None:
    report = sample_report()
    text = markdown.render(report)
    tables = markdown_tables(text)
    assert list(tables) == ["producer", "consumer", "query-engine"]
    for image in report.images:
        rows = tables[image.name]
        assert len(rows) == len(image.checks)
        for row, check in zip(rows, image.checks, strict=True):
            assert len(row) == 3, row
            assert unescape_cell(row[0]) == check.rule + (f" ({check.platform})" if check.platform else "")
            assert row[1] == markdown.MARKERS[check.verdict]
            if len(check.message) <= markdown.CELL_LIMIT:
                assert unescape_cell(row[2]) == check.message.replace("\x1b", "\\x1b")
            else:
                assert row[2].endswith("(see details)")
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_markdown_heading_and_counts() -> None:
    report = sample_report()
    lines = markdown.render(report).splitlines()
    assert lines[0] == "## imgcheck: **ERROR**"
    counts = report.counts()
    numbers = dict(
        (v, int(n)) for n, v in re.findall(r"(\d+) (pass|warn|skip|fail|error)", lines[2].split("checks:")[1])
    )
    assert numbers == {k: v for k, v in counts.items() if v}
    assert lines[2].startswith("3 image(s): 1 pass, 2 error")


def test_markdown_folds_long_text_and_details() -> None:
    report = sample_report()
    text = markdown.render(report)
    blocks = re.findall(r"<details><summary>(.*?)</summary>\n(.*?)</details>", text, flags=re.S)
    summaries = [html.unescape(s) for s, _ in blocks]
    assert summaries == [
        "producer: config (fail)",
        "producer: config (fail)",
        "producer: signature (error)",
    ]
    assert LONG in blocks[2][1]  # the full long message, not just its cell
    assert '"API_KEY"' in blocks[1][1]
    assert "could not verify this image: manifest unknown" in text


def test_every_format_agrees_on_a_real_run(real_report: Report, sarif_validator: Any) -> None:
    """A run of the real pipeline against the real registry: pass, warn, fail, skip, error and a lost image."""
    counts = real_report.counts()
    assert all(counts[v] > 0 for v in ("pass", "warn", "fail", "skip", "error")), json_report.render(real_report)
    assert json.loads(json_report.render(real_report))["counts"] == counts
    lost = errored_images(real_report)
    assert lost == 1

    junit_totals = junit_counts(real_report)
    assert junit_totals["failures"] == counts["fail"]
    assert junit_totals["errors"] == counts["error"] + lost
    assert junit_totals["skipped"] == counts["skip"]

    doc = sarif.to_dict(real_report)
    validate_sarif(sarif_validator, doc)
    levels = Counter(r["level"] for r in doc["runs"][0]["results"])
    assert levels["error"] == counts["fail"] + counts["error"] + lost and levels["warning"] == counts["warn"]

    tables = markdown_tables(markdown.render(real_report))
    rows = [row for image in real_report.images for row in tables[image.name]]
    assert Counter(r[1] for r in rows) == Counter(
        markdown.MARKERS[Verdict(v)] for v, n in counts.items() for _ in range(n)
    )


# --- a real run ---------------------------------------------------------------------------------

REAL_POLICY = """\
version: 1
registry: ghcr.io
images:
  - name: good
    repository: formats/good
  - name: rooted
    repository: formats/rooted
  - name: lost
    repository: formats/never-pushed
rules:
  size:
    max_compressed: 50MB
  labels:
    required: [org.opencontainers.image.source, org.opencontainers.image.licenses]
    mode: warn
  config:
    non_root: true
  smoke:
    args: ['--version']
  vulnerabilities:
    report: 'reports/{name}.trivy.json'
    fail_on: [CRITICAL]
"""


@pytest.fixture(scope="module")
def real_report(registry: Any, pusher: Any, tmp_path_factory: pytest.TempPathFactory) -> Report:
    from fixtures.images import ImageConfig, busybox_base_layer, push_image, script_layer
    from imgcheck.checks.interface import VerifyOptions
    from imgcheck.pipeline import verify
    from imgcheck.policy.loader import load_policy

    labels = {"org.opencontainers.image.source": "https://github.com/rjdscott/k2-market-data-platform"}
    layers = [busybox_base_layer(), script_layer("usr/local/bin/app", "#!/bin/sh\necho app 1.0\n")]
    for repo, user in (("formats/good", "1000"), ("formats/rooted", "root")):
        config = ImageConfig(user=user, entrypoint=["/usr/local/bin/app"], labels=labels)
        push_image(pusher, repo, layers, config, tags=("latest",))
    folder = tmp_path_factory.mktemp("formats")
    (folder / "imgcheck.yaml").write_text(REAL_POLICY)
    (folder / "reports").mkdir()
    (folder / "reports" / "good.trivy.json").write_text('{"SchemaVersion": 2, "Results": [')  # unreadable: error
    policy = load_policy(folder / "imgcheck.yaml")
    options = VerifyOptions(registry_override=registry.host, no_smoke=True, policy_dir=folder, timeout=60)
    return verify(policy, ["latest"], options)


def plain_rows(text: str) -> list[list[str]]:
    """Rows of the plain table split on its column gaps (two or more spaces), header and summary dropped."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0].split() == ["image", "digest", "rule", "verdict", "message"]
    return [re.split(r" {2,}", line, maxsplit=4) for line in lines[1:-1]]


def test_plain_table_has_one_greppable_line_per_check() -> None:
    from imgcheck.report.table import render

    report = sample_report()
    text = render(report)  # not a terminal: plain columns
    rows = plain_rows(text)
    expected = [(i.name, c.rule, c.verdict.value) for i in report.images for c in i.checks]
    expected.append(("query-engine", "-", "error"))
    assert [(r[0], r[2].split(" (")[0], r[3]) for r in rows] == expected
    assert all(line.startswith(("producer ", "consumer ", "query-engine ")) for line in text.splitlines()[1:-1])
    assert LONG in text  # the message is never folded or cut, however long
    assert text.splitlines()[-1] == "ERROR: 3 image(s), 4 pass, 1 warn, 1 skip, 2 fail, 1 error"
    assert not set(text) & set("│┃━─")


def test_plain_table_escapes_terminal_controls_from_registry_data() -> None:
    from imgcheck.report.table import render

    text = render(sample_report())
    assert "\x1b" not in text
    assert "\\x1b[31mred\\x1b[0m" in text  # shown, not obeyed
    tricky = next(r for r in plain_rows(text) if "alert(1)" in r[-1])
    assert tricky[-1].startswith("expected a | b found 50%")  # the newline did not break the row


def test_terminal_table_is_rich_and_strips_controls() -> None:
    from imgcheck.report.table import render

    text = render(sample_report(), color=False, width=200, terminal=True)
    assert "┃" in text and "\x1b" not in text
    assert text.rstrip().splitlines()[-1] == "ERROR: 3 image(s), 4 pass, 1 warn, 1 skip, 2 fail, 1 error"


def test_terminal_table_prints_markup_in_messages_literally() -> None:
    from imgcheck.report.table import render

    report = sample_report(message="label says [bold red]ok[/bold red]")
    text = render(report, color=False, width=200, terminal=True)
    assert "[bold red]ok[/bold red]" in text
