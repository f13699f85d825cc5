"""``with_raw_response``: the same pipeline, plus status, headers, request id, retries, elapsed."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg._retry import Backoff
from tests.conftest import json_response, message_json

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.001, max=0.001)


def optouts(page: int, total: int) -> dict[str, Any]:
    return {
        "data": [
            {"record_type": "messaging_optout", "from": "+18005550101", "to": f"+1844555{page:04d}"}
        ],
        "meta": {"page_number": page, "page_size": 1, "total_pages": total, "total_results": total},
    }


def unavailable_once(answer: Callable[[], web.Response]) -> Callable[..., Any]:
    """A handler answering 503 to the first request (retried), then ``answer()``."""
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return json_response({"errors": []}, status=503) if calls == 1 else answer()

    return handler


async def test_retrieve_reports_status_headers_request_id_and_retries(api_server: Any) -> None:
    """A retried GET: retries_taken counts the retries; the result parses as the plain call's."""
    handler = unavailable_once(
        lambda: json_response(
            {"data": message_json(id="m-7")}, headers={"x-request-id": "req-42", "x-extra": "yes"}
        )
    )
    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, backoff=FAST) as client:
        raw: telnyx_msg.RawResponse[
            telnyx_msg.Message
        ] = await client.messages.with_raw_response.retrieve("m-7")
        assert (raw.status, raw.request_id, raw.retries_taken) == (200, "req-42", 1)
        assert raw.headers["X-Extra"] == "yes"  # case-insensitive
        assert raw.elapsed > 0
        message = raw.parse()
        assert message.id == "m-7"
        assert raw.parse() is message  # parsed once
        assert len(server.requests) == 2
        plain = await client.messages.retrieve("m-7")
        assert plain == message
        assert "RawResponse status=200 request_id='req-42' retries_taken=1" in repr(raw)


async def test_errors_still_raise_and_bad_input_fails_before_io(api_server: Any) -> None:
    server = await api_server(
        lambda r: _answer(
            json_response(
                {"errors": [{"code": "10005", "title": "Resource not found"}]}, status=404
            )
        )
    )
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, backoff=FAST) as client:
        with pytest.raises(telnyx_msg.NotFoundError):
            await client.messages.with_raw_response.retrieve("nope")
        with pytest.raises(telnyx_msg.ValidationError, match=r"messages\.send"):
            await client.messages.with_raw_response.send(  # type: ignore[call-arg]
                from_="+18005550101", to="+18445550001", txt="typo"
            )
        with pytest.raises(TypeError, match="no raw form"):
            client.messages.with_raw_response.send_many([])  # type: ignore[misc]
    assert len(server.requests) == 1


async def _answer(response: web.Response) -> web.Response:
    return response


async def test_a_malformed_body_raises_only_on_parse(api_server: Any) -> None:
    """The raw call succeeded (the message was accepted); parse() names the bad field."""
    server = await api_server(lambda r: _answer(json_response({"data": message_json(parts="one")})))
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        raw = await client.messages.with_raw_response.send(
            from_="+18005550101", to="+18445550001", text="Hi"
        )
        assert raw.status == 200
        assert b'"parts": "one"' in raw.body
        with pytest.raises(telnyx_msg.APIResponseValidationError) as info:
            raw.parse()
    assert info.value.field is not None
    assert "parts" in info.value.field


async def test_raw_list_keeps_the_first_page_and_fetches_the_rest(api_server: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return json_response(
            optouts(int(request.query.get("page[number]", "1")), 3),
            headers={"x-request-id": "list-1"},
        )

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        raw = await client.messaging_optouts.with_raw_response.list(page_size=1)
        assert (raw.status, raw.request_id, len(server.requests)) == (200, "list-1", 1)
        numbers = [o.to async for o in raw.parse()]
    assert numbers == ["+18445550001", "+18445550002", "+18445550003"]
    assert [r.query.get("page[number]") for r in server.requests] == [None, "2", "3"]


async def test_nested_resources_and_the_blocking_client(api_server: Any) -> None:
    """Sync facade: the same RawResponse; a list's parse() is a plain iterator."""

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith("/messaging_optouts"):
            return json_response(optouts(int(request.query.get("page[number]", "1")), 2))
        return json_response({"data": message_json(id="m-9")}, headers={"x-request-id": "sync-1"})

    server = await api_server(handler)

    def blocking() -> tuple[Any, ...]:
        with telnyx_msg.Client("k", base_url=server.base_url) as client:
            raw = client.messages.with_raw_response.retrieve("m-9")
            listed = client.messaging_optouts.with_raw_response.list(page_size=1)
            tos = [o.to for o in listed.parse()]
            assert client.messages.with_raw_response is client.messages.with_raw_response
            with pytest.raises(telnyx_msg.ValidationError):
                client.messages.with_raw_response.retrieve()  # type: ignore[call-arg]
            return raw.status, raw.request_id, raw.retries_taken, raw.parse().id, tos

    assert await anyio.to_thread.run_sync(blocking) == (
        200,
        "sync-1",
        0,
        "m-9",
        ["+18445550001", "+18445550002"],
    )
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        nested = client.messaging_profiles.with_raw_response.autoresp_configs
        assert type(nested).__name__ == "AutorespConfigs"
        raw = await client.messages.with_raw_response.retrieve("m-9")
        assert raw.request_id == "sync-1"


async def test_blocking_raw_list_reports_its_retries(api_server: Any) -> None:
    """The blocking client's raw list (its parse() rewrapped as a SyncPager) keeps the
    retry count and request id of the call."""
    handler = unavailable_once(
        lambda: json_response(optouts(1, 1), headers={"x-request-id": "list-9"})
    )

    server = await api_server(handler)

    def blocking() -> tuple[Any, ...]:
        with telnyx_msg.Client("k", base_url=server.base_url, backoff=FAST) as client:
            raw = client.messaging_optouts.with_raw_response.list(page_size=1)
            return raw.status, raw.request_id, raw.retries_taken, [o.to for o in raw.parse()]

    assert await anyio.to_thread.run_sync(blocking) == (200, "list-9", 1, ["+18445550001"])


@pytest.mark.anyio
async def test_blocking_raw_list_keeps_the_response_headers_and_body(api_server: Any) -> None:
    """Guards against a regression (``_with_parse`` drops the headers): the blocking client's raw
    list (its parse() rewrapped for a SyncPager) must still carry the response's headers and body,
    as the async one does (e.g. a rate-limit or tracing header)."""
    import anyio.to_thread

    from tests.conftest import json_response

    async def handler(request: web.Request) -> web.Response:
        body = {
            "data": [{"from": "+18005550101", "to": "+18445550001"}],
            "meta": {"total_pages": 1},
        }
        return json_response(body, headers={"x-request-id": "r-1", "x-trace": "t-9"})

    server = await api_server(handler)

    def run() -> tuple[str | None, str | None, bool]:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            raw = client.messaging_optouts.with_raw_response.list(page_size=1)
            return raw.request_id, raw.headers.get("X-Trace"), b"+18445550001" in raw.body

    assert await anyio.to_thread.run_sync(run) == ("r-1", "t-9", True)


async def test_blocking_raw_list_reads_its_fetched_page_after_the_client_closed(
    api_server: Any,
) -> None:
    """``raw.parse()`` after ``with Client()`` gives the first page the call fetched (it is in
    ``raw.body``), as the AsyncClient's raw list does; the next page, which needs the closed
    client, raises ClientClosedError after that page's items, and nothing more is requested."""

    async def handler(request: web.Request) -> web.Response:
        return json_response(optouts(int(request.query.get("page[number]", "1")), 3))

    server = await api_server(handler)

    def blocking() -> tuple[list[str | None], list[str | None], str, list[str | None]]:
        with telnyx_msg.Client("k", base_url=server.base_url) as client:
            raw = client.messaging_optouts.with_raw_response.list(page_size=1)
        first = [o.to for o in raw.parse().first_page().items]
        seen: list[str | None] = []
        with pytest.raises(telnyx_msg.ClientClosedError) as info:
            seen.extend(o.to for o in raw.parse())
        pages = [p.items[0].to for p in itertools.islice(raw.parse().pages(), 1)]
        return first, seen, str(info.value), pages

    first, seen, error, pages = await anyio.to_thread.run_sync(blocking)
    assert first == seen == pages == ["+18445550001"]
    assert "closed" in error
    assert len(server.requests) == 1
