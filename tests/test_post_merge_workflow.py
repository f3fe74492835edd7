"""docs/workflows/post-merge.yml is the real gate for the k2 repository: it builds and pushes as the k2
workflow does, signs keyless, attaches an SBOM and a signed provenance, then runs `imgcheck verify
main-<sha7> --scan`; and every step the bundled k2.yaml's hints name is in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from imgcheck.policy.loader import load_policy

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "docs" / "workflows" / "post-merge.yml"
K2 = ROOT / "src" / "imgcheck" / "policies" / "k2.yaml"


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return dict(doc)


def steps(job: str) -> list[dict[str, Any]]:
    return list(workflow()["jobs"][job]["steps"])


def step_using(job: str, action: str) -> dict[str, Any]:
    [found] = [s for s in steps(job) if str(s.get("uses", "")).startswith(action + "@")]
    return found


def test_build_pushes_signs_and_attests_each_image() -> None:
    build = workflow()["jobs"]["build"]
    assert build["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    assert build["strategy"]["matrix"]["image"] == ["producer", "consumer", "query-engine"]
    tags = step_using("build", "docker/metadata-action")["with"]["tags"].split()
    assert tags == ["type=raw,value=latest", "type=ref,event=branch", "type=sha,prefix=main-,format=short"]
    push = step_using("build", "docker/build-push-action")
    assert push["id"] == "push"
    assert (push["with"]["push"], push["with"]["sbom"], push["with"]["provenance"]) == (True, True, "mode=max")
    assert push["with"]["labels"] == "${{ steps.meta.outputs.labels }}"
    sign = next(s for s in steps("build") if "cosign sign" in s.get("run", ""))
    assert sign["run"] == 'cosign sign --yes "${IMAGE}@${DIGEST}"'  # keyless: no --key
    assert sign["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"
    attest = step_using("build", "actions/attest-build-provenance")
    assert attest["with"]["push-to-registry"] is True
    assert attest["with"]["subject-digest"] == "${{ steps.push.outputs.digest }}"
    names = [str(s.get("uses", s.get("name"))) for s in steps("build")]
    order = [
        next(i for i, n in enumerate(names) if n.startswith(a))
        for a in ("docker/build-push", "sigstore/", "actions/attest")
    ]
    assert order == sorted(order)  # sign and attest the digest that was pushed


def test_gate_scans_and_verifies_the_commits_build_with_imgcheck_from_its_repository() -> None:
    gate = workflow()["jobs"]["gate"]
    assert gate["needs"] == "build"
    install = next(s for s in steps("gate") if "pip install" in s.get("run", ""))["run"]
    assert install == 'python -m pip install "imgcheck @ git+${IMGCHECK_REPO}@${IMGCHECK_REF}"'  # never from PyPI
    step_using("gate", "aquasecurity/setup-trivy")  # --scan runs Trivy
    verify = next(s for s in steps("gate") if s.get("id") == "imgcheck")["run"]
    assert verify.startswith('imgcheck verify "main-${GITHUB_SHA::7}" --scan \\\n')
    assert "--policy imgcheck.yaml" in verify


def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment() -> None:
    lines = [line.strip() for line in WORKFLOW.read_text(encoding="utf-8").splitlines()]
    uses = [line for line in lines if re.match(r"(- )?uses: ", line)]
    assert len(uses) >= 12
    for line in uses:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


def test_run_scripts_expand_no_expressions() -> None:
    """Values reach scripts through `env:`; `${{ }}` inside a script is a shell-injection path."""
    for job in ("build", "gate"):
        for step in steps(job):
            assert "${{" not in step.get("run", ""), step


def test_each_hint_of_the_bundled_policy_names_a_step_of_this_workflow() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    rules = load_policy(K2).images[0].rules
    needles = {
        "signature": ("cosign sign", "id-token: write"),
        "sbom": ("sbom: true", "docker/build-push-action"),
        "provenance": ("actions/attest-build-provenance", "push-to-registry: true", "attestations: write"),
    }
    for rule, words in needles.items():
        config = rules[rule]
        assert config.mode == "warn" and config.hint and "post-merge.yml" in config.hint
        for word in words:
            assert word in config.hint, (rule, word)
            assert word in text, (rule, word)
