"""Policy patterns in RE2: matching takes time linear in the value, whatever the pattern.

Every pattern in a policy is matched against text the image's author controls (labels, tags, env
names, certificate identities, provenance, smoke output). Python's `re` backtracks: `(a+)+b` against
64 `a`s and a `!` never finishes, and a gate that can be made to hang can be turned off. RE2 never
backtracks; it refuses the constructs that would need it (backreferences, lookaround), and this module
turns each refusal into a sentence that names the construct and the RE2 way to write it.

`re2` (google-re2, ~8 ms to import) loads with the first pattern, so `imgcheck --version` never pays.
"""

from __future__ import annotations

import functools
import re
from typing import Any, final

from imgcheck.errors import InputError

MAX_PATTERN_MEMORY = 64 * 1024 * 1024
"""RE2's memory budget for one pattern (its program and its DFA cache)."""
MAX_PROGRAM_SIZE = 10_000
"""RE2 instructions in one compiled pattern. Matching is linear in the value, but each character can
cost up to this many steps when RE2 falls back from its DFA to its NFA: `.{1000}` is 8,000."""
MAX_MATCH_CHARS = 128 * 1024
"""The longest value matched against a pattern: a bigger one is an error for that rule, never a match
or a miss. Real labels, tags, env names and identities are far shorter; smoke output is capped below."""

_FIXES: tuple[tuple[str, str], ...] = (
    (r"invalid escape sequence: \\[1-9]", "{c} is a backreference, which RE2 does not have: write the text out"),
    (r"\(\?P=", "(?P= is a named backreference, which RE2 does not have: write the repeated text out"),
    (r"invalid perl operator: \(\?<?[=!]", "{c} is lookaround, which RE2 does not have: match the text itself"),
    (r"invalid escape sequence: \\Z", "{c} is Python's end of text: RE2 writes it \\z"),
    (r"invalid perl operator: \(\?#", "{c} is an inline comment, which RE2 does not have: remove it"),
    (r"invalid perl operator: \(\?[a-zA-Z]*x", "{c} is verbose mode, which RE2 lacks: remove spaces and comments"),
    (r"invalid perl operator: \(\?>", "{c} is an atomic group: RE2 never backtracks, so write (?:...)"),
    (r"invalid perl operator: \(\?[aLu]", "{c} is a Python-only flag: RE2 takes (?i), (?m), (?s) and (?U)"),
    (r"bad repetition operator: [*+?}]\+", "{c} is a possessive quantifier: RE2 never backtracks, so drop the last +"),
    (r"invalid repetition size", "{c} repeats more than RE2's limit of 1000 (nested counts multiply): use + or *"),
    (r"pattern too large", "it is too large for RE2 once compiled: simplify it (fewer or smaller counted repeats)"),
)
"""RE2's refusal (its message) -> the construct, what it is, and the RE2 way to write it."""


class PatternError(ValueError):
    """A pattern RE2 cannot take: the message names the construct and the RE2 fix."""


class ValueTooLong(InputError):
    """A value over MAX_MATCH_CHARS: not matched (its rule is `error`), so no value sets the time."""


@final
class Pattern:
    """A compiled RE2 pattern. Policies use `fullmatch` (the whole value) unless a key says `search`."""

    __slots__ = ("_regex", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._regex = _compile(pattern)

    def fullmatch(self, text: str) -> bool:
        return self._regex.fullmatch(self._matchable(text)) is not None

    def search(self, text: str) -> str | None:
        """The first match's text, or None. As in Python, `$` also matches before a final newline
        (RE2's `$` is the end of the text only; output nearly always ends with a newline)."""
        safe = self._matchable(text)
        found = self._regex.search(safe)
        if found is None and safe.endswith("\n"):
            found = self._regex.search(safe[:-1])
        return None if found is None else str(found.group(0))

    def _matchable(self, text: str) -> str:
        if len(text) > MAX_MATCH_CHARS:
            raise ValueTooLong(
                f"a value of {len(text)} characters is too long to match against /{self.pattern[:80]}/: "
                f"imgcheck matches values of at most {MAX_MATCH_CHARS} characters, and no real label, tag, "
                "env name or identity is that long"
            )
        return _utf8_safe(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


def compile_pattern(pattern: str) -> Pattern:
    """`pattern` compiled by RE2; PatternError (one sentence: what and the fix) if RE2 refuses it."""
    return Pattern(pattern)


def escape(text: str) -> str:
    """`text` as an RE2 pattern that matches exactly it (smoke's `{version}`)."""
    return "".join(c if c.isalnum() or c == "_" or ord(c) > 0x7F else "\\" + c for c in text)


@functools.cache
def _options() -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # a refused pattern is our one-line policy error, not absl noise on stderr
    options.max_mem = MAX_PATTERN_MEMORY
    options.never_capture = True  # groups are never read; without them every match stays on RE2's fast paths
    return options


def _compile(pattern: str) -> Any:
    import re2

    try:
        regex = re2.compile(_utf8_safe(pattern), _options())
    except re2.error as exc:
        raise PatternError(_explain(exc, pattern)) from None
    if regex.programsize > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"it is too large once compiled ({regex.programsize} RE2 instructions, at most {MAX_PROGRAM_SIZE}): "
            "simplify it (fewer or smaller counted repeats such as .{1000})"
        )
    return regex


def _explain(exc: Exception, pattern: str) -> str:
    raw = exc.args[0] if exc.args else exc
    reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    what, _, construct = reason.partition(": ")
    for refusal, fix in _FIXES:
        if re.search(refusal, f"{reason}\n{pattern}"):
            return fix.format(c=construct)
    where = f" at {construct!r}" if construct else ""
    return f"{what}{where} (RE2 syntax: github.com/google/re2/wiki/Syntax)"


def _utf8_safe(text: str) -> str:
    """RE2 matches UTF-8: a lone surrogate (valid in a JSON string) becomes U+FFFD instead of an error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
