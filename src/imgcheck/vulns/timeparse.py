"""RFC 3339 timestamps as Trivy and Go write them (nanoseconds, `Z`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime (UTC when no offset is given).

    Go writes up to nine fractional digits; Python keeps six, so the rest is dropped.
    Raises ValueError on anything else.
    """
    cleaned = _FRACTION.sub(r"\1", text.strip())
    value = datetime.fromisoformat(cleaned)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
