"""Registry data in human-facing reports: a label or env name cannot drive the reader's terminal, CI log or
rendered Markdown (escape sequences shown as text, HTML and emphasis escaped, one line per entry)."""

from __future__ import annotations

from imgcheck.audit.diff import Change, DiffReport, ImageDiff
from imgcheck.audit.diff_render import render_markdown, render_table
from imgcheck.audit.render_markdown import cell
from imgcheck.report.text import one_line

HOSTILE = "ok\x1b[2J\x1b[31m<img src=x onerror=alert(1)>\nsecond line **bold** \u202e"


def hostile_diff() -> DiffReport:
    image = ImageDiff(
        "producer",
        "repo:v1",
        "repo:v2",
        "sha256:" + "a" * 64,
        "sha256:" + "b" * 64,
        labels=(Change("org.opencontainers.image.description", "plain", HOSTILE),),
    )
    return DiffReport("v1", "v2", (image,))


def test_one_line_shows_controls_and_folds_lines() -> None:
    assert one_line("plain text ≤ 500 MB") == "plain text ≤ 500 MB"
    out = one_line(HOSTILE)
    assert "\x1b" not in out and "\n" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out and "\\x202e" in out


def test_diff_table_is_one_line_per_change_with_no_terminal_controls() -> None:
    text = render_table(hostile_diff())
    assert "\x1b" not in text and "\u202e" not in text
    label_lines = [line for line in text.splitlines() if "image.description" in line]
    assert len(label_lines) == 1 and "second line" in label_lines[0]


def test_diff_markdown_escapes_html_and_emphasis() -> None:
    text = render_markdown(hostile_diff())
    assert "<img" not in text and "&lt;img" in text
    assert "**bold**" not in text and "\\*\\*bold\\*\\*" in text
    assert "\x1b" not in text


def test_audit_markdown_cell_escapes_html_pipes_and_controls() -> None:
    out = cell("a | b " + HOSTILE)
    assert "\\|" in out and "<img" not in out and "\x1b" not in out and "\n" not in out


def test_diff_growth_is_one_line_per_platform_naming_it() -> None:
    """Two platforms that both pass: two lines that say which platform each is, not two identical ones."""
    image = ImageDiff(
        "producer",
        "repo:v1",
        "repo:v2",
        "sha256:" + "a" * 64,
        "sha256:" + "b" * 64,
        growth=(
            ("pass", "grew +0.4% vs v1 (limit 10%)", "linux/amd64"),
            ("pass", "grew +0.4% vs v1 (limit 10%)", "linux/arm64"),
        ),
    )
    for text in (render_table(DiffReport("v1", "v2", (image,))), render_markdown(DiffReport("v1", "v2", (image,)))):
        lines = [line for line in text.splitlines() if "growth" in line]
        assert len(lines) == 2 and len(set(lines)) == 2
        assert "linux/amd64" in lines[0] and "linux/arm64" in lines[1]
