"""Just enough package-URL handling to match waivers and VEX subcomponents to findings."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote


class Purl(NamedTuple):
    type: str
    namespace: str
    name: str
    version: str
    qualifiers: dict[str, str]


def parse_purl(text: str) -> Purl | None:
    """`pkg:type/namespace/name@version?qualifiers#subpath`, or None if `text` is not a purl."""
    if not text.startswith("pkg:"):
        return None
    rest = text[4:].split("#", 1)[0]
    rest, _, query = rest.partition("?")
    path, _, version = rest.rpartition("@") if "@" in rest else (rest, "", "")
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if len(parts) < 2:
        return None
    qualifiers = {}
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        qualifiers[key.lower()] = unquote(value)
    return Purl(parts[0].lower(), "/".join(parts[1:-1]).lower(), parts[-1], unquote(version), qualifiers)


def purl_matches(pattern: str, purl: str) -> bool:
    """Whether `purl` is the package `pattern` names: type, namespace and name equal; the version
    too when the pattern gives one. Qualifiers (arch, distro) are ignored on purpose: a waiver for
    `pkg:deb/debian/libssl3` means every build of it."""
    want, have = parse_purl(pattern), parse_purl(purl)
    if want is None or have is None:
        return False
    if (want.type, want.namespace, want.name.lower()) != (have.type, have.namespace, have.name.lower()):
        return False
    return not want.version or want.version == have.version
