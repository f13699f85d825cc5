"""Escape hatches for what the SDK does not model yet: extra_body / extra_query and
client.request(), through the same pipeline as the methods, in both clients."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import RequestOptions, ValidationError
from tests.conftest import ApiServer, json_response, message_json, telnyx_error

pytestmark = pytest.mark.anyio


async def answer(request: web.Request) -> web.Response:
    await request.read()
    if request.path.endswith("/teapot"):
        return telnyx_error(404, "10005", "Not found")
    if request.path.endswith("/messaging_optouts"):
        return json_response({"data": [], "meta": {"page_number": 1}})
    return json_response({"data": message_json()})


def client_for(server: ApiServer, **kwargs: Any) -> telnyx_msg.AsyncClient:
    return telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None, **kwargs)


async def test_extra_body_and_extra_query_are_merged(api_server: Any) -> None:
    """extra_body joins the JSON body and extra_query the query string, unvalidated."""
    server = await api_server(answer)
    options = RequestOptions(
        extra_body={"new_field": {"a": 1}, "text": "overridden"},
        extra_query={"filter": {"new": "x"}, "flag": True},
    )
    async with client_for(server) as client:
        await client.messages.send(
            from_="+18005550101", to="+18445550001", text="Hi", options=options
        )
        await client.messaging_optouts.list(page_size=5, options=options).first_page()
    sent, listed = server.requests
    assert sent.json == {
        "from": "+18005550101",
        "to": "+18445550001",
        "text": "overridden",
        "new_field": {"a": 1},
    }
    assert sent.query == {"filter[new]": "x", "flag": "true"}
    assert listed.query == {"page[size]": "5", "filter[new]": "x", "flag": "true"}


async def test_request_calls_any_path_through_the_pipeline(api_server: Any) -> None:
    """client.request sends auth, encodes params, returns the JSON, maps errors."""
    server = await api_server(answer)
    async with client_for(server) as client:
        doc = await client.request(
            "GET", "/messaging_optouts", params={"filter": {"from": "+18005550101"}, "page": 2}
        )
        created = await client.request("post", "/something_new", json={"name": "x"})
        with pytest.raises(telnyx_msg.NotFoundError) as missing:
            await client.request("GET", "/teapot")
    assert doc["meta"] == {"page_number": 1}
    assert created["data"]["id"]
    first, second, _ = server.requests
    assert first.query == {"filter[from]": "+18005550101", "page": "2"}
    assert first.headers["Authorization"] == "Bearer k"
    assert (second.method, second.json) == ("POST", {"name": "x"})
    assert missing.value.status == 404


async def test_request_path_is_percent_encoded(api_server: Any) -> None:
    """A space or a non-ASCII character in client.request's path is percent-encoded (a raw
    space made an invalid request line); existing escapes are kept as they are."""
    raw_paths: list[str] = []

    async def recording(request: web.Request) -> web.Response:
        raw_paths.append(request.raw_path)
        return await answer(request)

    server = await api_server(recording)
    async with client_for(server) as client:
        for path in ("/messages/ab cd", "/messages/ü", "/messages/a%2Fb"):
            await client.request("GET", path)
    assert raw_paths == [
        "/v2/messages/ab%20cd",
        "/v2/messages/%C3%BC",
        "/v2/messages/a%2Fb",
    ]


async def test_request_to_a_send_path_takes_the_rate_limits(api_server: Any) -> None:
    """client.request('POST', '/messages', ...) waits for the sender's lane like send()."""
    server = await api_server(answer)
    limits = telnyx_msg.RateLimits(account_mps=None, per_sender_mps={"+18005550101": 1.0}, burst=1)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=limits) as client:
        body = {"from": "+18005550101", "to": "+18445550001", "text": "Hi"}
        await client.request("POST", "/messages", json=body)
        with pytest.raises(telnyx_msg.RateLimitError):  # the lane's next token is 1 s away
            await client.request(
                "POST", "/messages", json=body, options=RequestOptions(timeout=0.2)
            )
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("FETCH", "/messages"), "method"),
        (("GET", "messages"), "path"),
        (("GET", "/messages?x=1"), "path"),
        (("GET", "/messages/x\r\nX-Injected: 1"), "path"),
        (("GET", "/messages/\x00"), "path"),
        (("GET", "/messages/caf\udce9"), "path"),
    ],
)
async def test_request_arguments_are_checked_before_io(args: tuple[str, str], field: str) -> None:
    """A bad method or path is a ValidationError before any request."""
    async with telnyx_msg.AsyncClient("k", base_url="http://127.0.0.1:9/v2") as client:
        with pytest.raises(ValidationError) as caught:
            await client.request(*args)
    assert caught.value.field == field


async def test_blocking_request(api_server: Any) -> None:
    """The blocking Client has the same request()."""
    server = await api_server(answer)

    def run() -> Any:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            return client.request("GET", "/messaging_optouts", params={"page": 1})

    doc = await anyio.to_thread.run_sync(run)
    assert doc["meta"] == {"page_number": 1}
