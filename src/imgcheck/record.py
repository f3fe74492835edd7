"""`@record`: a frozen dataclass whose methods are shared instead of compiled per class.

Python 3.11's `dataclass` writes each method it adds as source text and compiles it with its own `exec`
(~45 us each): a frozen dataclass gets six, and `imgcheck verify` loads ~36 of them at start-up (~12 ms
of a ~0.13 s run). A record lets dataclass generate only `__init__` (so `fields()`, `replace()` and
`asdict()` are dataclass's own) and shares the rest, written once here with dataclass's meaning:
- frozen: `__init__` assigns each field once; assigning a field that is set, or a name that is no
  field, raises FrozenInstanceError, and so does any `del` (`__post_init__` may still use
  `object.__setattr__`, as with a frozen dataclass);
- equal only to an instance of the very same class with equal `compare` fields; hashed over the fields
  dataclass would hash; shown as `Name(field=value, ...)` over the `repr` fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T", bound=type)
_SHARED = ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: _T) -> _T:
    """Make `cls` a frozen dataclass with the shared methods."""
    if any(name in cls.__dict__ for name in _SHARED):
        raise TypeError(f"{cls.__qualname__}: a record's {', '.join(_SHARED)} are shared; use @dataclass")
    done: Any = dataclasses.dataclass(eq=False, repr=False)(cls)
    fields = dataclasses.fields(done)
    done.__record_fields__ = frozenset(f.name for f in fields)
    done.__setattr__ = _setattr
    done.__delattr__ = _delattr
    compared = [f.name for f in fields if f.compare]
    hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
    done.__record_compared__ = staticmethod(_values(compared))  # read through instances: never bound
    done.__record_hashed__ = staticmethod(_values(hashed))
    done.__record_shown__ = tuple(f.name for f in fields if f.repr)
    done.__eq__ = _eq
    done.__hash__ = _hash
    done.__repr__ = _repr
    return cls


def _values(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The named attributes of an instance as one tuple (attrgetter is C; it returns a bare value for one name)."""
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        get_one = attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return attrgetter(*names)


def _setattr(self: Any, name: str, value: Any) -> None:
    """`__init__` sets each field once; any later assignment (or one to a name that is no field) is refused."""
    if name in self.__dict__ or name not in self.__record_fields__:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _eq(self: Any, other: Any) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = self.__record_compared__
    return values(self) == values(other)


def _hash(self: Any) -> int:
    return hash(self.__record_hashed__(self))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_shown__)
    return f"{self.__class__.__qualname__}({shown})"
