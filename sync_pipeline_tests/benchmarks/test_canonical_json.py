"""model.canonical_json is the stdlib's text, computed faster (orjson where provably the same).

The speed-up is benchmarks/ work (issue 5); this holds it to the text the mirror's
``raw_digest`` values were computed from, so no mirrored row changes digest.
"""

from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_pipeline import model
from sync_pipeline_tests import fixtures as fx


def stdlib(value):  # noqa: ANN001, ANN201 - the reference: what canonical_json was
    if value is None:  # SQL NULL, not "null"
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def assert_same_as_stdlib(value) -> None:  # noqa: ANN001
    expected = stdlib(value)
    assert model.canonical_json(value) == expected
    if expected is None:
        assert model.canonical_json_bytes(value) is None
        return
    try:
        expected_bytes = expected.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the bytes cannot exist, and both say so
        with pytest.raises(UnicodeEncodeError):
            model.canonical_json_bytes(value)
        return
    assert model.canonical_json_bytes(value) == expected_bytes
    assert model.digest(expected_bytes) == model.digest(expected)


# Everything a JSON parser can hand over: any text (lone surrogates included, as "\ud800"
# decodes to one), integers of any size, every finite float.
any_text = st.text(alphabet=st.characters(blacklist_categories=()))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_text, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_any_json_value_gives_the_stdlib_text(value) -> None:  # noqa: ANN001
    assert_same_as_stdlib(value)


@settings(max_examples=1500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_gives_the_stdlib_text(value: float) -> None:
    assert_same_as_stdlib({"x": value, "in a list": [value]})


@pytest.mark.parametrize(
    "value",
    [1e-5, -2.5e-7, 0.0001, 9.99e-5, 1e16, 1e15, 1e22, 1e-300, 5e-324, 1.7976931348623157e308,
     123456789.123, 0.1, -0.0, 4.5, 2**63 - 1, 2**64 - 1, 2**64, -(2**63) - 1, 10**40],
)
def test_edge_numbers(value) -> None:  # noqa: ANN001
    assert_same_as_stdlib([value, {"n": value}])


def test_every_code_point_and_every_escape() -> None:
    for start in range(0, 0x110000, 0x800):
        assert_same_as_stdlib({"".join(map(chr, range(start, start + 0x800))): "key"})
    assert_same_as_stdlib({"c": "".join(map(chr, range(0x20))) + '"\\/\x7f\u2028\u2029'})


def test_text_that_looks_like_a_small_float_is_still_exact() -> None:
    assert_same_as_stdlib({"slug": "acme-robotics", "version": "1.00001", "v": "1e-5", "n": 1e-5})


def test_keys_sort_by_code_point() -> None:
    assert_same_as_stdlib({"b": 1, "a": 2, "é": 3, "😀": 4, "\uffff": 5, "\U00010000": 6, "": 7, "A": 8, "aa": 9})


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


@pytest.mark.parametrize("value", [{1: "a", 2: "b"}, [Colour.RED], {"t": Text("x")}, (1, 2), {"tuple": (1, [2])}])
def test_what_the_stdlib_writes_of_other_python_values_is_kept(value) -> None:  # noqa: ANN001
    assert_same_as_stdlib(value)


def test_what_the_stdlib_refuses_is_refused() -> None:
    with pytest.raises(TypeError):
        model.canonical_json({"when": object()})
    with pytest.raises(TypeError):
        model.canonical_json({1: "a", "b": 2})  # keys that do not sort together


@pytest.mark.parametrize("name", ["user", "user_sparse", "organization", "organization_membership"])
def test_the_vendored_clerk_objects(name: str) -> None:
    assert_same_as_stdlib(fx.load(name))


def test_non_finite_floats_are_written_null() -> None:
    """The one deliberate change: the stdlib wrote NaN/Infinity, which is not JSON and which
    Postgres' jsonb refuses (such a row could never be mirrored); now they are null."""
    for value in (math.nan, math.inf, -math.inf):
        assert model.canonical_json({"x": value}) == '{"x":null}'
    assert model.canonical_json(None) is None and model.canonical_json_bytes(None) is None
