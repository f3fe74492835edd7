"""The `imgcheck` command: parse, call the pipeline, render, exit code. Thin on purpose.

Heavy modules (the pipeline, registry, docker, sigstore) are imported inside commands so that
`imgcheck --version` and `--help` stay fast. No `from __future__ import annotations` here: typer
would evaluate every string annotation twice per command on every start.
"""

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import click
import typer
from typer.core import TyperArgument, TyperGroup

from imgcheck import __version__
from imgcheck.cli_common import REGISTRY_HELP, JobsOption, policy_and_options
from imgcheck.cli_common import fail as _fail

if TYPE_CHECKING:
    from imgcheck.checks.interface import VerifyOptions
    from imgcheck.policy.model import Policy
    from imgcheck.progress import StderrProgress


class _RootGroup(TyperGroup):
    """The `imgcheck` group, with `audit` and `diff` (imgcheck.audit.cli) built only when they are named
    or listed (`--help`): typer builds every command's options up front, ~5 ms of each `verify` for those two."""

    lazy = ("audit", "diff")

    def _load_lazy(self) -> None:
        if all(name in self.commands for name in self.lazy):
            return
        from imgcheck.audit.cli import register

        mounted = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        register(mounted)
        built = typer.main.get_command(mounted)
        assert isinstance(built, click.Group)
        for name, command in built.commands.items():
            self.add_command(command, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_lazy()
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: isinstance(self.commands[n], click.Group))  # typer: commands, then groups

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:  # `audit`, `diff`, or a typo whose "did you mean" must offer them
            self._load_lazy()
            found = super().get_command(ctx, cmd_name)
        return found


def _keep_argument_help() -> None:
    """click 8.5 gave `Argument` its own `help`, set in `Parameter.__init__` after typer 0.19's
    TyperArgument stored the text, so every argument's help went missing from `--help`: store it again."""
    init = TyperArgument.__init__
    if getattr(init, "keeps_help", False):
        return

    def keep(self: TyperArgument, *args: object, help: str | None = None, **kwargs: object) -> None:
        init(self, *args, help=help, **kwargs)  # type: ignore[arg-type]
        self.help = help

    keep.keeps_help = True  # type: ignore[attr-defined]
    TyperArgument.__init__ = keep  # type: ignore[method-assign]


_keep_argument_help()

app = typer.Typer(
    name="imgcheck",
    help="Decide whether container images are fit to release.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_RootGroup,
)
policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"imgcheck {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        Optional[bool],  # noqa: UP045 - typer needs Optional here
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """imgcheck: a release gate for container images."""


def _parse_report_specs(specs: list[str]) -> list[tuple[str, Path]]:
    from imgcheck.errors import UsageError
    from imgcheck.report import FORMATS

    parsed = []
    for spec in specs:
        fmt, sep, file = spec.partition("=")
        if not sep or not file:
            raise UsageError(f"--report {spec!r}: expected FORMAT=FILE, e.g. --report junit=out.xml")
        if fmt not in FORMATS:
            raise UsageError(f"--report {spec!r}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        parsed.append((fmt, Path(file)))
    return parsed


@app.command()
def verify(
    targets: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(
            help="A tag (latest, v1.4.2, main-3f2a9c1) checked on every image of the policy, or a full reference "
            "(ghcr.io/org/repo:tag, repo@sha256:…) for that image alone; several may be given. Default: latest.",
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--policy", envvar="IMGCHECK_POLICY", help="Policy file (default ./imgcheck.yaml, else bundled k2)."
        ),
    ] = None,
    registry: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--registry", envvar="IMGCHECK_REGISTRY", help=REGISTRY_HELP),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json, junit, sarif, markdown (report on stdout).")
    ] = "table",
    report: Annotated[Optional[list[str]], typer.Option("--report", help="Also write FORMAT=FILE; repeatable.")] = None,  # noqa: UP045
    trivy_report: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--trivy-report", help="A Trivy JSON report or a folder of them; repeatable."),
    ] = None,
    scan: Annotated[
        bool,
        typer.Option(
            "--scan", help="Run trivy on each digest and judge its report (reused while its DB is unchanged)."
        ),
    ] = False,
    no_smoke: Annotated[bool, typer.Option("--no-smoke", help="Skip container runs (smoke reports skip).")] = False,
    platform: Annotated[Optional[str], typer.Option("--platform", help="Verify only this OS/ARCH.")] = None,  # noqa: UP045
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow plain HTTP to non-loopback registries.")] = False,
    keep_images: Annotated[bool, typer.Option("--keep-images", help="Keep images pulled for smoke runs.")] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Deadline in seconds for the whole run: reads, pulls, smoke runs, scans."),
    ] = 600.0,
    jobs: JobsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Less on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More on stderr (tracebacks on errors).")] = False,
) -> None:
    """Verify images against a policy and print verdicts (exit 0 pass, 1 fail, 2 could not verify)."""
    from imgcheck.errors import ImgcheckError, UsageError

    _Ending.quick = True

    from imgcheck.progress import StderrProgress

    progress = StderrProgress(quiet, verbose)
    try:
        from imgcheck.report import FORMATS

        if output_format not in FORMATS:
            raise UsageError(f"--format {output_format!r}: unknown (known: {', '.join(FORMATS)})")
        report_files = _parse_report_specs(report or [])
        if timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds")
        loaded, options = policy_and_options(
            policy,
            registry=registry,
            insecure=insecure,
            platform=platform,
            trivy_reports=trivy_report or (),
            timeout=timeout,
            no_smoke=no_smoke,
            keep_images=keep_images,
            jobs=jobs,
            scan=scan,
            quiet=quiet,
        )
        result, code = _run_verify(loaded, targets or [], options, progress)
        progress.stop()
        _emit(result, output_format, report_files)
    except ImgcheckError as err:
        progress.stop()
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(str(err))
    except KeyboardInterrupt:
        progress.stop()
        _fail("interrupted")
    except Exception as err:
        progress.stop()
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(f"internal error: {type(err).__name__}: {err} (run with --verbose for details)")
    raise typer.Exit(code)


def _run_verify(
    loaded: "Policy", targets: list[str], options: "VerifyOptions", progress: "StderrProgress"
) -> tuple[object, int]:
    from imgcheck.pipeline import verify as run_pipeline
    from imgcheck.verdict import exit_code

    result = run_pipeline(loaded, targets, options, progress=progress)
    return result, exit_code(result.verdict)


def _emit(result: object, output_format: str, report_files: list[tuple[str, Path]]) -> None:
    """Write the requested files first, then stdout: a failed write is an error before any verdict prints."""
    from imgcheck.errors import UsageError
    from imgcheck.report import renderer
    from imgcheck.report.model import Report

    assert isinstance(result, Report)
    for image in result.images:
        if image.error is not None:  # the contract: what could not be verified is said on stderr, one line each
            typer.echo(f"imgcheck: error: {image.name} ({image.reference}): {image.error}", err=True)
    for fmt, path in report_files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(renderer(fmt)(result), encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write --report {fmt}={path}: {err.strerror or err}") from None
    if output_format == "table":
        from imgcheck.report.table import render as render_table

        terminal = sys.stdout.isatty()
        color = terminal and "NO_COLOR" not in os.environ
        sys.stdout.write(render_table(result, color=color, terminal=terminal))
    else:
        sys.stdout.write(renderer(output_format)(result))
    sys.stdout.flush()
    if os.environ.get("GITHUB_ACTIONS") == "true":  # publish checks this too; elsewhere, skip the import
        from imgcheck.ci.github import publish

        publish(result)  # step summary and annotations on stderr


@policy_app.command("validate")
def policy_validate(
    file: Annotated[Path, typer.Argument(help="The policy YAML file to check (e.g. imgcheck.yaml).")],
) -> None:
    """Load and validate a policy and every file it names (keys, trusted roots, VEX, ignore files); print
    what it checks (exit 2 naming the key and line, or the file, that is wrong)."""
    from imgcheck.errors import ImgcheckError

    try:
        from imgcheck.policy.loader import explain, load_policy
        from imgcheck.policy.referenced import check_named_files

        if not file.is_file():
            what = "a folder, not a policy file" if file.is_dir() else "no such policy file"
            _fail(f"{file}: {what} (usage: imgcheck policy validate FILE)")
        loaded = load_policy(file)
        named = check_named_files(loaded)
        lines = explain(loaded)
    except ImgcheckError as err:
        _fail(str(err))
    files = f" ({named} file{'s' if named != 1 else ''} it names read)" if named else ""
    typer.echo(f"{file}: valid{files}")
    for line in lines:
        typer.echo(line)


SHORT_RUN_GC_THRESHOLDS = (10_000, 10, 10)
"""Python's defaults are (700, 10, 10): a young-generation collection every 700 net allocations, most of
them during imports, of objects that live until exit. Only the first threshold is raised (the older
generations keep their default cadence relative to it)."""


class _Ending:
    """Whether the command that ran may end with `quick_exit`: set by commands whose every file is written
    and closed before they return (verify: reports through write_text, the step summary through `with`)."""

    quick = False


def main() -> None:
    """Console entry point; usage errors from typer/click exit 2 as the contract says.

    The collector is tuned for a command that runs and exits: collections are rarer (cycles are still
    collected, so a long audit's memory stays bounded), and everything alive at the end is frozen so
    the interpreter's exit does not traverse it all again (~15 ms of every run). Output is written and
    files are closed before this returns; nothing imgcheck leaves to exit depends on collecting cycles.
    A `verify` ends without the interpreter's teardown at all when nothing needs it (see quick_exit)."""
    gc.set_threshold(*SHORT_RUN_GC_THRESHOLDS)
    try:
        app()
    except SystemExit as done:
        if _Ending.quick:
            quick_exit(done.code)
        raise
    finally:
        gc.freeze()


def quick_exit(code: object) -> None:
    """End the process now, skipping the interpreter's teardown (every module and object freed one by
    one: ~4 ms of a ~130 ms verify), but only when teardown has nothing to do: stdout and stderr flush
    cleanly, no `atexit` callback is registered (tempfile's and logging's cleanups register one) and no
    other non-daemon thread runs. Otherwise it returns and Python exits as usual. mypy ends the same way."""
    import atexit
    import threading

    if code is not None and not isinstance(code, int):
        return  # a message to print: SystemExit's own handling does that
    pending = getattr(atexit, "_ncallbacks", None)
    if pending is None or pending() != 0:
        return
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed pipe: Python's own exit reports it
    os._exit(code or 0)


if __name__ == "__main__":
    main()
