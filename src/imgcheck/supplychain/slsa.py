"""SLSA provenance (v0.2 and v1): who built the image (builder id) and from what source.

v1: `runDetails.builder.id`; sources from `buildDefinition.externalParameters` (any string value,
e.g. GitHub's `workflow.repository`) and `resolvedDependencies[].uri`. v0.2: `builder.id`;
sources from `invocation.configSource.uri` and `materials[].uri`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from imgcheck.record import record
from imgcheck.supplychain.dsse import MalformedError

SLSA_V02 = "https://slsa.dev/provenance/v0.2"
SLSA_V1 = "https://slsa.dev/provenance/v1"


@record
class Provenance:
    predicate_type: str
    builder: str | None
    sources: tuple[str, ...]
    """Source URIs as written, plus their bare `host/owner/repo` form (no scheme, `git+`, `@ref`, `.git`)."""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def bare_source(uri: str) -> str:
    """`git+https://github.com/o/r@refs/heads/main` -> `github.com/o/r`."""
    text = re.sub(r"^git\+", "", uri.strip())
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("@", 1)[0].split("#", 1)[0].split("?", 1)[0]
    return re.sub(r"\.git$", "", text.rstrip("/"))


def parse(statement: Mapping[str, Any]) -> Provenance:
    predicate_type = str(statement.get("predicateType", ""))
    predicate = statement.get("predicate")
    if not isinstance(predicate, Mapping):
        raise MalformedError(f"{predicate_type} statement has no predicate object")
    raw: list[str] = []
    if predicate_type == SLSA_V1:
        run = predicate.get("runDetails") or {}
        builder = ((run.get("builder") or {}) if isinstance(run, Mapping) else {}).get("id")
        definition = predicate.get("buildDefinition") or {}
        if isinstance(definition, Mapping):
            raw.extend(s for s in _strings(definition.get("externalParameters")) if "/" in s)
            for dep in definition.get("resolvedDependencies") or []:
                if isinstance(dep, Mapping) and isinstance(dep.get("uri"), str):
                    raw.append(dep["uri"])
    elif predicate_type == SLSA_V02:
        builder = (predicate.get("builder") or {}).get("id") if isinstance(predicate.get("builder"), Mapping) else None
        invocation = predicate.get("invocation") or {}
        config_source = invocation.get("configSource") if isinstance(invocation, Mapping) else None
        if isinstance(config_source, Mapping) and isinstance(config_source.get("uri"), str):
            raw.append(config_source["uri"])
        for material in predicate.get("materials") or []:
            if isinstance(material, Mapping) and isinstance(material.get("uri"), str):
                raw.append(material["uri"])
    else:
        raise MalformedError(f"predicate type {predicate_type!r} is not SLSA provenance v0.2 or v1")
    sources = list(dict.fromkeys([*raw, *(bare_source(s) for s in raw)]))
    return Provenance(predicate_type, builder if isinstance(builder, str) else None, tuple(sources))
