"""What every command shares: the one-line error and exit 2 (with an annotation on GitHub Actions)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from imgcheck.checks.interface import VerifyOptions
    from imgcheck.policy.model import Policy

EXIT_ERROR = 2


def fail(message: str) -> NoReturn:
    """One clear line on stderr and exit 2: could not verify."""
    typer.echo(f"imgcheck: error: {message}", err=True)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from imgcheck.ci.workflow_commands import command

        typer.echo(command("error", message, {"title": "imgcheck could not verify"}), err=True)
    raise typer.Exit(EXIT_ERROR)


def policy_and_options(
    policy: Path | None,
    *,
    registry: str | None,
    insecure: bool,
    platform: str | None,
    trivy_reports: Sequence[Path],
    timeout: float,
    no_smoke: bool = False,
    keep_images: bool = False,
) -> tuple[Policy, VerifyOptions]:
    """The policy (given, ./imgcheck.yaml, or the bundled k2) and the options every command passes on."""
    from imgcheck.checks.interface import VerifyOptions
    from imgcheck.deadline import Deadline
    from imgcheck.policy.loader import default_policy_path, load_policy

    deadline = Deadline(timeout)  # the whole run, from here: policy, registry, evidence, checks
    loaded = load_policy(policy if policy is not None else default_policy_path(Path.cwd()))
    options = VerifyOptions(
        registry_override=registry,
        insecure=insecure,
        platform=platform,
        no_smoke=no_smoke,
        keep_images=keep_images,
        trivy_reports=tuple(trivy_reports),
        timeout=timeout,
        deadline=deadline,
        policy_dir=loaded.base_dir,
    )
    return loaded, options
