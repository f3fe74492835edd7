"""Trivy's SARIF 2.1.0 output into a ScanReport.

SARIF carries less than Trivy JSON: severity comes from the rule's tags, package/installed/fixed
from each result's message (Trivy writes `Package:`, `Installed Version:`, `Fixed Version:` lines),
no Status and no scan time. The image binding is in the run's properties (`imageName`,
`repoDigests`, `imageID`) when Trivy scanned an image; an `fs` scan has none.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from imgcheck.errors import InputError
from imgcheck.vulns.model import SEVERITIES, ScanReport, Vuln
from imgcheck.vulns.timeparse import parse_timestamp

_DIGEST_IN_REF = re.compile(r"@(sha256:[0-9a-f]{64})\b")
_LINE = re.compile(r"^(Package|Installed Version|Severity|Fixed Version): ?(.*)$", re.MULTILINE)


def looks_like_sarif(doc: object) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("runs"), list) and "version" in doc


def _bad(source: str, where: str, expected: str) -> InputError:
    return InputError(
        f"{source}: {where} should be {expected}",
        hint="the file is not valid Trivy SARIF; re-run trivy with --format sarif",
    )


def parse_sarif(
    doc: object, source: str, *, file_time: datetime | None = None, digests: tuple[str, ...] = ()
) -> ScanReport:
    """Validate and reduce a Trivy SARIF log. `file_time` stands in for the scan time SARIF lacks."""
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise _bad(source, "the document", "a SARIF object with a `runs` list")
    if doc.get("version") != "2.1.0":
        raise InputError(f"{source}: SARIF version {doc.get('version')!r} is not supported (expected 2.1.0)")
    runs: list[Any] = doc["runs"]
    if len(runs) != 1:
        raise InputError(
            f"{source}: {len(runs)} SARIF runs, expected exactly one (Trivy writes one per report)",
            hint="give imgcheck one Trivy SARIF file per image",
        )
    run = runs[0]
    if not isinstance(run, dict):
        raise _bad(source, "runs[0]", "an object")
    driver = _obj(_obj(run.get("tool"), source, "tool").get("driver"), source, "tool.driver")
    if driver.get("name") != "Trivy":
        raise InputError(f"{source}: SARIF from {driver.get('name')!r}, expected Trivy")
    rules = driver.get("rules") or []
    if not isinstance(rules, list):
        raise _bad(source, "tool.driver.rules", "a list")
    props = run.get("properties") or {}
    if not isinstance(props, dict):
        raise _bad(source, "runs[0].properties", "an object")
    image_name = props.get("imageName") or ""
    if not isinstance(image_name, str):
        raise _bad(source, "properties.imageName", "a string")
    found = [*digests, *_DIGEST_IN_REF.findall(image_name)]
    repo_digests = props.get("repoDigests") or []
    if not isinstance(repo_digests, list) or not all(isinstance(d, str) for d in repo_digests):
        raise _bad(source, "properties.repoDigests", "a list of strings")
    for ref in repo_digests:
        found += _DIGEST_IN_REF.findall(ref)
    image_id = props.get("imageID")
    if image_id is not None and not isinstance(image_id, str):
        raise _bad(source, "properties.imageID", "a string")
    created, created_from = _scan_time(run, source)
    if created is None and file_time is not None:
        created, created_from = file_time, "file time"
    results = run.get("results") or []
    if not isinstance(results, list):
        raise _bad(source, "runs[0].results", "a list")
    findings = [v for i, r in enumerate(results) if (v := _finding(r, i, rules, source)) is not None]
    return ScanReport(
        source=source,
        format="sarif",
        created_at=created,
        created_from=created_from,
        artifact_name=image_name,
        digests=tuple(dict.fromkeys(found)),
        image_id=image_id or None,
        findings=tuple(findings),
    )


def _obj(value: object, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(source, where, "an object")
    return value


def _scan_time(run: dict[str, Any], source: str) -> tuple[datetime | None, str]:
    invocations = run.get("invocations") or []
    if not isinstance(invocations, list):
        raise _bad(source, "runs[0].invocations", "a list")
    for inv in invocations:
        for key in ("endTimeUtc", "startTimeUtc"):
            value = inv.get(key) if isinstance(inv, dict) else None
            if isinstance(value, str):
                try:
                    return parse_timestamp(value), key
                except ValueError:
                    raise InputError(f"{source}: invocation {key} {value!r} is not an RFC 3339 time") from None
    return None, ""


def _finding(result: object, index: int, rules: list[Any], source: str) -> Vuln | None:
    """One SARIF result as a Vuln, or None for Trivy's non-vulnerability results (secrets, misconfig)."""
    if not isinstance(result, dict):
        raise _bad(source, f"results[{index}]", "an object")
    rule_id = result.get("ruleId")
    if not isinstance(rule_id, str) or not rule_id:
        raise _bad(source, f"results[{index}].ruleId", "a non-empty string")
    rule = _rule(result, rules, rule_id)
    rule_name = rule.get("name", "")
    if isinstance(rule_name, str) and rule_name and not rule_name.endswith("Vulnerability"):
        return None
    message = result.get("message")
    text = message.get("text", "") if isinstance(message, dict) else ""
    if not isinstance(text, str):
        raise _bad(source, f"results[{index}].message.text", "a string")
    fields = dict(_LINE.findall(text))
    if "Package" not in fields and not rule_name:
        return None
    props = rule.get("properties") or {}
    tags = props.get("tags") if isinstance(props, dict) else None
    severity = next((t for t in tags if t in SEVERITIES), "") if isinstance(tags, list) else ""
    severity = severity or fields.get("Severity", "").strip()
    if severity not in SEVERITIES:
        raise InputError(f"{source}: result {rule_id} has no Trivy severity (found {severity!r})")
    score = props.get("cvssv3_baseScore") if isinstance(props, dict) else None
    return Vuln(
        id=rule_id,
        package=fields.get("Package", "").strip(),
        installed=fields.get("Installed Version", "").strip(),
        fixed=fields.get("Fixed Version", "").strip(),
        severity=severity,
        target=_target(result),
        cvss=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
    )


def _rule(result: dict[str, Any], rules: list[Any], rule_id: str) -> dict[str, Any]:
    index = result.get("ruleIndex")
    if isinstance(index, int) and 0 <= index < len(rules) and isinstance(rules[index], dict):
        candidate: dict[str, Any] = rules[index]
        if candidate.get("id") == rule_id:
            return candidate
    for rule in rules:
        if isinstance(rule, dict) and rule.get("id") == rule_id:
            return rule
    return {}


def _target(result: dict[str, Any]) -> str:
    locations = result.get("locations")
    if not isinstance(locations, list) or not locations:
        return ""
    node: object = locations[0]
    for key in ("physicalLocation", "artifactLocation", "uri"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) else ""
