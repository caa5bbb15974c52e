"""undertow.consts: kernel enums as plain ints, named on demand."""

import pytest

from undertow.consts import Consts


def test_consts_are_ints_with_reverse_lookup():
    class Kind(Consts):
        A = 1
        B = 7

    assert Kind.B == 7 and type(Kind.B) is int
    assert Kind(7).name == "B" and Kind(7) == 7
    assert [k.name for k in Kind] == ["A", "B"] and len(Kind) == 2
    with pytest.raises(ValueError):
        Kind(3)
