"""undertow.dclass behaves as dataclasses does for what undertow uses."""

import dataclasses

import pytest

from undertow import dclass


def both(**opts):
    """The same class body made by the standard decorator and by ours."""
    out = []
    for mod in (dataclasses, dclass):
        @mod.dataclass(**opts)
        class Point:
            x: int
            y: int = 2
            tags: list = mod.field(default_factory=list)
            note: str = mod.field(default="n", compare=False, repr=False)
        out.append(Point)
    return out


@pytest.mark.parametrize("opts", [{}, {"frozen": True}, {"eq": False}])
def test_init_repr_eq_hash_like_the_standard(opts):
    std, ours = both(**opts)
    for args, kw in [((1,), {}), ((1, 3), {"tags": [4]}), ((), {"x": 5, "note": "m"})]:
        a, b = std(*args, **kw), ours(*args, **kw)
        assert repr(a).replace(std.__qualname__, "P") == repr(b).replace(ours.__qualname__, "P")
        assert (a == std(*args, **kw)) == (b == ours(*args, **kw))
        assert (a == std(9)) == (b == ours(9))
        assert (std.__hash__ is None) == (ours.__hash__ is None)
        if std.__hash__ is not None and opts.get("frozen"):
            with pytest.raises(TypeError):  # as the standard one: a list field is unhashable
                hash(a)
            with pytest.raises(TypeError):
                hash(b)
    assert ours(1).tags is not ours(1).tags  # a fresh list each time
    assert ours(1, note="a") == ours(1, note="b") or opts.get("eq") is False  # note not compared
    with pytest.raises(TypeError):
        ours()
    with pytest.raises(TypeError):
        ours(1, 2, [], "n", 5)


def test_frozen_inheritance_post_init_replace_fields():
    @dclass.dataclass(frozen=True)
    class Base:
        size: int = 0

    @dclass.dataclass(frozen=True)
    class Sub(Base):
        name: str = ""
        size: int = 8  # re-declared: keeps its place

    s = Sub(4, "a")
    assert (s.size, s.name) == (4, "a") and repr(s).endswith("Sub(size=4, name='a')")
    with pytest.raises(dclass.FrozenInstanceError):
        s.size = 1
    with pytest.raises(AttributeError):
        del s.name
    assert dclass.replace(s, name="b") == Sub(4, "b") and [f.name for f in dclass.fields(s)] == ["size", "name"]
    assert {Sub(1, "x"), Sub(1, "x")} == {Sub(1, "x")}

    seen = []

    @dclass.dataclass
    class Post:
        a: int = 1

        def __post_init__(self):
            seen.append(self.a)

    Post(3)
    assert seen == [3]


def test_explicit_hash_kept_and_mutable_default_refused():
    @dclass.dataclass
    class H:
        a: int = 0

        def __hash__(self):
            return 7

    assert hash(H()) == 7
    with pytest.raises(ValueError):
        @dclass.dataclass
        class Bad:
            a: list = []
    with pytest.raises(TypeError):
        @dclass.dataclass
        class Order:
            a: int = 0
            b: int


def test_init_is_generated_on_first_instance_and_shared_by_plain_subclasses():
    @dclass.dataclass
    class Lazy:
        a: int
        b: int = 2

    stand_in = Lazy.__dict__["__init__"]

    class Plain(Lazy):  # not decorated: inherits the stand-in
        pass

    p = Plain(1)
    assert (p.a, p.b) == (1, 2)
    real = Lazy.__dict__["__init__"]
    assert real is not stand_in and real.__qualname__.endswith("Lazy.__init__")
    assert Lazy(5, b=6) == Lazy(5, 6) and Lazy.__dict__["__init__"] is real  # generated once
    with pytest.raises(TypeError):
        Lazy(1, 2, 3)


def test_templates_file_is_up_to_date():
    import importlib.util
    import os

    script = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "gen_dclass_templates.py")
    spec = importlib.util.spec_from_file_location("gen_dclass_templates", script)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with open(os.path.join(os.path.dirname(dclass.__file__), "dclass_templates.py")) as f:
        assert f.read() == gen.render(), "run scripts/gen_dclass_templates.py"


@pytest.mark.parametrize("frozen", [False, True])
def test_templated_and_generated_inits_agree(frozen):
    """A class the templates cover and one past them (exec) build the same instances."""
    from undertow import dclass_templates

    made = []

    def make(extra):
        ns = {"__annotations__": {"a": "int", "b": "list", "c": "str"}, "b": dclass.field(default_factory=list),
              "c": "z", "__post_init__": lambda self: made.append((type(self).__name__, self.a, self.b, self.c))}
        for i in range(extra):
            ns["__annotations__"][f"x{i}"] = "int"
            ns[f"x{i}"] = i
        return dclass.dataclass(frozen=frozen)(type(f"C{extra}", (), ns))

    small, big = make(0), make(dclass_templates.MAX_FIELDS)
    for cls in (small, big):
        o = cls(1)
        assert (o.a, o.b, o.c) == (1, [], "z") and o.b is not cls(1).b
        assert cls(2, c="q", b=[3]).b == [3] and made[-1][1:] == (2, [3], "q")
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
            cls()
        with pytest.raises(TypeError, match="unexpected keyword argument 'd'"):
            cls(1, d=2)
        if frozen:
            with pytest.raises(dclass.FrozenInstanceError):
                o.a = 3
    assert "dclass_templates" in small.__init__.__code__.co_filename
    assert "dclass_templates" not in big.__init__.__code__.co_filename
    assert small.__init__.__code__.co_varnames[:4] == ("self", "a", "b", "c")
