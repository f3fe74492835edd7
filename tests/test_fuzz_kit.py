"""Shared hypothesis strategies for the fuzz tests (no tests here): random JSON, mutated real documents, hostile bytes.

The fuzz contract checked by tests/test_fuzz*.py: a parser of outside input returns a value or
raises an ImgcheckError (exit 2) or its module's documented "malformed" error; anything else
(KeyError, AttributeError, RecursionError, a hang) is a bug.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("IMGCHECK_FUZZ_EXAMPLES", "50"))
"""Examples per fuzz target: small in `make test`, 2000 in `make fuzz` (>= 10,000 in total)."""

FUZZ = settings(
    max_examples=EXAMPLES,
    # `make test` replays the same small slice every run and `make fuzz-ci` a large one (CI stays
    # deterministic: a red CI means a regression, not a lucky draw); `make fuzz` explores.
    derandomize="IMGCHECK_FUZZ_EXAMPLES" not in os.environ or os.environ.get("IMGCHECK_FUZZ_DERANDOMIZE") == "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "sha256:" + "a" * 64, "sha256:zz", "latest", "1e999", "\u0000", "../../etc/passwd"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def mutated(draw: st.DrawFn, doc: Any) -> Any:
    """A real document with 1-4 random edits: a subtree replaced, a key dropped, a type changed."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        doc = _mutate(draw, doc, 0)
    return doc


def _mutate(draw: st.DrawFn, node: Any, depth: int) -> Any:
    if isinstance(node, dict) and node and depth < 12 and draw(st.integers(0, 3)) > 0:
        key = draw(st.sampled_from(sorted(node)))
        if draw(st.integers(0, 4)) == 0:
            del node[key]
        else:
            node[key] = _mutate(draw, node[key], depth + 1)
        return node
    if isinstance(node, list) and node and depth < 12 and draw(st.integers(0, 3)) > 0:
        index = draw(st.integers(0, len(node) - 1))
        node[index] = _mutate(draw, node[index], depth + 1)
        return node
    return draw(json_values)


def hostile_bytes(*real: bytes, deep_nesting: bool = True) -> st.SearchStrategy[bytes]:
    """Bytes a hostile or broken source sends: noise, truncations of real files, deep nesting, bad UTF-8.

    `deep_nesting=False` leaves the ~100k-deep documents out."""
    truncated = [st.integers(0, max(0, len(doc) - 1)).map(_prefix_of(doc)) for doc in real]
    deep = st.integers(500, 200_000).flatmap(
        lambda n: st.sampled_from([b"[" * n, b'{"a":' * n, b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n])
    )
    return st.one_of(
        st.binary(max_size=300),
        deep if deep_nesting else st.nothing(),
        st.sampled_from([b"", b"null", b"[]", b"{}", b'"x"', b"1e999", b"NaN", b"\xff\xfe{}", b'{"a":1,"a":2}']),
        *truncated,
    )


def _prefix_of(doc: bytes) -> Callable[[int], bytes]:
    return lambda n: doc[:n]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- policy patterns: what an author writes by accident, and what an attacker feeds them --------------

PATTERN_ATOMS = ("a", "b", "X", "Y", "!", ".", r"\d", r"\w", r"\s", "[a-z]", "[^/]", r"\.", "-", "/", "^", "$", r"\b")
"""Atoms whose meaning RE2 and Python's `re` share on ASCII text (the oracle compares them)."""
QUANTIFIERS = ("", "*", "+", "?", "*?", "+?", "{2}", "{1,9}", "{0,}", "{3,5}")


def _quantified(parts: tuple[str, str]) -> str:
    return f"(?:{parts[0]}){parts[1]}"


def _grouped(parts: tuple[str, str]) -> str:
    return f"({parts[0]}){parts[1]}"


def _alternation(parts: list[str]) -> str:
    return "(?:" + "|".join(parts) + ")"


patterns = st.recursive(
    st.sampled_from(PATTERN_ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(QUANTIFIERS)).map(_quantified),  # (?:(a+)+)+: nested quantifiers
        st.tuples(inner, st.sampled_from(QUANTIFIERS)).map(_grouped),
        st.lists(inner, min_size=2, max_size=3).map("".join),
        st.lists(inner, min_size=2, max_size=3).map(_alternation),
    ),
    max_leaves=10,
).flatmap(lambda p: st.sampled_from([p, "(?i)" + p]))
"""RE2 patterns from a grammar: nested and counted quantifiers, groups, alternations, `(?i)`."""

python_only_patterns = st.sampled_from(
    [
        *(r"(a)\1", "(?=a)a", "(?!x).*", "(?<=a)b", "(?<!a)b", "a++", r"a\Z", "(?x) a b", "(?#c)a", "(?>a)"),
        *("(?P<n>a)(?P=n)", "[unclosed", "(", "a{2,1}", "*a", "(a{1000}){1000}", r"\p{L}{1,100}"),
    ]
)
"""What RE2 refuses: Python-only constructs, plain syntax errors, patterns too large once compiled."""

any_pattern = st.one_of(patterns, python_only_patterns, st.text(max_size=20))


def hostile_text(cap: int, alphabet: str = "aabXXY!./-_ é\n") -> st.SearchStrategy[str]:
    """Text up to `cap` characters built to make a backtracking matcher explode: a short unit repeated
    (64 × `a`, then `!`), up to the cap itself."""
    return st.tuples(
        st.text(alphabet=alphabet, min_size=1, max_size=6),
        st.integers(0, cap),
        st.text(alphabet=alphabet, max_size=4),
    ).map(lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: max(0, t[1] - len(t[2]))] + t[2])
