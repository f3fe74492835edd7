"""The files a policy names (keys, trusted roots, VEX documents, ignore files): each must exist and parse.

`imgcheck policy validate` reads them all with the same parsers a verify uses, so a policy that validates
does not fail later on a missing `keys/cosign.pub`. Relative paths resolve as a verify resolves them
(`Policy.base_dir`). Each file is read once however many images share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from imgcheck.checks.interface import RuleConfig
from imgcheck.errors import ImgcheckError, InputError, PolicyError
from imgcheck.policy.model import Policy


def _key(path: Path) -> None:
    from imgcheck.supplychain.evidence import read_trust_file
    from imgcheck.supplychain.keys import load_public_key

    load_public_key(str(path), read_trust_file(str(path), Path("."), "public key"))


def _trusted_root(path: Path) -> None:
    from imgcheck.supplychain.bundles import _trusted_root as parse_trusted_root
    from imgcheck.supplychain.evidence import read_trust_file

    raw = read_trust_file(str(path), Path("."), "trusted root")
    try:
        parse_trusted_root(raw)
    except Exception as exc:  # pydantic / sigstore errors: anything that does not load is not a trusted root
        raise InputError(f"not a Sigstore trusted_root.json ({type(exc).__name__})") from None


def _vex(path: Path) -> None:
    from imgcheck.vulns import files, vex

    doc = files.decode_json(files.read_bytes(path, files.MAX_SIDE_FILE_BYTES, "VEX"), str(path), "VEX")
    vex.parse_vex(doc, str(path))


def _ignore_file(path: Path) -> None:
    from imgcheck.vulns import files, waivers

    waivers.load_ignore_file(path, files.read_text(path, "ignore file"))


_KINDS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "keys": ("public key", _key),
    "trusted_root": ("trusted root", _trusted_root),
    "vex": ("VEX document", _vex),
    "ignore_files": ("ignore file", _ignore_file),
}
"""Config key -> what the file is and how a verify parses it (the same key means the same in every rule)."""


def named_files(config: RuleConfig) -> Iterator[tuple[str, str]]:
    """(key, path) for every file a rule config names."""
    for key in _KINDS:
        value = getattr(config, key, None)
        for path in (value,) if isinstance(value, str) else value or ():
            yield key, path


def check_named_files(policy: Policy) -> int:
    """Read and parse every file the policy names; PolicyError naming the rule, key and file. Returns the count."""
    seen: set[tuple[str, Path]] = set()
    for image in policy.images:
        for rule_id, config in image.rules.items():
            for key, name in named_files(config):
                path = Path(name) if Path(name).is_absolute() else policy.base_dir / name
                if (key, path) in seen:
                    continue
                seen.add((key, path))
                what, parse = _KINDS[key]
                if not path.is_file():
                    raise PolicyError(
                        f"{policy.path}: {rule_id}.{key}: {what} {path} does not exist",
                        hint="paths in the policy are relative to the policy file's folder",
                    )
                try:
                    parse(path)
                except ImgcheckError as exc:
                    raise PolicyError(f"{policy.path}: {rule_id}.{key}: {what} {path} does not load: {exc}") from None
    return len(seen)
