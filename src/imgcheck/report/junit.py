"""`--report junit=FILE`: JUnit XML, so the CI test tab shows one test per check.

A testsuite per image (properties carry the reference and digest), a testcase per check:
`<failure>` for fail, `<error>` for error, `<skipped>` for skip, and a passing testcase with
`<system-out>` for a warning. An image that could not be verified at all becomes one `resolve`
testcase with `<error>`, so "could not check" is never shown as green.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

RESOLVE = "resolve"
"""The testcase name of an image that could not be verified at all."""

# XML 1.0 forbids most control characters even when escaped; smoke output may carry ANSI codes.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    """Text that XML 1.0 can hold: forbidden control characters become visible `\\xNN` escapes."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _cases(image: ImageResult) -> Iterator[CheckResult]:
    """The image's checks, preceded by a `resolve` error when the image could not be verified."""
    if image.error is not None:
        yield CheckResult(RESOLVE, Verdict.ERROR, image.error)
    yield from image.checks


def _case_names(cases: list[CheckResult]) -> list[str]:
    """`rule (platform)`; a repeat in one suite gets ` [2]`, ` [3]`, as report actions key tests by name."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for check in cases:
        name = check.rule + (f" ({check.platform})" if check.platform else "")
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} [{seen[name]}]")
    return names


def _body(check: CheckResult) -> str:
    """The message, then the details as JSON: what a reader of the test tab needs to act."""
    if not check.details:
        return check.message
    return f"{check.message}\n\n{json.dumps(dict(check.details), indent=2, default=str)}"


def _tally(cases: list[CheckResult]) -> dict[str, str]:
    count = {v: sum(1 for c in cases if c.verdict is v) for v in Verdict}
    return {
        "tests": str(len(cases)),
        "failures": str(count[Verdict.FAIL]),
        "errors": str(count[Verdict.ERROR]),
        "skipped": str(count[Verdict.SKIP]),
        "time": "0",
    }


def _testcase(image: ImageResult, check: CheckResult, name: str) -> ET.Element:
    case = ET.Element("testcase", {"classname": f"imgcheck.{image.name}", "name": name, "time": "0"})
    message = _clean(check.message)
    if check.verdict is Verdict.FAIL:
        ET.SubElement(case, "failure", {"type": "fail", "message": message}).text = _clean(_body(check))
    elif check.verdict is Verdict.ERROR:
        ET.SubElement(case, "error", {"type": "error", "message": message}).text = _clean(_body(check))
    elif check.verdict is Verdict.SKIP:
        ET.SubElement(case, "skipped", {"message": message})
    elif check.verdict is Verdict.WARN:
        ET.SubElement(case, "system-out").text = _clean(f"WARN: {_body(check)}")
    return case


def _testsuite(report: Report, image: ImageResult) -> ET.Element:
    cases = list(_cases(image))
    suite = ET.Element("testsuite", {"name": image.name, **_tally(cases), "timestamp": report.started_at})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("reference", image.reference),
        ("digest", image.digest or ""),
        ("verdict", image.verdict.value),
        ("policy", report.policy),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _clean(value)})
    suite.extend(_testcase(image, check, name) for check, name in zip(cases, _case_names(cases), strict=True))
    return suite


NO_IMAGES = "the run verified no image: name images in the policy (nothing checked is never a pass)"


def _images(report: Report) -> tuple[ImageResult, ...]:
    """The report's images; an empty run becomes one erroring pseudo-image so no tab shows it green."""
    if report.images:
        return report.images
    return (ImageResult("imgcheck", report.target or "", None, (), NO_IMAGES),)


def render(report: Report) -> str:
    """One `<testsuites>` document; its counts add up over the suites."""
    images = _images(report)
    suites = [_testsuite(report, image) for image in images]
    every = [c for image in images for c in _cases(image)]
    root = ET.Element("testsuites", {"name": "imgcheck", **_tally(every)})
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
