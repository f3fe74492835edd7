"""The audit's two charts as PNG bytes: compressed size per release per image, verdict counts per night.

matplotlib is imported here only (with the Agg backend: no display, no GUI toolkit), so nothing else
in imgcheck pays for it.
"""

from __future__ import annotations

import io
from typing import Any

from imgcheck.audit.model import AuditReport
from imgcheck.errors import UsageError

VERDICT_COLORS = {"pass": "#2e7d32", "fail": "#c62828", "error": "#6a1b9a"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "the HTML audit report needs matplotlib, which is not installed",
            hint="install the html extra: pip install 'imgcheck[html]'",
        ) from None
    return plt


def render_png(report: AuditReport) -> bytes:
    """One figure, two panels; empty data still gives a readable chart (with a note), never an error."""
    plt = _pyplot()
    fig, (sizes, nights) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=96)
    try:
        _sizes(sizes, report)
        _nights(nights, report)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)


def _sizes(ax: Any, report: AuditReport) -> None:
    ax.set_title("Compressed size per release (MB)")
    plotted = False
    for image in report.images:
        rows = sorted(
            (r for r in report.releases if r.image == image.image and r.compressed_size is not None),
            key=lambda r: r.created or "",
        )
        if not rows:
            continue
        ax.plot(
            [_plain(r.label) for r in rows],
            [(r.compressed_size or 0) / 1e6 for r in rows],
            marker="o",
            label=_plain(image.image),
        )
        plotted = True
    if plotted:
        ax.legend(loc="best", fontsize="small")
        ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    else:
        ax.text(0.5, 0.5, "no releases verified", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("MB")


def _nights(ax: Any, report: AuditReport) -> None:
    ax.set_title("Releases per verdict, per night")
    nights = list(report.history) or []
    if not nights:
        ax.text(0.5, 0.5, "no history yet", ha="center", va="center", transform=ax.transAxes)
        return
    labels = [n.started_at[:16].replace("T", " ") for n in nights]
    bottom = [0] * len(nights)
    for verdict, color in VERDICT_COLORS.items():
        values = [int(n.counts.get(verdict, 0)) for n in nights]
        ax.bar(labels, values, bottom=bottom, color=color, label=verdict)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.legend(loc="best", fontsize="small")
    ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    ax.set_ylabel("releases")


def _plain(text: str) -> str:
    """Registry text shown as itself: matplotlib reads `$...$` in any label as math (and fails on bad math)."""
    return text.replace("$", r"\$")
