"""`--report sarif=FILE`: SARIF 2.1.0 for GitHub code scanning and other SARIF readers.

One run; `tool.driver` declares every rule imgcheck knows (with its one-line summary as help) plus
`resolve` for an image that could not be verified at all. A result per fail/error (level `error`)
and warn (level `warning`). Code scanning wants a file location, so each result points at the
policy file (line 1) and names the image as a logical location; `partialFingerprints` hash the
image name, rule and platform, so an alert stays one alert across nightly runs and closes when fixed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from imgcheck.report.model import CheckResult, ImageResult, Report
from imgcheck.verdict import Verdict

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
RESOLVE = "resolve"
RESOLVE_SUMMARY = "the image reference resolves and its manifests and config read back verified by digest"
FINGERPRINT_KEY = "imgcheckFinding/v1"
NO_IMAGES = "the run verified no image: name images in the policy (nothing checked is never a pass)"
_LEVELS = {Verdict.FAIL: "error", Verdict.ERROR: "error", Verdict.WARN: "warning"}


def _information_uri() -> str | None:
    """The project's home page from the installed package metadata, if it declares one."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("imgcheck").get_all("Project-URL") or []
    except PackageNotFoundError:
        return None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository"):
            return str(url).strip()
    return None


def artifact_uri(policy: str, cwd: Path | None = None) -> str:
    """The policy file as code scanning wants it: relative to the checkout (the working directory)."""
    path = Path(policy)
    if not path.is_absolute():
        return quote(PurePosixPath(*path.parts).as_posix() if path.parts else "imgcheck.yaml")
    base = (cwd or Path.cwd()).resolve()
    try:
        return quote(path.resolve().relative_to(base).as_posix())
    except ValueError:
        return path.as_uri()


def _rules() -> list[dict[str, Any]]:
    from imgcheck.checks import all_rules

    summaries = {rule_id: spec.summary for rule_id, spec in all_rules().items()}
    summaries[RESOLVE] = RESOLVE_SUMMARY
    return [_rule(rule_id, summary) for rule_id, summary in summaries.items()]


def _rule(rule_id: str, summary: str) -> dict[str, Any]:
    where = (
        "It is not a policy rule: imgcheck checks it for every image before any rule runs."
        if rule_id == RESOLVE
        else f"Configured under `rules.{rule_id}` (or an image's `rules.{rule_id}`) in the policy file."
    )
    text = (
        f"imgcheck rule '{rule_id}' passes when {summary}. {where} The result's message says what was "
        "expected, what was found and what to do next; `imgcheck policy validate FILE` prints what the policy checks."
    )
    return {
        "id": rule_id,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": f"{rule_id}: {summary}"},
        "help": {"text": text, "markdown": f"**{rule_id}** passes when {summary}.\n\n{where}"},
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["container-image", "release-gate"]},
    }


def _fingerprint(image: str, rule: str, platform: str | None, ordinal: int) -> str:
    key = "\0".join([image, rule, platform or "", str(ordinal) if ordinal else ""])
    return hashlib.sha256(key.encode()).hexdigest()


class _Results:
    """Builds results; counts repeats of (image, rule, platform) so fingerprints stay distinct."""

    def __init__(self, uri: str, rule_index: dict[str, int]) -> None:
        self.uri, self.rule_index = uri, rule_index
        self.seen: dict[tuple[str, str, str | None], int] = {}
        self.items: list[dict[str, Any]] = []

    def add(self, image: ImageResult, check: CheckResult) -> None:
        level = _LEVELS.get(check.verdict)
        if level is None:
            return
        key = (image.name, check.rule, check.platform)
        ordinal = self.seen.get(key, 0)
        self.seen[key] = ordinal + 1
        qualified = f"{image.reference}@{image.digest}" if image.digest else image.reference
        where = f"{image.name} ({check.platform})" if check.platform else image.name
        result: dict[str, Any] = {
            "ruleId": check.rule,
            "level": level,
            "message": {"text": f"{where}: {check.message} [{qualified}]"},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": self.uri}, "region": {"startLine": 1}},
                    "logicalLocations": [{"name": image.name, "fullyQualifiedName": qualified, "kind": "module"}],
                }
            ],
            "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(image.name, check.rule, check.platform, ordinal)},
            "properties": {
                "image": image.name,
                "reference": image.reference,
                **({"digest": image.digest} if image.digest else {}),
                **({"platform": check.platform} if check.platform else {}),
                "verdict": check.verdict.value,
                "details": json.loads(json.dumps(dict(check.details), default=str)),
            },
        }
        if check.rule in self.rule_index:
            result["ruleIndex"] = self.rule_index[check.rule]
        self.items.append(result)


def to_dict(report: Report) -> dict[str, Any]:
    """The SARIF log as a dict (render() serialises it)."""
    rules = _rules()
    results = _Results(artifact_uri(report.policy), {rule["id"]: i for i, rule in enumerate(rules)})
    images = report.images or (ImageResult("imgcheck", report.target or "", None, (), NO_IMAGES),)
    for image in images:
        if image.error is not None:
            results.add(image, CheckResult(RESOLVE, Verdict.ERROR, image.error))
        for check in image.checks:
            results.add(image, check)
    version = report.imgcheck_version
    driver: dict[str, Any] = {"name": "imgcheck", "version": version, "semanticVersion": version}
    uri = _information_uri()
    if uri:
        driver["informationUri"] = uri
    driver["rules"] = rules
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "invocations": [
                    {"executionSuccessful": report.verdict is not Verdict.ERROR, "startTimeUtc": report.started_at}
                ],
                "columnKind": "utf16CodeUnits",
                "results": results.items,
                "properties": {
                    "policy": report.policy,
                    "target": report.target,
                    "verdict": report.verdict.value,
                    "counts": report.counts(),
                },
            }
        ],
    }


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False) + "\n"
