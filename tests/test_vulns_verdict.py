"""The rule's verdicts on reports written here in Trivy's schema: binding, freshness, severities,
waivers, ignore files, VEX, deny list, grace days and CVSS floor."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from test_vulns_support import NOW, digest_of, make_facts, run_rule, trivy_report, vuln, write_json

from imgcheck.checks.vulnerabilities import Config, Waiver
from imgcheck.verdict import Verdict

DIGEST = digest_of("producer-v1")
OTHER = digest_of("consumer-v1")


def two_criticals() -> list[dict]:
    return [vuln("CVE-2024-1"), vuln("CVE-2024-2"), vuln("CVE-2024-3", "zlib", "1.2.13", "", "HIGH")]


def write(tmp_path: Path, vulns: list[dict], digest: str = DIGEST, name: str = "r.json", **kw) -> Path:
    return write_json(tmp_path / name, trivy_report(digest, vulns, **kw))


# --- binding -------------------------------------------------------------------------------------


def test_report_for_this_digest_fails_on_criticals_with_an_informative_message(tmp_path: Path) -> None:
    path = write(tmp_path, two_criticals(), created=NOW - timedelta(hours=2))
    f = run_rule(make_facts(DIGEST), Config(fixable_only=True, max_age=timedelta(hours=24)), reports=(path,))
    assert f.verdict == Verdict.FAIL
    assert f.message == "2 CRITICAL fixable (CVE-2024-1, CVE-2024-2 in openssl 3.0.1 → 3.0.2); report 2 h old"
    assert [r["id"] for r in f.details["findings"]] == ["CVE-2024-1", "CVE-2024-2"]


def test_no_report_for_this_digest_fails_and_says_which_were_ignored(tmp_path: Path) -> None:
    write(tmp_path, [], digest=OTHER, name="consumer.json")
    f = run_rule(make_facts(DIGEST), Config(), reports=(tmp_path,))
    assert f.verdict == Verdict.FAIL
    assert f.message.startswith(f"no Trivy report for {DIGEST}; scan this digest")
    assert "ignored 1 report(s) for other images" in f.message
    assert f.details["ignored_reports"][0]["why"] == "for another image"


def test_file_name_alone_never_binds(tmp_path: Path) -> None:
    """A report named after the image but scanned from another digest is not this image's report."""
    write(tmp_path, [], digest=OTHER, name=f"producer-{DIGEST.split(':')[1]}.json")
    f = run_rule(make_facts(DIGEST), Config(), reports=(tmp_path,))
    assert f.verdict == Verdict.FAIL


def test_folder_with_many_images_picks_the_bound_one(tmp_path: Path) -> None:
    write(tmp_path, [vuln("CVE-2024-9")], digest=OTHER, name="a.json")
    write(tmp_path, [], digest=DIGEST, name="sub/b.json")
    (tmp_path / "notes.json").write_text('{"hello": "world"}')
    f = run_rule(make_facts(DIGEST), Config(), reports=(tmp_path,))
    assert f.verdict == Verdict.PASS, f.message
    assert f.details["skipped_files"] == [str(tmp_path / "notes.json")]
    assert len(f.details["ignored_reports"]) == 1


def test_index_accepts_a_report_for_one_platform_manifest_and_says_which(tmp_path: Path) -> None:
    amd, arm = digest_of("amd64"), digest_of("arm64")
    facts = make_facts(DIGEST, platforms=(("linux/amd64", amd, digest_of("c1")), ("linux/arm64", arm, digest_of("c2"))))
    path = write(tmp_path, [vuln("CVE-2024-1", severity="LOW")], digest=arm)
    f = run_rule(facts, Config(), reports=(path,))
    assert f.verdict == Verdict.PASS
    assert "linux/arm64 manifest" in f.message
    assert f.details["reports"][0]["bound_by"].startswith("linux/arm64 manifest sha256:")


def test_newest_report_for_a_digest_wins(tmp_path: Path) -> None:
    write(tmp_path, [vuln("CVE-2024-1")], name="old.json", created=NOW - timedelta(days=2))
    write(tmp_path, [], name="new.json", created=NOW - timedelta(hours=1))
    f = run_rule(make_facts(DIGEST), Config(), reports=(tmp_path,))
    assert f.verdict == Verdict.PASS
    assert [r["why"] for r in f.details["ignored_reports"]] == ["superseded by a newer report"]


def test_fs_scan_needs_bind_none_and_the_message_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1", severity="LOW")], digest=None)
    refused = run_rule(make_facts(DIGEST), Config(), reports=(path,))
    assert refused.verdict == Verdict.FAIL and "set `bind: none`" in refused.message
    accepted = run_rule(make_facts(DIGEST), Config(bind="none"), reports=(path,))
    assert accepted.verdict == Verdict.PASS
    assert "unbound (bind: none)" in accepted.message


def test_policy_report_template_resolves_against_the_policy_dir(tmp_path: Path) -> None:
    write(tmp_path, [], name=f"reports/producer-{DIGEST.split(':')[1]}.trivy.json")
    config = Config(report="reports/{name}-{digest_hex}.trivy.json")
    assert run_rule(make_facts(DIGEST), config, policy_dir=tmp_path).verdict == Verdict.PASS
    missing = run_rule(make_facts(DIGEST, tag="v2"), Config(report="reports/{name}-{tag}.json"), policy_dir=tmp_path)
    assert missing.verdict == Verdict.FAIL
    assert str(tmp_path / "reports/producer-v2.json") in missing.message


def test_no_report_source_at_all_is_an_error() -> None:
    f = run_rule(make_facts(DIGEST), Config())
    assert f.verdict == Verdict.ERROR


# --- freshness -----------------------------------------------------------------------------------


def test_stale_report_fails_with_age_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path, [], created=NOW - timedelta(days=3))
    f = run_rule(make_facts(DIGEST), Config(max_age=timedelta(hours=24)), reports=(path,))
    assert f.verdict == Verdict.FAIL
    assert f.message.startswith("report is 3 d old, max 24 h; re-scan")


def test_report_without_created_at_is_an_error_when_max_age_is_set(tmp_path: Path) -> None:
    doc = trivy_report(DIGEST, [])
    del doc["CreatedAt"]
    path = write_json(tmp_path / "r.json", doc)
    assert run_rule(make_facts(DIGEST), Config(max_age=timedelta(days=1)), reports=(path,)).verdict == Verdict.ERROR
    assert run_rule(make_facts(DIGEST), Config(), reports=(path,)).verdict == Verdict.PASS


# --- severities, fixable, CVSS, grace, deny --------------------------------------------------------


def test_warn_on_only_warns_and_unfixable_do_not_count(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-1", severity="HIGH"), vuln("CVE-2", fixed="", severity="CRITICAL")])
    f = run_rule(make_facts(DIGEST), Config(warn_on=("HIGH",), fixable_only=True), reports=(path,))
    assert f.verdict == Verdict.WARN
    assert f.details["counts"]["not_fixable"] == 1
    assert f.message.startswith("1 HIGH (warn) (CVE-1 in openssl")


def test_status_fixed_counts_as_fixable_without_a_fixed_version(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-1", fixed="", status="fixed")])
    assert run_rule(make_facts(DIGEST), Config(fixable_only=True), reports=(path,)).verdict == Verdict.FAIL


def test_min_cvss_drops_low_scores_but_keeps_unscored(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-1", cvss=6.5), vuln("CVE-2", cvss=9.8), vuln("CVE-3")])
    f = run_rule(make_facts(DIGEST), Config(min_cvss=7.0), reports=(path,))
    assert {r["id"] for r in f.details["findings"]} == {"CVE-2", "CVE-3"}
    assert f.details["counts"]["below_min_cvss"] == 1


def test_grace_days_turn_fresh_criticals_into_warnings(tmp_path: Path) -> None:
    recent = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (NOW - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write(tmp_path, [vuln("CVE-NEW", published=recent)])
    f = run_rule(make_facts(DIGEST), Config(grace_days=14), reports=(path,))
    assert f.verdict == Verdict.WARN
    assert f"in grace until {(NOW + timedelta(days=11)).date()}" in f.message
    path = write(tmp_path, [vuln("CVE-OLD", published=old), vuln("CVE-NEW", published=recent)])
    assert run_rule(make_facts(DIGEST), Config(grace_days=14), reports=(path,)).verdict == Verdict.FAIL


def test_deny_list_fails_regardless_of_severity_and_waivers(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2021-44228", "log4j-core", "2.14.1", "", "LOW")])
    waiver = Waiver("CVE-2021-44228", "not reachable", date(2027, 1, 31))
    f = run_rule(make_facts(DIGEST), Config(deny=("CVE-2021-44228",), ignore=(waiver,)), reports=(path,))
    assert f.verdict == Verdict.FAIL
    assert f.message.startswith("1 denied (CVE-2021-44228 in log4j-core 2.14.1, no fix yet)")
    assert f.details["findings"][0]["outcome"] == "denied"


# --- waivers -------------------------------------------------------------------------------------


def test_active_waiver_suppresses_and_the_message_gives_its_expiry(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1")])
    waiver = Waiver("CVE-2024-1", "patched in our fork", date(2027, 1, 31))
    f = run_rule(make_facts(DIGEST), Config(ignore=(waiver,)), reports=(path,))
    assert f.verdict == Verdict.PASS
    assert "1 waived (expires 2027-01-31)" in f.message
    row = f.details["findings"][0]
    assert row["outcome"] == "waived" and row["waiver"]["reason"] == "patched in our fork"


def test_expired_waiver_no_longer_applies_and_says_when(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1")])
    waiver = Waiver("CVE-2024-1", "temporary", date(2026, 5, 31))  # NOW is 2026-06-01 12:00 UTC
    f = run_rule(make_facts(DIGEST), Config(ignore=(waiver,)), reports=(path,))
    assert f.verdict == Verdict.FAIL
    assert "waiver CVE-2024-1 expired 2026-05-31 and no longer applies" in f.message
    assert f.details["waivers"]["expired"][0]["matched"] == 1


def test_waiver_applies_through_its_expiry_day(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1")])
    waiver = Waiver("CVE-2024-1", "temporary", NOW.date())
    f = run_rule(make_facts(DIGEST), Config(ignore=(waiver,)), reports=(path,))
    assert f.verdict == Verdict.WARN  # still applies today, but ends within 14 days
    assert "waiver CVE-2024-1 expires 2026-06-01 (in 12 h); renew or fix" in f.message


def test_waiver_expiring_within_14_days_warns(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1")])
    soon = Waiver("CVE-2024-1", "upstream fix pending", NOW.date() + timedelta(days=9))
    f = run_rule(make_facts(DIGEST), Config(ignore=(soon,)), reports=(path,))
    assert f.verdict == Verdict.WARN
    assert f.details["waivers"]["expiring_soon"][0]["id"] == "CVE-2024-1"
    later = Waiver("CVE-2024-1", "upstream fix pending", NOW.date() + timedelta(days=30))
    assert run_rule(make_facts(DIGEST), Config(ignore=(later,)), reports=(path,)).verdict == Verdict.PASS


def test_stale_waiver_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1", severity="LOW")])
    used = Waiver("CVE-2024-1", "low anyway", date(2027, 1, 1))
    stale = Waiver("CVE-2019-0001", "fixed long ago", date(2027, 1, 1))
    f = run_rule(make_facts(DIGEST), Config(ignore=(used, stale)), reports=(path,))
    assert f.verdict == Verdict.PASS
    assert "1 stale waiver (CVE-2019-0001) matched nothing" in f.message
    assert [w["id"] for w in f.details["waivers"]["stale"]] == ["CVE-2019-0001"]


def test_package_scoped_waiver_by_name_and_by_purl(tmp_path: Path) -> None:
    vulns = [
        vuln("CVE-2024-1", "openssl"),
        vuln("CVE-2024-1", "libssl3", purl="pkg:deb/debian/libssl3@3.0.1?arch=arm64"),
    ]
    path = write(tmp_path, vulns)
    by_name = Waiver("CVE-2024-1", "openssl cli unused", date(2027, 1, 1), packages=("openssl",))
    f = run_rule(make_facts(DIGEST), Config(ignore=(by_name,)), reports=(path,))
    assert f.verdict == Verdict.FAIL
    assert [(r["package"], r["outcome"]) for r in f.details["findings"]] == [("libssl3", "fail"), ("openssl", "waived")]
    by_purl = Waiver("CVE-2024-1", "lib unused", date(2027, 1, 1), packages=("pkg:deb/debian/libssl3",))
    f = run_rule(make_facts(DIGEST), Config(ignore=(by_name, by_purl)), reports=(path,))
    assert f.verdict == Verdict.PASS
    assert f.details["counts"]["waived"] == 2


def test_trivyignore_files_are_imported(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-A"), vuln("CVE-B"), vuln("CVE-C", "curl", "8.0", "8.1")])
    (tmp_path / ".trivyignore").write_text(
        "# accepted by security, JIRA-1\nCVE-A exp:2027-01-01\nCVE-B exp:2026-01-01\n"
    )
    (tmp_path / ".trivyignore.yaml").write_text(
        "vulnerabilities:\n"
        "  - id: CVE-C\n"
        "    purls: ['pkg:deb/debian/curl']\n"
        "    expired_at: 2026-12-31\n"
        "    statement: curl binary is not shipped\n"
    )
    config = Config(ignore_files=(".trivyignore", ".trivyignore.yaml"))
    f = run_rule(make_facts(DIGEST), config, reports=(path,), policy_dir=tmp_path)
    assert f.verdict == Verdict.FAIL  # CVE-B's ignore expired
    outcomes = {r["id"]: r for r in f.details["findings"]}
    assert outcomes["CVE-A"]["waiver"]["reason"] == "accepted by security, JIRA-1"
    assert outcomes["CVE-C"]["waiver"]["reason"] == "curl binary is not shipped"
    assert outcomes["CVE-B"]["outcome"] == "fail"
    assert "waiver CVE-B expired 2026-01-01" in f.message


# --- VEX -----------------------------------------------------------------------------------------


def openvex(statements: list[dict]) -> dict:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "security@acme.example",
        "timestamp": "2026-05-01T00:00:00Z",
        "version": 1,
        "statements": statements,
    }


def test_openvex_not_affected_for_this_image_suppresses_and_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1"), vuln("CVE-2024-2")])
    product = {"@id": f"pkg:oci/producer@{DIGEST.replace(':', '%3A')}?repository_url=ghcr.io/acme/producer"}
    write_json(
        tmp_path / "vex.json",
        openvex(
            [
                {
                    "vulnerability": {"name": "CVE-2024-1"},
                    "products": [{**product, "subcomponents": [{"@id": "pkg:deb/debian/openssl"}]}],
                    "status": "not_affected",
                    "justification": "vulnerable_code_not_in_execute_path",
                },
                {  # for another image: must not apply
                    "vulnerability": {"name": "CVE-2024-2"},
                    "products": [{"@id": f"pkg:oci/consumer@{OTHER}"}],
                    "status": "not_affected",
                    "justification": "component_not_present",
                },
            ]
        ),
    )
    f = run_rule(make_facts(DIGEST), Config(vex=("vex.json",)), reports=(path,), policy_dir=tmp_path)
    assert f.verdict == Verdict.FAIL
    rows = {r["id"]: r for r in f.details["findings"]}
    assert rows["CVE-2024-1"]["outcome"] == "vex"
    assert rows["CVE-2024-1"]["vex"]["source"].endswith("vex.json statement 1")
    assert rows["CVE-2024-2"]["outcome"] == "fail"
    assert "1 suppressed by VEX" in f.message


def test_later_openvex_affected_statement_revokes_not_affected(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1")])
    product = [{"@id": f"ghcr.io/acme/producer@{DIGEST}"}]
    write_json(
        tmp_path / "vex.json",
        openvex(
            [
                {
                    "vulnerability": {"name": "CVE-2024-1"},
                    "products": product,
                    "status": "not_affected",
                    "justification": "inline_mitigations_already_exist",
                    "timestamp": "2026-05-01T00:00:00Z",
                },
                {
                    "vulnerability": {"name": "CVE-2024-1"},
                    "products": product,
                    "status": "affected",
                    "timestamp": "2026-05-20T00:00:00Z",
                },
            ]
        ),
    )
    f = run_rule(make_facts(DIGEST), Config(vex=("vex.json",)), reports=(path,), policy_dir=tmp_path)
    assert f.verdict == Verdict.FAIL


def test_cyclonedx_vex_resolved_for_this_image_suppresses(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1"), vuln("CVE-2024-2", "zlib", "1.2", "1.3")])
    write_json(
        tmp_path / "vex.cdx.json",
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": {
                "component": {
                    "type": "container",
                    "bom-ref": "image",
                    "name": "ghcr.io/acme/producer",
                    "purl": f"pkg:oci/producer@{DIGEST}",
                }
            },
            "components": [
                {"type": "library", "bom-ref": "zlib-ref", "name": "zlib", "purl": "pkg:deb/debian/zlib@1.2"}
            ],
            "vulnerabilities": [
                {
                    "id": "CVE-2024-2",
                    "analysis": {"state": "resolved", "detail": "backported"},
                    "affects": [{"ref": "zlib-ref"}],
                },
                {"id": "CVE-2024-1", "analysis": {"state": "exploitable"}, "affects": [{"ref": "image"}]},
            ],
        },
    )
    f = run_rule(make_facts(DIGEST), Config(vex=("vex.cdx.json",)), reports=(path,), policy_dir=tmp_path)
    rows = {r["id"]: r for r in f.details["findings"]}
    assert rows["CVE-2024-2"]["outcome"] == "vex"
    assert rows["CVE-2024-2"]["vex"] == {
        "source": f"{tmp_path / 'vex.cdx.json'} vulnerabilities[0]",
        "status": "fixed",
        "justification": "backported",
    }
    assert rows["CVE-2024-1"]["outcome"] == "fail"
    assert f.verdict == Verdict.FAIL


# --- more binding and reporting ------------------------------------------------------------------


def test_reports_for_two_platforms_of_an_index_are_both_judged(tmp_path: Path) -> None:
    amd, arm = digest_of("amd64"), digest_of("arm64")
    facts = make_facts(DIGEST, platforms=(("linux/amd64", amd, digest_of("c1")), ("linux/arm64", arm, digest_of("c2"))))
    write(tmp_path, [vuln("CVE-AMD")], digest=amd, name="amd.json")
    write(tmp_path, [vuln("CVE-ARM", "zlib")], digest=arm, name="arm.json")
    f = run_rule(facts, Config(), reports=(tmp_path,))
    assert f.verdict == Verdict.FAIL
    assert {r["id"] for r in f.details["findings"]} == {"CVE-AMD", "CVE-ARM"}
    assert "2 reports" in f.message


def test_sarif_binds_by_repo_digests_property(tmp_path: Path) -> None:
    from test_vulns_support import CORPUS

    doc = json.loads((CORPUS / "aquasecurity-trivy__alpine-310.sarif.golden").read_text())
    doc["runs"][0]["properties"].update(repoDigests=[f"ghcr.io/acme/producer@{DIGEST}"], imageID=None)
    path = write_json(tmp_path / "r.sarif", doc)
    f = run_rule(make_facts(DIGEST), Config(fail_on=("MEDIUM",)), reports=(path,))
    assert f.verdict == Verdict.FAIL and f.details["counts"]["fail"] == 4
    assert run_rule(make_facts(OTHER), Config(), reports=(path,)).verdict == Verdict.FAIL


def test_waiver_matching_only_uncounted_findings_is_in_use_not_stale(tmp_path: Path) -> None:
    path = write(tmp_path, [vuln("CVE-2024-1", severity="MEDIUM")])
    w = Waiver("CVE-2024-1", "medium, tracked", date(2027, 1, 1))
    f = run_rule(make_facts(DIGEST), Config(ignore=(w,)), reports=(path,))
    assert f.verdict == Verdict.PASS
    assert f.details["waivers"]["stale"] == [] and f.details["waivers"]["active"][0]["matched"] == 1


def test_trivyignore_yaml_paths_scope_the_ignore(tmp_path: Path) -> None:
    doc = trivy_report(DIGEST, [])
    doc["Results"] = [
        {
            "Target": "Python",
            "Class": "lang-pkgs",
            "Type": "python-pkg",
            "Vulnerabilities": [
                {**vuln("CVE-1", "requests"), "PkgPath": "app/venv/requests"},
                {**vuln("CVE-1", "requests"), "PkgPath": "opt/tool/requests"},
            ],
        },
    ]
    path = write_json(tmp_path / "r.json", doc)
    (tmp_path / "ig.yaml").write_text("vulnerabilities:\n  - id: CVE-1\n    paths: ['opt/tool/*']\n")
    f = run_rule(make_facts(DIGEST), Config(ignore_files=("ig.yaml",)), reports=(path,), policy_dir=tmp_path)
    assert f.details["counts"]["fail"] == 1 and f.details["counts"]["waived"] == 1
    assert "1 waived (no expiry)" in f.message and f.details["waivers"]["without_expiry"][0]["id"] == "CVE-1"


def test_describe_says_what_the_configuration_checks() -> None:
    from imgcheck.checks.vulnerabilities import describe

    text = describe(
        Config(
            report="reports/{name}.json",
            fail_on=("CRITICAL",),
            warn_on=("HIGH",),
            fixable_only=True,
            max_age=timedelta(hours=24),
            grace_days=7,
        )
    )
    assert text == (
        "Trivy report reports/{name}.json, bound by digest: fail on CRITICAL, warn on HIGH, fixable only, "
        "7 d grace, report max 24 h old"
    )


def test_a_report_scanned_just_now_is_not_zero_seconds_old() -> None:
    from imgcheck.vulns.message import age_words

    assert [age_words(s) for s in (0.0, 0.4, 0.6, 59.4, 3600.0)] == [
        "under a second",
        "under a second",
        "1 s",
        "59 s",
        "1 h",
    ]
