"""A Sigstore trusted_root.json (trustedroot v0.1) read with `cryptography` alone: transparency logs,
certificate authorities and CT logs, each with its validity window.

A log's ID is recomputed as sha256 of its key's DER SubjectPublicKeyInfo, never taken from the file's
`logId.keyId` (for Rekor v2 logs they differ, and what a SET names is the key hash).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from imgcheck import jsontext
from imgcheck.record import record
from imgcheck.supplychain.dsse import MalformedError


@record
class Window:
    start: datetime | None
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when <= self.end)


@record
class LogKey:
    """A Rekor or CT log: its URL, public key and key hash (the log ID)."""

    url: str
    key: Any
    log_id: bytes
    valid: Window


@record
class Authority:
    """A certificate authority: its chain as in the file (intermediates first, the root last)."""

    uri: str
    certificates: tuple[Any, ...]
    valid: Window


@record
class TrustedRoot:
    name: str
    """How messages name it: the policy's file, or the public-good root sigstore-python ships."""
    tlogs: tuple[LogKey, ...]
    authorities: tuple[Authority, ...]
    ctlogs: tuple[LogKey, ...]

    def tlog(self, log_id: bytes) -> LogKey | None:
        return next((log for log in self.tlogs if log.log_id == log_id), None)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedError(f"validFor time {value!r} is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedError(f"validFor time {value!r} is not an RFC 3339 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _window(doc: Any) -> Window:
    valid = doc.get("validFor") if isinstance(doc, Mapping) else None
    if not isinstance(valid, Mapping):
        return Window(None, None)
    return Window(_time(valid.get("start")), _time(valid.get("end")))


def _raw(doc: Any, what: str) -> bytes:
    raw = doc.get("rawBytes") if isinstance(doc, Mapping) else None
    if not isinstance(raw, str):
        raise MalformedError(f"{what} has no rawBytes")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{what} rawBytes is not base64") from None


def _log(doc: Any, what: str) -> LogKey:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if not isinstance(doc, Mapping):
        raise MalformedError(f"{what} is not an object")
    public = doc.get("publicKey")
    der = _raw(public, f"{what} publicKey")
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise MalformedError(f"{what} publicKey is not a DER public key ({exc})") from None
    return LogKey(str(doc.get("baseUrl") or "unnamed log"), key, hashlib.sha256(der).digest(), _window(public))


def _authority(doc: Any, what: str) -> Authority:
    from cryptography import x509

    if not isinstance(doc, Mapping):
        raise MalformedError(f"{what} is not an object")
    chain = doc.get("certChain")
    certs = chain.get("certificates") if isinstance(chain, Mapping) else None
    if not isinstance(certs, list) or not certs:
        raise MalformedError(f"{what} has no certChain.certificates")
    loaded = []
    for i, cert in enumerate(certs):
        try:
            loaded.append(x509.load_der_x509_certificate(_raw(cert, f"{what} certificate {i}")))
        except ValueError as exc:
            raise MalformedError(f"{what} certificate {i} is not DER ({exc})") from None
    return Authority(str(doc.get("uri") or "unnamed CA"), tuple(loaded), _window(doc))


def parse(raw: bytes, name: str) -> TrustedRoot:
    """MalformedError names what is wrong; an unknown key type in a log is an error too."""
    try:
        doc = jsontext.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedError(f"trusted root {name} is not JSON ({exc})") from None
    if not isinstance(doc, Mapping):
        raise MalformedError(f"trusted root {name} is not a JSON object")

    def items(key: str) -> list[Any]:
        value = doc.get(key) or []
        if not isinstance(value, list):
            raise MalformedError(f"trusted root {name}: {key} is not a list")
        return value

    return TrustedRoot(
        name,
        tuple(_log(d, f"tlogs[{i}]") for i, d in enumerate(items("tlogs"))),
        tuple(_authority(d, f"certificateAuthorities[{i}]") for i, d in enumerate(items("certificateAuthorities"))),
        tuple(_log(d, f"ctlogs[{i}]") for i, d in enumerate(items("ctlogs"))),
    )


@lru_cache(maxsize=8)
def load(raw: bytes | None, name: str | None) -> TrustedRoot:
    """The policy's trusted root, else the public-good one sigstore-python ships (offline: not
    refreshed over TUF, so a key Sigstore rotated since that release is unknown here)."""
    if raw is not None:
        return parse(raw, name or "from the policy")
    from imgcheck.supplychain.bundles import embedded_public_root, sigstore_version

    return parse(embedded_public_root(), f"public-good (as shipped with sigstore-python {sigstore_version()})")


def log_id_hex(log_id: bytes) -> str:
    return binascii.hexlify(log_id).decode()
