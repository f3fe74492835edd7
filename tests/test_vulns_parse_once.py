"""A report file is parsed once per process while it is unchanged (a `--trivy-report` folder is handed to
every image), and parsed again as soon as it changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imgcheck.errors import InputError
from imgcheck.vulns import files

DIGEST = "sha256:" + "ab" * 32


def report(path: Path, severity: str) -> Path:
    finding = {"VulnerabilityID": "CVE-2024-1", "PkgName": "zlib", "InstalledVersion": "1", "Severity": severity}
    doc = {
        "SchemaVersion": 2,
        "CreatedAt": "2026-06-01T00:00:00Z",
        "ArtifactName": f"ghcr.io/acme/app@{DIGEST}",
        "Results": [{"Target": "app", "Vulnerabilities": [finding]}],
    }
    path.write_text(json.dumps(doc))
    return path


def test_the_same_unchanged_file_is_parsed_once_and_shared(tmp_path: Path) -> None:
    files.forget_parsed_reports()
    path = report(tmp_path / "app.trivy.json", "HIGH")
    first = files.load_reports((tmp_path,)).reports
    second = files.load_reports((tmp_path,)).reports
    assert first[0] is second[0]  # one parse, one object
    assert files.load_report_file(path) is not first[0]  # outside a folder is its own entry (its own errors)


def test_a_changed_file_is_parsed_again(tmp_path: Path) -> None:
    files.forget_parsed_reports()
    path = report(tmp_path / "app.trivy.json", "HIGH")
    assert files.load_report_file(path).findings[0].severity == "HIGH"  # type: ignore[union-attr]
    stat = path.stat()
    report(path, "CRITICAL")  # same size: the inode's mtime tells the change
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert files.load_report_file(path).findings[0].severity == "CRITICAL"  # type: ignore[union-attr]
    path.write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):  # a broken file is never served from memory
        files.load_report_file(path)
