"""Page iterators over a listing that changes while it is walked (records added at its front and
others removed at its end in the same interval, so ``meta.total_results`` stays the same)."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from tests.conftest import json_response
from tests.test_pagination import newest_first_server, optout

pytestmark = pytest.mark.anyio


def churning_server(existing: int, page_size: int, churn: int) -> Any:
    """Right after the first page is served, ``churn`` customers reply STOP (new opt-outs at
    the front) and the ``churn`` oldest opt-outs are removed: ``meta.total_results`` stays."""
    return newest_first_server(existing, page_size, churn, keep_total=True)


def expected_survivors(existing: int, churn: int) -> list[str]:
    """The opt-outs present for the whole walk: all but the ``churn`` oldest."""
    return [optout(n)["to"] for n in reversed(range(churn, existing))]


@pytest.mark.parametrize(("page_size", "churn"), [(1, 1), (2, 2), (3, 3)])
async def test_churn_that_keeps_the_total_does_not_end_the_walk(
    api_server: Any, page_size: int, churn: int
) -> None:
    """Every opt-out present for the whole walk is yielded, whatever else changed. New opt-outs
    pushing a whole page of seen records onto the next page is the shift the docs say is
    skipped; today, when removals elsewhere keep meta.total_results unchanged, that page is
    taken for a server ignoring page[number] and the walk ends there, silently dropping every
    later opt-out although meta.total_pages on that very page says more pages exist (a
    suppression list built from it then misses opt-outs)."""
    existing = 12
    server = await api_server(churning_server(existing, page_size, churn))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        seen: list[str] = []
        with anyio.fail_after(10):
            async for item in c.messaging_optouts.list(page_size=page_size):
                assert item.to is not None
                seen.append(item.to)
                assert len(seen) < 100, "the listing does not end"
    survivors = expected_survivors(existing, churn)
    assert [to for to in seen if to in survivors] == survivors


async def test_blocking_walk_survives_churn_that_keeps_the_total(api_server: Any) -> None:
    """The same through the blocking Client's plain ``for`` and ``pages()``: one opt-out added
    and one removed while opt-outs are listed one per page does not end the walk after the
    first record."""
    existing = 6
    server = await api_server(churning_server(existing, 1, 1))

    def walk() -> list[str]:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            seen: list[str] = []
            for page in client.messaging_optouts.list(page_size=1).pages():
                for item in page.items:
                    assert item.to is not None
                    seen.append(item.to)
                assert len(seen) < 100, "the listing does not end"
            return seen

    with anyio.fail_after(10):
        seen = await anyio.to_thread.run_sync(walk)
    assert seen == expected_survivors(existing, 1)


async def test_a_server_ignoring_page_number_is_still_read_once(api_server: Any) -> None:
    """Guard for the fix above: a proxy that ignores page[number] and serves page 1 (its meta
    saying page 1 of 5) again and again is still read once, in two requests, not five."""

    async def handler(request: web.Request) -> web.Response:
        meta = {"page_number": 1, "page_size": 1, "total_pages": 5, "total_results": 5}
        return json_response({"data": [optout(1)], "meta": meta})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        with anyio.fail_after(10):
            items = [item.to async for item in c.messaging_optouts.list(page_size=1)]
    assert items == [optout(1)["to"]]
    assert len(server.requests) == 2


_CAP = 60  # the handler ends the listing itself after this many requests (keeps tests bounded)


def echoing_server(total_pages: Any) -> Any:
    """Serves the same first page for every ``page[number]``, with a meta built from the
    request: ``page_number`` echoes the number asked for, ``total_pages`` is
    ``total_pages(number)``, ``total_results`` never changes. After ``_CAP`` requests it
    answers an empty page (so a walk that does not stop by itself still ends)."""
    served = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        served["n"] += 1
        number = int(request.query.get("page[number]", "1"))
        data = [optout(1), optout(2)] if served["n"] <= _CAP else []
        meta = {
            "page_number": number,
            "page_size": 2,
            "total_pages": total_pages(number),
            "total_results": 1000,  # never changes: nothing was added or removed
        }
        return json_response({"data": data, "meta": meta})

    return handler


@pytest.mark.parametrize(
    "total_pages",
    [lambda n: 500, lambda n: n + 1],
    ids=["fixed-total-pages", "always-one-more-page"],
)
async def test_a_server_ignoring_page_number_but_echoing_it_is_read_once(
    api_server: Any, total_pages: Any
) -> None:
    """A server (or gateway) that ignores page[number] yet echoes it in meta.page_number,
    serving the same records with an unchanged meta.total_results for every page: the repeat
    of page 1 ends the walk within three requests (its first repeat looks like a listing
    shifted by a page of new records; the same page served yet again does not). Today every
    such repeat is read as a "shifted listing" and skipped, so the walk requests every page up
    to meta.total_pages (500 requests for nothing), and never ends when the server always says
    one more page remains (the handler's cap is what ends it here)."""
    server = await api_server(echoing_server(total_pages))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        with anyio.fail_after(20):
            items = [item.to async for item in c.messaging_optouts.list(page_size=2)]
    assert items == [optout(1)["to"], optout(2)["to"]]
    assert len(server.requests) <= 3, f"{len(server.requests)} requests for one page of records"


async def test_a_server_cycling_pages_while_echoing_the_number_ends(api_server: Any) -> None:
    """A server serving pages A, B, A, B, ... whatever page[number] asks, echoing the number
    and saying 500 pages exist: A and B are each yielded once and the walk ends within a few
    requests, not after 500 (or after the handler's cap)."""

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        data = [optout(number % 2)] if len(server.requests) <= _CAP else []
        meta = {"page_number": number, "page_size": 1, "total_pages": 500, "total_results": 500}
        return json_response({"data": data, "meta": meta})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        with anyio.fail_after(20):
            items = [item.to async for item in c.messaging_optouts.list(page_size=1)]
    assert items == [optout(1)["to"], optout(0)["to"]]
    assert len(server.requests) <= 5, f"{len(server.requests)} requests for two records"


async def test_a_two_page_shift_keeping_the_total_is_still_walked(api_server: Any) -> None:
    """Guard for the bound above: two pages of new opt-outs arriving after page 2 was read, while
    as many old ones go (meta.total_results unchanged), make pages 3 and 4 repeat pages 1 and 2
    in order; they are skipped and every opt-out present for the whole walk is yielded."""
    existing, size = 12, 2
    handler = newest_first_server(existing, size, 2 * size, keep_total=True, after=2)
    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        with anyio.fail_after(20):
            seen = [item.to async for item in c.messaging_optouts.list(page_size=size)]
    survivors = [optout(n)["to"] for n in reversed(range(2 * size, existing))]
    assert [to for to in seen if to in survivors] == survivors
