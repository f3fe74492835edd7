"""Every real Trivy report in the shared corpus: parsed, bound, and judged, with the expected
numbers counted independently here (plain json + loops over the raw file)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_vulns_support import CORPUS, make_facts, run_rule

from imgcheck.checks.vulnerabilities import Config
from imgcheck.verdict import Verdict
from imgcheck.vulns.files import load_report_file

JSON_REPORTS = sorted(
    [*CORPUS.glob("aquasecurity-trivy__*.json.golden"), *CORPUS.glob("secureCodeBox-*juice-shop*.json")]
)
JSON_REPORTS = [p for p in JSON_REPORTS if json.loads(p.read_text()).get("SchemaVersion") == 2]
SARIF = CORPUS / "aquasecurity-trivy__alpine-310.sarif.golden"

CONFIGS = [
    Config(fail_on=("CRITICAL",)),
    Config(fail_on=("CRITICAL", "HIGH"), warn_on=("MEDIUM",)),
    Config(fail_on=("CRITICAL", "HIGH", "MEDIUM", "LOW"), fixable_only=True),
    Config(fail_on=("MEDIUM",), warn_on=("LOW",), fixable_only=True),
]


def test_corpus_has_the_expected_reports() -> None:
    names = {p.name for p in JSON_REPORTS}
    assert "secureCodeBox-secureCodeBox__juice-shop-v10.2.0.json" in names
    assert "aquasecurity-trivy__alpine-310.json.golden" in names
    assert len(JSON_REPORTS) >= 8


def raw_vulns(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    out = []
    for result in doc.get("Results") or []:
        for v in result.get("Vulnerabilities") or []:
            out.append(v)
    return out


def facts_for(path: Path):
    """Bind the way a real run would: the manifest digest from RepoDigests, else the ImageID."""
    meta = json.loads(path.read_text())["Metadata"]
    if meta.get("RepoDigests"):
        return make_facts(meta["RepoDigests"][0].split("@", 1)[1])
    return make_facts(config_digest=meta["ImageID"])


@pytest.mark.parametrize("path", JSON_REPORTS, ids=lambda p: p.name)
def test_parser_keeps_every_finding(path: Path) -> None:
    report = load_report_file(path)
    assert report is not None
    raw = raw_vulns(path)
    assert len(report.findings) == len(raw)
    got = Counter((v.id, v.package, v.installed, v.fixed, v.severity) for v in report.findings)
    want = Counter(
        (v["VulnerabilityID"], v["PkgName"], v["InstalledVersion"], v.get("FixedVersion", ""), v["Severity"])
        for v in raw
    )
    assert got == want


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "+".join(c.fail_on) + ("-fixable" if c.fixable_only else ""))
@pytest.mark.parametrize("path", JSON_REPORTS, ids=lambda p: p.name)
def test_verdict_matches_independent_count(path: Path, config: Config) -> None:
    raw = raw_vulns(path)

    def counted(v: dict) -> bool:
        return not config.fixable_only or bool(v.get("FixedVersion")) or v.get("Status") == "fixed"

    fails = sum(1 for v in raw if v["Severity"] in config.fail_on and counted(v))
    warns = sum(1 for v in raw if v["Severity"] in config.warn_on and counted(v))
    finding = run_rule(facts_for(path), config, reports=(path,))
    counts = finding.details["counts"]
    assert counts["total"] == len(raw)
    assert counts["fail"] == fails
    assert counts["warn"] == warns
    assert counts["by_severity"] == dict(Counter(v["Severity"] for v in raw))
    expected = Verdict.FAIL if fails else Verdict.WARN if warns else Verdict.PASS
    assert finding.verdict == expected, finding.message
    assert len(finding.details["findings"]) == min(200, fails + warns)
    if fails:
        worst = next(
            s
            for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW")
            if any(v["Severity"] == s and s in config.fail_on and counted(v) for v in raw)
        )
        assert f" {worst}" in finding.message


def test_juice_shop_details_are_bounded_and_name_packages() -> None:
    path = CORPUS / "secureCodeBox-secureCodeBox__juice-shop-v10.2.0.json"
    config = Config(fail_on=("CRITICAL", "HIGH", "MEDIUM", "LOW"))
    finding = run_rule(facts_for(path), config, reports=(path,))
    assert finding.verdict == Verdict.FAIL
    assert len(finding.details["findings"]) == 200
    assert finding.details["findings_not_listed"] == 236 - 200
    first = finding.details["findings"][0]
    assert first["severity"] == "CRITICAL" and first["package"] and first["installed"]
    assert json.dumps(finding.details)  # renderers serialise it as is


def test_sarif_golden_matches_the_json_golden_of_the_same_image() -> None:
    sarif = load_report_file(SARIF)
    js = load_report_file(CORPUS / "aquasecurity-trivy__alpine-310.json.golden")
    assert sarif is not None and js is not None
    assert sarif.format == "sarif" and sarif.image_id == js.image_id
    key = lambda v: (v.id, v.package, v.installed, v.fixed, v.severity)  # noqa: E731
    assert Counter(map(key, sarif.findings)) == Counter(map(key, js.findings))
    # independent count over the raw SARIF: one result per finding
    raw = json.loads(SARIF.read_text())["runs"][0]["results"]
    assert len(sarif.findings) == len(raw)


def test_sarif_binds_by_image_id_and_judges() -> None:
    doc = json.loads(SARIF.read_text())
    image_id = doc["runs"][0]["properties"]["imageID"]
    now = datetime.now(UTC)  # SARIF has no scan time: its age comes from the file's mtime
    config = Config(fail_on=("MEDIUM",), max_age=timedelta(days=36500))
    finding = run_rule(make_facts(config_digest=image_id), config, reports=(SARIF,), now=now)
    assert finding.verdict == Verdict.FAIL
    assert finding.details["counts"]["fail"] == len(doc["runs"][0]["results"])
    assert "age from file time" in finding.message


def test_corpus_folder_binds_only_the_matching_report() -> None:
    """The whole corpus as a report folder: SBOMs and bundles are skipped, other images ignored."""
    path = CORPUS / "secureCodeBox-secureCodeBox__juice-shop-v12.10.2.json"
    finding = run_rule(facts_for(path), Config(fail_on=("CRITICAL",)), reports=(CORPUS,))
    assert [r["source"] for r in finding.details["reports"]] == [str(path)]
    assert finding.details["counts"]["total"] == len(raw_vulns(path))
    ignored = {Path(r["source"]).name for r in finding.details["ignored_reports"]}
    assert "secureCodeBox-secureCodeBox__juice-shop-v10.2.0.json" in ignored
    assert any("cdx" in s for s in finding.details["skipped_files"])
