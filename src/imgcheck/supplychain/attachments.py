"""What can be attached to an image digest, as found in the registry (before any verification)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Literal

from imgcheck.record import record

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SIGSTORE_BUNDLE_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
COSIGN_SIG_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
SPDX_JSON_TYPES = ("application/spdx+json", "text/spdx+json")
SBOM_MEDIA_TYPES = (CYCLONEDX_JSON, *SPDX_JSON_TYPES)

ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_REKOR_BUNDLE = "dev.sigstore.cosign/bundle"
ANN_BUILDX_REF_DIGEST = "vnd.docker.reference.digest"
ANN_BUILDX_REF_TYPE = "vnd.docker.reference.type"
ANN_INTOTO_PREDICATE = "in-toto.io/predicate-type"
ANN_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"

Kind = Literal["simplesigning", "dsse", "bundle", "sbom", "statement", "sarif"]
"""simplesigning: a cosign `.sig` layer (content = payload); dsse: a DSSE envelope; bundle: a Sigstore
bundle; sbom: a bare SBOM document; statement: an unsigned in-toto statement (buildx); sarif: a SARIF
log attached as a referrer (Ratify's layout for vulnerability reports)."""


@record
class Attachment:
    """One piece of evidence read from the registry, digest-verified, not yet trusted."""

    kind: Kind
    origin: str
    """Where it was found, for messages: `cosign tag sha256-….sig`, `referrer sha256:…`, `buildx attestation …`."""
    target: str
    """The digest it is attached to (the image, or a platform manifest for buildx attestations)."""
    media_type: str
    content: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


@record
class Discovered:
    """Everything discovery found for one purpose, and where it looked (for "nothing found" messages)."""

    attachments: tuple[Attachment, ...]
    looked: tuple[str, ...]
