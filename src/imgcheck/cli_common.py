"""What every command shares: the one-line error and exit 2 (with an annotation on GitHub Actions)."""

from __future__ import annotations

import os
from typing import NoReturn

import typer

EXIT_ERROR = 2


def fail(message: str) -> NoReturn:
    """One clear line on stderr and exit 2: could not verify."""
    typer.echo(f"imgcheck: error: {message}", err=True)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        from imgcheck.ci.workflow_commands import command

        typer.echo(command("error", message, {"title": "imgcheck could not verify"}), err=True)
    raise typer.Exit(EXIT_ERROR)
