"""One module per rule; `RULES` maps rule ids to their specs in the report's order."""

from __future__ import annotations

from imgcheck.checks.interface import RuleSpec

RULE_ORDER = (
    "size",
    "labels",
    "tags",
    "config",
    "platforms",
    "smoke",
    "signature",
    "sbom",
    "provenance",
    "vulnerabilities",
)


def all_rules() -> dict[str, RuleSpec]:  # type: ignore[type-arg]
    """Every rule imgcheck knows, in report order. Rule modules import heavy libraries lazily."""
    from imgcheck.checks import (
        config,
        labels,
        platforms,
        provenance,
        sbom,
        signature,
        size,
        smoke,
        tags,
        vulnerabilities,
    )

    modules = (size, labels, tags, config, platforms, smoke, signature, sbom, provenance, vulnerabilities)
    return {m.RULE.id: m.RULE for m in modules}
