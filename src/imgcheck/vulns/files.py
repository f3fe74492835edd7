"""Reading report, ignore and VEX files at the edge: bounded, and every failure an InputError.

A folder may hold reports for many images (and other files): files that decode as JSON but are
not scanner reports are skipped and listed; a file that claims to be a Trivy report but is broken
(truncated, wrong types, another SchemaVersion) is an error, because it may be this image's report.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

from imgcheck.errors import InputError
from imgcheck.record import record
from imgcheck.vulns.model import ScanReport
from imgcheck.vulns.sarif import looks_like_sarif, parse_sarif
from imgcheck.vulns.trivy_json import looks_like_trivy_json, parse_trivy_json

MAX_REPORT_BYTES = 256 * 1024 * 1024
"""Largest report we read (a 10,000-finding Trivy report is ~30 MB)."""
MAX_SIDE_FILE_BYTES = 16 * 1024 * 1024
"""Largest ignore or VEX file."""
MAX_FOLDER_FILES = 10_000
_REPORT_NAME = re.compile(r"\.(json|sarif)(\.golden)?$|\.sarif\.json$", re.IGNORECASE)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def read_bytes(path: Path, limit: int, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(
                f"{path}: {what} is {size} bytes, over the {limit} byte limit",
                hint="is this the right file? split the scan per image",
            )
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise InputError(f"{path}: {what} grew over the {limit} byte limit while being read")
    return data


def decode_json(data: bytes, source: str, what: str) -> object:
    """json.loads with the failures a hostile or truncated file can cause turned into InputError."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError(f"{source}: {what} nests too deeply to be a real report") from None
    except UnicodeDecodeError:
        raise InputError(f"{source}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source}: {what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            hint="truncated or corrupt? re-run trivy and keep the whole file",
        ) from None
    except ValueError as exc:
        raise InputError(f"{source}: {what} is not valid JSON ({exc})") from None


def parse_report_document(doc: object, source: str, file_time: datetime | None) -> ScanReport | None:
    """A decoded document as a ScanReport, or None when it is no scanner report at all."""
    if looks_like_trivy_json(doc) or (
        isinstance(doc, list) and doc and isinstance(doc[0], dict) and "Target" in doc[0]
    ):
        return parse_trivy_json(doc, source)
    if looks_like_sarif(doc):
        return parse_sarif(doc, source, file_time=file_time)
    return None


_PARSED: dict[tuple[str, bool], tuple[tuple[int, int, int, int], ScanReport | None]] = {}
"""Reports parsed in this process, by path, with the file's identity (device, inode, size, mtime) then:
`--trivy-report DIR` hands every image the same folder, so each file is parsed once, not once per image.
At most `_PARSED_KEPT` are kept (the oldest goes first), so a long audit's memory stays bounded."""
_PARSED_KEPT = 64
_PARSED_LOCK = threading.Lock()


def forget_parsed_reports() -> None:
    """Parse every report file again from now on (benchmarks time the parse itself)."""
    with _PARSED_LOCK:
        _PARSED.clear()


def load_report_file(path: Path, *, in_folder: bool = False) -> ScanReport | None:
    """Parse one report file (once per process while the file is unchanged). Outside a folder, a file
    that is no report is an error."""
    with _PARSED_LOCK:  # images collect concurrently; parsing is CPU-bound, so one at a time costs nothing
        try:
            st = path.stat()
        except OSError:
            st = None
        key = (str(path), in_folder)
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else None
        hit = _PARSED.get(key)
        if hit is not None and hit[0] == identity:
            return hit[1]
        report = _load_report_file(path, in_folder)
        if identity is not None:
            if len(_PARSED) >= _PARSED_KEPT and key not in _PARSED:
                del _PARSED[next(iter(_PARSED))]
            _PARSED[key] = (identity, report)
        return report


def _load_report_file(path: Path, in_folder: bool) -> ScanReport | None:
    data = read_bytes(path, MAX_REPORT_BYTES, "report")
    doc = decode_json(data, str(path), "report")
    mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    report = parse_report_document(doc, str(path), mtime)
    if report is None and not in_folder:
        raise InputError(
            f"{path}: neither a Trivy JSON report (SchemaVersion) nor a Trivy SARIF log",
            hint="produce it with `trivy image --format json` (or --format sarif)",
        )
    return report


@record
class Loaded:
    reports: tuple[ScanReport, ...]
    skipped: tuple[str, ...]
    """Files in folders that are not scanner reports."""


def load_reports(paths: tuple[Path, ...]) -> Loaded:
    """Every report in the given files and folders (folders searched recursively, names sorted)."""
    reports: list[ScanReport] = []
    skipped: list[str] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _REPORT_NAME.search(p.name))
            if len(files) > MAX_FOLDER_FILES:
                raise InputError(f"{path}: {len(files)} report files, over the {MAX_FOLDER_FILES} limit")
            for file in files:
                report = load_report_file(file, in_folder=True)
                if report is None:
                    skipped.append(str(file))
                else:
                    reports.append(report)
        elif path.exists():
            report = load_report_file(path)
            assert report is not None  # load_report_file raises outside folders
            reports.append(report)
        else:
            raise InputError(f"{path}: no such Trivy report file or folder", hint="check --trivy-report")
    return Loaded(tuple(reports), tuple(skipped))


def read_text(path: Path, what: str) -> str:
    data = read_bytes(path, MAX_SIDE_FILE_BYTES, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not UTF-8 text") from None


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def expand_template(template: str, *, name: str, tag: str | None, digest: str) -> str:
    """Fill `{name}`, `{tag}`, `{digest_hex}` in the policy's `report:` path."""
    values = {"name": name, "tag": tag, "digest_hex": digest.split(":", 1)[-1]}

    def fill(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise InputError(
                f"report path {template!r} uses {{{key}}}; known placeholders are {{name}}, {{tag}}, {{digest_hex}}"
            )
        value = values[key]
        if value is None:
            raise InputError(
                f"report path {template!r} uses {{tag}} but the image was given by digest",
                hint="use {digest_hex} in `report:` or verify by tag",
            )
        return value

    return _PLACEHOLDER.sub(fill, template)
