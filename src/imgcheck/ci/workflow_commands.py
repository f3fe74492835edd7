"""GitHub Actions workflow commands (`::error title=…::message`), escaped as the runner requires.

The runner reads commands from stdout and stderr line by line, so a message must never contain a
raw newline (it could start a command of its own); property values also must not contain the `:`
and `,` that delimit them.
"""

from __future__ import annotations

from collections.abc import Mapping


def escape_data(value: str) -> str:
    """The message part: `%`, CR and LF percent-encoded (`%` first, so nothing is encoded twice)."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A property value: as data, plus `:` and `,`, which separate properties."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, properties: Mapping[str, str | int | None] | None = None) -> str:
    """One command line, e.g. `::warning file=imgcheck.yaml,title=producer size::too big`."""
    props = ",".join(
        f"{key}={escape_property(str(value))}" for key, value in (properties or {}).items() if value is not None
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"
