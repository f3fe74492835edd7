"""The user documentation lives in the repository and says what the code does.

docs/cli.md describes every option each command's `--help` lists, in that command's section;
docs/policy.md describes every key the policy loader reads, in that rule's section; the README and the
docs link only to files inside the repository, and those files exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer

from imgcheck.checks import all_rules
from imgcheck.cli import app
from imgcheck.policy.fields import field_types, init_fields
from imgcheck.policy.loader import _IMAGE_KEYS, _TOP_KEYS

ROOT = Path(__file__).resolve().parent.parent
CLI_DOC = ROOT / "docs" / "cli.md"
POLICY_DOC = ROOT / "docs" / "policy.md"


def _sections(text: str, level: str) -> dict[str, str]:
    """Markdown sections at one heading level, by the first code span of the heading (or its text)."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    out: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        span = re.search(r"`([^`]+)`", heading)
        out[span.group(1) if span else heading.strip()] = body
    return out


def _commands() -> Iterator[tuple[str, click.Command]]:
    root = typer.main.get_command(app)
    ctx = click.Context(root)

    def walk(group: click.Group, prefix: str, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None
            path = f"{prefix} {name}"
            yield path, command
            if isinstance(command, click.Group):
                yield from walk(command, path, click.Context(command, parent=ctx))

    assert isinstance(root, click.Group)
    yield from walk(root, "imgcheck", ctx)


def _documented_command(sections: dict[str, str], path: str) -> str | None:
    for heading, body in sections.items():
        if heading == path or heading.startswith(path + " "):
            return body
    return None


def test_every_command_and_option_is_in_docs_cli() -> None:
    sections = _sections(CLI_DOC.read_text(encoding="utf-8"), "##")
    missing: list[str] = []
    seen = 0
    for path, command in _commands():
        if isinstance(command, click.Group) and not command.invoke_without_command:
            continue  # `imgcheck policy` only groups its commands
        body = _documented_command(sections, path)
        if body is None:
            missing.append(f"{path}: no section")
            continue
        for param in command.params:
            names = param.opts if isinstance(param, click.Option) else [param.human_readable_name.upper()]
            if param.name == "help":
                continue
            seen += 1
            if not any(f"`{n}" in body or f"`{n.removesuffix('S')} ..." in body for n in names):
                missing.append(f"{path}: {'/'.join(names)}")
    assert seen > 40, seen  # the walk found the commands' options
    assert not missing, "docs/cli.md lacks: " + "; ".join(missing)


def _policy_keys() -> dict[str, list[str]]:
    """Rule id -> every key its config takes, nested keys dotted (`keyless.issuer`, `ignore.id`)."""
    out: dict[str, list[str]] = {}

    def walk(cls: type, prefix: str, keys: list[str]) -> None:
        for name in init_fields(cls):
            keys.append(prefix + name)
            tp = field_types(cls)[name]
            for arg in (tp, *_args(tp)):
                if isinstance(arg, type) and hasattr(arg, "__dataclass_fields__"):
                    walk(arg, f"{prefix}{name}.", keys)

    for rule_id, spec in all_rules().items():
        walk(spec.config, "", out.setdefault(rule_id, []))
    return out


def _args(tp: object) -> Iterator[object]:
    for arg in getattr(tp, "__args__", ()):
        yield arg
        yield from _args(arg)


def test_every_policy_key_is_in_docs_policy() -> None:
    text = POLICY_DOC.read_text(encoding="utf-8")
    rules = _sections(text, "###")
    missing: list[str] = []
    keys = _policy_keys()
    assert {"size", "vulnerabilities", "signature"} <= keys.keys()
    for rule_id, rule_keys in keys.items():
        body = rules.get(rule_id)
        if body is None:
            missing.append(f"rules.{rule_id}: no section")
            continue
        for key in rule_keys:
            documented = key.replace("ignore.", "ignore[].")
            if key in ("mode", "hint"):
                continue  # every rule takes them: documented once, above the rules
            if f"| `{documented}` |" not in body:
                missing.append(f"rules.{rule_id}.{documented}")
    top = _sections(text, "##")["The top level"]
    missing += [k for k in _TOP_KEYS if f"| `{k}` |" not in top]
    missing += [f"images[].{k}" for k in _IMAGE_KEYS if f"| `images[].{k}` |" not in top]
    assert "**`mode`**" in text and "**`hint`**" in text
    assert not missing, "docs/policy.md lacks: " + ", ".join(missing)


def test_policy_doc_example_is_the_tested_example() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", POLICY_DOC.read_text(encoding="utf-8"), re.S)
    example = ROOT / "tests" / "data" / "policies" / "spec-example.yaml"
    assert blocks[-1] == example.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))])
def test_docs_link_only_inside_the_repository(doc: str) -> None:
    path = ROOT / doc
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{doc} points outside the repository"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc}: {target} leaves the repository"
        assert resolved.exists(), f"{doc}: {target} does not exist"
