"""Page iterators: every record once, one request per page, and always an end."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from tests.conftest import json_response

pytestmark = pytest.mark.anyio


def optout(n: int) -> dict[str, Any]:
    return {
        "from": "+18005550101",
        "to": f"+1844555{n:04d}",
        "keyword": "STOP",
        "created_at": "2025-04-28T12:00:38Z",
    }


def paged_server(total: int, *, size: int = 3, meta: str = "full") -> Any:
    """Serve ``total`` opt-outs by page[number]/page[size]; ``meta`` full, partial or none."""

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        page_size = int(request.query.get("page[size]", str(size)))
        start = (number - 1) * page_size
        data = [optout(n) for n in range(start, min(start + page_size, total))]
        body: dict[str, Any] = {"data": data}
        pages = -(-total // page_size)
        if meta == "full":
            body["meta"] = {
                "page_number": number,
                "page_size": page_size,
                "total_pages": pages,
                "total_results": total,
            }
        elif meta == "partial":
            body["meta"] = {"page_number": number}
        return json_response(body)

    return handler


@pytest.mark.parametrize(("total", "pages"), [(0, 0), (2, 1), (3, 1), (20, 7)])
async def test_items_once_one_request_per_page(api_server: Any, total: int, pages: int) -> None:
    """0, 1 and 7 pages (partial last page): every record once, exactly one request per page."""
    server = await api_server(paged_server(total))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = [item.to async for item in c.messaging_optouts.list(page_size=3)]
    assert items == [optout(n)["to"] for n in range(total)]
    assert len(server.requests) == max(pages, 1)
    numbers = [r.query.get("page[number]") for r in server.requests]
    assert numbers == [None] + [str(n) for n in range(2, pages + 1)]
    assert all(r.query["page[size]"] == "3" for r in server.requests)


@pytest.mark.parametrize("meta", ["partial", "none"])
async def test_without_total_pages_stops_on_empty_page(api_server: Any, meta: str) -> None:
    """Without total_pages the iterator walks until the first empty page, then stops."""
    server = await api_server(paged_server(7, meta=meta))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = await first_items(c.messaging_optouts.list(page_size=3))  # bounded
    assert len(items) == 7
    assert [r.query.get("page[number]") for r in server.requests] == [None, "2", "3", "4"]


async def test_repeated_page_stops(api_server: Any) -> None:
    """A server that ignores page[number] (same page forever) is read once, not forever."""

    async def handler(request: web.Request) -> web.Response:
        return json_response({"data": [optout(1), optout(2)]})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = await first_items(c.messaging_optouts.list())  # bounded: fails, not hangs
    assert len(items) == 2
    assert len(server.requests) == 2


async def test_pages_and_first_page(api_server: Any) -> None:
    """pages() yields Page objects with meta; first_page() makes exactly one request."""
    server = await api_server(paged_server(8))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        pages = [page async for page in c.messaging_optouts.list(page_size=3).pages()]
        assert [len(p.items) for p in pages] == [3, 3, 2]
        assert [p.page_number for p in pages] == [1, 2, 3]
        assert pages[0].meta is not None
        assert pages[0].meta.total_results == 8
        server.requests.clear()
        first = await c.messaging_optouts.list(page_size=3, page_number=2).first_page()
    assert len(server.requests) == 1
    assert first.page_number == 2
    assert first.items[0].to == optout(3)["to"]


async def test_start_page_is_respected(api_server: Any) -> None:
    """Listing from page_number=3 continues 3, 4, … and never re-reads earlier pages."""
    server = await api_server(paged_server(12))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = [item async for item in c.messaging_optouts.list(page_size=3, page_number=3)]
    assert len(items) == 6
    assert [r.query.get("page[number]") for r in server.requests] == ["3", "4"]


async def test_blocking_pager_is_a_plain_iterator(api_server: Any) -> None:
    """The blocking facade's list() is a plain iterator with the same rules."""
    server = await api_server(paged_server(20))

    def run() -> tuple[list[str | None], int, int]:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            items = [o.to for o in client.messaging_optouts.list(page_size=3)]
            pages = list(client.messaging_optouts.list(page_size=10).pages())
            first = client.messaging_optouts.list(page_size=5).first_page()
            return items, len(pages), len(first.items)

    items, page_count, first_len = await anyio.to_thread.run_sync(run)
    assert items == [optout(n)["to"] for n in range(20)]
    assert page_count == 2
    assert first_len == 5


async def test_abandoned_blocking_iteration_is_clean(api_server: Any) -> None:
    """Breaking out of a blocking iteration early leaves nothing running."""
    server = await api_server(paged_server(20))

    def run() -> str | None:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            for item in client.messaging_optouts.list(page_size=3):
                return item.to
        return None

    assert await anyio.to_thread.run_sync(run) == optout(0)["to"]
    assert len(server.requests) == 1


async def first_items(pager: Any, limit: int = 50) -> list[str]:
    """Up to ``limit`` items: a pager that never ends fails the test instead of hanging it."""
    items: list[str] = []
    async for item in pager:
        items.append(item.to)
        if len(items) == limit:
            break
    return items


def numbered_server(meta: Any, *, last: int | None = None) -> Any:
    """One opt-out per page, numbered by the page[number] asked for; ``meta(n)`` is the meta
    the server claims for page n; past ``last`` the pages are empty."""

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        data = [] if last is not None and number > last else [optout(number)]
        return json_response({"data": data, "meta": meta(number)})

    return handler


@pytest.mark.parametrize(
    ("meta", "last", "expected"),
    [
        # page 3 claims to be page 1: the paginator asked 2, 3, 2, 3, ... forever
        (lambda n: {"page_number": 1 if n == 3 else n, "total_pages": 4}, None, 4),
        # meta.page_number stuck at 1: page 3 was asked twice and the listing cut short
        (lambda n: {"page_number": 1, "total_pages": 3}, None, 3),
        # meta.page_number 0: page 1 was asked again and read as a repeat, dropping pages 2-4
        (lambda n: {"page_number": 0}, 4, 4),
    ],
    ids=["goes-backwards", "stuck-at-1", "zero"],
)
async def test_pages_are_counted_from_the_number_requested(
    api_server: Any, meta: Any, last: int | None, expected: int
) -> None:
    """A meta.page_number that disagrees with the page asked for is not trusted: each request
    asks for the page after the one just asked for, so every page is read once and it ends."""
    server = await api_server(numbered_server(meta, last=last))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = await first_items(c.messaging_optouts.list())
    assert items == [optout(n)["to"] for n in range(1, expected + 1)]
    numbers = [r.query.get("page[number]") for r in server.requests]
    requested = expected if last is None else last + 1  # the empty page past the last
    assert numbers == [None] + [str(n) for n in range(2, requested + 1)]


async def test_a_page_repeating_any_earlier_page_stops(api_server: Any) -> None:
    """A server cycling through the same pages (A, B, A, B, ...), never empty and without
    total_pages, is read once: a repeat of any earlier page ends the listing, not only a
    repeat of the one just before."""

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        return json_response({"data": [optout(number % 2)], "meta": {"page_number": number}})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = await first_items(c.messaging_optouts.list())
        pages: list[int] = []
        async for page in c.messaging_optouts.list().pages():
            pages.append(page.page_number)
            if len(pages) == 50:
                break
    assert items == [optout(1)["to"], optout(0)["to"]]
    assert pages == [1, 2]
    assert len(server.requests) == 6  # the third page of each listing is the repeat


@pytest.mark.parametrize(("total", "sizes"), [(0, []), (6, [3, 3])])
async def test_pages_skips_the_final_empty_page(
    api_server: Any, total: int, sizes: list[int]
) -> None:
    """Without total_pages the listing ends on an empty page, which pages() does not yield:
    an empty listing has no pages, and a full last page is not followed by an empty one."""
    server = await api_server(paged_server(total, meta="partial"))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        pages = [page async for page in c.messaging_optouts.list(page_size=3).pages()]
    assert [len(page.items) for page in pages] == sizes
    assert len(server.requests) == len(sizes) + 1  # the empty page was still fetched


async def test_a_repeated_page_is_spotted_whatever_its_key_order(
    api_server: Any,
) -> None:
    """A server ignoring page[number] that serializes the same records with their keys in
    another order (another replica, another JSON library) is still serving the same page:
    the listing stops there instead of yielding the records again."""

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        record = optout(1)
        if number % 2 == 0:
            record = dict(reversed(record.items()))
        return json_response({"data": [record], "meta": {"page_number": number}})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        items = await first_items(c.messaging_optouts.list())
    assert items == [optout(1)["to"]]
    assert len(server.requests) == 2


def newest_first_server(
    existing: int, page_size: int, arrivals: int, *, keep_total: bool = False, after: int = 1
) -> Any:
    """Opt-outs listed newest first, paged by page[number] / page[size] with a full, truthful
    meta; ``arrivals`` new opt-outs come in right after page ``after`` is served (customers
    replying STOP while the listing is walked), and with ``keep_total`` as many of the oldest
    go (opted back in), so ``meta.total_results`` does not change."""
    records = [optout(n) for n in reversed(range(existing))]  # newest first
    state = {"next": existing, "served": 0}

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        size = int(request.query.get("page[size]", str(page_size)))
        start = (number - 1) * size
        total = len(records)
        body = {
            "data": records[start : start + size],
            "meta": {
                "page_number": number,
                "page_size": size,
                "total_pages": -(-total // size),
                "total_results": total,
            },
        }
        state["served"] += 1
        if state["served"] == after:
            for _ in range(arrivals):
                records.insert(0, optout(state["next"]))
                state["next"] += 1
                if keep_total:
                    records.pop()
        return json_response(body)

    return handler


@pytest.mark.parametrize(("page_size", "arrivals"), [(1, 1), (2, 2), (5, 10)])
async def test_records_arriving_during_the_walk_do_not_end_it(
    api_server: Any, page_size: int, arrivals: int
) -> None:
    """Listing opt-outs while new ones arrive: every opt-out that existed when the listing
    began is still yielded (once), however many pages the server says remain. Today a page
    that shifted onto an earlier one is read as "the server ignores page[number]" and the
    listing ends there, silently dropping every later record although meta.total_pages on
    that very page says more pages exist."""
    existing = 12
    server = await api_server(newest_first_server(existing, page_size, arrivals))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        seen: list[str] = []
        with anyio.fail_after(10):
            async for item in c.messaging_optouts.list(page_size=page_size):
                assert item.to is not None
                seen.append(item.to)
                assert len(seen) < 100, "the listing does not end"
    originals = [optout(n)["to"] for n in reversed(range(existing))]
    assert [to for to in seen if to in originals] == originals


async def test_blocking_walk_of_a_shifting_listing_is_complete(api_server: Any) -> None:
    """The same through the blocking Client's plain ``for``: one new opt-out arriving while
    opt-outs are listed one per page does not end the walk after the first record."""
    existing = 6
    server = await api_server(newest_first_server(existing, 1, 1))

    def walk() -> list[str]:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            seen: list[str] = []
            for item in client.messaging_optouts.list(page_size=1):
                assert item.to is not None
                seen.append(item.to)
                assert len(seen) < 100, "the listing does not end"
            return seen

    with anyio.fail_after(10):
        seen = await anyio.to_thread.run_sync(walk)
    assert seen == [optout(n)["to"] for n in reversed(range(existing))]
