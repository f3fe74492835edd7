"""Fuzzing legacy cosign keyless evidence: the Rekor bundle annotation (and the entry body inside it),
the certificate and chain annotations, and trusted_root.json. Seeds are the real containers/image and
sigstore-python files of tests/data/corpus, mutated.

Contract: an Outcome (never raised) for evidence; a TrustedRoot or MalformedError for a trusted root.
A mutated bundle may still verify only when the mutation left the signed fields as they were.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_kit import FUZZ, hostile_bytes, json_bytes, mutated
from test_supplychain_support import containers_image_signature

from imgcheck.supplychain import trustroot
from imgcheck.supplychain.attachments import ANN_CERTIFICATE, ANN_CHAIN, ANN_REKOR_BUNDLE, SIMPLESIGNING, Attachment
from imgcheck.supplychain.dsse import MalformedError
from imgcheck.supplychain.outcome import Outcome, Trust
from imgcheck.supplychain.simplesigning import verify_simplesigning

pytestmark = pytest.mark.fuzz
CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
PAYLOAD, ANNOTATIONS = containers_image_signature(
    CORPUS / "containers-image__dir-img-cosign-fulcio-rekor-valid__signature-1"
)
DIGEST = (
    "sha256:"
    + hashlib.sha256(
        (CORPUS / "containers-image__dir-img-cosign-fulcio-rekor-valid__manifest.json").read_bytes()
    ).hexdigest()
)
BUNDLE = json.loads(ANNOTATIONS[ANN_REKOR_BUNDLE])
BODY = json.loads(base64.b64decode(BUNDLE["Payload"]["body"]))
TRUST = Trust(issuer="https://github.com/login/oauth", identity=r"mitr@redhat\.com")
ROOT = json.loads((CORPUS / "sigstore-sigstore-python__trusted_root.prod.json").read_bytes())


def _verify(**changes: str) -> Outcome:
    annotations = {**ANNOTATIONS, **changes}
    outcome = verify_simplesigning(
        Attachment("simplesigning", "fuzz", DIGEST, SIMPLESIGNING, PAYLOAD, annotations), DIGEST, TRUST
    )
    assert isinstance(outcome, Outcome)
    assert outcome.status in ("verified", "rejected", "unsupported"), outcome
    return outcome


def test_the_real_keyless_signature_verifies_so_the_fuzzing_below_means_something() -> None:
    assert _verify().status == "verified"


def _with_body(body: Any) -> dict[str, Any]:
    return {**BUNDLE, "Payload": {**BUNDLE["Payload"], "body": base64.b64encode(json_bytes(body)).decode()}}


@FUZZ
@given(bundle=st.one_of(mutated(BUNDLE), mutated(BODY).map(_with_body)))
def test_rekor_bundles_are_rejected_never_raised(bundle: Any) -> None:
    outcome = _verify(**{ANN_REKOR_BUNDLE: json_bytes(bundle).decode()})
    if outcome.status == "verified":  # only when the SET still covers exactly what was signed
        payload = bundle["Payload"]
        assert {k: payload[k] for k in ("body", "integratedTime", "logIndex", "logID")} == {
            k: BUNDLE["Payload"][k] for k in ("body", "integratedTime", "logIndex", "logID")
        }


@FUZZ
@given(
    certificate=hostile_bytes(ANNOTATIONS[ANN_CERTIFICATE].encode()),
    chain=st.one_of(st.just(ANNOTATIONS[ANN_CHAIN].encode()), hostile_bytes(ANNOTATIONS[ANN_CHAIN].encode())),
)
def test_certificate_and_chain_annotations_are_rejected_never_raised(certificate: bytes, chain: bytes) -> None:
    outcome = _verify(
        **{ANN_CERTIFICATE: certificate.decode(errors="replace"), ANN_CHAIN: chain.decode(errors="replace")}
    )
    if outcome.status == "verified":
        assert "mitr@redhat.com" in outcome.message


@FUZZ
@given(root=st.one_of(mutated(ROOT).map(json_bytes), hostile_bytes(json_bytes(ROOT))))
def test_trusted_roots_parse_or_are_malformed(root: bytes) -> None:
    with contextlib.suppress(MalformedError):
        assert isinstance(trustroot.parse(root, "fuzz"), trustroot.TrustedRoot)
