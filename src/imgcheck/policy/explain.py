"""Human lines saying what a loaded policy checks (`imgcheck policy validate`).

Reading back the *parsed* policy (not the YAML) shows the user what imgcheck understood: sizes in
the units Docker prints, durations in words, and only the settings that differ from the defaults.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from imgcheck.checks import load_rules
from imgcheck.checks.interface import RuleConfig
from imgcheck.policy.model import Policy
from imgcheck.policy.patterns import Pattern
from imgcheck.policy.types import ByteSize, Percent, format_duration


def explain(policy: Policy) -> list[str]:
    """One header line, then per image its reference and one line per rule it checks."""
    specs = load_rules({rule_id for image in policy.images for rule_id in image.rules})
    count = len(policy.images)
    lines = [
        f"{policy.path}: policy version {policy.version}, {count} image{'s' if count != 1 else ''}, "
        f"registry {policy.registry}"
    ]
    blocks: dict[tuple[str, ...], list[str]] = {}  # rule lines -> the images that share them
    for image in policy.images:
        rule_lines: list[str] = []
        for rule_id, config in image.rules.items():
            spec = specs.get(rule_id)
            if spec is not None and spec.describe is not None:
                text = spec.describe(config)
            else:
                text = describe_config(config) or f"defaults ({spec.summary if spec else 'no settings'})"
            suffix = " [warn only]" if config.mode == "warn" else ""
            suffix += f" (to pass: {config.hint})" if config.hint else ""
            rule_lines.append(f"  {rule_id}: {text}{suffix}")
        blocks.setdefault(tuple(rule_lines), []).append(f"{image.name}: {image.registry}/{image.repository}")
    for block, images in blocks.items():
        lines.extend(images)  # images with identical effective rules are listed together, rules once
        lines.extend(block)
    return lines


def describe_config(config: RuleConfig) -> str:
    """The settings that differ from the config class's defaults, as `key value; key value`."""
    return "; ".join(_non_default_items(config, skip=("mode", "hint")))


def _non_default_items(obj: Any, skip: tuple[str, ...] = ()) -> list[str]:
    parts = []
    for f in dataclasses.fields(obj):
        if f.name in skip or not f.init:
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and _same(value, f.default):
            continue
        if f.default_factory is not dataclasses.MISSING and _same(value, f.default_factory()):
            continue
        parts.append(f.name if value is True else f"{f.name} {render(value)}")
    return parts


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # exotic values compare badly: show them
        return False


def render(value: Any) -> str:
    """A parsed value the way a user would write it, in readable units."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, ByteSize):
        return value.human()
    if isinstance(value, Percent):
        return value.human()
    if isinstance(value, dt.timedelta):
        return format_duration(value.total_seconds())
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Pattern):
        return f"/{value.pattern}/"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "(" + ", ".join(_non_default_items(value)) + ")"
    return str(value)
