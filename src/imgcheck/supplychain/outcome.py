"""The result of checking one attachment, shared by signatures, bundles and attestations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal

from imgcheck.record import record

Status = Literal["verified", "unsigned", "rejected", "unsupported"]
"""verified: signature and binding hold; unsigned: a well-formed statement bound to the image but
carrying no signature (buildx attestations); rejected: signature or binding does not hold, or the
evidence is corrupt; unsupported: a known limit stopped the check (`error`, never a pass)."""


@record
class Outcome:
    status: Status
    message: str
    """One line: what was checked and what was found."""
    origin: str
    details: Mapping[str, Any] = field(default_factory=dict)
    statement: Mapping[str, Any] | None = None
    """The in-toto statement a verified attestation carried (for SBOM and provenance rules)."""

    @property
    def verified(self) -> bool:
        return self.status == "verified"


@record
class Trust:
    """What the policy trusts: keys (already loaded PEM bytes) and/or a keyless issuer + identity."""

    keys: tuple[tuple[str, bytes], ...] = ()
    """(name, PEM bytes) of each policy key."""
    issuer: str | None = None
    identity: str | None = None
    """A regular expression, full match against the certificate SAN."""
    trusted_root: bytes | None = None
    """trusted_root.json bytes; None means sigstore-python's embedded public-good root."""
    trusted_root_name: str | None = None
    """The policy's path of `trusted_root` (for messages)."""
    require_sct: bool = True
    """A keyless certificate must carry an SCT that verifies with a CT log of the trusted root."""

    @property
    def keyless(self) -> bool:
        return self.issuer is not None and self.identity is not None

    @property
    def empty(self) -> bool:
        return not self.keys and not self.keyless
