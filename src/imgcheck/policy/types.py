"""Value types the policy loader parses from YAML by a config dataclass's annotations.

Supported annotations in a rule's `Config`: str, int, float, bool, `ByteSize`, `Percent`,
`datetime.timedelta` (durations `30s`, `15m`, `24h`, `7d`), `datetime.date`, `patterns.Pattern`
(compiled by RE2 at load time; rules use `fullmatch`), `Literal[...]`, `X | None`, `tuple[X, ...]` (from a YAML list),
`Mapping[str, X]` (from a YAML mapping), and nested frozen dataclasses.
"""

from __future__ import annotations

import re

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ByteSize(int):
    """A byte count. `kB`/`MB`/`GB` are decimal (as Docker prints them), `KiB`/`MiB`/`GiB` binary."""

    @classmethod
    def parse(cls, text: str | int) -> ByteSize:
        if isinstance(text, bool):
            raise ValueError("expected a size like 500MB, not a boolean")
        if isinstance(text, int):
            if text < 0:
                raise ValueError("a size cannot be negative")
            return cls(text)
        m = _SIZE_RE.fullmatch(str(text))
        unit = m.group(2).lower() if m else ""
        if not m or unit not in _SIZE_UNITS:
            raise ValueError(f"expected a size like 500MB or 1.5GiB, got {text!r}")
        return cls(round(float(m.group(1)) * _SIZE_UNITS[unit]))

    def human(self) -> str:
        return format_bytes(int(self))


class Percent(float):
    """A fraction written as `10%` (stored as 0.10)."""

    @classmethod
    def parse(cls, text: str | float) -> Percent:
        if isinstance(text, bool):
            raise ValueError("expected a percentage like 10%, not a boolean")
        raw = str(text).strip()
        if not raw.endswith("%"):
            raise ValueError(f"expected a percentage like 10%, got {text!r}")
        try:
            value = float(raw[:-1])
        except ValueError:
            raise ValueError(f"expected a percentage like 10%, got {text!r}") from None
        if value < 0:
            raise ValueError("a percentage cannot be negative")
        return cls(value / 100.0)

    def human(self) -> str:
        return f"{self * 100:g}%"


def parse_duration_seconds(text: str | int | float) -> float:
    """`30s`, `15m`, `24h`, `7d` (a bare number is seconds)."""
    if isinstance(text, bool):
        raise ValueError("expected a duration like 30s or 24h, not a boolean")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return float(text)
    m = _DURATION_RE.fullmatch(str(text))
    if not m:
        raise ValueError(f"expected a duration like 30s, 15m, 24h or 7d, got {text!r}")
    return float(m.group(1)) * _DURATION_SECONDS[m.group(2)]


def format_bytes(n: int) -> str:
    """Decimal units, as `docker images` prints sizes."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - unreachable


def format_duration(seconds: float) -> str:
    """The largest unit that reads naturally: `3 d`, `5 h`, `40 s`."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.0f} {unit}" if value >= 10 or value == int(value) else f"{value:.1f} {unit}"
    return f"{seconds:.0f} s"
