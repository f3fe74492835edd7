"""The `imgcheck audit`, `imgcheck audit merge` and `imgcheck diff` commands, mounted by `register`.

Only typer is imported here; the audit machinery loads inside the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from imgcheck.cli_common import REGISTRY_HELP, JobsOption, policy_and_options
from imgcheck.cli_common import fail as _fail

audit_app = typer.Typer(
    help="Nightly registry audit: every tag, history and drift; `audit merge` joins shard reports.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _reports(specs: list[str] | None) -> list[tuple[str, Path]]:
    from imgcheck.errors import UsageError

    out = []
    for spec in specs or []:
        fmt, sep, file = spec.partition("=")
        if not sep or not file:
            raise UsageError(f"--report {spec!r}: expected FORMAT=FILE, e.g. --report html=audit.html")
        out.append((fmt, Path(file)))
    return out


def _say(verbose: bool) -> Callable[[str], None] | None:
    return (lambda m: typer.echo(f"imgcheck: {m}", err=True)) if verbose else None


@audit_app.callback(invoke_without_command=True)
def audit_command(
    ctx: typer.Context,
    policy: Annotated[Optional[Path], typer.Option("--policy", envvar="IMGCHECK_POLICY", help="Policy file.")] = None,  # noqa: UP045
    registry: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--registry", envvar="IMGCHECK_REGISTRY", help=REGISTRY_HELP),
    ] = None,
    tags: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--tags", help="Only the newest N semver releases (plus latest); default: every tag."),
    ] = None,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--since", help="Only images created on or after DATE (2026-11-01 or RFC 3339)."),
    ] = None,
    smoke: Annotated[
        str, typer.Option("--smoke", help="Run the smoke rule for: none (default), latest (newest release), all.")
    ] = "none",
    history: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--history", help="SQLite history (default $XDG_STATE_HOME/imgcheck/history.sqlite)."),
    ] = None,
    no_history: Annotated[bool, typer.Option("--no-history", help="Keep no history: no drift, no cache.")] = False,
    shard: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--shard", help="Audit only shard I of N (I/N, by digest); merge with `audit merge`."),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="markdown (default), json, html.")] = "markdown",
    report: Annotated[Optional[list[str]], typer.Option("--report", help="Also write FORMAT=FILE; repeatable.")] = None,  # noqa: UP045
    trivy_report: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--trivy-report", help="A Trivy JSON report or a folder of them; repeatable."),
    ] = None,
    scan: Annotated[
        bool,
        typer.Option("--scan", help="Re-scan every release with trivy's current DB (reused while it is unchanged)."),
    ] = False,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Audit only this OS/ARCH.")] = None,  # noqa: UP045
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to non-loopback registries.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline in seconds for the whole run.")] = 1800.0,
    jobs: JobsOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Progress on stderr.")] = False,
) -> None:
    """Nightly registry audit: every tag of every image, each digest verified once, with history and drift
    (exit 0 all fine, 1 a failing release or bad drift, 2 could not audit)."""
    if ctx.invoked_subcommand is not None:
        return
    from imgcheck.errors import ImgcheckError

    try:
        from imgcheck.audit.command import run_audit

        loaded, options = policy_and_options(
            policy,
            registry=registry,
            insecure=insecure,
            platform=platform,
            trivy_reports=trivy_report or (),
            timeout=timeout,
            no_smoke=smoke == "none",
            jobs=jobs,
            scan=scan,
        )
        code = run_audit(
            loaded,
            options,
            tags=tags,
            since=since,
            smoke=smoke,
            history=history,
            no_history=no_history,
            shard=shard,
            output_format=output_format,
            report_files=_reports(report),
            progress=_say(verbose),
        )
    except ImgcheckError as err:
        _fail(str(err))
    raise typer.Exit(code)


@audit_app.command("merge")
def merge_command(
    paths: Annotated[list[Path], typer.Argument(help="Shard reports (audit --shard I/N --format json).")],
    history: Annotated[Optional[Path], typer.Option("--history", help="SQLite history to compare and update.")] = None,  # noqa: UP045
    no_history: Annotated[bool, typer.Option("--no-history", help="Keep no history: no drift.")] = False,
    output_format: Annotated[str, typer.Option("--format", help="markdown (default), json, html.")] = "markdown",
    report: Annotated[Optional[list[str]], typer.Option("--report", help="Also write FORMAT=FILE; repeatable.")] = None,  # noqa: UP045
) -> None:
    """Merge the shard reports of one audit into one report; drift and history as a whole audit."""
    from imgcheck.errors import ImgcheckError

    try:
        from imgcheck.audit.command import run_merge

        code = run_merge(
            paths,
            history=history,
            no_history=no_history,
            output_format=output_format,
            report_files=_reports(report),
        )
    except ImgcheckError as err:
        _fail(str(err))
    raise typer.Exit(code)


def diff_command(
    old: Annotated[str, typer.Argument(help="The old release: a tag (v1.4.1) or a full reference.")],
    new: Annotated[str, typer.Argument(help="The new release: a tag (v1.4.2) or a full reference.")],
    policy: Annotated[Optional[Path], typer.Option("--policy", envvar="IMGCHECK_POLICY", help="Policy file.")] = None,  # noqa: UP045
    registry: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--registry", envvar="IMGCHECK_REGISTRY", help=REGISTRY_HELP),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table (default), json, markdown.")] = "table",
    trivy_report: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--trivy-report", help="Trivy JSON reports (files or folders) for both releases; repeatable."),
    ] = None,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Compare only this OS/ARCH.")] = None,  # noqa: UP045
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to non-loopback registries.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline in seconds for the whole run.")] = 90.0,
) -> None:
    """What changed between two releases of each image: sizes per layer, labels, config, env names,
    SBOM packages, vulnerabilities (exit 1 when the new release fails size.max_growth, 2 could not compare)."""
    from imgcheck.errors import ImgcheckError

    try:
        from imgcheck.audit.diff_render import run_diff

        loaded, options = policy_and_options(
            policy,
            registry=registry,
            insecure=insecure,
            platform=platform,
            trivy_reports=trivy_report or (),
            timeout=timeout,
        )
        code = run_diff(loaded, options, old, new, output_format=output_format)
    except ImgcheckError as err:
        _fail(str(err))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Mount `audit` (with `audit merge`) and `diff` on the main `imgcheck` app."""
    app.add_typer(audit_app, name="audit")
    app.command("diff")(diff_command)
