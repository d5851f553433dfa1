"""The limits decide once per document text (`graph_api.limits.Checks`): what they cache must
answer as if each request were checked afresh."""

from __future__ import annotations

from tests.api.conftest import Api, codes
from tests.api.test_limits import COSTED


async def test_a_cached_cost_is_per_page_size_given(api: Api) -> None:
    await api(COSTED, {"n": 1, "e": 100})
    assert codes(await api.errors(COSTED, {"n": 100})) == ["QUERY_TOO_COSTLY"]
    await api(COSTED, {"n": 1, "e": 100})
    # True equals 1 as a key, but is no page size: it counts as the maximum page
    assert codes(await api.errors(COSTED, {"n": True, "e": 100})) == ["QUERY_TOO_COSTLY"]


async def test_a_page_size_that_cannot_be_a_key_is_still_costed(api: Api) -> None:
    errors = await api.errors(COSTED, {"n": [1], "e": 1})
    assert codes(errors) == ["BAD_REQUEST"]  # the variable's type, as without the cache
    assert codes(await api.errors(COSTED, {"n": [1], "e": 100})) == ["QUERY_TOO_COSTLY"]


async def test_a_cached_validation_answers_the_same_every_time(api: Api) -> None:
    query = "{ a: customers { totalCount } nope }"
    first = await api.errors(query)
    assert first == await api.errors(query)
    assert codes(first) == ["BAD_REQUEST"]
