"""JSON from outside (registries, attachments, reports): absurd nesting is bad input, not a crash.

`json.loads` raises RecursionError on documents nested ~1000 levels deep; a hostile attachment
must end as a clean "malformed" verdict, so this reports it as the ValueError callers already handle.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes) -> Any:
    """`json.loads`, with excessive nesting reported as ValueError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
