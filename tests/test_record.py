"""`@record` must mean what `@dataclass(frozen=True)` means: same equality, hashing, repr, immutability."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from imgcheck.record import record


def sample_class(decorate: Callable[[type], type]) -> Any:
    """One class body under two decorators: what differs between the two classes is only the decorator."""

    class Sample:
        __annotations__ = {
            "name": str,
            "size": int,
            "tags": tuple[str, ...],
            "note": str,
            "secret": str,
            "derived": int,
        }
        size = 0
        tags = ()
        note = field(default="", compare=False)
        secret = field(default="", repr=False)
        derived = field(init=False, repr=False, default=0)

    return decorate(Sample)


Plain = sample_class(dataclass(frozen=True))
Rec = sample_class(record)


@record
class Single:
    value: str


@record
class Empty:
    pass


@record
class Other:
    value: str


SAMPLES: list[dict[str, Any]] = [
    dict(name="a"),
    dict(name="a", size=3, tags=("x", "y")),
    dict(name="a", size=3, tags=("x",), note="n", secret="s"),
    dict(name="b", note="other note"),
]


@pytest.mark.parametrize("left", SAMPLES)
@pytest.mark.parametrize("right", SAMPLES)
def test_equality_and_hash_match_dataclass(left: dict[str, object], right: dict[str, object]) -> None:
    plain = Plain(**left) == Plain(**right)
    rec = Rec(**left) == Rec(**right)
    assert rec == plain
    assert (Rec(**left) != Rec(**right)) == (Plain(**left) != Plain(**right))
    if rec:
        assert hash(Rec(**left)) == hash(Rec(**right))
    assert hash(Rec(**left)) == hash(Plain(**left))  # the same tuple is hashed


def test_repr_matches_dataclass_with_the_class_name() -> None:
    for sample in SAMPLES:
        assert repr(Rec(**sample)) == repr(Plain(**sample))
    assert "secret" not in repr(Rec("a", secret="hunter2"))
    assert repr(Single("x")) == "Single(value='x')"
    assert repr(Empty()) == "Empty()"


def test_only_the_same_class_is_equal() -> None:
    assert Single("x") != Other("x")  # type: ignore[comparison-overlap]
    assert Single("x") != ("x",)  # type: ignore[comparison-overlap]
    assert Single("x") == Single("x")
    assert Empty() == Empty()
    assert hash(Empty()) == hash(())
    assert len({Single("x"), Single("x"), Other("x")}) == 2


def test_frozen_and_dataclass_tools_work() -> None:
    item = Rec("a", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.size = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del item.name
    assert [f.name for f in dataclasses.fields(item)] == ["name", "size", "tags", "note", "secret", "derived"]
    assert dataclasses.replace(item, size=5) == Rec("a", 5)
    assert dataclasses.asdict(item)["name"] == "a"
    assert dataclasses.is_dataclass(item)
    assert pickle.loads(pickle.dumps(Single("x"))) == Single("x")


def test_unhashable_field_fails_like_dataclass() -> None:
    @record
    class Holder:
        data: dict[str, int]

    with pytest.raises(TypeError):
        hash(Holder({"a": 1}))
    assert Holder({"a": 1}) == Holder({"a": 1})


def test_own_dunder_methods_are_refused() -> None:
    with pytest.raises(TypeError, match="shared"):

        @record
        class Custom:
            value: int

            def __eq__(self, other: object) -> bool:
                return True


def test_frozen_covers_new_names_subclasses_and_post_init() -> None:
    @record
    class Base:
        name: str

    @record
    class Child(Base):
        size: int = 0
        doubled: int = field(init=False, default=0)

        def __post_init__(self) -> None:
            object.__setattr__(self, "doubled", self.size * 2)  # as with a frozen dataclass

    child = Child("a", 2)
    assert child.doubled == 4
    assert child == Child("a", 2) and child != Base("a")
    for name in ("name", "size", "doubled", "not_a_field"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(child, name, 1)
    assert not hasattr(child, "not_a_field")
    assert dataclasses.replace(child, size=3).doubled == 6


def test_imgcheck_defines_its_frozen_classes_as_records() -> None:
    """A plain `@dataclass(frozen=True)` costs six compiled methods at every start-up (bench/RESULTS.md);
    the one exception keeps `slots=True` for the 10,000 findings of a Trivy report."""
    import importlib
    import inspect
    import pkgutil

    import imgcheck

    plain = []
    for module in pkgutil.walk_packages(imgcheck.__path__, "imgcheck."):
        if module.name in ("imgcheck.__main__",):
            continue
        loaded = importlib.import_module(module.name)
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            params = getattr(cls, "__dataclass_params__", None)
            if cls.__module__ == module.name and params is not None and params.frozen:
                plain.append(f"{module.name}.{cls.__qualname__}")
    assert plain == ["imgcheck.vulns.evaluate.Judged"]
