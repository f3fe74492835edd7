"""Reference parsing: which part is the registry, tag and digest (no network)."""

from __future__ import annotations

import pytest

from imgcheck.errors import UsageError
from imgcheck.registry.reference import Reference, is_tag, looks_like_reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "ghcr.io/rjdscott/k2-market-data-platform-producer:main-3f2a9c1",
            Reference("ghcr.io", "rjdscott/k2-market-data-platform-producer", "main-3f2a9c1"),
        ),
        ("ghcr.io/org/repo", Reference("ghcr.io", "org/repo", "latest")),
        (f"ghcr.io/org/repo@{DIGEST}", Reference("ghcr.io", "org/repo", None, DIGEST)),
        (f"ghcr.io/org/repo:v1.4.2@{DIGEST}", Reference("ghcr.io", "org/repo", "v1.4.2", DIGEST)),
        ("localhost/app", Reference("localhost", "app", "latest")),
        ("localhost:5000/team/app:v1", Reference("localhost:5000", "team/app", "v1")),
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest")),
        ("[::1]:5000/app:v2", Reference("[::1]:5000", "app", "v2")),
        ("ubuntu", Reference("docker.io", "library/ubuntu", "latest")),
        ("docker.io/ubuntu:24.04", Reference("docker.io", "library/ubuntu", "24.04")),
        ("bitnami/redis:7", Reference("docker.io", "bitnami/redis", "7")),
        ("  ghcr.io/a/b:c  ", Reference("ghcr.io", "a/b", "c")),
    ],
)
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_default_registry_applies_to_bare_paths_only() -> None:
    assert parse_reference("org/repo:v1", default_registry="ghcr.io") == Reference("ghcr.io", "org/repo", "v1")
    assert parse_reference("quay.io/org/repo", default_registry="ghcr.io").registry == "quay.io"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ghcr.io/org/repo@sha256:abc",
        "ghcr.io/Org/Repo",
        "ghcr.io/org/repo:",
        "ghcr.io/org/repo:vé",
        "ghcr.io/org/repo:" + "x" * 129,
        "ghcr.io/org//repo",
        "ghcr.io/org/repo@md5:" + "0" * 32,
    ],
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


def test_identifier_str_and_with_registry() -> None:
    ref = parse_reference(f"ghcr.io/org/repo:v1@{DIGEST}")
    assert ref.identifier == DIGEST
    assert str(ref) == f"ghcr.io/org/repo:v1@{DIGEST}"
    assert parse_reference(str(ref)) == ref
    assert parse_reference("ghcr.io/org/repo:v1").identifier == "v1"
    moved = ref.with_registry("127.0.0.1:5000")
    assert (moved.registry, moved.repository, moved.tag, moved.digest) == ("127.0.0.1:5000", "org/repo", "v1", DIGEST)


def test_tag_and_reference_predicates() -> None:
    assert is_tag("main-3f2a9c1") and is_tag("v1.4.2") and not is_tag(".hidden") and not is_tag("café")
    assert looks_like_reference("ghcr.io/a/b") and looks_like_reference(f"repo@{DIGEST}")
    assert not looks_like_reference("latest")
