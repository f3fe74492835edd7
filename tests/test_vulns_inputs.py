"""Bad input is never a pass: broken reports, ignore and VEX files raise InputError (the rule's
`error`, exit 2); plus the attachment seam and a property test that mutates real reports."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_vulns_support import CORPUS, NOW, digest_of, make_facts, run_rule, trivy_report, vuln, write_json

from imgcheck.checks.vulnerabilities import Config
from imgcheck.errors import InputError
from imgcheck.verdict import Verdict
from imgcheck.vulns.attached import COSIGN_VULN_PREDICATE, AttachedDocument, report_from_attachment
from imgcheck.vulns.evaluate import Rules
from imgcheck.vulns.files import MAX_REPORT_BYTES, decode_json, expand_template, parse_report_document
from imgcheck.vulns.verdict import Evidence, judge

DIGEST = digest_of("producer-v1")
ALPINE = CORPUS / "aquasecurity-trivy__alpine-310.json.golden"


def run_file(tmp_path: Path, text: str | bytes, name: str = "r.json", config: Config | None = None):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return run_rule(make_facts(DIGEST), config or Config(), reports=(path,))


def valid() -> dict[str, Any]:
    return trivy_report(DIGEST, [vuln("CVE-2024-1", severity="LOW")])


def test_valid_baseline_passes(tmp_path: Path) -> None:
    assert run_file(tmp_path, json.dumps(valid())).verdict == Verdict.PASS


@pytest.mark.parametrize("cut", [1, 100, 0.5, -2])
def test_truncated_report_is_an_error(tmp_path: Path, cut: float) -> None:
    text = json.dumps(valid())
    end = int(len(text) * cut) if isinstance(cut, float) else cut
    with pytest.raises(InputError, match="not valid JSON"):
        run_file(tmp_path, text[:end])


def test_schema_version_3_is_an_error_not_a_guess(tmp_path: Path) -> None:
    doc = valid()
    doc["SchemaVersion"] = 3
    with pytest.raises(InputError, match="SchemaVersion 3 is not supported"):
        run_file(tmp_path, json.dumps(doc))


def test_schema_version_as_string_is_an_error(tmp_path: Path) -> None:
    doc = valid()
    doc["SchemaVersion"] = "2"
    with pytest.raises(InputError):
        run_file(tmp_path, json.dumps(doc))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("Results",), {"Target": "x"}),
        (("Results", 0), "oops"),
        (("Results", 0, "Vulnerabilities"), {"VulnerabilityID": "CVE-1"}),
        (("Results", 0, "Vulnerabilities", 0, "Severity"), "SEVERE"),
        (("Results", 0, "Vulnerabilities", 0, "Severity"), None),
        (("Results", 0, "Vulnerabilities", 0, "VulnerabilityID"), 42),
        (("Results", 0, "Vulnerabilities", 0, "PkgName"), ["openssl"]),
        (("Results", 0, "Vulnerabilities", 0, "FixedVersion"), 3.02),
        (("Results", 0, "Vulnerabilities", 0, "CVSS"), {"nvd": {"V3Score": "9.8"}}),
        (("Metadata", "RepoDigests"), "ghcr.io/acme/producer@" + DIGEST),
        (("CreatedAt",), "yesterday"),
        (("Metadata",), [1, 2]),
    ],
)
def test_wrong_types_are_errors(tmp_path: Path, path: tuple, value: object) -> None:
    doc = valid()
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InputError):
        run_file(tmp_path, json.dumps(doc))


def test_missing_results_in_an_otherwise_valid_report_is_a_clean_scan(tmp_path: Path) -> None:
    """Trivy declares Results `omitempty`: a scan of a static binary on scratch has none."""
    doc = valid()
    del doc["Results"]
    f = run_file(tmp_path, json.dumps(doc))
    assert f.verdict == Verdict.PASS
    assert "report has no Results" in f.message


def test_missing_results_without_schema_version_is_an_error(tmp_path: Path) -> None:
    doc = valid()
    del doc["Results"]
    del doc["SchemaVersion"]
    with pytest.raises(InputError, match="neither a Trivy JSON report"):
        run_file(tmp_path, json.dumps(doc))


def test_pre_schema_trivy_list_output_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Trivy before 0\.20"):
        run_file(tmp_path, json.dumps([{"Target": "alpine", "Vulnerabilities": []}]))


def test_empty_deeply_nested_and_non_utf8_files_are_errors(tmp_path: Path) -> None:
    for text in (b"", b"[" * 100_000 + b"]" * 100_000, b'{"SchemaVersion": 2, "ArtifactName": "\xff"}', b"NaN"):
        with pytest.raises(InputError):
            run_file(tmp_path, text)


def test_oversized_report_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:
        fh.truncate(MAX_REPORT_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(InputError, match="over the"):
        run_rule(make_facts(DIGEST), Config(), reports=(path,))


def test_broken_report_in_a_folder_is_an_error_even_beside_a_good_one(tmp_path: Path) -> None:
    write_json(tmp_path / "good.json", valid())
    (tmp_path / "bad.json").write_text(json.dumps(valid())[:-10])
    with pytest.raises(InputError):
        run_rule(make_facts(DIGEST), Config(), reports=(tmp_path,))


def test_missing_explicit_report_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such Trivy report"):
        run_rule(make_facts(DIGEST), Config(), reports=(tmp_path / "nope.json",))


def test_sarif_from_another_tool_or_version_is_an_error() -> None:
    doc = json.loads((CORPUS / "aquasecurity-trivy__alpine-310.sarif.golden").read_text())
    doc["runs"][0]["tool"]["driver"]["name"] = "Grype"
    with pytest.raises(InputError, match="expected Trivy"):
        parse_report_document(doc, "x.sarif", None)
    doc["version"] = "2.0.0"
    with pytest.raises(InputError):
        parse_report_document(doc, "x.sarif", None)


def test_bad_ignore_and_vex_files_are_errors(tmp_path: Path) -> None:
    write_json(tmp_path / "r.json", valid())
    (tmp_path / ".trivyignore").write_text("CVE-1 exp:31/12/2026\n")
    with pytest.raises(InputError, match="exp:YYYY-MM-DD"):
        run_rule(
            make_facts(DIGEST),
            Config(ignore_files=(".trivyignore",)),
            reports=(tmp_path / "r.json",),
            policy_dir=tmp_path,
        )
    (tmp_path / "ig.yaml").write_text("vulnerabilities: {id: CVE-1}\n")
    with pytest.raises(InputError):
        run_rule(
            make_facts(DIGEST), Config(ignore_files=("ig.yaml",)), reports=(tmp_path / "r.json",), policy_dir=tmp_path
        )
    write_json(tmp_path / "vex.json", {"statements": []})
    with pytest.raises(InputError, match="not an OpenVEX or CycloneDX"):
        run_rule(make_facts(DIGEST), Config(vex=("vex.json",)), reports=(tmp_path / "r.json",), policy_dir=tmp_path)
    with pytest.raises(InputError):
        run_rule(make_facts(DIGEST), Config(vex=("missing.json",)), reports=(tmp_path / "r.json",), policy_dir=tmp_path)


def test_report_template_placeholders() -> None:
    assert expand_template("r/{name}-{tag}-{digest_hex}.json", name="p", tag="v1", digest=DIGEST) == (
        f"r/p-v1-{DIGEST[7:]}.json"
    )
    with pytest.raises(InputError, match="known placeholders"):
        expand_template("r/{image}.json", name="p", tag="v1", digest=DIGEST)
    with pytest.raises(InputError, match="given by digest"):
        expand_template("r/{tag}.json", name="p", tag=None, digest=DIGEST)


def test_config_rejects_contradictions() -> None:
    with pytest.raises(ValueError, match="both fail_on and warn_on"):
        Config(fail_on=("HIGH",), warn_on=("HIGH",))
    with pytest.raises(ValueError, match="min_cvss"):
        Config(min_cvss=11)


# --- attachments seam --------------------------------------------------------------------------------


def test_cosign_vuln_attestation_binds_to_its_subject_and_uses_scan_finished_on() -> None:
    inner = json.loads(ALPINE.read_text())  # a Trivy report with no RepoDigests: the subject binds it
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": COSIGN_VULN_PREDICATE,
        "subject": [{"name": "ghcr.io/acme/producer", "digest": {"sha256": DIGEST[7:]}}],
        "predicate": {
            "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50.0", "version": "0.50.0", "result": inner},
            "metadata": {"scanStartedOn": "2026-06-01T10:00:00Z", "scanFinishedOn": "2026-06-01T10:01:00Z"},
        },
    }
    report = report_from_attachment(AttachedDocument(DIGEST, statement, "attestation sha256:abc"))
    assert report is not None and report.format == "cosign-vuln"
    assert DIGEST in report.digests and len(report.findings) == 4
    result = judge(
        Evidence(reports=(report,)),
        make_facts(DIGEST),
        Rules(fail_on=frozenset({"MEDIUM"})),
        max_age=timedelta(hours=6),
        allow_unbound=False,
        now=NOW,
    )
    assert result.verdict == Verdict.FAIL
    assert "4 MEDIUM" in result.message and "report 2 h old" in result.message


def test_attached_sarif_binds_to_the_referrer_subject() -> None:
    doc = json.loads((CORPUS / "aquasecurity-trivy__alpine-310.sarif.golden").read_text())
    report = report_from_attachment(AttachedDocument(DIGEST, doc, "referrer sha256:def", created=NOW))
    assert report is not None and report.digests == (DIGEST,)
    assert report_from_attachment(AttachedDocument(DIGEST, {"spdxVersion": "SPDX-2.3"}, "sbom")) is None


# --- property: mutated real reports parse or raise InputError, never anything else ---------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_BASE = {
    p.name: json.loads(p.read_text())
    for p in (
        ALPINE,
        CORPUS / "aquasecurity-trivy__ubi-7-comprehensive.json.golden",
        CORPUS / "aquasecurity-trivy__alpine-310.sarif.golden",
    )
}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_reports_parse_or_raise_input_error(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(_BASE)))
    doc = json.loads(json.dumps(_BASE[name]))
    mode = data.draw(st.sampled_from(["replace", "delete", "truncate"]))
    if mode == "truncate":
        text = json.dumps(doc)
        raw = text[: data.draw(st.integers(0, len(text)))].encode()
    else:
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        if mode == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_json_values)
        raw = json.dumps(doc).encode()
    try:
        decoded = decode_json(raw, name, "report")
        report = parse_report_document(decoded, name, None)
    except InputError:
        return
    if report is None:  # mutated into something that no longer claims to be a report
        return
    facts = make_facts(config_digest=report.image_id or digest_of("x"))
    result = judge(
        Evidence(reports=(report,)),
        facts,
        Rules(fail_on=frozenset({"CRITICAL", "MEDIUM"})),
        max_age=None,
        allow_unbound=True,
        now=NOW,
    )
    assert result.verdict in (Verdict.PASS, Verdict.FAIL, Verdict.WARN)
    json.dumps(result.details)
