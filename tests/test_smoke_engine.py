"""The smoke rule against a real Docker engine (Debian's dockerd, started here when none answers)."""

from __future__ import annotations

import resource
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from fixtures.smoke_images import DATA_BYTES, LOUD_BYTES, SmokeImage, push_all, read_facts
from imgcheck.checks import smoke
from imgcheck.checks.interface import CollectContext, Finding, RunContext, VerifyOptions
from imgcheck.engine.output import HEAD_BYTES, TAIL_BYTES
from imgcheck.engine.session import SmokeEvidence
from imgcheck.policy.types import ByteSize
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer
from imgcheck.verdict import Verdict

pytestmark = pytest.mark.engine

VERSIONED = smoke.Config(expect_output=".*{version}.*", timeout=timedelta(seconds=20))


@pytest.fixture(scope="session")
def smoke_images(pusher: Pusher) -> dict[str, SmokeImage]:
    return push_all(pusher)


@pytest.fixture
def smoke_run(engine: EngineHandle, registry: RegistryServer, smoke_images: dict[str, SmokeImage]) -> Any:
    """Collect and check one fixture image: returns (evidence, findings)."""

    messages: list[str] = []

    def run(name: str, config: smoke.Config = VERSIONED, **options: Any) -> tuple[SmokeEvidence, list[Finding]]:
        facts = read_facts(registry.host, smoke_images[name])
        ctx = CollectContext(registry=cast(Any, None), options=VerifyOptions(**options), progress=messages.append)
        evidence = smoke.collect(ctx, facts, config)
        judged = replace(facts, extras={"smoke": evidence})
        return evidence, smoke.check(judged, config, RunContext(now=datetime.now(UTC), options=ctx.options))

    run.messages = messages  # type: ignore[attr-defined]
    return run


def leftovers(api: Any, registry: RegistryServer) -> tuple[list[str], list[str]]:
    """Every container (`docker ps -a`) and every image from the test registry (`docker images`)."""
    containers = [c["Id"] for c in api.containers(all=True)]
    images = [
        ref
        for image in api.images(all=True)
        for ref in (image.get("RepoDigests") or []) + (image.get("RepoTags") or [])
        if ref.startswith(registry.host)
    ]
    return containers, images


def verdicts(findings: list[Finding]) -> list[tuple[str | None, Verdict]]:
    return [(f.platform, f.verdict) for f in findings]


def test_right_version_passes(smoke_run: Any) -> None:
    evidence, findings = smoke_run("right")
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)]
    assert "smoke-app version 1.4.2" in findings[0].message
    assert evidence.runs[0].result.exit_code == 0
    assert evidence.runs[0].reference.endswith("@" + evidence.runs[0].manifest_digest)  # by digest, never a tag
    assert any(m.startswith("pulling right linux/amd64") for m in smoke_run.messages)
    assert any("pulled in" in m for m in smoke_run.messages)


def test_wrong_version_fails_quoting_output(smoke_run: Any) -> None:
    _, findings = smoke_run("wrong")
    assert verdicts(findings) == [("linux/amd64", Verdict.FAIL)]
    assert "smoke-app version 1.4.1" in findings[0].message
    assert "1\\.4\\.2" in findings[0].message


def test_non_zero_exit_fails_with_code_and_last_lines(smoke_run: Any) -> None:
    _, findings = smoke_run("nonzero")
    assert verdicts(findings) == [("linux/amd64", Verdict.FAIL)]
    assert "exited 3, expected 0" in findings[0].message
    assert "fatal: cannot read /etc/app.yaml" in findings[0].message


def test_no_entrypoint_args_replace_cmd_and_command_fixes_it(smoke_run: Any) -> None:
    _, findings = smoke_run("no-entrypoint")
    assert verdicts(findings) == [("linux/amd64", Verdict.FAIL)]
    message = findings[0].message
    assert "exited 127" in message
    assert "no ENTRYPOINT" in message and "replaced its CMD" in message
    assert "command: [/app/run, serve]" in message
    _, fixed = smoke_run("no-entrypoint", replace(VERSIONED, command=("/app/run",)))
    assert verdicts(fixed) == [("linux/amd64", Verdict.PASS)]


def test_root_image_finds_itself_locked_down(smoke_run: Any) -> None:
    config = smoke.Config(expect_output="root write: denied", memory=ByteSize.parse("64MiB"), pids=50)
    evidence, findings = smoke_run("lockdown", config)
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)]
    output = evidence.runs[0].result.output
    assert "uid: 0" in output
    assert "CapEff:\t0000000000000000" in output
    assert "root write: denied" in output
    assert "tmp write: denied" in output
    assert "net: lo\n" in output
    assert "pids.max: 50\n" in output
    assert f"memory.max: {64 * 1024 * 1024}\n" in output


HALF_A_CORE = smoke.Config(
    cpus=0.5, expect_output=r"smoke-app version {version} cpu=50000/100000$", timeout=timedelta(seconds=20)
)
"""docker's --cpus 0.5 is a CFS quota of 50 ms in every 100 ms period: the image prints what it got."""


def test_cpu_limit_is_the_quota_the_image_runs_under(smoke_run: Any) -> None:
    _, findings = smoke_run("cpu-quota", HALF_A_CORE)
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)], findings[0].message
    assert findings[0].details["limits"] == {"memory": 256 * 1024 * 1024, "pids": 128, "cpus": 0.5}
    _, whole = smoke_run("cpu-quota", replace(HALF_A_CORE, cpus=1.0))
    assert verdicts(whole) == [("linux/amd64", Verdict.FAIL)]
    assert "cpu=100000/100000" in whole[0].message  # one core's quota, not half
    assert whole[0].details["limits"]["cpus"] == 1.0


def test_default_cpu_limit_is_one_core(smoke_run: Any) -> None:
    evidence, findings = smoke_run("cpu-quota", smoke.Config(expect_output="cpu=100000/100000$"))
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)], evidence.runs[0].result.output
    assert "cpu=max" not in evidence.runs[0].result.output


def test_cpus_beyond_the_engine_are_capped_not_refused(smoke_run: Any, docker_api: Any) -> None:
    ncpu = docker_api.info()["NCPU"]
    config = smoke.Config(cpus=64, expect_output=f"cpu={ncpu * 100000}/100000$")
    _, findings = smoke_run("cpu-quota", config)
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)], findings[0].message
    assert findings[0].details["limits"]["cpus"] == ncpu


def test_tmpfs_only_when_asked(smoke_run: Any) -> None:
    evidence, _ = smoke_run("lockdown", smoke.Config(tmpfs=True))
    output = evidence.runs[0].result.output
    assert "tmp write: allowed" in output
    assert "root write: denied" in output


def test_hang_is_killed_and_removed(smoke_run: Any, docker_api: Any, registry: RegistryServer) -> None:
    before = leftovers(docker_api, registry)
    evidence, findings = smoke_run("hang", smoke.Config(timeout=timedelta(seconds=2)))
    assert verdicts(findings) == [("linux/amd64", Verdict.FAIL)]
    assert "timed out after 2 s" in findings[0].message
    assert "waiting for a broker that never comes" in findings[0].message
    assert evidence.runs[0].result.timed_out
    assert leftovers(docker_api, registry) == before == ([], [])


def test_large_output_is_capped(smoke_run: Any) -> None:
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    evidence, findings = smoke_run("loud")
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = evidence.runs[0].result
    assert result.output_bytes > LOUD_BYTES
    assert result.truncated
    assert len(result.output.encode()) < HEAD_BYTES + TAIL_BYTES + 100
    assert (peak_after - peak_before) * 1024 < LOUD_BYTES // 4  # ru_maxrss is KiB on Linux
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)]  # the version line is in the kept tail


def test_uncompressed_size_is_what_the_engine_reports(
    smoke_run: Any, docker_api: Any, registry: RegistryServer
) -> None:
    evidence, _ = smoke_run("big", keep_images=True)
    run = evidence.runs[0]
    size = evidence.uncompressed_sizes["linux/amd64"]
    assert DATA_BYTES < size < DATA_BYTES + 3_000_000
    try:
        assert docker_api.inspect_image(run.reference)["Size"] == size  # --keep-images kept it
    finally:
        docker_api.remove_image(run.reference)


def test_measure_uncompressed_without_running(
    engine: EngineHandle, registry: RegistryServer, smoke_images: dict[str, SmokeImage], docker_api: Any
) -> None:
    facts = read_facts(registry.host, smoke_images["big"])
    ctx = CollectContext(registry=cast(Any, None), options=VerifyOptions())
    sizes = smoke.measure_uncompressed(ctx, facts)
    assert list(sizes) == ["linux/amd64"]
    assert DATA_BYTES < sizes["linux/amd64"] < DATA_BYTES + 3_000_000
    assert leftovers(docker_api, registry) == ([], [])


def test_nothing_left_behind(smoke_run: Any, docker_api: Any, registry: RegistryServer) -> None:
    for name in ("right", "nonzero", "no-entrypoint", "multi"):
        smoke_run(name)
    assert leftovers(docker_api, registry) == ([], [])


def test_image_present_before_is_kept(smoke_run: Any, docker_api: Any, registry: RegistryServer) -> None:
    evidence, _ = smoke_run("right", keep_images=True)
    reference = evidence.runs[0].reference
    try:
        _, again = smoke_run("right")
        assert verdicts(again) == [("linux/amd64", Verdict.PASS)]
        assert docker_api.inspect_image(reference)["RepoDigests"] == [reference]
    finally:
        docker_api.remove_image(reference)


def test_multi_platform_runs_the_engine_platform_and_skips_the_other(smoke_run: Any) -> None:
    evidence, findings = smoke_run("multi")
    by_platform = dict(verdicts(findings))
    assert by_platform["linux/amd64"] is Verdict.PASS
    arm = next(r for r in evidence.runs if r.platform == "linux/arm64")
    if "arm64" in _emulators():
        assert arm.emulated
    else:
        assert by_platform["linux/arm64"] is Verdict.SKIP
        assert "no emulator is registered" in next(f.message for f in findings if f.platform == "linux/arm64")
        assert arm.uncompressed_size is None


def test_platform_option_limits_the_runs(smoke_run: Any) -> None:
    evidence, findings = smoke_run("multi", platform="linux/amd64")
    assert [r.platform for r in evidence.runs] == ["linux/amd64"]
    assert verdicts(findings) == [("linux/amd64", Verdict.PASS)]


def _emulators() -> frozenset[str]:
    from imgcheck.engine.client import registered_emulators

    return registered_emulators()


def test_unpullable_digest_is_an_error_for_that_platform(
    engine: EngineHandle, registry: RegistryServer, smoke_images: dict[str, SmokeImage]
) -> None:
    facts = read_facts(registry.host, smoke_images["right"])
    missing = replace(facts.platforms[0], manifest_digest="sha256:" + "0" * 64)
    facts = replace(facts, platforms=(missing,))
    ctx = CollectContext(registry=cast(Any, None), options=VerifyOptions())
    evidence = smoke.collect(ctx, facts, VERSIONED)
    findings = smoke.check(replace(facts, extras={"smoke": evidence}), VERSIONED, RunContext(now=datetime.now(UTC)))
    assert verdicts(findings) == [("linux/amd64", Verdict.ERROR)]
    assert "could not pull" in findings[0].message
    assert "sha256:" + "0" * 64 in findings[0].message
