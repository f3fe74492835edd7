"""The contract every rule implements (one module per rule under `imgcheck.checks`).

A rule is a `RuleSpec`: an id, a frozen `Config` dataclass (its policy keys, parsed by the policy
loader from the dataclass's annotations), an optional `collect` that does the rule's I/O at the edge
(engine runs, attachments, report files), and a pure `check` that turns facts into findings.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
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

_T = TypeVar("_T")


@record
class RuleConfig:
    """Keys every rule takes. `mode: warn` reports a failure as a warning; `hint` is appended to every
    failure of the rule (the one change that makes it pass, e.g. a workflow step)."""

    hint: str | None = None
    mode: Literal["enforce", "warn"] = "enforce"


@record
class Finding:
    """One verdict of one rule, for one image (and one platform, where that matters)."""

    verdict: Verdict
    message: str
    """What was expected, what was found, and what to do next."""
    platform: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def apply_mode(finding: Finding, config: RuleConfig) -> Finding:
    """`mode: warn` reports a failure as a warning; errors stay errors (they mean "not checked").
    A failure ends with the rule's `hint` (what makes it pass), warned or not."""
    if finding.verdict is not Verdict.FAIL:
        return finding
    warn = config.mode == "warn"
    message = f"{finding.message} (mode: warn)" if warn else finding.message
    if config.hint:
        message = f"{message}. To pass: {config.hint}"
    return dataclasses.replace(finding, verdict=Verdict.WARN if warn else Verdict.FAIL, message=message)


@record
class VerifyOptions:
    """Command-line choices that reach the edges (not the policy)."""

    registry_override: str | None = None
    registry_scheme: str | None = None
    """`http` or `https` when --registry named one (plain HTTP or TLS to that host); None: the default."""
    insecure: bool = False
    platform: str | None = None
    no_smoke: bool = False
    keep_images: bool = False
    trivy_reports: tuple[Path, ...] = ()
    scan: bool = False
    """`--scan`: run trivy on each digest (the vulnerabilities rule), as the policy's `scan: true` does."""
    timeout: float = 90.0
    """`--timeout`: the whole run's deadline in seconds (registry, pulls, smoke, scans, checks)."""
    deadline: Deadline | None = None
    """That deadline, started when the command started; `pipeline.verify` starts it if None."""
    policy_dir: Path = Path(".")
    """Relative paths in the policy (keys, reports, VEX) resolve against this folder."""
    jobs: int | None = None
    """How many images collect evidence (pulls, runs, scans) at once; None: one per image, up to the
    bound the run's rules set (smoke: the engine's CPUs, at least 4)."""

    @property
    def schemes(self) -> Mapping[str, str]:
        """The registry host -> scheme the command line asked for (for RegistryClient)."""
        if self.registry_override and self.registry_scheme:
            return {self.registry_override: self.registry_scheme}
        return {}


@dataclass
class CollectContext:
    """What a rule's `collect` may use: the registry client of the run and the options."""

    registry: RegistryClient
    options: VerifyOptions
    progress: Callable[[str], None] = lambda _msg: None
    shared: SharedWork = field(default_factory=lambda: SharedWork())
    """Work of this run that images share (one pull per digest); images collect on several threads."""
    images: Sequence[ImageFacts] = ()
    """Every image whose evidence this run collects: who else will ask for the same shared work."""


class SharedWork:
    """Run-scoped objects the collectors of several images share, made once (thread-safe), and closed
    when the run's collection ends (e.g. images pulled for several runs are removed after the last)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def get(self, key: str, make: Callable[[], _T]) -> _T:
        with self._lock:
            if key not in self._made:
                self._made[key] = make()
            value: _T = self._made[key]
            return value

    def close(self) -> None:
        """Close every shared object that has a `close` (in the order they were made)."""
        with self._lock:
            made, self._made = list(self._made.values()), {}
        for value in made:
            close = getattr(value, "close", None)
            if callable(close):
                close()


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
    collect_bound: Callable[[C, VerifyOptions], int | None] | None = None
    """How many images may run this collect at once when --jobs is not given (smoke: the engine's CPU
    count); None, or a None result: no bound of its own. Called only for rules the run collects."""


def not_implemented(rule_id: str) -> Callable[[ImageFacts, Any, RunContext], list[Finding]]:
    """A check for a rule whose implementation has not landed: always `error`, never a pass."""

    def check(_facts: ImageFacts, _config: Any, _run: RunContext) -> list[Finding]:
        return [Finding(Verdict.ERROR, f"rule '{rule_id}' is not implemented yet in this imgcheck version")]

    return check
