"""Fuzzing two more inputs from outside: the shard reports `imgcheck audit merge` reads (written by other
CI jobs) and Docker's credentials config (`~/.docker/config.json`, written by `docker login` and tools).

Seeds are real: two shards of a real audit of the real registry (module fixture), and configs shaped
like what `docker login` writes; mutated, truncated, deeply nested, hostile strings.
Contract: a merged report (rendered, recorded in a history) or an ImgcheckError on one line; credentials
or none. Never another exception, never a secret in an error, a note or a credential's text.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from test_audit_registry import audit_json, publish_history
from test_fuzz_kit import FUZZ, hostile_bytes, json_bytes, json_values, mutated

from imgcheck.audit.command import run_merge
from imgcheck.errors import ImgcheckError
from imgcheck.registry import hints
from imgcheck.registry.credentials import Credentials, CredentialStore
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

pytestmark = pytest.mark.fuzz
ROOT = Path(__file__).resolve().parent.parent


# --- shard reports: `imgcheck audit merge shard-*.json` ----------------------------------------------


@dataclass(frozen=True)
class Shards:
    """The two shard reports of one real audit (as parsed JSON and as the bytes the jobs wrote), and a
    history holding that audit merged once, so a fuzzed merge also computes drift against real rows."""

    docs: tuple[dict[str, Any], dict[str, Any]]
    raw: tuple[bytes, bytes]
    history: Path


@pytest.fixture(scope="module")
def shards(registry: RegistryServer, pusher: Pusher, tmp_path_factory: pytest.TempPathFactory) -> Shards:
    tmp = tmp_path_factory.mktemp("fuzz-shards")
    published = publish_history(registry, pusher, tmp, "fuzz-shards")
    docs = tuple(audit_json(published, tmp / f"cache-{i}.sqlite", shard=f"{i}/2")[1] for i in (1, 2))
    raw = tuple(json.dumps(doc, indent=2).encode() for doc in docs)
    paths = [tmp / f"shard-{i}.json" for i in (1, 2)]
    for path, data in zip(paths, raw, strict=True):
        path.write_bytes(data)
    history = tmp / "history.sqlite"
    assert run_merge(paths, history=history, output_format="json", out=io.StringIO()) == 0
    assert all(doc["releases"] for doc in docs), "each shard holds some releases, or fuzzing them means little"
    return Shards((docs[0], docs[1]), (raw[0], raw[1]), history)


HOSTILE_TEXT = ["\ud800", "\udcff", "$\\frac{a}{b}$", "a\nb\r\nc", "`|<b>", "\x00", "", "x" * 400, "1/0"]
WRONG_TOP: dict[str, list[Any]] = {
    "schema": ["imgcheck.audit/v2", "imgcheck.report/v1", None, 1],
    "policy": ["other-policy.yaml", "", None],
    "shard": ["2/2", "1/3", "3/2", "0/2", "1/99999999999", "x", None, 1, ["1/2"]],
    "started_at": ["", None, 1, "2026-13-45T99:00:00Z"],
    "imgcheck_version": [None, 0],
}


def _string_paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, str):
        yield at
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _string_paths(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _string_paths(value, (*at, index))


def _replaced(doc: dict[str, Any], at: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    for step in at[:-1]:
        node = node[step]
    node[at[-1]] = value
    return doc


@st.composite
def hostile_string_in(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """The real shard with one of its strings (a name, a tag, a message) replaced by a hostile one."""
    at = draw(st.sampled_from(sorted(_string_paths(doc), key=repr)))
    return _replaced(doc, at, draw(st.sampled_from(HOSTILE_TEXT) | st.text(max_size=20)))


@st.composite
def wrong_top_level(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """The real shard claiming another schema, policy, shard or start: a shard of another run."""
    key = draw(st.sampled_from(sorted(WRONG_TOP)))
    return dict(doc, **{key: draw(st.sampled_from(WRONG_TOP[key]))})


@st.composite
def entry_retyped(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """The real shard with one field of an image, a release or a check gone or of another type."""
    shaped = copy.deepcopy(doc)
    entries = [*shaped["images"], *shaped["releases"], *(c for r in shaped["releases"] for c in r["checks"])]
    entry = draw(st.sampled_from(entries))
    key = draw(st.sampled_from(sorted(entry)))
    if draw(st.integers(0, 4)) == 0:
        del entry[key]
    else:
        entry[key] = draw(json_values)
    return shaped


@st.composite
def details_retyped(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """The real shard with one value of a check's details (read by drift: CVE findings) of another type."""
    shaped = copy.deepcopy(doc)
    details = draw(st.sampled_from([c["details"] for r in shaped["releases"] for c in r["checks"] if c["details"]]))
    details[draw(st.sampled_from(sorted(details)))] = draw(json_values)
    return shaped


@st.composite
def deep_inside(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    """The real shard with a check's details (free-form JSON) nested absurdly deep."""
    depth = draw(st.integers(50, 3000))
    release = draw(st.integers(0, len(doc["releases"]) - 1))
    placeholder = "DEEP-PLACEHOLDER"
    shaped = copy.deepcopy(doc)
    checks = shaped["releases"][release]["checks"]
    checks[draw(st.integers(0, len(checks) - 1))]["details"] = {"nested": placeholder}
    return json_bytes(shaped).replace(json.dumps(placeholder).encode(), b"[" * depth + b"]" * depth)


def shard_bytes(doc: dict[str, Any], raw: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(raw),
        mutated(doc).map(json_bytes),
        hostile_string_in(doc).map(json_bytes),
        wrong_top_level(doc).map(json_bytes),
        entry_retyped(doc).map(json_bytes),
        details_retyped(doc).map(json_bytes),
        deep_inside(doc),
        hostile_bytes(raw),
        json_values.map(json_bytes),
    )


def write_shards(folder: Path, contents: list[bytes]) -> list[Path]:
    paths = [folder / f"shard-{n}.json" for n in range(1, len(contents) + 1)]
    for path, data in zip(paths, contents, strict=True):
        path.write_bytes(data)
    return paths


@FUZZ
@given(data=st.data())
def test_shard_reports_merge_or_raise_one_line_input_errors(data: st.DataObject, shards: Shards) -> None:
    """What the CLI does with shard files: read, merge, drift and record in the history, render."""
    broken = data.draw(st.sampled_from([{1}, {2}, {1, 2}]), label="broken shards")
    contents = [
        data.draw(shard_bytes(doc, raw), label=f"shard {n}") if n in broken else raw
        for n, (doc, raw) in enumerate(zip(shards.docs, shards.raw, strict=True), start=1)
    ]
    if data.draw(st.integers(0, 7), label="one shard twice (7)") == 7:
        contents.append(contents[0])
    output_format = data.draw(st.sampled_from(["markdown", "json"] * 4 + ["html"]), label="format")
    keep_history = data.draw(st.booleans(), label="history")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_shards(Path(tmp), contents)
        history = Path(tmp) / "history.sqlite"
        shutil.copyfile(shards.history, history)
        out = io.StringIO()
        try:
            code = run_merge(paths, history=history, no_history=not keep_history, output_format=output_format, out=out)
        except ImgcheckError as err:
            assert "\n" not in str(err), f"not one line: {err!s:.300}"
            event(f"refused: {type(err).__name__}")
            return
    event(f"merged ({output_format}, {'with' if keep_history else 'no'} history)")
    assert code in (0, 1, 2)
    out.getvalue().encode("utf-8")  # what the CLI writes to stdout must be writable there


def test_the_real_shards_merge_so_the_fuzzing_above_means_something(shards: Shards, tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_merge(write_shards(tmp_path, list(shards.raw)), no_history=True, output_format="json", out=out) == 0
    merged = json.loads(out.getvalue())
    assert len(merged["releases"]) == sum(len(d["releases"]) for d in shards.docs) and merged["shard"] is None


# --- Docker credentials config ---------------------------------------------------------------------

ABSENT = "imgcheck-fuzz-absent-"
"""Every credential helper a fuzzed config names starts with this: `docker-credential-imgcheck-fuzz-absent-*`
exists nowhere (and PATH is an empty folder while the store looks), so no helper ever runs."""
HOSTS = ["registry.example.com", "docker.io", "ghcr.io", "quay.io", "gcr.io", "localhost:5000"]
secret_text = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=40
)
user_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.@", min_size=1, max_size=12)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@st.composite
def docker_configs(draw: st.DrawFn, password: str, token: str) -> Any:
    """What `docker login` and friends write: `auth` (base64 user:pass), identity tokens, helpers."""
    user = draw(user_text)
    auth = draw(
        st.sampled_from([b64(f"{user}:{password}"), b64(password), b64(f":{password}"), b64(f"{user}:{password}:x")])
        | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode())
        | st.text(max_size=30)
    )
    config = {
        "auths": {
            "registry.example.com": {"auth": auth},
            "https://index.docker.io/v1/": {"auth": b64(f"{user}:{password}")},
            "ghcr.io": {"auth": "", "identitytoken": token},
            "https://quay.io/v2/": {"username": user, "password": password, "email": "x@example.com"},
            "localhost:5000": {},
        },
        "credHelpers": {"gcr.io": "gcloud", "registry.example.com": "ecr-login"},
        "credsStore": "desktop",
        "HttpHeaders": {"User-Agent": "Docker-Client/24.0.7 (linux)"},
    }
    for key in draw(st.sets(st.sampled_from(["credHelpers", "credsStore"]))):
        del config[key]  # most configs name no helper, and then `auths` is read
    return absent_helpers(draw(mutated(config) | st.just(config)))


def absent_helpers(config: Any) -> Any:
    """Whatever the mutations made of them, helper names that are strings get ABSENT in front."""
    if not isinstance(config, dict):
        return config
    if isinstance(config.get("credsStore"), str):
        config["credsStore"] = ABSENT + config["credsStore"]
    if isinstance(config.get("credHelpers"), dict):
        config["credHelpers"] = {k: ABSENT + v if isinstance(v, str) else v for k, v in config["credHelpers"].items()}
    return config


@pytest.fixture(scope="module")
def empty_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("no-helpers-here"))


def look_up(config_bytes: bytes, host: str, helper_path: str) -> tuple[Credentials | None, list[str]]:
    """As the client looks credentials up by default: $DOCKER_CONFIG/config.json, helpers on $PATH."""
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_bytes(config_bytes)
        with mock.patch.dict(os.environ, {"PATH": helper_path, "DOCKER_CONFIG": tmp}):
            found = CredentialStore(env={}, note=notes.append).get(host)
    return found, notes


def refused_login_error(creds: Credentials, host: str) -> str:
    """The message the client prints when a registry refuses these credentials (it names them)."""
    what = f"tags of {host}/team/app"
    error = hints.status_error(401, b"", registry=host, repository="team/app", what=what, authenticated=str(creds))
    return str(error)


@FUZZ
@given(
    data=st.data(),
    password=secret_text,
    token=secret_text,
    host=st.sampled_from(HOSTS),
)
def test_docker_configs_give_credentials_or_none_and_never_show_a_secret(
    data: st.DataObject, password: str, token: str, host: str, empty_path: str
) -> None:
    config = data.draw(
        st.one_of(
            docker_configs(password, token).map(json_bytes),
            hostile_bytes(json_bytes({"auths": {"registry.example.com": {"auth": b64(f"u:{password}")}}})),
        ),
        label="config",
    )
    shown: list[str] = []
    try:
        found, notes = look_up(config, host, empty_path)
    except ImgcheckError as err:
        assert "\n" not in str(err)
        shown.append(str(err))
    else:
        shown += notes
        if found is not None:
            assert isinstance(found.username, str) and isinstance(found.password, str)
            shown += [str(found), repr(found), found.source, refused_login_error(found, host)]
    for text in shown:
        for secret in (password, token, b64(password)):
            assert secret not in text, f"a secret shows in {text!r}"


def test_a_missing_credential_helper_is_anonymous_with_a_note(empty_path: str) -> None:
    config = {"credHelpers": {"gcr.io": ABSENT + "gcloud"}, "credsStore": ABSENT + "desktop"}
    found, notes = look_up(json_bytes(config), "gcr.io", empty_path)
    assert found is None and notes == [
        f"Docker credential helper docker-credential-{ABSENT}gcloud is not installed; going anonymous"
    ]
    config["auths"] = {"quay.io": {"auth": b64("robot:s3cret-robot-password")}}
    found, notes = look_up(json_bytes(config), "quay.io", empty_path)  # a missing store: auths still count
    assert found is not None and (found.username, found.password) == ("robot", "s3cret-robot-password")
    assert notes == [f"Docker credential helper docker-credential-{ABSENT}desktop is not installed; going anonymous"]


# --- found by the fuzzer: shard reports the merge trusted ------------------------------------------
# `from_dict` checked only the fields it read first; everything else went on to the merge's sorting,
# the history (SQLite) and the renderers, which crashed on it with a traceback instead of exit 2.


def _set(path: str, value: Any) -> Any:
    """An edit of the first shard: `releases.0.compressed_size` = value."""

    def edit(doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        *parents, last = path.split(".")
        node: Any = doc
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[int(last) if isinstance(node, list) else last] = value
        return doc

    return edit


DEEP_DETAILS = "DEEP"
SHARD_CASES: dict[str, tuple[Any, str]] = {
    # case: (edit of shard 1, the one-line error)
    "an image entry that is a list (AttributeError)": (_set("images.0", []), r"`images` must be a list of objects"),
    "a shard number that is a number (TypeError in re)": (_set("shard", 1), r"`shard` is malformed"),
    "a size that is a list (TypeError in the Markdown)": (
        _set("releases.0.compressed_size", [0.5]),
        r"`compressed_size` is malformed",
    ),
    "a size SQLite cannot hold (OverflowError in the history)": (
        _set("releases.0.compressed_size", 2**70),
        r"`compressed_size` \d+ is out of range",
    ),
    "a created time that is a number (TypeError sorting releases)": (
        _set("releases.0.created", 1),
        r"`created` is malformed",
    ),
    "a lone surrogate in the policy (UnicodeEncodeError in SQLite)": (
        _set("policy", "\ud800"),
        r"lone UTF-16 surrogate",
    ),
    "a lone surrogate in a message (UnicodeEncodeError on stdout)": (
        _set("releases.0.checks.0.message", "\udcff"),
        r"lone UTF-16 surrogate",
    ),
    "a tag that is matplotlib mathtext (ValueError drawing the HTML chart)": (
        _set("releases.0.tags", ["$x^$"]),
        r"'\$x\^\$' is not a tag",
    ),
    "an image name that is mathtext (ValueError drawing the chart legend)": (
        _set("releases.0.image", "$\\frac{a}{b$"),
        r"is not an image name a policy allows",
    ),
    "details nested 500 deep (a real shard nests 9 deep; past ~900 rendering overflows the stack)": (
        _set("releases.0.checks.0.details", DEEP_DETAILS),
        r"nested deeper than 64 levels",
    ),
}


def shard_file_bytes(doc: dict[str, Any]) -> bytes:
    return json_bytes(doc).replace(json.dumps(DEEP_DETAILS).encode(), b"[" * 500 + b"]" * 500)


@pytest.mark.parametrize("case", list(SHARD_CASES))
def test_malformed_shards_are_one_line_input_errors(case: str, shards: Shards, tmp_path: Path) -> None:
    edit, message = SHARD_CASES[case]
    paths = write_shards(tmp_path, [shard_file_bytes(edit(shards.docs[0])), shards.raw[1]])
    history = tmp_path / "history.sqlite"
    shutil.copyfile(shards.history, history)
    with pytest.raises(ImgcheckError, match=message) as err:
        run_merge(paths, history=history, output_format="html", out=io.StringIO())
    assert "\n" not in str(err.value)


def test_a_shard_claiming_99999999999_shards_is_refused_without_building_that_range(
    shards: Shards, tmp_path: Path
) -> None:
    """`shard: "1/99999999999"`: the completeness check built list(range(1, N + 1)) (MemoryError)."""
    only = dict(shards.docs[0], shard="1/99999999999")
    with pytest.raises(ImgcheckError, match=r"shards \[1\] of \[99999999999\] given"):
        run_merge(write_shards(tmp_path, [json_bytes(only)]), no_history=True, out=io.StringIO())


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000], ids=["array", "object"])
def test_a_deeply_nested_shard_file_is_not_json(data: bytes, tmp_path: Path) -> None:
    """json.loads raised RecursionError (not ValueError) for these: a traceback, not exit 2."""
    with pytest.raises(ImgcheckError, match=r"is not JSON \(JSON nested too deeply\)"):
        run_merge(write_shards(tmp_path, [data]), no_history=True, out=io.StringIO())


def test_a_shard_whose_cve_findings_are_a_number_merges_with_drift(shards: Shards, tmp_path: Path) -> None:
    """Found by the fuzzer: `details.findings: 0.5` on a vulnerabilities check, merged with history."""
    doc = copy.deepcopy(shards.docs[0])
    check = next(c for r in doc["releases"] for c in r["checks"] if c["rule"] == "vulnerabilities")
    check["details"]["findings"] = 0.5
    history = tmp_path / "history.sqlite"
    shutil.copyfile(shards.history, history)
    paths = write_shards(tmp_path, [json_bytes(doc), shards.raw[1]])
    assert run_merge(paths, history=history, out=io.StringIO()) in (0, 1)


def test_a_truncated_shard_is_one_line_and_exit_2_from_the_cli(shards: Shards, tmp_path: Path) -> None:
    paths = write_shards(tmp_path, [shards.raw[0][: len(shards.raw[0]) // 2], shards.raw[1]])
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_ACTIONS"}  # Actions adds an annotation line
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", "audit", "merge", "--no-history", *map(str, paths)],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1", "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"imgcheck: error: shard report {paths[0]} is not JSON"), line
    assert "Traceback" not in done.stderr


# --- found by the fuzzer: Docker configs the store trusted ------------------------------------------


def test_an_auth_that_is_a_bare_token_is_not_shown_as_a_username(empty_path: str) -> None:
    """`auth: base64("0000000000000000")` (no `user:`): the whole secret became the username, which the
    client prints when a registry refuses the credentials ("the credentials for <username> from ...")."""
    config = {"auths": {"registry.example.com": {"auth": b64("0000000000000000")}}}
    found, notes = look_up(json_bytes(config), "registry.example.com", empty_path)
    assert found is None and len(notes) == 1 and "0000000000000000" not in notes[0]
    assert notes[0].endswith("auths[registry.example.com]: `auth` is not base64 of user:password; going anonymous")


def test_an_auth_that_is_not_ascii_is_ignored_not_raised(empty_path: str) -> None:
    """`auth: "\\u0080"`: base64 raised its own ValueError (not binascii.Error) out of the lookup."""
    found, notes = look_up(
        b'{"auths": {"registry.example.com": {"auth": "\\u0080"}}}', "registry.example.com", empty_path
    )
    assert found is None and notes[0].endswith("`auth` is not base64; going anonymous")


def test_a_helper_is_asked_for_a_server_name_holding_a_lone_surrogate(tmp_path: Path) -> None:
    """A real helper (ours, fixed name) under `credsStore`; the auths key `ghcr.io/\\ud800` (valid JSON) is
    the server it is asked about: encoding it for the helper's stdin raised UnicodeEncodeError."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-imgcheck-fuzz-echo"
    helper.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "server = sys.stdin.buffer.read().decode()\n"
        "print(json.dumps({'ServerURL': server, 'Username': 'echo', 'Secret': server}))\n"
    )
    helper.chmod(0o755)
    config = b'{"credsStore": "imgcheck-fuzz-echo", "auths": {"ghcr.io/\\ud800": {}}}'
    found, _notes = look_up(config, "ghcr.io", str(bin_dir))
    assert found is not None and found.username == "echo" and found.password == "ghcr.io/?"


def test_the_chart_shows_dollar_signs_in_registry_text_as_text() -> None:
    """matplotlib reads `$...$` in a label as math and raises on bad math (`$\\frac{a}{b$`): registry text
    in the chart is escaped, so the HTML report renders whatever a name or tag holds."""
    from imgcheck.audit.chart import render_png
    from imgcheck.audit.model import AuditReport, ImageInventory, Release

    name = "$\\frac{a}{b$"
    release = Release(name, "r.example", "org/app", "sha256:" + "a" * 64, ("$x^$",), "2026-01-01T00:00:00Z", 1_000_000)
    report = AuditReport(
        "0", "p.yaml", "2026-01-02T00:00:00Z", (ImageInventory(name, "r.example", "org/app"),), (release,)
    )
    png = render_png(report)
    assert png.startswith(b"\x89PNG")
