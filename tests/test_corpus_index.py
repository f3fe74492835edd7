"""tests/data/corpus holds real third-party files; its INDEX.md names each one's source, commit and licence.

Every file has a row whose sha256 is the file's own (nothing was edited), every row names a file that is
there, and every source repository a row names has a licence line.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
INDEX = (CORPUS / "INDEX.md").read_text(encoding="utf-8")


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in INDEX.splitlines():
        match = re.match(r"\| `([^`]+)` \|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return rows


def test_every_file_has_a_row_with_its_own_sha256() -> None:
    rows = _rows()
    files = sorted(p.name for p in CORPUS.iterdir() if p.name != "INDEX.md")
    assert len(files) >= 30
    assert sorted(rows) == files
    for name, cells in rows.items():
        digest = hashlib.sha256((CORPUS / name).read_bytes()).hexdigest()
        assert f"`{digest}`" in cells, f"{name}: sha256 in INDEX.md is not the file's ({digest})"


def test_every_source_repository_has_a_licence() -> None:
    licensed = set(re.findall(r"^\| ([\w.-]+/[\w.-]+) \| [0-9a-f]{40} \| (.+) \|$", INDEX, re.M))
    repos = {repo for repo, _ in licensed}
    for name, cells in _rows().items():
        assert cells[1] in repos, f"{name}: source {cells[1]} has no licence line"
