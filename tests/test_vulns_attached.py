"""vulnerabilities rule, `attached:`: Trivy reports attached to the image in the real registry.

Key-signed cosign vuln attestations (`trivy --format cosign-vuln` + `cosign attest --type vuln`, as the
fixture builder lays them out in the `.att` tag), Trivy SARIF referrers (Ratify's `oras attach` layout)
and buildx-style unsigned attestations, all read back through the `imgcheck verify` process. The
expected counts come from the corpus files themselves; tampered, copied and unsigned evidence must
never pass.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_supplychain_support import push_tiny_image

from imgcheck.testing.push import OCI_MANIFEST, Pusher
from imgcheck.testing.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parent.parent
DEMO_PUB = ROOT / "fixtures" / "keys" / "demo-cosign.pub"
TRIVY_JSON = "aquasecurity-trivy__alpine-310.json.golden"
TRIVY_SARIF = "aquasecurity-trivy__alpine-310.sarif.golden"


def _stamp(ago: timedelta) -> str:
    return (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def _severities(trivy: dict[str, Any]) -> Counter[str]:
    return Counter(v["Severity"] for r in trivy.get("Results") or [] for v in r.get("Vulnerabilities") or [])


def _ids(trivy: dict[str, Any]) -> list[str]:
    return [v["VulnerabilityID"] for r in trivy.get("Results") or [] for v in r.get("Vulnerabilities") or []]


def _policy(tmp_path: Path, host: str, repo: str, rule: str, name: str = "policy.yaml") -> Path:
    text = (
        f"version: 1\nregistry: {host}\nimages:\n  - name: app\n    repository: {repo}\n"
        "rules:\n  vulnerabilities:\n" + "".join(f"    {line}\n" for line in rule.strip().splitlines())
    )
    path = tmp_path / name
    path.write_text(text)
    return path


def _verify(host: str, repo: str, tag: str, policy: Path) -> tuple[int, dict[str, Any], str]:
    """`python -m imgcheck verify <host>/<repo>:<tag> --policy … --format json`: exit code, the
    vulnerabilities check (or the whole report when there is none) and stderr."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgcheck",
            "verify",
            f"{host}/{repo}:{tag}",
            "--policy",
            str(policy),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    if not result.stdout.strip():
        return result.returncode, {}, result.stderr
    doc = json.loads(result.stdout)
    checks = [c for i in doc["images"] for c in i.get("checks", []) if c["rule"] == "vulnerabilities"]
    return result.returncode, checks[0] if checks else doc, result.stderr


SIGNED = f"attached: true\nkeys: ['{DEMO_PUB}']\n"


@pytest.fixture(scope="module")
def trivy(corpus: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((corpus / TRIVY_JSON).read_text())
    return doc


@pytest.fixture(scope="module")
def sarif(corpus: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((corpus / TRIVY_SARIF).read_text())
    return doc


def _signed_image(pusher: Pusher, host: str, repo: str, report: dict[str, Any], *, marker: str, ago: timedelta) -> str:
    from fixtures.supplychain import attach_vuln_attestation, config_digest, trivy_report_for_image

    digest = push_tiny_image(pusher, repo, tag="v1", marker=marker)
    inner = trivy_report_for_image(report, f"{host}/{repo}:v1", digest, config_digest(pusher, repo, digest))
    attach_vuln_attestation(pusher, host, repo, digest, inner, scan_finished=_stamp(ago))
    return digest


def test_signed_vuln_attestation_is_found_bound_and_judged(
    pusher: Pusher, registry: RegistryServer, trivy: dict[str, Any], tmp_path: Path
) -> None:
    from fixtures.supplychain import cosign_tag

    host, repo = registry.host, "vulnatt/signed"
    digest = _signed_image(pusher, host, repo, trivy, marker="signed", ago=timedelta(hours=1))
    medium = _severities(trivy)["MEDIUM"]
    assert medium > 0

    code, check, err = _verify(
        host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "fail_on: [MEDIUM]\nmax_age: 24h")
    )
    assert code == 1, err
    assert check["verdict"] == "fail"
    assert f"{medium} MEDIUM" in check["message"]
    assert f"signed attached report: cosign tag {cosign_tag(digest, 'att')}" in check["message"]
    [used] = check["details"]["reports"]
    assert "verified with" in used["source"] and cosign_tag(digest, "att") in used["source"]
    assert [a["status"] for a in check["details"]["attachments"]] == ["signed"]
    assert check["details"]["counts"]["total"] == len(_ids(trivy))

    # waivers apply to attached reports exactly as to files: waive one ID, the others still fail
    waived_id = _ids(trivy)[0]
    left = sum(1 for i in _ids(trivy) if i != waived_id)
    waiver = f"ignore:\n  - id: {waived_id}\n    reason: not reachable\n    expires: 2099-01-01"
    policy = _policy(tmp_path, host, repo, SIGNED + "fail_on: [MEDIUM]\n" + waiver, "waived.yaml")
    code, check, err = _verify(host, repo, "v1", policy)
    assert code == 1, err
    assert f"{left} MEDIUM" in check["message"] and f"{medium - left} waived" in check["message"]

    everything = "ignore:\n" + "".join(
        f"  - id: {i}\n    reason: base image, fixed upstream\n    expires: 2099-01-01\n"
        for i in sorted(set(_ids(trivy)))
    )
    code, check, err = _verify(
        host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "fail_on: [MEDIUM]\n" + everything, "all.yaml")
    )
    assert code == 0, err + json.dumps(check)
    assert check["verdict"] == "pass" and f"{medium} waived" in check["message"]

    # max_age judges the attestation's scanFinishedOn
    code, check, err = _verify(host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "max_age: 30m", "stale.yaml"))
    assert code == 1 and "old" in check["message"] and "re-scan" in check["message"], err


def test_discovery_is_off_unless_the_policy_asks(
    pusher: Pusher, registry: RegistryServer, trivy: dict[str, Any], tmp_path: Path
) -> None:
    host, repo = registry.host, "vulnatt/off"
    _signed_image(pusher, host, repo, trivy, marker="off", ago=timedelta(hours=1))
    code, check, _ = _verify(host, repo, "v1", _policy(tmp_path, host, repo, "fail_on: [MEDIUM]"))
    assert code == 2 and check["verdict"] == "error" and "no Trivy report source" in check["message"]

    bad = _policy(tmp_path, host, repo, "attached: true\nfail_on: [MEDIUM]", "nokeys.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "imgcheck", "policy", "validate", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "attached: true" in result.stderr + result.stdout


def test_sarif_referrer_is_used_only_with_the_unsigned_opt_in(
    pusher: Pusher, registry: RegistryServer, sarif: dict[str, Any], trivy: dict[str, Any], tmp_path: Path
) -> None:
    from fixtures.supplychain import (
        attach_sarif,
        attach_vuln_attestation,
        config_digest,
        sarif_for_image,
        trivy_report_for_image,
    )

    host, repo = registry.host, "vulnatt/sarif"
    digest = push_tiny_image(pusher, repo, tag="v1", marker="sarif")
    doc = sarif_for_image(sarif, f"{host}/{repo}:v1", digest, config_digest(pusher, repo, digest))
    referrer = attach_sarif(pusher, repo, digest, doc, created=_stamp(timedelta(hours=2)))
    results = len(sarif["runs"][0]["results"])

    code, check, err = _verify(host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "fail_on: [MEDIUM]"))
    assert code == 1, err
    assert f"no Trivy report for {digest}" in check["message"]
    assert "unsigned SARIF referrer" in check["message"] and "attached: unsigned" in check["message"]

    opt_in = "attached: unsigned\nfail_on: [CRITICAL]\nwarn_on: [MEDIUM]"
    code, check, err = _verify(host, repo, "v1", _policy(tmp_path, host, repo, opt_in, "unsigned.yaml"))
    assert code == 0, err
    assert check["verdict"] == "warn"
    assert f"{results} MEDIUM (warn)" in check["message"]
    assert f"UNSIGNED attached report used (attached: unsigned): referrer {referrer[:19]}" in check["message"]
    [used] = check["details"]["reports"]
    assert used["format"] == "sarif" and used["created_from"] == "file time" and used["findings"] == results

    # the referrer manifest's `created` annotation is the scan time SARIF lacks
    stale = _policy(tmp_path, host, repo, opt_in + "\nmax_age: 1h", "stale.yaml")
    code, check, err = _verify(host, repo, "v1", stale)
    assert code == 1 and "2 h old" in check["message"], err

    # a signed attestation on the same digest: `attached: true` uses it and says the SARIF was ignored;
    # with the opt-in both bind to this digest and the newer scan supersedes the older one
    inner = trivy_report_for_image(trivy, f"{host}/{repo}:v1", digest, config_digest(pusher, repo, digest))
    attach_vuln_attestation(pusher, host, repo, digest, inner, scan_finished=_stamp(timedelta(minutes=10)))
    code, check, err = _verify(
        host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "fail_on: [CRITICAL]", "both.yaml")
    )
    assert code == 0, err
    assert "signed attached report: cosign tag" in check["message"]
    assert f"ignored 1 attachment(s): referrer {referrer[:19]}" in check["message"]
    both = _policy(tmp_path, host, repo, f"attached: unsigned\nkeys: ['{DEMO_PUB}']\nfail_on: [CRITICAL]", "both2.yaml")
    code, check, err = _verify(host, repo, "v1", both)
    assert code == 0, err
    assert [r["format"] for r in check["details"]["reports"]] == ["cosign-vuln"]
    assert [r["why"] for r in check["details"]["ignored_reports"]] == ["superseded by a newer report"]
    assert sorted(a["status"] for a in check["details"]["attachments"]) == ["signed", "unsigned"]


def test_tampered_and_copied_attachments_never_pass(
    pusher: Pusher, registry: RegistryServer, trivy: dict[str, Any], sarif: dict[str, Any], tmp_path: Path
) -> None:
    from fixtures.supplychain import (
        DSSE_ENVELOPE,
        attach_sarif,
        config_digest,
        cosign_tag,
        push_layers_manifest,
        sarif_for_image,
    )

    host, repo = registry.host, "vulnatt/neg"
    source = _signed_image(pusher, host, repo, trivy, marker="src", ago=timedelta(hours=1))
    assert pusher.session is not None
    att_manifest = pusher.session.get(
        f"http://{host}/v2/{repo}/manifests/{cosign_tag(source, 'att')}", headers={"Accept": OCI_MANIFEST}, timeout=30
    )
    layer = att_manifest.json()["layers"][0]
    envelope = json.loads(pusher.session.get(f"http://{host}/v2/{repo}/blobs/{layer['digest']}", timeout=30).content)

    # tampered: the same signature over a payload whose findings were removed
    tampered_digest = push_tiny_image(pusher, repo, tag="tampered", marker="tampered")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"] = {"sha256": tampered_digest.split(":")[1]}
    statement["predicate"]["scanner"]["result"]["Results"] = []
    forged = {**envelope, "payload": base64.b64encode(json.dumps(statement).encode()).decode()}
    push_layers_manifest(
        pusher,
        repo,
        cosign_tag(tampered_digest, "att"),
        [(json.dumps(forged).encode(), DSSE_ENVELOPE, layer.get("annotations", {}))],
    )
    policy = _policy(tmp_path, host, repo, SIGNED + "fail_on: [MEDIUM]")
    code, check, err = _verify(host, repo, "tampered", policy)
    assert code == 1, err
    assert check["verdict"] == "fail" and "does not verify" in check["message"]
    assert [a["status"] for a in check["details"]["attachments"]] == ["ignored"]
    # the opt-in for unsigned evidence does not let an unverifiable signed attestation through
    no_keys = _policy(tmp_path, host, repo, "attached: unsigned\nfail_on: [MEDIUM]", "nokeys.yaml")
    code, check, err = _verify(host, repo, "tampered", no_keys)
    assert code == 1 and "names no keys" in check["message"] and "no Trivy report" in check["message"], err

    # copied: the source image's valid, signed attestation under another digest's `.att` tag
    copied_digest = push_tiny_image(pusher, repo, tag="copied", marker="copied")
    pusher.manifest(repo, cosign_tag(copied_digest, "att"), att_manifest.content, OCI_MANIFEST)
    code, check, err = _verify(host, repo, "copied", policy)
    assert code == 1, err
    assert f"about {source[:19]}" in check["message"] and f"no Trivy report for {copied_digest}" in check["message"]

    # a SARIF referrer whose own run names the source image, attached to another digest
    other_digest = push_tiny_image(pusher, repo, tag="other", marker="other")
    doc = sarif_for_image(sarif, f"{host}/{repo}:v1", source, config_digest(pusher, repo, source))
    attach_sarif(pusher, repo, other_digest, doc, created=_stamp(timedelta(minutes=5)))
    unsigned = _policy(tmp_path, host, repo, "attached: unsigned\nfail_on: [CRITICAL]", "unsigned.yaml")
    code, check, err = _verify(host, repo, "other", unsigned)
    assert code == 1, err
    assert f"scanned {source[:19]}" in check["message"] and "not this image" in check["message"]


def test_unsigned_attestation_is_not_used_without_opt_in(
    pusher: Pusher, registry: RegistryServer, trivy: dict[str, Any], tmp_path: Path
) -> None:
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_attestation_manifest, push_image, push_index
    from fixtures.supplychain import (
        COSIGN_VULN_PREDICATE,
        config_digest,
        cosign_vuln_predicate,
        intoto_statement,
        trivy_report_for_image,
    )

    host, repo = registry.host, "vulnatt/buildx"
    amd = push_image(pusher, repo, [build_layer({"a": FileEntry(b"vuln")})], ImageConfig())
    inner = trivy_report_for_image(trivy, f"{host}/{repo}:v1", amd.digest, config_digest(pusher, repo, amd.digest))
    statement = intoto_statement(
        amd.digest, f"{host}/{repo}", COSIGN_VULN_PREDICATE, cosign_vuln_predicate(inner, _stamp(timedelta(hours=1)))
    )
    att = push_attestation_manifest(pusher, repo, amd, [json.dumps(statement).encode()])
    push_index(pusher, repo, [amd], {amd.digest: att}, tags=["v1"])

    code, check, err = _verify(host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "fail_on: [MEDIUM]"))
    assert code == 1, err
    assert "unsigned attestation" in check["message"] and "attached: unsigned" in check["message"]
    assert "MEDIUM" not in check["message"]

    opt_in = _policy(tmp_path, host, repo, "attached: unsigned\nfail_on: [MEDIUM]", "unsigned.yaml")
    code, check, err = _verify(host, repo, "v1", opt_in)
    assert code == 1, err
    assert f"{_severities(trivy)['MEDIUM']} MEDIUM" in check["message"]
    assert "UNSIGNED attached report used" in check["message"]
    assert f"linux/amd64 manifest {amd.digest[:19]}" in check["message"]


def test_signed_attestation_with_a_broken_report_is_an_error(
    pusher: Pusher, registry: RegistryServer, trivy: dict[str, Any], tmp_path: Path
) -> None:
    host, repo = registry.host, "vulnatt/broken"
    _signed_image(pusher, host, repo, {**trivy, "SchemaVersion": 3}, marker="broken", ago=timedelta(hours=1))
    code, check, err = _verify(host, repo, "v1", _policy(tmp_path, host, repo, SIGNED + "fail_on: [CRITICAL]"))
    assert code == 2, err
    assert check["verdict"] == "error" and "SchemaVersion 3" in check["message"]


def test_other_scanners_and_other_attestations_are_not_taken_for_trivy_reports(
    corpus: Path, sarif: dict[str, Any]
) -> None:
    """Pure: grype's real key-signed CycloneDX attestation is not a vuln report (no note, no report);
    a SARIF log from another scanner is ignored and said, never parsed as Trivy's."""
    from imgcheck.supplychain.attachments import Attachment
    from imgcheck.supplychain.discovery import SARIF_KIND
    from imgcheck.supplychain.outcome import Trust
    from imgcheck.vulns.attached import ImageDigests
    from imgcheck.vulns.fromregistry import attached_reports

    envelope = (corpus / "anchore-grype__alpine.cdx.att.json").read_bytes()
    subject = (
        "sha256:" + json.loads(base64.b64decode(json.loads(envelope)["payload"]))["subject"][0]["digest"]["sha256"]
    )
    trust = Trust(keys=(("cosign.pub", (corpus / "anchore-grype__cosign.pub").read_bytes()),))
    dsse = Attachment("dsse", "cosign tag x.att", subject, "application/vnd.dsse.envelope.v1+json", envelope)
    result = attached_reports([dsse], ImageDigests((subject,)), trust, accept_unsigned=False)
    assert result.reports == () and result.notes == ()

    grype = json.loads(json.dumps(sarif))
    grype["runs"][0]["tool"]["driver"]["name"] = "Grype"
    referrer = Attachment(
        SARIF_KIND, "referrer sha256:abc", subject, "application/sarif+json", json.dumps(grype).encode()
    )
    result = attached_reports([referrer], ImageDigests((subject,)), Trust(), accept_unsigned=True)
    assert result.reports == ()
    assert [(n.status, n.message) for n in result.notes] == [
        ("ignored", "SARIF from 'Grype': imgcheck reads Trivy's SARIF only")
    ]
