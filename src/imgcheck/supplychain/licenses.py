"""SPDX licence expressions against a deny list: `MIT OR AGPL-3.0-only` is fine (MIT can be chosen),
`MIT AND AGPL-3.0-only` is not, and the deprecated `AGPL-3.0` / `GPL-2.0+` spellings count as their
`-only` / `-or-later` ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.\-+:]+)")
_GNU_BARE = re.compile(r"(?i)^(A?GPL|LGPL|GFDL)-(\d\.\d)(\+)?$")


def normalize(license_id: str) -> str:
    """Case-folded id with GNU deprecated forms mapped to their current ids."""
    m = _GNU_BARE.match(license_id.strip())
    if m:
        return f"{m.group(1)}-{m.group(2)}-{'or-later' if m.group(3) else 'only'}".lower()
    return license_id.strip().lower()


class _Parser:
    """Recursive descent: expr := and (OR and)*; and := atom (AND atom)*; atom := id [WITH id] | ( expr )."""

    def __init__(self, text: str, denied: frozenset[str]) -> None:
        self.tokens = [m.group(1) for m in _TOKEN.finditer(text)]
        if "".join(self.tokens).replace(" ", "") != re.sub(r"\s+", "", text):
            raise ValueError(f"unexpected characters in licence expression {text!r}")
        self.pos = 0
        self.denied = denied

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ValueError("licence expression ends early")
        self.pos += 1
        return token

    def parse(self) -> bool:
        """True when the expression can be satisfied without a denied licence."""
        ok = self._or()
        if self._peek() is not None:
            raise ValueError(f"unexpected {self._peek()!r} in licence expression")
        return ok

    def _or(self) -> bool:
        ok = self._and()
        while (self._peek() or "").upper() == "OR":
            self._take()
            right = self._and()
            ok = ok or right
        return ok

    def _and(self) -> bool:
        ok = self._atom()
        while (self._peek() or "").upper() == "AND":
            self._take()
            right = self._atom()
            ok = ok and right
        return ok

    def _atom(self) -> bool:
        token = self._take()
        if token == "(":
            ok = self._or()
            if self._take() != ")":
                raise ValueError("unbalanced parentheses in licence expression")
            return ok
        if token.upper() in ("AND", "OR", "WITH", ")"):
            raise ValueError(f"unexpected {token!r} in licence expression")
        if (self._peek() or "").upper() == "WITH":
            self._take()
            self._take()
        return normalize(token) not in self.denied


def allowed(expression: str, deny: Iterable[str]) -> bool:
    """Whether some choice in `expression` avoids every denied licence.

    An expression that does not parse counts as denied when any of its words is a denied id
    (fail closed), else as allowed."""
    denied = frozenset(normalize(d) for d in deny)
    try:
        return _Parser(expression, denied).parse()
    except ValueError:
        words = re.findall(r"[A-Za-z0-9.\-+:]+", expression)
        return not any(normalize(w) in denied for w in words)
