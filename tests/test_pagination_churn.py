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

pytestmark = pytest.mark.anyio


def optout(n: int) -> dict[str, Any]:
    return {
        "from": "+18005550101",
        "to": f"+1844555{n:04d}",
        "keyword": "STOP",
        "created_at": "2025-04-28T12:00:38Z",
    }


def churning_server(existing: int, page_size: int, churn: int) -> Any:
    """Opt-outs listed newest first, paged by page[number] / page[size] with a full, truthful
    meta. Right after the first page is served, ``churn`` customers reply STOP (new opt-outs at
    the front) and the ``churn`` oldest opt-outs are removed (at the end), so the listing has
    as many records as before and ``meta.total_results`` does not change."""
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
        if state["served"] == 1:
            for _ in range(churn):
                records.insert(0, optout(state["next"]))
                state["next"] += 1
                records.pop()  # the oldest opt-out goes
        return json_response(body)

    return handler


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
