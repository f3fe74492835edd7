"""Fuzzing the documents imgcheck reads: Trivy JSON/SARIF, VEX, ignore files, cosign payloads, DSSE
attestations, Sigstore bundles, CycloneDX/SPDX SBOMs, SLSA provenance. Seeds are the real files of
tests/data/corpus, mutated; plus noise, truncations and deep nesting.

Contract: a value (an Outcome for evidence: never raised), an ImgcheckError, or the module's
documented MalformedError. Anything else escaping is a bug.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_kit import FUZZ, hostile_bytes, json_bytes, json_values, mutated

from imgcheck.errors import ImgcheckError
from imgcheck.supplychain import sbomdoc, slsa
from imgcheck.supplychain.attachments import ANN_SIGNATURE, Attachment
from imgcheck.supplychain.attestations import check_attestation
from imgcheck.supplychain.dsse import MalformedError, parse_envelope, parse_statement
from imgcheck.supplychain.outcome import Outcome, Trust
from imgcheck.supplychain.simplesigning import parse_payload, verify_simplesigning
from imgcheck.vulns.files import load_report_file, parse_report_document
from imgcheck.vulns.vex import parse_vex
from imgcheck.vulns.waivers import parse_trivyignore, parse_trivyignore_yaml

pytestmark = pytest.mark.fuzz
CORPUS = Path(__file__).resolve().parent / "data" / "corpus"


def corpus_bytes(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def corpus_json(name: str) -> Any:
    return json.loads(corpus_bytes(name))


TRIVY = ["aquasecurity-trivy__alpine-310.json.golden", "aquasecurity-trivy__ubi-7-comprehensive.json.golden"]
SARIF = "aquasecurity-trivy__alpine-310.sarif.golden"
SBOMS = [
    "secureCodeBox-secureCodeBox__hello-world-cyclonedx.json",
    "anchore-syft__TestCycloneDxImageEncoder.golden",
    "aquasecurity-trivy__centos-7-spdx.json",
]
BUNDLES = [
    "sigstore-sigstore-conformance__happy-path-v0.3__bundle.sigstore.json",
    "sigstore-sigstore-conformance__happy-path-intoto-in-dsse-v3__bundle.sigstore.json",
    "sigstore-cosign__oci-attestation.sigstore.json",
]
DIGEST = "sha256:" + "ab" * 32
BUNDLE_NOISE = hostile_bytes(corpus_bytes(BUNDLES[0]))
SBOM_NOISE = hostile_bytes(corpus_bytes(SBOMS[0]))
OPENVEX = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://example.com/vex-1",
    "author": "release team",
    "timestamp": "2026-11-20T10:00:00Z",
    "version": 1,
    "statements": [
        {
            "vulnerability": {"name": "CVE-2019-14697"},
            "products": [{"@id": "pkg:oci/app@" + DIGEST.replace(":", "%3A")}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        }
    ],
}
TRIVYIGNORE_YAML = {"vulnerabilities": [{"id": "CVE-2019-14697", "statement": "no", "expired_at": "2027-01-01"}]}


def cosign_signature() -> tuple[bytes, str, str, bytes]:
    """The real containers/image cosign signature: (payload, base64 signature, signed digest, key PEM)."""
    raw = corpus_bytes("containers-image__dir-img-cosign-valid__signature-1")
    doc = json.loads(raw[raw.index(b"{") :])
    manifest = corpus_bytes("containers-image__dir-img-cosign-valid__manifest.json")
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return (
        base64.b64decode(doc["payload"]),
        doc["annotations"][ANN_SIGNATURE],
        digest,
        corpus_bytes("containers-image__cosign.pub"),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_outcome(result: object) -> None:
    assert isinstance(result, Outcome), f"evidence checks return an Outcome, got {type(result).__name__}"
    assert result.status != "verified", f"mutated evidence verified: {result}"


# --- Trivy JSON / SARIF -----------------------------------------------------------------------


report_bytes = st.one_of(
    hostile_bytes(*(corpus_bytes(n) for n in [*TRIVY, SARIF])),
    st.sampled_from([corpus_json(n) for n in TRIVY]).flatmap(mutated).map(json_bytes),
    mutated(corpus_json(SARIF)).map(json_bytes),
)


@FUZZ
@given(data=report_bytes)
def test_scanner_report_files_parse_or_raise_input_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trivy.json"
        path.write_bytes(data)
        try:
            load_report_file(path)
        except ImgcheckError as err:
            assert "\n" not in str(err).strip()


@FUZZ
@given(doc=st.one_of(*(mutated(corpus_json(n)) for n in [*TRIVY, SARIF]), json_values))
def test_scanner_report_documents_parse_or_raise_input_errors(doc: Any) -> None:
    with contextlib.suppress(ImgcheckError):
        parse_report_document(doc, "fuzz.json", None)


@FUZZ
@given(
    doc=st.one_of(mutated(OPENVEX), mutated(corpus_json("DefectDojo-django-DefectDojo__issue_9277.json")), json_values)
)
def test_vex_documents_parse_or_raise_input_errors(doc: Any) -> None:
    with contextlib.suppress(ImgcheckError):
        parse_vex(doc, "fuzz.vex.json")


@FUZZ
@given(text=st.text(max_size=300), doc=st.one_of(mutated(TRIVYIGNORE_YAML), json_values))
def test_ignore_files_parse_or_raise_input_errors(text: str, doc: Any) -> None:
    with contextlib.suppress(ImgcheckError):
        parse_trivyignore(text, ".trivyignore")
    with contextlib.suppress(ImgcheckError):
        parse_trivyignore_yaml(doc, "x.yaml")


# --- cosign signatures, DSSE, SLSA --------------------------------------------------------------


PAYLOAD, SIGNATURE, SIGNED_DIGEST, COSIGN_KEY = cosign_signature()


def test_the_real_cosign_signature_verifies_so_the_fuzzing_below_means_something() -> None:
    att = Attachment("simplesigning", "fuzz", SIGNED_DIGEST, "", PAYLOAD, {ANN_SIGNATURE: SIGNATURE})
    outcome = verify_simplesigning(att, SIGNED_DIGEST, Trust(keys=(("cosign.pub", COSIGN_KEY),)))
    assert outcome.status == "verified", outcome


@FUZZ
@given(
    payload=st.one_of(hostile_bytes(PAYLOAD), mutated(json.loads(PAYLOAD)).map(json_bytes)),
    signature=st.one_of(st.just(SIGNATURE), st.text(max_size=120), st.binary(max_size=90).map(b64)),
)
def test_cosign_payloads_are_rejected_never_raised(payload: bytes, signature: str) -> None:
    with contextlib.suppress(MalformedError):
        parse_payload(payload)
    att = Attachment("simplesigning", "fuzz", SIGNED_DIGEST, "", payload, {ANN_SIGNATURE: signature})
    assert_outcome(verify_simplesigning(att, SIGNED_DIGEST, Trust(keys=(("cosign.pub", COSIGN_KEY),))))


ENVELOPE = corpus_json("anchore-grype__alpine.cdx.att.json")
STATEMENT = json.loads(base64.b64decode(ENVELOPE["payload"]))


@FUZZ
@given(
    envelope=st.one_of(
        hostile_bytes(json_bytes(ENVELOPE)),
        mutated(ENVELOPE).map(json_bytes),
        mutated(STATEMENT).map(lambda s: json_bytes(dict(ENVELOPE, payload=base64.b64encode(json_bytes(s)).decode()))),
    )
)
def test_dsse_attestations_are_rejected_never_raised(envelope: bytes) -> None:
    with contextlib.suppress(MalformedError):
        parse_statement(parse_envelope(envelope).payload)
    att = Attachment("dsse", "fuzz", DIGEST, "application/vnd.dsse.envelope.v1+json", envelope)
    trust = Trust(keys=(("grype", corpus_bytes("anchore-grype__cosign.pub")),))
    assert_outcome(check_attestation(att, [DIGEST], trust))


@FUZZ
@given(statement=st.one_of(mutated(STATEMENT), json_values.filter(lambda v: isinstance(v, dict))))
def test_unsigned_statements_and_provenance_parse_or_are_rejected(statement: Any) -> None:
    att = Attachment("statement", "fuzz", DIGEST, "application/vnd.in-toto+json", json_bytes(statement))
    result = check_attestation(att, [DIGEST], Trust())
    assert isinstance(result, Outcome)
    with contextlib.suppress(MalformedError):
        slsa.parse(parse_statement(json_bytes(statement)))  # provenance is parsed from a statement that parsed


@FUZZ
@given(
    bundle=st.one_of(
        *(mutated(corpus_json(n)).map(json_bytes) for n in BUNDLES),
        hostile_bytes(corpus_bytes(BUNDLES[0])),
    )
)
def test_sigstore_bundles_are_rejected_never_raised(bundle: bytes) -> None:
    att = Attachment("bundle", "fuzz", DIGEST, "application/vnd.dev.sigstore.bundle.v0.3+json", bundle)
    trust = Trust(issuer="https://token.actions.githubusercontent.com", identity=".*")
    assert_outcome(check_attestation(att, [DIGEST], trust))


# --- SBOMs ------------------------------------------------------------------------------------


@FUZZ
@given(
    content=st.one_of(
        *(mutated(corpus_json(n)).map(json_bytes) for n in SBOMS),
        hostile_bytes(corpus_bytes(SBOMS[0])),
    )
)
def test_sboms_load_or_raise_malformed(content: bytes) -> None:
    with contextlib.suppress(MalformedError):
        sbomdoc.load(content)


# --- found by the fuzzer: deep JSON nesting in registry-supplied evidence ---------------------
# json.loads raises RecursionError (not ValueError) past ~1000 levels; the supply-chain parsers
# caught only ValueError, so one hostile attachment crashed the whole run. Fixed by
# imgcheck.jsontext.loads; these pin it.

DEEP = b"[" * 100_000


def deep_attachment(kind: Any) -> Attachment:
    return Attachment(kind, "fuzz", DIGEST, "", DEEP)


DEEP_CASES: dict[str, Callable[[], object]] = {
    "sbom": lambda: sbomdoc.load(DEEP),
    "dsse envelope": lambda: parse_envelope(DEEP),
    "in-toto statement": lambda: parse_statement(DEEP),
    "cosign payload": lambda: parse_payload(DEEP),
    "bundle attachment": lambda: check_attestation(Attachment("bundle", "o", DIGEST, "", DEEP), [DIGEST], Trust()),
    "dsse attachment": lambda: check_attestation(Attachment("dsse", "o", DIGEST, "", DEEP), [DIGEST], Trust()),
    "statement attachment": lambda: check_attestation(
        Attachment("statement", "o", DIGEST, "", DEEP), [DIGEST], Trust()
    ),
}


@pytest.mark.parametrize("case", list(DEEP_CASES))
def test_deeply_nested_evidence_is_rejected_not_raised(case: str) -> None:
    try:
        result = DEEP_CASES[case]()
    except MalformedError:
        return
    assert_outcome(result)


def test_a_bundle_whose_tlog_entries_is_not_a_list_is_rejected() -> None:
    bundle = corpus_json(BUNDLES[0])
    bundle["verificationMaterial"]["tlogEntries"] = True
    att = Attachment("bundle", "fuzz", DIGEST, "application/vnd.dev.sigstore.bundle.v0.3+json", json_bytes(bundle))
    trust = Trust(issuer="https://token.actions.githubusercontent.com", identity=".*")
    assert_outcome(check_attestation(att, [DIGEST], trust))


# --- found by the fuzzer: SPDX fields of the wrong shape ----------------------------------------
# SPDX JSON is checked field by field, not against a schema; `"relationships": 1` crashed the loader
# with a TypeError (an internal error for the whole image) instead of refusing the document.

SPDX_BAD_SHAPES = {
    "relationships not a list": ("relationships", 1),
    "relationships holding a string": ("relationships", ["DESCRIBES"]),
    "documentDescribes holding an object": ("documentDescribes", [{"id": "SPDXRef-x"}]),
    "documentDescribes a string": ("documentDescribes", "SPDXRef-DOCUMENT"),
}


def spdx_corpus() -> dict[str, Any]:
    name = next(n for n in SBOMS if isinstance(corpus_json(n).get("spdxVersion"), str))
    doc: dict[str, Any] = corpus_json(name)
    return doc


@pytest.mark.parametrize("case", list(SPDX_BAD_SHAPES))
def test_spdx_fields_of_the_wrong_shape_are_malformed(case: str) -> None:
    key, value = SPDX_BAD_SHAPES[case]
    doc = spdx_corpus()
    doc[key] = value
    with pytest.raises(MalformedError, match=f"`{key}` must be a list of"):
        sbomdoc.load(json_bytes(doc))


def test_spdx_package_fields_of_the_wrong_shape_are_malformed() -> None:
    doc = spdx_corpus()
    described = sbomdoc.load(json_bytes(doc))  # the corpus document loads as it is
    assert described.format == "spdx"
    doc["packages"][0]["SPDXID"] = ["not", "a", "string"]
    with pytest.raises(MalformedError, match=r"packages\[0\]\.SPDXID"):
        sbomdoc.load(json_bytes(doc))
