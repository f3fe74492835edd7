"""The audit's two charts as PNG bytes: compressed size per release per image, verdict counts per night.

matplotlib is imported here only (with the Agg backend: no display, no GUI toolkit), so nothing else
in imgcheck pays for it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from imgcheck.audit.model import AuditReport
from imgcheck.errors import UsageError
from imgcheck.record import record

VERDICT_COLORS = {"pass": "#2e7d32", "fail": "#c62828", "error": "#6a1b9a"}


def require_pyplot() -> None:
    """Fail before the audit starts when the HTML report could not be drawn at its end."""
    _pyplot()


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


@record
class ChartData:
    """What the two panels draw, worked out without matplotlib (tests assert the order on this)."""

    versions: tuple[str, ...]
    """The shared x axis of the size panel: every release version of any image, lowest first (semver)."""
    sizes: Mapping[str, tuple[tuple[int, float], ...]]
    """image -> (position on `versions`, MB) per release, in axis order."""
    nights: tuple[str, ...]
    """One unique label per run, oldest first."""
    counts: Mapping[str, tuple[int, ...]]
    """verdict -> releases per night."""


def chart_data(report: AuditReport) -> ChartData:
    """Releases are semver releases only (a `sha-…` or `main-…` build names no version) and share one axis
    ordered by version, so v1.4.1 is drawn left of v1.4.3 whichever image published it first."""
    from imgcheck.semver import highest

    found: dict[str, list[tuple[Any, float]]] = {}
    names: dict[Any, str] = {}
    for release in report.releases:
        top = highest(release.tags, include_prereleases=True)
        if top is None or release.compressed_size is None:
            continue
        names.setdefault(top.version, top.name)
        found.setdefault(release.image, []).append((top.version, release.compressed_size / 1e6))
    axis = sorted(names)
    position = {v: n for n, v in enumerate(axis)}
    sizes = {
        image.image: tuple(sorted((position[v], mb) for v, mb in found[image.image]))
        for image in report.images
        if image.image in found
    }
    nights = list(report.history)
    return ChartData(
        versions=tuple(names[v] for v in axis),
        sizes=sizes,
        nights=night_labels([n.started_at for n in nights]),
        counts={v: tuple(int(n.counts.get(v, 0)) for n in nights) for v in VERDICT_COLORS},
    )


def night_labels(stamps: list[str]) -> tuple[str, ...]:
    """`2026-12-04 23:00`; to the second when two runs share a minute; numbered if they share a second."""
    minutes = [s[:16].replace("T", " ") for s in stamps]
    seconds = [s[:19].replace("T", " ") for s in stamps]
    labels = [m if minutes.count(m) == 1 else sec for m, sec in zip(minutes, seconds, strict=True)]
    out: list[str] = []
    seen: dict[str, int] = {}
    for label in labels:
        if labels.count(label) == 1:
            out.append(label)
            continue
        seen[label] = seen.get(label, 0) + 1
        out.append(f"{label} #{seen[label]}")
    return tuple(out)


def render_png(report: AuditReport) -> bytes:
    """One figure, two panels; empty data still gives a readable chart (with a note), never an error.
    Legends sit outside the plotting area, so they never cover a bar or a line."""
    plt = _pyplot()
    fig = figure(report)
    try:
        out = io.BytesIO()
        fig.savefig(out, format="png", bbox_inches="tight")
        return out.getvalue()
    finally:
        plt.close(fig)


def figure(report: AuditReport) -> Any:
    """The two panels drawn (the caller closes the figure)."""
    plt = _pyplot()
    data = chart_data(report)
    fig, (sizes, nights) = plt.subplots(1, 2, figsize=(13, 4.4), dpi=96)
    _sizes(sizes, data)
    _nights(nights, data)
    fig.tight_layout()
    return fig


def _sizes(ax: Any, data: ChartData) -> None:
    ax.set_title("Compressed size per release (MB)")
    for image, points in data.sizes.items():
        ax.plot([x for x, _ in points], [mb for _, mb in points], marker="o", label=_plain(image))
    if data.sizes:
        ax.set_xticks(range(len(data.versions)), [_plain(v) for v in data.versions])
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0)
        ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    else:
        ax.text(0.5, 0.5, "no semver releases verified", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("MB")


def _nights(ax: Any, data: ChartData) -> None:
    ax.set_title("Releases per verdict, per night")
    if not data.nights:
        ax.text(0.5, 0.5, "no history yet", ha="center", va="center", transform=ax.transAxes)
        return
    positions = range(len(data.nights))
    bottom = [0] * len(data.nights)
    for verdict, color in VERDICT_COLORS.items():
        values = data.counts[verdict]
        ax.bar(positions, values, bottom=bottom, color=color, label=verdict)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(positions, list(data.nights))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", borderaxespad=0)
    ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    ax.set_ylabel("releases")


def _plain(text: str) -> str:
    """Registry text shown as itself: matplotlib reads `$...$` in any label as math (and fails on bad math)."""
    return text.replace("$", r"\$")
