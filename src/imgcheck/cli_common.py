"""What every command shares: the one-line error and exit 2 (with an annotation on GitHub Actions)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

if TYPE_CHECKING:
    from imgcheck.checks.interface import VerifyOptions
    from imgcheck.policy.model import Policy

EXIT_ERROR = 2
REGISTRY_HELP = (
    "Replace the registry of every policy image: HOST[:PORT], or http://HOST[:PORT] (plain HTTP) / "
    "https://HOST[:PORT] (TLS)."
)
JobsOption = Annotated[
    Optional[int],  # noqa: UP045 (as the other optional options: typer resolves the annotation itself)
    typer.Option(
        "--jobs",
        "-j",
        help="Images whose evidence (pulls, smoke runs, scans) is collected at once (default: one per image, "
        "up to the engine's CPU count but at least 4).",
    ),
]
"""`--jobs` of verify and audit: one declaration, so the two commands cannot drift apart."""


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
    jobs: int | None = None,
    quiet: bool = False,
    scan: bool | None = None,
) -> tuple[Policy, VerifyOptions]:
    """The policy (given, ./imgcheck.yaml, or the bundled k2) and the options every command passes on.
    Which policy ran is said on stderr when none was given (unless `quiet`). `scan` (verify, audit):
    `--scan`; trivy must then be there whenever the run will scan (exit 2 now with how to install it,
    not an error per image later)."""
    from imgcheck.checks.interface import VerifyOptions
    from imgcheck.deadline import Deadline

    if jobs is not None and jobs < 1:
        from imgcheck.errors import UsageError

        raise UsageError(f"--jobs must be at least 1 (images collecting evidence at once), got {jobs}")
    from imgcheck.policy.loader import default_policy_path, load_policy

    deadline = Deadline(timeout)  # the whole run, from here: policy, registry, evidence, checks
    if policy is None:
        policy = default_policy_path(Path.cwd())
        if not quiet:
            typer.echo(f"imgcheck: {_which_policy(policy)}", err=True)
    loaded = load_policy(policy)
    host, scheme = parse_registry_option(registry) if registry is not None else (None, None)
    options = VerifyOptions(
        registry_override=host,
        registry_scheme=scheme,
        insecure=insecure,
        platform=platform,
        no_smoke=no_smoke,
        keep_images=keep_images,
        trivy_reports=tuple(trivy_reports),
        timeout=timeout,
        deadline=deadline,
        policy_dir=loaded.base_dir,
        jobs=jobs,
        scan=bool(scan),
    )
    rules = (loaded.defaults, *(image.rules for image in loaded.images))
    if scan or (scan is not None and any(getattr(r.get("vulnerabilities"), "scan", False) for r in rules)):
        from imgcheck.vulns.scan import require_trivy  # only then: a metadata run imports no vulns code

        require_trivy(loaded, bool(scan))
    return loaded, options


def _which_policy(path: Path) -> str:
    if path.name == "imgcheck.yaml" and path.parent == Path.cwd():
        return "policy: ./imgcheck.yaml (no --policy given)"
    return f"policy: bundled {path.name} (no --policy and no ./imgcheck.yaml)"


def parse_registry_option(text: str) -> tuple[str, str | None]:
    """`--registry HOST[:PORT]`, or `http://HOST[:PORT]` (plain HTTP) / `https://HOST[:PORT]` (TLS):
    the host to use and the scheme asked for (None: imgcheck's default, plain HTTP only on loopback)."""
    from urllib.parse import urlsplit

    from imgcheck.errors import UsageError

    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme.lower() not in ("http", "https"):
        scheme = "?"
    host = rest.rstrip("/")
    try:
        port = urlsplit(f"//{host}").port  # validates the port
    except ValueError:
        port = -1
    bad_host = not host or any(c in host for c in "/?#@ ") or host.startswith(":") or port == -1
    if scheme == "?" or bad_host:
        raise UsageError(
            f"--registry {text!r}: give HOST[:PORT] (e.g. ghcr.io, 127.0.0.1:5000), "
            "or http://HOST[:PORT] for plain HTTP, https://HOST[:PORT] for TLS"
        )
    return host, scheme.lower() or None
