"""Page-number pagination of the fake's list endpoints (docs/wire.md §2)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from telnyx_msg.testing import DEFAULT_PROFILE_ID, FakeTelnyx
from telnyx_msg.testing._paging import in_range, page

from .helpers import Api, connect

pytestmark = pytest.mark.anyio


async def _create_sender_ids(api: Api, count: int) -> list[str]:
    ids = []
    for index in range(count):
        reply = await api.post(
            "/alphanumeric_sender_ids",
            {"alphanumeric_sender_id": f"S{index:03d}", "messaging_profile_id": DEFAULT_PROFILE_ID},
        )
        ids.append(reply.body["data"]["id"])
    return ids


@pytest.mark.parametrize(("count", "pages"), [(0, 0), (1, 1), (2, 1), (13, 7), (14, 7)])
async def test_walking_pages_yields_every_record_once(api: Api, count: int, pages: int) -> None:
    """Following page[number] until page_number >= total_pages yields each record once."""
    expected = await _create_sender_ids(api, count)
    seen: list[str] = []
    requests = 0
    number = 1
    while True:
        reply = await api.get(
            "/alphanumeric_sender_ids", params={"page[number]": str(number), "page[size]": "2"}
        )
        requests += 1
        meta = reply.body["meta"]
        assert meta == {
            "page_number": number,
            "page_size": 2,
            "total_pages": pages,
            "total_results": count,
        }
        seen += [r["id"] for r in reply.body["data"]]
        if not reply.body["data"] or meta["page_number"] >= meta["total_pages"]:
            break
        number += 1
    assert seen == expected
    assert requests == max(pages, 1)


async def test_page_past_the_end_is_empty(api: Api) -> None:
    """A page number past the last page answers an empty data list with the real totals."""
    await _create_sender_ids(api, 3)
    reply = await api.get(
        "/alphanumeric_sender_ids", params={"page[number]": "5", "page[size]": "2"}
    )
    assert reply.body == {
        "data": [],
        "meta": {"page_number": 5, "page_size": 2, "total_pages": 2, "total_results": 3},
    }


async def test_default_page_size_is_20(api: Api) -> None:
    """Without page parameters a page holds 20 records."""
    await _create_sender_ids(api, 21)
    reply = await api.get("/alphanumeric_sender_ids")
    assert len(reply.body["data"]) == 20
    assert reply.body["meta"]["total_pages"] == 2


@pytest.mark.parametrize(
    "params",
    [{"page[size]": "0"}, {"page[size]": "251"}, {"page[number]": "0"}, {"page[number]": "x"}],
)
async def test_out_of_range_paging_is_400(api: Api, params: dict[str, str]) -> None:
    """page[size] outside 1..250 (where the definition caps it) or a bad page[number] is a
    400."""
    reply = await api.get("/messaging_profiles", params=params)
    assert reply.status == 400
    assert reply.body["errors"][0]["source"]["parameter"] in params


@pytest.mark.parametrize("raw", ["1_0", " 2", "+2", "\uff11", "2 "])
async def test_page_parameters_are_plain_digits(api: Api, raw: str) -> None:
    """Python's int() read "1_0" as page 10 and a fullwidth digit as 1, while "1.5" was a 400:
    only digits are an integer on the wire."""
    for name in ("page[number]", "page[size]"):
        reply = await api.get("/messaging_profiles", params={name: raw})
        assert reply.status == 400, (name, raw)
        assert reply.body["errors"][0]["source"]["parameter"] == name


async def test_lists_without_a_stated_maximum_serve_larger_pages(api: Api) -> None:
    """The hosted-number and alphanumeric-sender lists state no page[size] maximum."""
    for path in ("/messaging_hosted_numbers", "/alphanumeric_sender_ids"):
        reply = await api.get(path, params={"page[size]": "500"})
        assert reply.status == 200
        assert reply.body["meta"]["page_size"] == 500
    reply = await api.get("/messaging_hosted_numbers", params={"page[size]": "0"})
    assert reply.status == 400


async def test_percent_encoded_bracket_keys_are_decoded(api: Api) -> None:
    """page%5Bsize%5D (how SDKs send it) is read as page[size]."""
    await _create_sender_ids(api, 3)
    async with api.session.get(
        api.fake.base_url + "/alphanumeric_sender_ids?page%5Bsize%5D=1&page%5Bnumber%5D=2",
        headers={"Authorization": f"Bearer {api.fake.api_key}"},
    ) as response:
        body = await response.json()
    assert body["meta"]["page_size"] == 1
    assert body["meta"]["page_number"] == 2


@pytest.mark.parametrize(("count", "pages"), [(0, 0), (1, 1), (20, 1), (21, 2), (40, 2)])
def test_total_pages(count: int, pages: int) -> None:
    _, meta = page(list(range(count)), {"page[size]": "20"})
    assert meta["total_pages"] == pages


def test_date_filters_include_their_bounds() -> None:
    moment = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert in_range(moment, moment, moment)
    assert in_range(moment, None, None)
    assert not in_range(moment, None, datetime(2024, 12, 31, tzinfo=timezone.utc))


@pytest.mark.anyio
async def test_blank_paging_parameters_mean_the_defaults() -> None:
    """``page[size]=`` (a form left empty) is the default, not a 400."""
    async with FakeTelnyx() as fake, connect(fake) as api:
        reply = await api.get("/messaging_optouts", params={"page[size]": "", "page[number]": ""})
    assert reply.status == 200
    assert (reply.body["meta"]["page_number"], reply.body["meta"]["page_size"]) == (1, 20)
