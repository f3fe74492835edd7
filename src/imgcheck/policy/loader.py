"""Load a policy file (spec/policy.md) into typed, frozen `Policy` objects, or fail on one line.

The structure (version, registry, images) is checked here; each rule's settings are parsed by
`policy.fields` from the rule's own config dataclass, after merging an image's `rules:` over the
defaults key by key. Every error names file, line, key path, what is wrong and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgcheck.checks import RULE_ORDER, load_rule
from imgcheck.checks.interface import RuleConfig
from imgcheck.policy.fields import parse_dataclass
from imgcheck.policy.model import IMAGE_NAME, ImageSpec, Policy
from imgcheck.policy.yamltree import Map, Node, Scalar, Seq, did_you_mean, fail, kind, read_tree, show

if TYPE_CHECKING:
    from imgcheck.policy.explain import explain

__all__ = ["default_policy_path", "explain", "load_policy"]

SUPPORTED_VERSION = 1
DEFAULT_REGISTRY = "ghcr.io"
_TOP_KEYS = ("version", "registry", "images", "rules")
_IMAGE_KEYS = ("name", "repository", "registry", "rules")
# OCI distribution spec: repository name components, lower case, separated by `/`.
_REPOSITORY_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
# host[:port], or a bracketed IPv6 literal: no scheme, no path.
_REGISTRY_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# Image names end up in file names (`reports/{name}.trivy.json`) and report ids: keep them plain.


def __getattr__(name: str) -> Any:
    """`explain` is re-exported lazily: only `policy validate` needs it, not every verify."""
    if name == "explain":
        from imgcheck.policy.explain import explain

        return explain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_policy_path(cwd: Path) -> Path:
    """`./imgcheck.yaml` if present, else the bundled k2 policy."""
    local = cwd / "imgcheck.yaml"
    if local.is_file():
        return local
    from importlib.resources import files  # ~2 ms of imports that only the bundled policy needs

    return Path(str(files("imgcheck") / "policies" / "k2.yaml"))


def load_policy(path: Path) -> Policy:
    """Read, validate and type the policy at `path`; raises PolicyError (one line) on any problem."""
    root = read_tree(path)
    if not isinstance(root, Map):
        fail(root.loc, f"the policy must be a mapping, got {kind(root)}", f"keys: {', '.join(_TOP_KEYS)}")
    _reject_unknown(root, _TOP_KEYS)
    _check_version(root)
    registry = _registry(root.entries.get("registry"), DEFAULT_REGISTRY)
    defaults = _rule_table(root.entries.get("rules"))
    images = _images(root, registry, defaults)
    return Policy(
        version=SUPPORTED_VERSION,
        registry=registry,
        images=images,
        path=path,
        defaults=_effective_rules(defaults, {}),
    )


def _reject_unknown(node: Map, known: tuple[str, ...]) -> None:
    for key, value in node.entries.items():
        if key not in known:
            fail(value.loc, "unknown key" + did_you_mean(key, known), f"known: {', '.join(known)}")


def _check_version(root: Map) -> None:
    node = root.entries.get("version")
    if node is None:
        fail(root.loc, "missing required key: version", f"add 'version: {SUPPORTED_VERSION}' at the top")
    value = node.value if isinstance(node, Scalar) else None
    if type(value) is not int or value != SUPPORTED_VERSION:
        got = show(value) if isinstance(node, Scalar) else kind(node)
        fail(
            node.loc,
            f"unsupported policy version {got}",
            f"this imgcheck reads version {SUPPORTED_VERSION}; upgrade imgcheck for newer policies",
        )


def _nonempty_str(node: Node, pattern: re.Pattern[str], allowed: str) -> str:
    if not isinstance(node, Scalar) or not isinstance(node.value, str):
        fail(node.loc, f"expected a string, got {kind(node)}", allowed)
    if not pattern.fullmatch(node.value):
        fail(node.loc, f"invalid value {show(node.value)}", allowed)
    return node.value


def _registry(node: Node | None, default: str) -> str:
    if node is None:
        return default
    return _nonempty_str(node, _REGISTRY_RE, "a host[:port] like ghcr.io or localhost:5000, no https://")


def _rule_table(node: Node | None) -> dict[str, Node]:
    """`rules:` as rule id -> its raw value, rejecting unknown rule ids up front."""
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return {}
    if not isinstance(node, Map):
        fail(node.loc, f"expected a mapping of rule ids to settings, got {kind(node)}")
    for rule_id, value in node.entries.items():
        if rule_id not in RULE_ORDER:
            fail(value.loc, "unknown rule" + did_you_mean(rule_id, RULE_ORDER), f"known: {', '.join(RULE_ORDER)}")
        if isinstance(value, Seq) or (
            isinstance(value, Scalar) and value.value is not None and not isinstance(value.value, bool)
        ):
            fail(
                value.loc,
                f"expected the rule's settings as a mapping, got {kind(value)}",
                "a mapping; {} or nothing for the defaults; false to turn the rule off",
            )
    return dict(node.entries)


def _images(root: Map, registry: str, defaults: dict[str, Node]) -> tuple[ImageSpec, ...]:
    node = root.entries.get("images")
    if node is None:
        fail(root.loc, "missing required key: images", "a list of {name, repository} entries")
    if not isinstance(node, Seq) or not node.items:
        got = "an empty list" if isinstance(node, Seq) else kind(node)
        fail(node.loc, f"expected a non-empty list of images, got {got}", "- name: ...  repository: ...")
    seen: dict[str, int] = {}
    images = []
    for item in node.items:
        image = _image(item, registry, defaults)
        if image.name in seen:
            fail(item.loc, f"duplicate image name {image.name!r} (also on line {seen[image.name]})")
        seen[image.name] = item.loc.line
        images.append(image)
    return tuple(images)


def _image(node: Node, registry: str, defaults: dict[str, Node]) -> ImageSpec:
    if not isinstance(node, Map):
        fail(node.loc, f"expected an image mapping, got {kind(node)}", f"keys: {', '.join(_IMAGE_KEYS)}")
    _reject_unknown(node, _IMAGE_KEYS)
    for key in ("name", "repository"):
        if key not in node.entries:
            fail(node.loc, f"missing required key: {key}")
    name = _nonempty_str(node.entries["name"], IMAGE_NAME, "letters, digits, '.', '_' and '-'")
    repository = _nonempty_str(
        node.entries["repository"], _REPOSITORY_RE, "a lower-case path like org/repo, without the registry host"
    )
    overrides = _rule_table(node.entries.get("rules"))
    rules = _effective_rules(defaults, overrides)
    if not rules:
        fail(node.loc, f"image {name!r} has no rules, so nothing would be checked", "add rules under `rules:`")
    return ImageSpec(
        name=name,
        repository=repository,
        registry=_registry(node.entries.get("registry"), registry),
        rules=rules,
    )


def _effective_rules(defaults: dict[str, Node], overrides: dict[str, Node]) -> dict[str, RuleConfig]:
    """Merge the image's rules over the defaults key by key, then parse, in report order.
    Only the rules named here are imported: their config classes say what their keys are."""
    rules: dict[str, RuleConfig] = {}
    for rule_id in RULE_ORDER:
        merged = _merge(defaults.get(rule_id), overrides.get(rule_id))
        if merged is not None:
            rules[rule_id] = parse_dataclass(load_rule(rule_id).config, merged)
    return rules


def _merge(default: Node | None, override: Node | None) -> Map | None:
    """One rule's settings: None when the rule is off; entries keep the line they were written on."""
    if _is_off(override) or (override is None and _is_off(default)):
        return None
    if default is None and override is None:
        return None
    base = default if isinstance(default, Map) else None
    top = override if isinstance(override, Map) else None
    entries = {**(base.entries if base else {}), **(top.entries if top else {})}
    origin = override if override is not None else default
    assert origin is not None
    return Map(entries, origin.loc)


def _is_off(node: Node | None) -> bool:
    return isinstance(node, Scalar) and node.value is False
