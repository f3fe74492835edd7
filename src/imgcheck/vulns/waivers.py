"""Waivers: the policy's `ignore:` entries and imported `.trivyignore` / `.trivyignore.yaml` files.

A waiver suppresses a finding until it expires. Policy waivers apply through their `expires` date
(UTC); imported Trivy ignores keep Trivy's meaning (an `exp:` date ends the ignore as that day
starts), so a file behaves the same in imgcheck as in `trivy --ignorefile`.
"""

from __future__ import annotations

import fnmatch
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from imgcheck.errors import InputError
from imgcheck.record import record
from imgcheck.vulns.model import Vuln
from imgcheck.vulns.purl import purl_matches


@record
class Waiver:
    id: str
    reason: str
    expires: date | None
    """The date as written; None only for imported Trivy ignores without `exp:`."""
    ends: datetime | None
    """The instant the waiver stops applying."""
    packages: tuple[str, ...] = ()
    """Package names or purls; empty means every package."""
    paths: tuple[str, ...] = ()
    """Globs over the package path or target (`.trivyignore.yaml` `paths`)."""
    source: str = "policy"

    def matches(self, v: Vuln) -> bool:
        if self.id != v.id and self.id not in v.aliases:
            return False
        if self.packages and not any(_package_matches(p, v) for p in self.packages):
            return False
        return not self.paths or any(
            fnmatch.fnmatchcase(v.pkg_path, g) or fnmatch.fnmatchcase(v.target, g) for g in self.paths
        )

    def expired(self, now: datetime) -> bool:
        return self.ends is not None and now >= self.ends

    def label(self) -> str:
        scope = f" [{', '.join(self.packages)}]" if self.packages else ""
        return f"{self.id}{scope} ({self.source})"

    def as_detail(self) -> dict[str, object]:
        return {
            "id": self.id,
            "packages": list(self.packages),
            "reason": self.reason,
            "expires": self.expires.isoformat() if self.expires else None,
            "source": self.source,
        }


def _package_matches(pattern: str, v: Vuln) -> bool:
    if pattern.startswith("pkg:"):
        return purl_matches(pattern, v.purl)
    return pattern == v.package


def policy_waiver(wid: str, reason: str, expires: date, packages: tuple[str, ...]) -> Waiver:
    """A policy `ignore:` entry; it applies through the whole of its `expires` day (UTC)."""
    ends = datetime.combine(expires + timedelta(days=1), time(), tzinfo=UTC)
    return Waiver(wid, reason, expires, ends, packages, (), "policy")


def _trivy_end(expires: date | None) -> datetime | None:
    return datetime.combine(expires, time(), tzinfo=UTC) if expires else None


def parse_trivyignore(text: str, source: str) -> list[Waiver]:
    """`.trivyignore`: one ID per line, optional `exp:YYYY-MM-DD`; comment lines above an ID become
    its reason."""
    waivers: list[Waiver] = []
    comments: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            comments.append(line.lstrip("#").strip())
            continue
        body, _, trailing = line.partition("#")
        tokens = body.split()
        expires = None
        for token in tokens[1:]:
            if token.startswith("exp:"):
                try:
                    expires = date.fromisoformat(token[4:])
                except ValueError:
                    raise InputError(
                        f"{source}:{lineno}: expiry {token!r} is not exp:YYYY-MM-DD",
                        hint="fix the date in the ignore file",
                    ) from None
        reason = " ".join([*comments, trailing.strip()]).strip() or "(no reason given)"
        waivers.append(Waiver(tokens[0], reason, expires, _trivy_end(expires), (), (), f"{source}:{lineno}"))
        comments = []
    return waivers


def parse_trivyignore_yaml(doc: object, source: str) -> list[Waiver]:
    """`.trivyignore.yaml`: the `vulnerabilities` section (`id`, `paths`, `purls`, `expired_at`,
    `statement`). Other sections (misconfigurations, secrets, licenses) do not concern this rule."""
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise InputError(f"{source}: expected a mapping with a `vulnerabilities` list")
    entries = doc.get("vulnerabilities") or []
    if not isinstance(entries, list):
        raise InputError(f"{source}: `vulnerabilities` should be a list")
    waivers = []
    for i, entry in enumerate(entries):
        where = f"{source}: vulnerabilities[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            raise InputError(f"{where} needs an `id` string")
        paths = _str_list(entry.get("paths"), f"{where}.paths")
        purls = _str_list(entry.get("purls"), f"{where}.purls")
        expires = _date(entry.get("expired_at"), f"{where}.expired_at")
        statement = entry.get("statement") or "(no statement given)"
        if not isinstance(statement, str):
            raise InputError(f"{where}.statement should be a string")
        waivers.append(Waiver(entry["id"], statement, expires, _trivy_end(expires), purls, paths, f"{source}#{i}"))
    return waivers


def _str_list(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} should be a list of strings")
    return tuple(value)


def _date(value: object, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise InputError(f"{where} should be a date (YYYY-MM-DD), found {value!r}")


def load_ignore_file(path: Path, text: str) -> list[Waiver]:
    """Parse an ignore file by its name: `*.yaml`/`*.yml` is Trivy's YAML format, anything else the
    plain `.trivyignore` format."""
    if path.suffix in (".yaml", ".yml"):
        import yaml  # PyYAML: only needed when a YAML ignore file is configured

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        return parse_trivyignore_yaml(doc, str(path))
    return parse_trivyignore(text, str(path))
