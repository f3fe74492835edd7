"""Fuzzing what registries and users hand imgcheck: references, registry answers, manifests, configs, policies.

Contract: a value, or an ImgcheckError (exit 2). Never another exception, never a hang. Registry
answers go through the real client over HTTP (the fault proxy serves the hostile bytes); manifests
and configs go through the real Gatherer against the real registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faultproxy import Fault, FaultProxy
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_kit import FUZZ, hostile_bytes, json_bytes, json_values, mutated

from fixtures.images import ImageConfig, Pushed, busybox_base_layer, push_image, push_index
from imgcheck.errors import ImgcheckError
from imgcheck.gather import Gatherer, parse_descriptor, parse_time
from imgcheck.policy.loader import load_policy
from imgcheck.registry import descriptors
from imgcheck.registry.client import Manifest, RegistryClient
from imgcheck.registry.reference import Reference, parse_reference
from imgcheck.testing.push import OCI_INDEX, OCI_MANIFEST, Pusher, canonical_json
from imgcheck.testing.registry_server import RegistryServer

pytestmark = pytest.mark.fuzz
BUNDLED_POLICIES = sorted((Path(__file__).resolve().parent.parent / "src/imgcheck/policies").glob("*.yaml"))


@pytest.fixture(scope="module")
def pushed(pusher: Pusher) -> dict[str, Any]:
    config = ImageConfig(entrypoint=["/bin/sh"], labels={"a": "b"})
    image = push_image(pusher, "fuzz/app", [busybox_base_layer()], config, tags=("latest",))
    index = push_index(pusher, "fuzz/app", [image], tags=("multi",))
    manifest = pusher.session.get(  # type: ignore[union-attr]
        f"http://{pusher.host}/v2/fuzz/app/manifests/{image.digest}", headers={"Accept": OCI_MANIFEST}, timeout=10
    ).json()
    return {"image": image, "index": index, "manifest": manifest, "index_doc": _index_doc(image)}


def _index_doc(image: Pushed) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [image.descriptor()]}


@pytest.fixture(scope="module")
def client() -> Iterator[RegistryClient]:
    with RegistryClient(env={}, docker_config=Path("/nonexistent"), timeout=3600, backoff=0.01) as running:
        yield running


@pytest.fixture(scope="module")
def hostile(registry: RegistryServer) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as proxy:
        yield proxy


def as_manifest(doc: Any, media_type: str) -> Manifest:
    raw = canonical_json(doc) if not isinstance(doc, bytes) else doc
    return Manifest("sha256:" + hashlib.sha256(raw).hexdigest(), media_type, raw, doc if isinstance(doc, dict) else {})


# --- references -------------------------------------------------------------------------------

reference_text = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"[a-z0-9.:\[\]-]{0,20}/[a-z0-9._/-]{0,30}(:[A-Za-z0-9_.-]{0,130})?(@sha256:[0-9a-f]{0,70})?"),
)


@FUZZ
@given(text=reference_text)
def test_reference_parsing_is_a_reference_or_a_usage_error(text: str) -> None:
    try:
        ref = parse_reference(text, default_registry="ghcr.io")
    except ImgcheckError:
        return
    again = parse_reference(str(ref), default_registry="ghcr.io")
    assert (again.registry, again.repository, again.tag, again.digest) == (
        ref.registry,
        ref.repository,
        ref.tag,
        ref.digest,
    )


# --- registry answers, through the real client and HTTP ----------------------------------------

answer_types = st.sampled_from(["", "application/json", OCI_MANIFEST, OCI_INDEX, "text/html; charset=utf-8"])


@FUZZ
@given(
    data=st.data(),
    status=st.sampled_from([200, 200, 200, 401, 404, 405, 418]),
    content_type=answer_types,
    claimed=st.sampled_from([None, "sha256:" + "0" * 64, "md5:abc", "sha256:"]),
)
def test_hostile_registry_answers_are_values_or_registry_errors(
    data: st.DataObject,
    status: int,
    content_type: str,
    claimed: str | None,
    hostile: FaultProxy,
    client: RegistryClient,
    pushed: dict[str, Any],
) -> None:
    body = data.draw(
        st.one_of(
            hostile_bytes(json_bytes(pushed["manifest"]), json_bytes(pushed["index_doc"])),
            mutated(pushed["manifest"]).map(json_bytes),
            mutated(pushed["index_doc"]).map(json_bytes),
            mutated({"tags": ["a", "b"], "name": "fuzz/app"}).map(json_bytes),
            json_values.map(json_bytes),
        )
    )
    headers = [("Content-Type", content_type)] if content_type else []
    if claimed:
        headers.append(("Docker-Content-Digest", claimed))
    if status == 401:
        headers.append(
            ("WWW-Authenticate", data.draw(st.sampled_from(['Bearer realm="ftp://x"', "Basic", "Bearer", ""])))
        )
    digest = pushed["image"].digest
    with hostile.faults(Fault("serve", "/v2/fuzz/", count=-1, status=status, body=body, headers=tuple(headers))):
        for call in (
            lambda: client.resolve(Reference(hostile.host, "fuzz/app", tag="latest")),
            lambda: client.get_manifest(hostile.host, "fuzz/app", digest),
            lambda: client.get_blob(hostile.host, "fuzz/app", digest),
            lambda: client.list_tags(hostile.host, "fuzz/app"),
            lambda: client.referrers(hostile.host, "fuzz/app", digest),
        ):
            with contextlib.suppress(ImgcheckError):
                call()


# --- manifests, indexes and configs, through the real Gatherer --------------------------------


@FUZZ
@given(data=st.data())
def test_manifests_and_indexes_expand_or_raise_registry_errors(
    data: st.DataObject, client: RegistryClient, registry: RegistryServer, pushed: dict[str, Any]
) -> None:
    kind = data.draw(st.sampled_from([OCI_MANIFEST, OCI_INDEX]))
    real = pushed["manifest"] if kind == OCI_MANIFEST else pushed["index_doc"]
    doc = data.draw(st.one_of(mutated(real), json_values.filter(lambda v: isinstance(v, dict))))
    if not isinstance(doc, dict):
        doc = {"value": doc}
    gatherer = Gatherer(client)
    try:
        platforms, attestations = gatherer.expand(registry.host, "fuzz/app", as_manifest(doc, kind), None)
    except ImgcheckError:
        return
    for platform in platforms:
        _ = (platform.labels, platform.created, platform.compressed_size, parse_time(platform.created))
    assert all(a.digest for a in attestations)


@FUZZ
@given(config=st.one_of(mutated(ImageConfig(labels={"x": "y"}).to_json([busybox_base_layer()])), json_values))
def test_image_configs_give_facts_or_registry_errors(
    config: Any, client: RegistryClient, registry: RegistryServer, pusher: Pusher, pushed: dict[str, Any]
) -> None:
    """Labels, created and sizes are read outside the rules' error guard (tag facts): they must not crash."""
    desc = pusher.blob("fuzz/app", json_bytes(config))
    manifest = dict(pushed["manifest"], config={"mediaType": "application/vnd.oci.image.config.v1+json", **desc})
    try:
        (platform,), _ = Gatherer(client).expand(registry.host, "fuzz/app", as_manifest(manifest, OCI_MANIFEST))
    except ImgcheckError:
        return
    _ = (platform.labels, platform.created, platform.compressed_size, parse_time(platform.created), platform.platform)


@FUZZ
@given(entry=st.one_of(json_values, mutated({"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1})))
def test_descriptors_parse_or_raise_registry_errors(entry: Any) -> None:
    parsers: list[Callable[[], object]] = [lambda: descriptors.parse_descriptor(entry, "fuzz")]
    if isinstance(entry, dict):  # the callers hand these a JSON object (the client checked that)
        parsers += [lambda: descriptors.index_entries(entry, "fuzz"), lambda: parse_descriptor(entry)]
    for parse in parsers:
        with contextlib.suppress(ImgcheckError):
            parse()


# --- policy YAML ------------------------------------------------------------------------------


def _policy_docs() -> list[Any]:
    return [yaml.safe_load(path.read_text()) for path in BUNDLED_POLICIES]


policy_text = st.one_of(
    st.sampled_from(_policy_docs()).flatmap(mutated).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=400),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.integers(10, 3000).map(lambda n: "a: " + "[" * n),
    st.integers(10, 3000).map(lambda n: "version: 1\nrules:\n" + "".join(f"{' ' * (i + 2)}k{i}:\n" for i in range(n))),
)


@FUZZ
@given(text=policy_text)
def test_policy_files_load_or_raise_one_line_policy_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "imgcheck.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with contextlib.suppress(ImgcheckError):
            load_policy(path)


def test_a_policy_key_with_a_newline_is_reported_on_one_line(tmp_path: Path) -> None:
    """`? "\\n"` as a key: the error (and so the CLI's one line) must not be split or forgeable."""
    path = tmp_path / "imgcheck.yaml"
    path.write_text("? '\n\n  x'\n: null\n")
    with pytest.raises(ImgcheckError) as err:
        load_policy(path)
    assert "\n" not in str(err.value)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("version: 1\n" + "\n".join(levels) + "\n")
    with pytest.raises(ImgcheckError):
        load_policy(path)
