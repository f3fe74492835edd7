"""The audit report's shape on any night, from the model alone: the Markdown fits a GitHub comment
however big the night, the charts order releases by version on one axis and label every run apart, and
what a person reads is a sentence (no HTML entities on a terminal, no "0 s old")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imgcheck.audit.chart import chart_data, night_labels
from imgcheck.audit.model import AuditReport, DriftItem, ImageInventory, Night, Release
from imgcheck.audit.render_markdown import LIMIT, cell, render_markdown
from imgcheck.report.model import CheckResult
from imgcheck.verdict import Verdict
from imgcheck.vulns.message import age_text
from imgcheck.vulns.model import ScanReport

IMAGES = ("producer", "consumer", "query-engine")


def digest(n: int, image: str) -> str:
    return "sha256:" + f"{IMAGES.index(image)}{n:063x}"


def huge_night(per_image: int = 1000) -> AuditReport:
    """3 × 1,000 releases, a third failing with long messages, and a drift row per failing release."""
    releases, inventories, drift = [], [], []
    for image in IMAGES:
        tags: dict[str, str] = {}
        for n in range(per_image):
            d = digest(n, image)
            release_tags = (f"v1.{n // 100}.{n % 100}", f"sha-{n:07x}")
            tags.update(dict.fromkeys(release_tags, d))
            bad = n % 3 == 0
            checks = (
                CheckResult("size", Verdict.PASS, "compressed size 1.1 MB ≤ 500 MB", "linux/amd64"),
                CheckResult(
                    "labels",
                    Verdict.FAIL if bad else Verdict.PASS,
                    ("org.opencontainers.image.version='x' but no semver tag points at this digest; " * 4)
                    if bad
                    else "labels OK",
                ),
            )
            releases.append(
                Release(image, "r.example", f"org/{image}", d, release_tags, "2026-11-20T10:00:00Z", 1_100_000, checks)
            )
            if bad:
                drift.append(
                    DriftItem(
                        "verdict-regressed",
                        "fail",
                        image,
                        d,
                        f"{image} v1.{n // 100}.{n % 100}: labels regressed (pass → fail): " + "x" * 200,
                        {"rule": "labels"},
                        group="regression",
                        releases=(release_tags[0],),
                        fix="fix the labels",
                    )
                )
        inventories.append(ImageInventory(image, "r.example", f"org/{image}", tags, tuple(tags.values())))
    return AuditReport(
        "0.1.0",
        "p.yaml",
        "2026-12-05T23:00:00Z",
        tuple(inventories),
        tuple(releases),
        tuple(drift),
        previous_run="2026-12-04T23:00:00Z",
        drift_checked=True,
    )


def test_markdown_of_a_huge_night_fits_a_github_comment_and_says_where_the_rest_is() -> None:
    report = huge_night()
    text = render_markdown(report)
    assert len(text) <= LIMIT < 65_536
    assert text.index("## To do") < text.index("## Drift") < text.index("## Releases")
    assert "more causes do not fit here" in text and "the full report is the JSON or HTML one" in text
    assert "audit-report" in text  # the workflow artifact that holds it
    # Tables are cut between rows, never inside one; every <details> opened is closed.
    assert all(line.endswith("|") for line in text.splitlines() if line.startswith("| "))
    assert text.count("<details>") == text.count("</details>")
    todo = text[text.index("## To do") : text.index("## Drift")]
    assert len([line for line in todo.splitlines() if line[:1].isdigit()]) == 5  # 3 causes, "N more", failing


def test_a_small_night_is_whole_and_folds_passing_releases() -> None:
    report = huge_night(per_image=6)
    text = render_markdown(report)
    assert "do not fit" not in text
    assert "<details><summary>producer: 4 passing releases</summary>" in text
    assert len([line for line in text.splitlines() if line.startswith("| ❌ fail | verdict-regressed")]) == 6


def test_chart_releases_are_ordered_by_version_on_one_axis_and_runs_are_labelled_apart() -> None:
    def rel(image: str, n: int, tags: tuple[str, ...], size: int) -> Release:
        return Release(image, "r", f"o/{image}", digest(n, image), tags, "2026-11-20T10:00:00Z", size)

    releases = (
        rel("producer", 1, ("v1.4.3", "latest"), 3_000_000),  # first seen: the highest
        rel("producer", 2, ("v1.4.1",), 1_000_000),
        rel("consumer", 3, ("v1.4.2",), 2_000_000),
        rel("consumer", 4, ("v1.10.0",), 4_000_000),  # semver, not text: after v1.4.x
        rel("consumer", 5, ("sha-3f2a9c1", "main"), 9_000_000),  # a build, not a release
    )
    images = tuple(ImageInventory(i, "r", f"o/{i}") for i in ("producer", "consumer"))
    nights = (
        Night("2026-12-04T23:00:05Z", {"pass": 3}),
        Night("2026-12-04T23:00:40Z", {"pass": 2, "fail": 1}),  # the same minute
        Night("2026-12-05T23:00:00Z", {"fail": 3}),
    )
    data = chart_data(AuditReport("0", "p", "2026-12-05T23:00:00Z", images, releases, history=nights))
    assert data.versions == ("1.4.1", "1.4.2", "1.4.3", "1.10.0")
    assert data.sizes["producer"] == ((0, 1.0), (2, 3.0))
    assert data.sizes["consumer"] == ((1, 2.0), (3, 4.0))
    assert len(set(data.nights)) == 3 and data.nights[0] == "2026-12-04 23:00:05"
    assert data.counts["fail"] == (0, 1, 3)
    assert night_labels(["2026-12-04T23:00:05Z", "2026-12-04T23:00:05.5Z"]) == (
        "2026-12-04 23:00:05 #1",
        "2026-12-04 23:00:05 #2",
    )


def test_markdown_cells_read_on_a_terminal_show_no_html_entities() -> None:
    assert cell("pass → fail, size 2 MB > 1 MB & growing") == "pass → fail, size 2 MB > 1 MB & growing"
    assert cell("a -> b") == "a -> b"
    assert cell("<img src=x>") == "&lt;img src=x>" and cell("&amp;") == "&amp;amp;"  # no tag, no entity can form


def test_a_report_written_just_now_is_said_so() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)

    def scanned(seconds: float) -> ScanReport:
        return ScanReport("r.json", "trivy", now - timedelta(seconds=seconds), "CreatedAt", "x", (), None, ())

    assert age_text([scanned(0.2)], now) == "report written just now"
    assert age_text([scanned(40)], now) == "report 40 s old"
    assert "0 s" not in age_text([scanned(0.0), scanned(0.1)], now)


def test_chart_legends_sit_outside_the_data() -> None:
    """Drawn for real (matplotlib, Agg): no legend box overlaps the plotting area it labels."""
    import matplotlib.pyplot as plt

    from imgcheck.audit.chart import figure

    report = huge_night(per_image=6)
    nights = tuple(Night(f"2026-12-0{n}T23:00:00Z", {"pass": 12, "fail": 6}) for n in range(1, 4))
    fig = figure(AuditReport("0", "p", "2026-12-05T23:00:00Z", report.images, report.releases, history=nights))
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            assert legend is not None
            box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
            assert box.x0 >= area.x1  # right of the axes, not over the lines or bars
    finally:
        plt.close(fig)
