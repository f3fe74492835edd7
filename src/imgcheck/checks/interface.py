"""The contract every rule implements (one module per rule under `imgcheck.checks`).

A rule is a `RuleSpec`: an id, a frozen `Config` dataclass (its policy keys, parsed by the policy
loader from the dataclass's annotations), an optional `collect` that does the rule's I/O at the edge
(engine runs, attachments, report files), and a pure `check` that turns facts into findings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from imgcheck.deadline import Deadline
from imgcheck.facts import ImageFacts
from imgcheck.record import record
from imgcheck.verdict import Verdict

if TYPE_CHECKING:
    from imgcheck.registry.client import RegistryClient


@record
class RuleConfig:
    """Keys every rule takes. `mode: warn` reports a failure as a warning."""

    mode: Literal["enforce", "warn"] = "enforce"


@record
class Finding:
    """One verdict of one rule, for one image (and one platform, where that matters)."""

    verdict: Verdict
    message: str
    """What was expected, what was found, and what to do next."""
    platform: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@record
class VerifyOptions:
    """Command-line choices that reach the edges (not the policy)."""

    registry_override: str | None = None
    insecure: bool = False
    platform: str | None = None
    no_smoke: bool = False
    keep_images: bool = False
    trivy_reports: tuple[Path, ...] = ()
    timeout: float = 90.0
    """`--timeout`: the whole run's deadline in seconds (registry, pulls, smoke, scans, checks)."""
    deadline: Deadline | None = None
    """That deadline, started when the command started; `pipeline.verify` starts it if None."""
    policy_dir: Path = Path(".")
    """Relative paths in the policy (keys, reports, VEX) resolve against this folder."""


@dataclass
class CollectContext:
    """What a rule's `collect` may use: the registry client of the run and the options."""

    registry: RegistryClient
    options: VerifyOptions
    progress: Callable[[str], None] = lambda _msg: None


@record
class RunContext:
    """What a pure check may know beyond its own image: the clock and the run's other images."""

    now: datetime
    images: Mapping[str, ImageFacts] = field(default_factory=dict)
    """Every image of this run that resolved, by policy name (for cross-image rules)."""
    options: VerifyOptions = field(default_factory=VerifyOptions)


C = TypeVar("C", bound=RuleConfig)


@record
class RuleSpec(Generic[C]):
    """A rule: how to read its config, gather its evidence, and judge it."""

    id: str
    summary: str
    """One line: what the rule checks (policy validate, SARIF rule help)."""
    config: type[C]
    check: Callable[[ImageFacts, C, RunContext], list[Finding]]
    collect: Callable[[CollectContext, ImageFacts, C], Any] | None = None
    """I/O at the edge; its result is stored in `facts.extras[id]` before `check` runs.
    Raising ImgcheckError makes the rule `error` for that image only."""
    describe: Callable[[C], str] | None = None
    """One line on what this configuration checks (for `imgcheck policy validate`)."""
    needs_tags: bool = False
    """Whether the facts must include the repository's tags (tags, labels, size growth)."""


def not_implemented(rule_id: str) -> Callable[[ImageFacts, Any, RunContext], list[Finding]]:
    """A check for a rule whose implementation has not landed: always `error`, never a pass."""

    def check(_facts: ImageFacts, _config: Any, _run: RunContext) -> list[Finding]:
        return [Finding(Verdict.ERROR, f"rule '{rule_id}' is not implemented yet in this imgcheck version")]

    return check
