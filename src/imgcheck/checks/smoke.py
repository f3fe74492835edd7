"""smoke: run the image with `--version` in a locked-down container (issue: smoke runs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from imgcheck.checks.interface import RuleConfig, RuleSpec, not_implemented


@dataclass(frozen=True)
class Config(RuleConfig):
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] = ("--version",)
    expect_exit: int = 0
    expect_output: str | None = None
    timeout: timedelta = timedelta(seconds=30)


RULE = RuleSpec(
    id="smoke",
    summary="runs the image with args in a locked-down container and checks exit code and output",
    config=Config,
    check=not_implemented("smoke"),
)
