"""Edge I/O shared by the three supply-chain rules: read trust material from files and discover
attachments. Returns plain data so the rules' checks stay pure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgcheck.errors import InputError
from imgcheck.record import record
from imgcheck.supplychain.attachments import Discovered
from imgcheck.supplychain.discovery import Purpose, discover
from imgcheck.supplychain.outcome import Trust

if TYPE_CHECKING:
    from imgcheck.checks.interface import CollectContext
    from imgcheck.facts import ImageFacts

MAX_TRUST_FILE_BYTES = 1024 * 1024


@record
class Evidence:
    """What a supply-chain rule's check needs: the attachments found and what the policy trusts."""

    found: Discovered
    trust: Trust


def read_trust_file(path: str, base: Path, what: str) -> bytes:
    """A key or trusted root named in the policy (relative to the policy's folder)."""
    full = Path(path) if Path(path).is_absolute() else base / path
    try:
        data = full.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read {what} {full}: {exc.strerror or exc}",
            hint="paths in the policy are relative to the policy file's folder",
        ) from None
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise InputError(f"{what} {full} is {len(data)} bytes; expected a small PEM/JSON file")
    return data


def build_trust(
    keys: tuple[str, ...],
    issuer: str | None,
    identity: str | None,
    trusted_root: str | None,
    base: Path,
    *,
    require_sct: bool = True,
) -> Trust:
    root = read_trust_file(trusted_root, base, "trusted root") if trusted_root else None
    if root is not None and trusted_root is not None:
        _check_root(root, trusted_root)
    return Trust(
        keys=tuple((k, read_trust_file(k, base, "public key")) for k in keys),
        issuer=issuer,
        identity=identity,
        trusted_root=root,
        trusted_root_name=trusted_root,
        require_sct=require_sct,
    )


def _check_root(raw: bytes, name: str) -> None:
    """A trusted root that cannot be read is bad input (exit 2), found before any attachment is judged."""
    from imgcheck.supplychain import trustroot
    from imgcheck.supplychain.dsse import MalformedError

    try:
        trustroot.load(raw, name)
    except MalformedError as exc:
        raise InputError(
            f"trusted root {name} is unusable: {exc}",
            hint="give a Sigstore trusted_root.json (trustedroot v0.1), as `cosign trusted-root create` writes",
        ) from None


def collect(ctx: CollectContext, facts: ImageFacts, purpose: Purpose, trust: Trust) -> Evidence:
    ctx.progress(f"{facts.name}: looking for {purpose} attachments on {facts.short_digest}")
    found = discover(ctx.registry, facts.registry, facts.repository, facts.digest, purpose, facts.attestation_manifests)
    return Evidence(found, trust)


def image_digests(facts: ImageFacts) -> list[str]:
    """Digests that stand for this image: the resolved digest first, then its platform manifests
    and configs (an index's buildx attestations and syft's ImageID name those)."""
    out = [facts.digest]
    for p in facts.platforms:
        for d in (p.manifest_digest, p.config_digest):
            if d not in out:
                out.append(d)
    return out
