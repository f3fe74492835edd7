"""Text from registries, made safe to print in a terminal or a CI log."""

from __future__ import annotations


def one_line(text: str) -> str:
    """One line, no terminal controls: reports quote registry data (labels, env names, tags), and an
    escape sequence in a label must not recolour or rewrite the reader's terminal or CI log. Controls
    are shown escaped (`\\x1b`), not dropped, so the reader still sees that something odd was there."""
    if text.isprintable():
        return text
    flat = " ".join(text.split())
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in flat)
