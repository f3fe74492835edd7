"""Typed, frozen policy objects (what the loader produces from YAML)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path

from imgcheck.checks.interface import RuleConfig
from imgcheck.record import record

IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What an image's `name:` may be: it is shown bare in reports (Markdown headings, chart labels)."""


@record
class ImageSpec:
    """One image of the policy with its effective rules (defaults merged with its overrides)."""

    name: str
    repository: str
    """Path inside the registry, e.g. `rjdscott/k2-market-data-platform-producer`."""
    registry: str
    """Registry host[:port] from the policy (before any --registry override)."""
    rules: Mapping[str, RuleConfig]
    """rule id -> parsed config; a rule that is absent is not checked."""


@record
class Policy:
    version: int
    registry: str
    images: tuple[ImageSpec, ...]
    path: Path
    """Where the policy was read from; relative paths inside it resolve against its folder."""
    defaults: Mapping[str, RuleConfig] = field(default_factory=dict)
    """The top-level `rules:`, for full references that name no image of the policy."""

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the policy (keys, reports, VEX) resolve: the policy file's folder,
        except for a policy bundled inside imgcheck, whose paths are the user's (the working directory)."""
        bundled = Path(__file__).resolve().parent.parent / "policies"
        if self.path.resolve().parent == bundled:
            return Path.cwd()
        return self.path.parent
