"""`codec.dumps` writes orjson's text where orjson's equals the standard library's, and the
standard library's everywhere else: the text of a value must not depend on the encoder, since
trait filters compare stored text with the text of the value asked for."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from identity_graph.codec import dumps

STANDARD = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
@example("\x7f")  # ASCII but not printable: escaped by the standard library only
@example("caf\u00e9")  # raw in orjson, \u00e9 in the standard library
@example({"\u00e9": 1, "a": [True, None, 2**63, -(2**63)]})
@example([1e16, 0.1, -0.0, float("nan"), float("inf")])
@example({"b": {"d": [], "c": {}}, "a": 'x/y"z\\'})
def test_dumps_writes_what_the_standard_encoder_writes(value: Any) -> None:
    assert dumps(value) == STANDARD.encode(value)


def test_dumps_writes_deep_values_and_other_types_as_the_standard_encoder_does() -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    assert dumps(deep) == STANDARD.encode(deep)
    assert dumps({"at": ("a", 1)}) == '{"at":["a",1]}'  # a tuple, as a list
    assert dumps({"k": object}) == STANDARD.encode({"k": object})  # default=str
