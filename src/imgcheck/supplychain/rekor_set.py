"""Rekor's Signed Entry Timestamp (SET) as cosign stores it in the `dev.sigstore.cosign/bundle`
annotation: `{"SignedEntryTimestamp": b64, "Payload": {"body", "integratedTime", "logIndex", "logID"}}`.

The SET is the log's signature over the canonical JSON (RFC 8785) of the four Payload fields, made
with the key whose sha256(SPKI DER) is `logID`. It is a signed promise to include the entry; the
inclusion itself needs the log (or a proof the annotation does not carry), so it is not checked here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from imgcheck import jsontext
from imgcheck.record import record
from imgcheck.supplychain.dsse import MalformedError
from imgcheck.supplychain.trustroot import LogKey, TrustedRoot, log_id_hex


class SetError(ValueError):
    """The SET does not hold: unknown log, bad signature, or a time outside the log key's validity."""


@record
class LogEntry:
    body: str
    """Base64 of the entry body, exactly as in the annotation (the SET covers this string)."""
    integrated_time: int
    log_index: int
    log_id: bytes
    signature: bytes

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, UTC)

    def decoded_body(self) -> Mapping[str, Any]:
        try:
            doc = jsontext.loads(base64.b64decode(self.body, validate=True))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise MalformedError(f"Rekor entry body is not base64 JSON ({exc})") from None
        if not isinstance(doc, Mapping):
            raise MalformedError("Rekor entry body is not a JSON object")
        return doc


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise MalformedError(f"Rekor bundle {what} is not a non-negative integer")
    return value


def parse(annotation: str) -> LogEntry:
    """The annotation's JSON; MalformedError when a field is missing or of the wrong type."""
    try:
        doc = jsontext.loads(annotation)
    except ValueError as exc:
        raise MalformedError(f"Rekor bundle is not JSON ({exc})") from None
    payload = doc.get("Payload") if isinstance(doc, Mapping) else None
    if not isinstance(payload, Mapping):
        raise MalformedError("Rekor bundle has no Payload")
    body, log_id, set_text = payload.get("body"), payload.get("logID"), doc.get("SignedEntryTimestamp")
    if not isinstance(body, str) or not isinstance(log_id, str) or not isinstance(set_text, str):
        raise MalformedError("Rekor bundle lacks body, logID or SignedEntryTimestamp")
    try:
        log_bytes = bytes.fromhex(log_id)
        signature = base64.b64decode(set_text, validate=True)
    except (ValueError, binascii.Error):
        raise MalformedError("Rekor bundle logID is not hex or its SET is not base64") from None
    return LogEntry(
        body,
        _int(payload.get("integratedTime"), "integratedTime"),
        _int(payload.get("logIndex"), "logIndex"),
        log_bytes,
        signature,
    )


def signed_bytes(entry: LogEntry) -> bytes:
    """What the SET signs: RFC 8785 canonical JSON of body, integratedTime, logID (hex), logIndex."""
    import rfc8785

    return rfc8785.dumps(
        {
            "body": entry.body,
            "integratedTime": entry.integrated_time,
            "logID": log_id_hex(entry.log_id),
            "logIndex": entry.log_index,
        }
    )


def verify(entry: LogEntry, root: TrustedRoot) -> LogKey:
    """The trusted log whose key signed this SET; SetError naming what failed otherwise."""
    from imgcheck.supplychain.keys import PublicKey, verify_bytes

    log = root.tlog(entry.log_id)
    if log is None:
        raise SetError(
            f"the Rekor entry is from log {log_id_hex(entry.log_id)[:16]}…, which trusted root {root.name} "
            f"does not name (another Sigstore instance, e.g. staging?)"
        )
    if not verify_bytes(PublicKey(log.url, log.key), entry.signature, signed_bytes(entry)):
        raise SetError(f"the Rekor SET does not verify with the key of {log.url}")
    if not log.valid.contains(entry.time):
        raise SetError(f"the entry's integrated time {entry.time:%Y-%m-%dT%H:%M:%SZ} is outside {log.url}'s validity")
    return log
