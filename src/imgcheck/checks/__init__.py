"""One module per rule; the registry maps rule ids to modules so only the rules a policy names load.

A metadata-only verify must not pay for the smoke rule's engine client or the vulnerability rule's
VEX and waiver machinery: `load_rules(ids)` imports just those rules' modules, `all_rules()` all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module

from imgcheck.checks.interface import RuleSpec

RULE_MODULES = {
    "size": "imgcheck.checks.size",
    "labels": "imgcheck.checks.labels",
    "tags": "imgcheck.checks.tags",
    "config": "imgcheck.checks.config",
    "platforms": "imgcheck.checks.platforms",
    "smoke": "imgcheck.checks.smoke",
    "signature": "imgcheck.checks.signature",
    "sbom": "imgcheck.checks.sbom",
    "provenance": "imgcheck.checks.provenance",
    "vulnerabilities": "imgcheck.checks.vulnerabilities",
}
"""Rule id -> the module whose `RULE` implements it, in report order."""
RULE_ORDER = tuple(RULE_MODULES)


def load_rule(rule_id: str) -> RuleSpec:  # type: ignore[type-arg]
    """One rule's spec, importing its module on first use; KeyError for an id imgcheck does not know."""
    spec = import_module(RULE_MODULES[rule_id]).RULE
    assert isinstance(spec, RuleSpec) and spec.id == rule_id, f"{RULE_MODULES[rule_id]}.RULE is not rule {rule_id!r}"
    return spec


def load_rules(rule_ids: Iterable[str]) -> dict[str, RuleSpec]:  # type: ignore[type-arg]
    """The named rules (ids imgcheck does not know are left out), in report order."""
    wanted = set(rule_ids)
    return {rule_id: load_rule(rule_id) for rule_id in RULE_ORDER if rule_id in wanted}


def all_rules() -> dict[str, RuleSpec]:  # type: ignore[type-arg]
    """Every rule imgcheck knows, in report order (imports every rule module)."""
    return load_rules(RULE_ORDER)
