"""One Report model and its renderers, one module per format (adding a format touches one module)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from imgcheck.report.model import Report

Renderer = Callable[[Report], str]

FORMATS: dict[str, str] = {
    "table": "imgcheck.report.table",
    "json": "imgcheck.report.json_report",
    "junit": "imgcheck.report.junit",
    "sarif": "imgcheck.report.sarif",
    "markdown": "imgcheck.report.markdown",
}


def renderer(fmt: str) -> Renderer:
    """The `render(report) -> str` of a format, imported only when used."""
    module = importlib.import_module(FORMATS[fmt])
    render: Renderer = module.render
    return render
