"""`--format json`: the imgcheck.report/v1 document of spec/cli.md."""

from __future__ import annotations

import json
from typing import Any

from imgcheck.report.model import SCHEMA_ID, Report


def to_dict(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "imgcheck_version": report.imgcheck_version,
        "policy": report.policy,
        "started_at": report.started_at,
        "verdict": report.verdict.value,
        "counts": report.counts(),
        "images": [
            {
                "name": image.name,
                "reference": image.reference,
                "digest": image.digest,
                "verdict": image.verdict.value,
                **({"error": image.error} if image.error else {}),
                "checks": [
                    {
                        "rule": check.rule,
                        "verdict": check.verdict.value,
                        "message": check.message,
                        "platform": check.platform,
                        "details": dict(check.details),
                    }
                    for check in image.checks
                ],
            }
            for image in report.images
        ],
    }


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False, default=str) + "\n"
