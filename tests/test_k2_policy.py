"""The bundled policies against a faithful replica of today's k2 post-merge pipeline.

The replica is what post-merge pushes today (fixtures.k2): a buildx OCI index holding the linux/amd64 image
and a provenance-only attestation manifest (build-push-action's default), metadata-action labels, tags
`latest`/`main`/`main-<sha7>`, and a clean Trivy report bound to each digest. `policies/k2.yaml` passes it
(signature, SBOM and signed provenance warn, each naming the workflow change that satisfies it) and fails
each kind of drift on its own; `k2-release.yaml` enforces what k2.yaml only warns about.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import imgcheck
from fixtures import k2, security
from fixtures.images import data_layer
from imgcheck.testing.engine_server import EngineHandle
from imgcheck.testing.push import Pusher
from imgcheck.testing.registry_server import RegistryServer

POLICIES = Path(imgcheck.__file__).parent / "policies"
KEYS = Path(__file__).resolve().parents[1] / "fixtures" / "keys"
WARNED = {"signature", "sbom", "provenance"}
HINTS = {  # what each warning must tell the pipeline's owner to change
    "signature": ("cosign sign", "id-token: write"),
    "sbom": ("sbom: true", "docker/build-push-action"),
    "provenance": ("actions/attest-build-provenance", "push-to-registry: true"),
}
REVISION = k2.LABEL_PREFIX + "revision"
CREATED = k2.LABEL_PREFIX + "created"
OTHER_COMMIT = k2.Build(k2._revision("k2 another commit"), "2026-11-20T11:00:00Z", "main")


def policy_in(tmp_path: Path, bundled: str, namespace: str, **rules: dict[str, Any]) -> Path:
    """The bundled policy, unchanged but for the repositories' namespace (and `rules` keys, if given)."""
    text = (
        (POLICIES / bundled)
        .read_text()
        .replace("rjdscott/k2-market-data-platform-", f"{namespace}/k2-market-data-platform-")
    )
    if rules:
        doc = yaml.safe_load(text)
        for rule, keys in rules.items():
            doc["rules"][rule].update(keys)
        text = yaml.safe_dump(doc)
    path = tmp_path / bundled
    path.write_text(text)
    return path


def publish(pusher: Pusher, host: str, namespace: str) -> k2.SampleRelease:
    """Today's pipeline: provenance-only attestations (build-push-action's default), no SBOM."""
    return k2.publish_sample_release(pusher, host, namespace=namespace, buildx_sbom=False)


def scan(images: list[k2.PublishedImage], reports: Path, critical_in: str | None = None) -> Path:
    """A Trivy report per image, bound to its digest: clean (a MEDIUM without a fix), or with a fixable CRITICAL."""
    reports.mkdir(exist_ok=True)
    for image in images:
        findings = [security.BUSYBOX_AWK_UAF]
        if image.name == critical_in:
            findings.append(security.BUSYBOX_ASH_OVERFLOW)
        report = security.trivy_report(image, findings, created=datetime.now(UTC))
        (reports / f"{image.name}.trivy.json").write_text(json.dumps(report))
    return reports


def verify(
    host: str, policy: Path, reports: Path, target: str, *, smoke: bool = False
) -> tuple[int, dict[str, Any], str]:
    args = ["verify", target, "--registry", host, "--policy", str(policy), "--trivy-report", str(reports)]
    done = subprocess.run(
        [sys.executable, "-m", "imgcheck", *args, "--format", "json", *(() if smoke else ("--no-smoke",))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def verdicts(report: dict[str, Any], verdict: str) -> set[tuple[str, str]]:
    return {(i["name"], c["rule"]) for i in report["images"] for c in i["checks"] if c["verdict"] == verdict}


def assert_only_the_pipeline_gaps_warn(report: dict[str, Any]) -> None:
    names = {i["name"] for i in report["images"]}
    assert verdicts(report, "warn") == {(n, r) for n in names for r in WARNED}
    for image in report["images"]:
        for check in image["checks"]:
            if check["verdict"] == "warn":
                assert "(mode: warn). To pass: in post-merge.yml" in check["message"]
                for needle in HINTS[check["rule"]]:
                    assert needle in check["message"], check["message"]


def test_todays_pipeline_passes_k2_with_a_hint_on_each_missing_step(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    release = publish(pusher, registry.host, "k2-today")
    reports = scan(list(release.current), tmp_path / "reports")
    code, report, output = verify(
        registry.host, policy_in(tmp_path, "k2.yaml", "k2-today"), reports, f"main-{k2.CURRENT.sha7}"
    )
    assert (code, report["verdict"]) == (0, "pass"), output
    assert {i["digest"] for i in report["images"]} == set(release.digests.values())
    assert verdicts(report, "fail") == verdicts(report, "error") == set()
    assert_only_the_pipeline_gaps_warn(report)
    vulns = [c for i in report["images"] for c in i["checks"] if c["rule"] == "vulnerabilities"]
    assert len(vulns) == 3 and all(c["verdict"] == "pass" for c in vulns)


@pytest.mark.engine
def test_todays_pipeline_passes_k2_with_its_smoke_runs(
    engine: EngineHandle, registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """The same, with every rule: each image run locked down in a real engine and its unpacked size measured."""
    release = publish(pusher, registry.host, "k2-today-smoke")
    reports = scan(list(release.current), tmp_path / "reports")
    policy = policy_in(tmp_path, "k2.yaml", "k2-today-smoke")
    code, report, output = verify(registry.host, policy, reports, f"main-{k2.CURRENT.sha7}", smoke=True)
    assert (code, report["verdict"]) == (0, "pass"), output
    assert verdicts(report, "skip") == verdicts(report, "fail") == verdicts(report, "error") == set(), output
    assert {("producer", "smoke"), ("producer", "size")} <= verdicts(report, "pass")
    assert_only_the_pipeline_gaps_warn(report)


def test_k2_release_enforces_what_k2_only_warns_about(registry: RegistryServer, pusher: Pusher, tmp_path: Path) -> None:
    release = publish(pusher, registry.host, "k2-strict")
    reports = scan(list(release.current), tmp_path / "reports")
    policy = policy_in(tmp_path, "k2-release.yaml", "k2-strict")
    (tmp_path / "keys").mkdir()
    shutil.copy(KEYS / "demo-cosign.pub", tmp_path / "keys" / "cosign.pub")  # the key it names (another signer)
    code, report, output = verify(registry.host, policy, reports, f"main-{k2.CURRENT.sha7}")
    assert (code, report["verdict"]) == (1, "fail"), output
    failed = verdicts(report, "fail")
    assert {(n, r) for n in k2.K2_NAMES for r in WARNED} <= failed, output
    assert verdicts(report, "warn") == set()


def _drifted(**how: Any) -> Callable[[Pusher, str], k2.PublishedImage]:
    """Push the producer as today's pipeline would, but for `how` (push_k2_image's keywords)."""
    return lambda pusher, repo: k2.push_k2_image(pusher, repo, buildx_sbom=False, **how)


def _oversize(pusher: Pusher, repo: str) -> k2.PublishedImage:
    extra = data_layer("/opt/k2/cache/tick-archive.bin", 3_000_000, seed=b"k2-oversize")
    return k2.push_k2_image(pusher, repo, buildx_sbom=False, extra_layers=[extra])


DRIFT: dict[str, tuple[Callable[[Pusher, str], k2.PublishedImage] | None, str, dict[str, Any], str]] = {
    # case: (push the drifted producer, target, rule overrides, the one rule that fails)
    "missing-label": (_drifted(drop_labels=(REVISION,)), "main", {}, "labels"),
    "garbage-revision-label": (_drifted(set_labels={REVISION: "HEAD"}), "main", {}, "labels"),
    "garbage-created-label": (_drifted(set_labels={CREATED: "last Tuesday"}), "main", {}, "labels"),
    "root-user": (_drifted(user=""), "main", {}, "config"),
    "latest-not-newest": (_drifted(build=k2.PREVIOUS, tags=("latest",)), "main", {}, "tags"),
    "images-from-different-commits": (_drifted(build=OTHER_COMMIT), "latest", {}, "tags"),
    "over-size-budget": (_oversize, "main", {"size": {"max_compressed": "2MB"}}, "size"),
    "fixable-critical": (None, "main", {}, "vulnerabilities"),
}


@pytest.mark.parametrize("case", list(DRIFT))
def test_each_drift_from_todays_pipeline_fails_k2_on_its_own(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path, case: str
) -> None:
    push_drift, target, overrides, rule = DRIFT[case]
    namespace = f"k2-drift-{case}"
    images = {i.name: i for i in publish(pusher, registry.host, namespace).current}
    if push_drift is not None:  # the producer drifts; the others stay good
        drifted = replace(push_drift(pusher, k2.repository("producer", namespace)), host=registry.host)
        if target in drifted.tags:
            images["producer"] = drifted  # the digest verified: its scan is bound to it
    critical = "producer" if case == "fixable-critical" else None
    reports = scan(list(images.values()), tmp_path / "reports", critical_in=critical)
    policy = policy_in(tmp_path, "k2.yaml", namespace, **overrides)
    code, report, output = verify(registry.host, policy, reports, target)
    assert (code, report["verdict"]) == (1, "fail"), output
    assert verdicts(report, "fail") == {("producer", rule)}, output
    assert verdicts(report, "error") == set(), output
    assert_only_the_pipeline_gaps_warn(report)


def test_latest_is_newest_reads_metadata_actions_label_on_reproducible_builds(
    registry: RegistryServer, pusher: Pusher, tmp_path: Path
) -> None:
    """SOURCE_DATE_EPOCH pins every config `created` to one time; the `created` label still orders builds."""
    repo = k2.repository("producer", "k2-reproducible")
    policy = tmp_path / "tags.yaml"
    policy.write_text(
        f"version: 1\nimages: [{{name: producer, repository: {repo}}}]\nrules:\n  tags: {{latest_is_newest: true}}\n"
    )
    epoch = "1970-01-01T00:00:00Z"
    for build, tags in ((k2.CURRENT, ("main", f"main-{k2.CURRENT.sha7}")), (k2.PREVIOUS, ("latest",))):
        pinned = replace(build, created=epoch)  # config `created`; the label keeps the workflow's time
        k2.push_k2_image(pusher, repo, build=pinned, tags=tags, set_labels={CREATED: build.created})
    code, report, output = verify(registry.host, policy, tmp_path, "main")
    [check] = report["images"][0]["checks"]
    assert (code, check["verdict"]) == (1, "fail"), output
    assert "built 2026-11-13T09:30:00Z by its org.opencontainers.image.created label" in check["message"]
    assert "built 2026-11-20T10:00:00Z by its org.opencontainers.image.created label" in check["message"]

    policy.write_text(policy.read_text().replace(repo, repo + "-unlabelled"))
    for build, tags in ((k2.CURRENT, ("main",)), (k2.PREVIOUS, ("latest",))):  # no labels: only the pinned time
        pinned = replace(build, created=epoch)
        k2.push_k2_image(pusher, repo + "-unlabelled", build=pinned, tags=tags, drop_labels=(CREATED,))
    code, report, output = verify(registry.host, policy, tmp_path, "main")
    [check] = report["images"][0]["checks"]
    assert (code, check["verdict"]) == (0, "warn"), output
    assert "same build time 1970-01-01T00:00:00Z" in check["message"]
    assert "by its config `created` (no valid created label)" in check["message"]
    for digest in (check["details"]["latest"], *check["details"]["tied_with"]):
        assert digest.split(":")[1][:12] in check["message"]
