"""Legacy cosign keyless signatures and attestations made in the test suite by a private Sigstore (CA,
Rekor and CT log keys), pushed in cosign's tag layout to the real registry and judged by the
`imgcheck verify` process: the signature, provenance and vulnerabilities rules, and failing variants."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_supplychain_support import push_tiny_image

from fixtures.sigstore_private import ANN_BUNDLE, PrivateSigstore
from fixtures.supplychain import (
    COSIGN_VULN_PREDICATE,
    DSSE_ENVELOPE,
    SIMPLESIGNING,
    config_digest,
    cosign_tag,
    cosign_vuln_predicate,
    intoto_statement,
    push_layers_manifest,
    simplesigning_payload,
    trivy_report_for_image,
)
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

GITHUB = "https://token.actions.githubusercontent.com"
IDENTITY = "https://github.com/o/app/.github/workflows/release.yml@refs/tags/v1.0.0"
IDENTITY_RE = r"https://github\.com/o/app/\.github/workflows/release\.yml@refs/tags/v.+"
BUILDER = "https://github.com/actions/runner/github-hosted"


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


def _policy(tmp_path: Path, root: bytes, rule: str, body: str, name: str = "policy.yaml") -> Path:
    (tmp_path / "trusted_root.json").write_bytes(root)
    text = (
        "version: 1\nregistry: example.invalid\nimages:\n  - name: app\n    repository: keyless/app\n"
        f"rules:\n  {rule}:\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())
    )
    path = tmp_path / name
    path.write_text(text)
    return path


def _keyless(identity: str = IDENTITY_RE, *, require_sct: bool = True) -> str:
    return (
        f"keyless:\n  issuer: {GITHUB}\n  identity: '{identity}'\n  require_sct: {str(require_sct).lower()}\n"
        "trusted_root: trusted_root.json\n"
    )


def _verify(reference: str, policy: Path, rule: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "imgcheck", "verify", reference, "--policy", str(policy), "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    checks = [c for i in doc.get("images", []) for c in i.get("checks", []) if c["rule"] == rule]
    return result.returncode, checks[0] if checks else doc, result.stderr


def _sign(pusher: Pusher, host: str, repo: str, digest: str, signer: PrivateSigstore, **options: Any) -> None:
    payload = simplesigning_payload(f"{host}/{repo}", options.pop("signed_digest", digest))
    annotations = signer.sign_payload(payload, options.pop("identity", IDENTITY), GITHUB, **options)
    push_layers_manifest(pusher, repo, cosign_tag(digest, "sig"), [(payload, SIMPLESIGNING, annotations)])


def test_private_keyless_signature_passes_imgcheck_verify(
    pusher: Pusher, registry: RegistryServer, sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    repo = "keyless/signed"
    digest = push_tiny_image(pusher, repo)
    _sign(pusher, registry.host, repo, digest, sigstore)
    policy = _policy(tmp_path, sigstore.trusted_root(), "signature", _keyless())
    code, check, err = _verify(f"{registry.host}/{repo}:v1", policy, "signature")
    assert code == 0, err + json.dumps(check)
    assert check["verdict"] == "pass"
    for said in (IDENTITY, GITHUB, "log index", "integrated", "trusted root trusted_root.json"):
        assert said in check["message"], said
    [entry] = check["details"]["checked"]
    assert entry["origin"] == f"cosign tag {cosign_tag(digest, 'sig')}"
    assert entry["rekor"]["kind"] == "hashedrekord 0.0.1" and entry["ct_log"] == "https://ctfe.imgcheck.test"
    assert any("inclusion" in line for line in entry["not_verified_offline"])


@pytest.mark.parametrize("variant", ["wrong identity", "bad SET", "other digest", "attacker CA", "no SCT"])
def test_private_keyless_signature_variants_fail(
    variant: str, pusher: Pusher, registry: RegistryServer, sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    repo = "keyless/" + variant.replace(" ", "-").lower()
    digest = push_tiny_image(pusher, repo, marker=variant)
    signer, options, identity, why = sigstore, {}, IDENTITY_RE, "did not verify"
    if variant == "wrong identity":
        identity, why = r"https://github\.com/o/other/.+", "identity"
    elif variant == "other digest":
        options, why = {"signed_digest": "sha256:" + "3" * 64}, "replayed"
    elif variant == "attacker CA":
        signer, why = PrivateSigstore(sigstore.logs), "does not chain"
    elif variant == "no SCT":
        options, why = {"sct": False}, "no embedded SCT"
    _sign(pusher, registry.host, repo, digest, signer, **options)
    if variant == "bad SET":
        manifest_tag = cosign_tag(digest, "sig")
        payload = simplesigning_payload(f"{registry.host}/{repo}", digest)
        annotations = sigstore.sign_payload(payload, IDENTITY, GITHUB)
        bundle = json.loads(annotations[ANN_BUNDLE])
        bundle["Payload"]["logIndex"] += 1
        annotations[ANN_BUNDLE] = json.dumps(bundle)
        push_layers_manifest(pusher, repo, manifest_tag, [(payload, SIMPLESIGNING, annotations)])
        why = "SET does not verify"
    policy = _policy(tmp_path, sigstore.trusted_root(), "signature", _keyless(identity))
    code, check, err = _verify(f"{registry.host}/{repo}:v1", policy, "signature")
    assert code == 1, err + json.dumps(check)
    assert check["verdict"] == "fail" and why in check["message"], check["message"]


def test_require_sct_against_a_root_without_ct_logs(
    pusher: Pusher, registry: RegistryServer, sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    repo = "keyless/no-ct"
    digest = push_tiny_image(pusher, repo)
    _sign(pusher, registry.host, repo, digest, sigstore, sct=False)
    no_ct = sigstore.trusted_root(ct=False)
    code, check, err = _verify(
        f"{registry.host}/{repo}:v1", _policy(tmp_path, no_ct, "signature", _keyless()), "signature"
    )
    assert code == 2 and check["verdict"] == "error", err + json.dumps(check)
    assert "keyless.require_sct" in check["message"]
    relaxed = _policy(tmp_path, no_ct, "signature", _keyless(require_sct=False), "relaxed.yaml")
    code, check, err = _verify(f"{registry.host}/{repo}:v1", relaxed, "signature")
    assert code == 0, err + json.dumps(check)
    assert "keyless.require_sct: false" in " ".join(check["details"]["checked"][0]["not_verified_offline"])


def test_private_keyless_provenance_passes_and_other_builder_fails(
    pusher: Pusher, registry: RegistryServer, sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    repo = "keyless/provenance"
    digest = push_tiny_image(pusher, repo)
    predicate = {
        "buildDefinition": {"externalParameters": {"workflow": {"repository": "https://github.com/o/app"}}},
        "runDetails": {"builder": {"id": BUILDER}},
    }
    statement = intoto_statement(digest, f"{registry.host}/{repo}", "https://slsa.dev/provenance/v1", predicate)
    envelope, annotations = sigstore.sign_statement(statement, IDENTITY, GITHUB)
    push_layers_manifest(pusher, repo, cosign_tag(digest, "att"), [(envelope, DSSE_ENVELOPE, annotations)])
    body = _keyless() + "builder: 'https://github\\.com/actions/.+'\nsource: 'github\\.com/o/app'\n"
    code, check, err = _verify(
        f"{registry.host}/{repo}:v1", _policy(tmp_path, sigstore.trusted_root(), "provenance", body), "provenance"
    )
    assert code == 0, err + json.dumps(check)
    assert "log index" in check["message"] and BUILDER in check["message"]
    other = _keyless() + "builder: 'https://gitlab\\.com/.+'\n"
    code, check, err = _verify(
        f"{registry.host}/{repo}:v1",
        _policy(tmp_path, sigstore.trusted_root(), "provenance", other, "other.yaml"),
        "provenance",
    )
    assert code == 1 and "builder" in check["message"], err + json.dumps(check)


def test_private_keyless_vuln_attestation_is_used_when_it_verifies(
    pusher: Pusher, registry: RegistryServer, sigstore: PrivateSigstore, tmp_path: Path, corpus: Path
) -> None:
    repo = "keyless/vulns"
    digest = push_tiny_image(pusher, repo)
    trivy = json.loads((corpus / "aquasecurity-trivy__alpine-310.json.golden").read_text())
    report = trivy_report_for_image(trivy, f"{registry.host}/{repo}:v1", digest, config_digest(pusher, repo, digest))
    finished = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    predicate = cosign_vuln_predicate(report, finished)
    statement = intoto_statement(digest, f"{registry.host}/{repo}", COSIGN_VULN_PREDICATE, predicate)
    envelope, annotations = sigstore.sign_statement(statement, IDENTITY, GITHUB, kind="intoto 0.0.1")
    push_layers_manifest(pusher, repo, cosign_tag(digest, "att"), [(envelope, DSSE_ENVELOPE, annotations)])
    body = "attached: true\n" + _keyless() + "fail_on: [MEDIUM]\n"
    code, check, err = _verify(
        f"{registry.host}/{repo}:v1",
        _policy(tmp_path, sigstore.trusted_root(), "vulnerabilities", body),
        "vulnerabilities",
    )
    assert code == 1 and check["verdict"] == "fail", err + json.dumps(check)
    assert "MEDIUM" in check["message"]
    assert [a["status"] for a in check["details"]["attachments"]] == ["signed"]
    # the same attestation under a policy naming another identity is not used
    other = "attached: true\n" + _keyless(r"https://github\.com/o/other/.+") + "fail_on: [MEDIUM]\n"
    code, check, err = _verify(
        f"{registry.host}/{repo}:v1",
        _policy(tmp_path, sigstore.trusted_root(), "vulnerabilities", other, "other.yaml"),
        "vulnerabilities",
    )
    assert code != 0 and [a["status"] for a in check["details"]["attachments"]] == ["ignored"], json.dumps(check)


def test_envelope_payload_is_base64_in_the_att_layer(sigstore: PrivateSigstore) -> None:
    """The fixture writes what cosign writes: the in-toto statement base64 inside the DSSE envelope."""
    statement = intoto_statement("sha256:" + "0" * 64, "x", "https://slsa.dev/provenance/v1", {})
    envelope, _ = sigstore.sign_statement(statement, IDENTITY, GITHUB)
    assert json.loads(base64.b64decode(json.loads(envelope)["payload"])) == statement


def test_unusable_trusted_root_is_an_error_naming_it(
    pusher: Pusher, registry: RegistryServer, sigstore: PrivateSigstore, tmp_path: Path
) -> None:
    repo = "keyless/bad-root"
    digest = push_tiny_image(pusher, repo)
    _sign(pusher, registry.host, repo, digest, sigstore)
    broken = json.loads(sigstore.trusted_root())
    broken["tlogs"][0]["publicKey"]["rawBytes"] = "not base64!"
    policy = _policy(tmp_path, json.dumps(broken).encode(), "signature", _keyless())
    code, check, err = _verify(f"{registry.host}/{repo}:v1", policy, "signature")
    assert code == 2 and check["verdict"] == "error", err + json.dumps(check)
    assert "trusted root trusted_root.json is unusable: tlogs[0] publicKey rawBytes is not base64" in check["message"]
