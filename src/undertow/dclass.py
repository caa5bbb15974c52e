"""``@dataclass`` and ``field()`` for undertow's own classes, cheaper to define than the
standard library's.

Start-up time is a feature of a tracer (``undertow run`` is compared with bpftrace on time
to the first event). :mod:`dataclasses` spends ~0.3-0.6 ms per class (an ``exec`` per
generated method, ``inspect.signature`` for classes without a docstring) and imports
:mod:`inspect`; undertow defines ~70 such classes, so a one-liner paid ~20 ms before doing
anything. This module makes only ``__init__``, from precompiled templates renamed per class
(undertow.dclass_templates: no ``exec``, and the per-instance hot path is as fast as the
standard one), and shares generic ``__repr__``, ``__eq__``, ``__hash__`` and frozen
``__setattr__`` functions.

Supported, with the standard library's semantics: ``@dataclass``, ``@dataclass(frozen=...,
eq=..., repr=...)``, ``field(default=..., default_factory=..., repr=..., compare=...,
hash=...)``, ``__post_init__``, inheritance of fields from decorated bases (a re-declared
field keeps its place), the ``__hash__`` rules (eq and not frozen: unhashable; eq and frozen:
hash of the compared fields; an explicit ``__hash__`` is kept) and the ``repr`` format
``Name(a=1, b='x')``. Not supported (not used here): ``InitVar``, ``ClassVar``, ``kw_only``,
``slots``, ``order``. :func:`fields` and :func:`replace` work on these classes only.
"""

from __future__ import annotations

from types import FunctionType

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations are strings: typing is not imported at run time (start-up)
    from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["dataclass", "field", "fields", "replace", "Field", "FrozenInstanceError", "MISSING"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_FACTORY: Any = type("_HasFactory", (), {"__repr__": lambda self: "<factory>"})()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen instance."""


class Field:
    __slots__ = ("name", "default", "default_factory", "repr", "compare", "hash")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True,
                 compare: bool = True, hash: Optional[bool] = None) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default, self.default_factory = default, default_factory
        self.repr, self.compare, self.hash = repr, compare, hash


def field(*, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True, compare: bool = True,
          hash: Optional[bool] = None) -> Any:
    """A field with a default, a default factory or other options (as :func:`dataclasses.field`)."""
    return Field(default, default_factory, repr, compare, hash)


def _repr(self: Any) -> str:
    fs = type(self).__dclass_fields__
    return f"{type(self).__qualname__}(" + ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in fs.values() if f.repr) + ")"


def _key(self: Any) -> Tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self).__dclass_compare__)


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        return _key(self) == _key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, n) for n in type(self).__dclass_hash__))


def _frozen_setattr(cls: type) -> Tuple[Callable[..., None], Callable[..., None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in cls.__dclass_fields__:  # type: ignore[attr-defined]
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in cls.__dclass_fields__:  # type: ignore[attr-defined]
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


def _check_order(cls: type, fields: Dict[str, Field]) -> None:
    """The standard library's definition-time check, kept eager though ``__init__`` is lazy."""
    seen_default = False
    for name, f in fields.items():
        if f.default_factory is not MISSING or f.default is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__qualname__}: non-default argument {name!r} follows default argument")


def _lazy_init(cls: type, fields: Dict[str, Field], frozen: bool) -> Callable[..., None]:
    """A stand-in ``__init__`` that generates the real one on the class's first instance.

    A run instantiates a fraction of the classes it imports; making an ``__init__``
    (~3 us from a template, ~0.1 ms with ``exec``) is paid only for those.
    """
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        real = _init(cls, fields, frozen)
        if cls.__dict__.get("__init__") is __init__:
            cls.__init__ = real  # type: ignore[misc]
        real(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _init(cls: type, fields: Dict[str, Field], frozen: bool) -> Callable[..., None]:
    """``__init__`` made from a template of undertow.dclass_templates, renamed for ``fields``.

    The template's bytecode is what ``exec`` of generated source made (``self.x = x`` per
    field, or ``object.__setattr__`` when frozen), so an instance costs the same; only
    default factories and ``__post_init__`` go through one ``_tail(self)`` call at the end.
    A class with more fields than the templates have, or a field named like a template's
    own names, gets the generated source as before.
    """
    from . import dclass_templates as T

    names = list(fields)
    if len(names) > T.MAX_FIELDS or {"self", "_set", "_tail"} & set(names):
        return _init_exec(cls, fields, frozen)
    factories = [(n, f.default_factory) for n, f in fields.items() if f.default_factory is not MISSING]
    post = hasattr(cls, "__post_init__")
    tail = bool(factories or post)
    template = getattr(T, f"{'frozen' if frozen else 'plain'}{'_tail' if tail else ''}_{len(names)}")
    code = template.__code__
    rename = {f"f{i}": n for i, n in enumerate(names)}
    code = code.replace(co_varnames=tuple(rename.get(v, v) for v in code.co_varnames),
                        co_names=tuple(rename.get(v, v) for v in code.co_names),
                        co_consts=tuple(rename.get(v, v) if type(v) is str else v for v in code.co_consts),
                        co_name="__init__")
    qualname = f"{cls.__qualname__}.__init__"
    if hasattr(code, "co_qualname"):  # Python 3.11+: argument errors name the function by it
        code = code.replace(co_qualname=qualname)
    env: Dict[str, Any] = {"_set": object.__setattr__, "__builtins__": __builtins__}
    if tail:
        env["_tail"] = _tail(factories, frozen, post)
    defaults = tuple(_FACTORY if f.default_factory is not MISSING else f.default
                     for f in fields.values() if f.default_factory is not MISSING or f.default is not MISSING)
    fn = FunctionType(code, env, "__init__", defaults or None)
    fn.__qualname__ = qualname
    return fn  # type: ignore[no-any-return]


def _tail(factories: List[Tuple[str, Callable[[], Any]]], frozen: bool, post: bool) -> Callable[[Any], None]:
    """What ends an ``__init__``: a fresh value for each defaulted factory field, then
    ``__post_init__`` (the standard library evaluates factories in place: same result,
    since a factory takes no argument)."""
    assign = object.__setattr__ if frozen else setattr

    def tail(self: Any) -> None:
        for name, factory in factories:
            if getattr(self, name) is _FACTORY:
                assign(self, name, factory())
        if post:
            self.__post_init__()

    return tail


def _init_exec(cls: type, fields: Dict[str, Field], frozen: bool) -> Callable[..., None]:
    """``__init__`` generated with one ``exec`` (classes the templates do not cover)."""
    env: Dict[str, Any] = {"_FACTORY": _FACTORY, "_set": object.__setattr__}
    params, body = ["self"], []
    for name, f in fields.items():
        if f.default_factory is not MISSING:
            env[f"_f_{name}"] = f.default_factory
            params.append(f"{name}=_FACTORY")
            value = f"_f_{name}() if {name} is _FACTORY else {name}"
        elif f.default is not MISSING:
            env[f"_d_{name}"] = f.default
            params.append(f"{name}=_d_{name}")
            value = name
        else:
            params.append(name)
            value = name
        body.append(f"  _set(self, {name!r}, {value})" if frozen else f"  self.{name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("  self.__post_init__()")
    if not body:
        body.append("  pass")
    src = f"def __init__({', '.join(params)}):\n" + "\n".join(body)
    exec(src, env)  # noqa: S102 - generated from the class's own field names
    fn = env["__init__"]
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    return fn  # type: ignore[no-any-return]


def _process(cls: type, eq: bool, frozen: bool, repr: bool) -> type:
    fields: Dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        base_fields = base.__dict__.get("__dclass_fields__")
        if base_fields:
            fields.update(base_fields)
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        else:
            if isinstance(value, (list, dict, set)):
                raise ValueError(f"{cls.__qualname__}.{name}: mutable default {type(value).__name__} "
                                 "is not allowed: use default_factory")
            f = Field(default=value)
        f.name = name
        fields[name] = f
    cls.__dclass_fields__ = fields  # type: ignore[attr-defined]
    cls.__dclass_compare__ = tuple(n for n, f in fields.items() if f.compare)  # type: ignore[attr-defined]
    cls.__dclass_hash__ = tuple(  # type: ignore[attr-defined]
        n for n, f in fields.items() if (f.compare if f.hash is None else f.hash))
    _check_order(cls, fields)
    cls.__init__ = _lazy_init(cls, fields, frozen)  # type: ignore[misc]
    own = cls.__dict__
    if repr and "__repr__" not in own:
        cls.__repr__ = _repr  # type: ignore[assignment]
    # the standard rules: a class body that defines __eq__ but not __hash__ gets
    # __hash__ = None from Python itself, which does not count as explicit
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if eq:
        if "__eq__" not in own:
            cls.__eq__ = _eq  # type: ignore[assignment]
        if not explicit_hash:
            cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    if frozen:
        cls.__setattr__, cls.__delattr__ = _frozen_setattr(cls)  # type: ignore[assignment]
    return cls


def dataclass(cls: Optional[type] = None, *, eq: bool = True, frozen: bool = False, repr: bool = True) -> Any:
    """As :func:`dataclasses.dataclass` for the options listed in the module's docstring."""
    def wrap(c: type) -> type:
        return _process(c, eq, frozen, repr)

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> Tuple[Field, ...]:
    """The fields of a class (or instance) made by :func:`dataclass`, in order."""
    return tuple(obj.__dclass_fields__.values())


def replace(obj: Any, **changes: Any) -> Any:
    """A new instance of ``obj``'s class with ``changes`` applied (as :func:`dataclasses.replace`)."""
    for name in obj.__dclass_fields__:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return obj.__class__(**changes)
