"""The audit's JSON report: the same JSON value as `json.dumps`, laid out like `indent=2` down to the
checks, each check on one line (deterministic, greppable, and written by the C encoder)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from imgcheck.audit.model import AuditReport, DriftItem, ImageInventory, Night, Release, check_to_dict, to_dict
from imgcheck.audit.render_json import dumps, render_json
from imgcheck.report.model import CheckResult
from imgcheck.verdict import Verdict

D1, D2 = ("sha256:" + c * 64 for c in "12")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and ±Infinity included: written as json.dumps writes them
    st.text(),
    st.datetimes(timezones=st.just(UTC)),  # not JSON: `default=str`
)
keys = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner), st.lists(inner).map(tuple), st.dictionaries(keys, inner)),
    max_leaves=40,
)


def report() -> AuditReport:
    checks = (
        CheckResult("size", Verdict.PASS, "compressed size 664 B ≤ 500 MB", "linux/amd64", {"bytes": 664}),
        CheckResult("labels", Verdict.FAIL, 'missing "org.opencontainers.image.revision"', None, {"problems": ["x"]}),
        CheckResult(
            "tags", Verdict.PASS, "ok", None, {"matched": {"v?\\d+": ["v1.0.0"]}, "when": datetime(2026, 1, 1)}
        ),
    )
    releases = (
        Release("app", "r.example", "org/app", D1, ("latest", "v1.0.0"), "2026-01-01T00:00:00Z", 664, checks),
        Release("app", "r.example", "org/app", D2, ("v0.9.0",), error="cannot read"),
    )
    inventory = ImageInventory("app", "r.example", "org/app", {"latest": D1, "v1.0.0": D1, "v0.9.0": D2}, (D1, D2))
    drift = (DriftItem("tag-moved", "fail", "app", "v1.0.0", "moved", {"from": D2, "to": D1}),)
    history = (Night("2026-11-23T23:00:00Z", {"pass": 1, "fail": 0, "error": 1}),)
    return AuditReport("0.1.0", "p.yaml", "2026-11-24T23:00:00Z", (inventory,), releases, drift, history=history)


def test_report_is_the_same_value_with_each_check_on_its_own_line() -> None:
    audit = report()
    text = render_json(audit)
    assert text == render_json(audit) and text.endswith("}\n")
    assert json.loads(text) == json.loads(json.dumps(to_dict(audit), default=str))
    check_lines = [line.strip().removesuffix(",") for line in text.splitlines() if line.lstrip().startswith('{"rule"')]
    assert [json.loads(line) for line in check_lines] == [
        json.loads(json.dumps(check_to_dict(c), default=str)) for c in audit.releases[0].checks
    ]
    # above the checks, the layout is indent=2's
    assert dumps(to_dict(audit), one_line_depth=1000) == json.dumps(to_dict(audit), indent=2, default=str)
    assert '\n  "releases": [\n    {\n      "image": "app",\n' in text


@given(doc=documents)
def test_layout_is_indent_2_above_the_one_line_depth_and_the_value_never_changes(doc: Any) -> None:
    assert dumps(doc, one_line_depth=1000) == json.dumps(doc, indent=2, default=str)
    compact = json.dumps(doc, default=str)
    for depth in range(5):
        # NaN != NaN: compare the values re-serialised, not the parsed values
        assert json.dumps(json.loads(dumps(doc, one_line_depth=depth))) == json.dumps(json.loads(compact))
    assert dumps(doc, one_line_depth=0) == compact
