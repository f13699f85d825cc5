"""MockTransport: user unit tests without a server, the whole pipeline still running."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg.testing import MockRequest, MockResponse, MockTransport, MockTransportError
from tests.conftest import ApiServer, Handler, message_json

pytestmark = pytest.mark.anyio

SEND: dict[str, Any] = {"from_": "+18005550101", "to": "+18445550001", "text": "Hi"}


def client(transport: MockTransport, **kwargs: Any) -> telnyx_msg.AsyncClient:
    return telnyx_msg.AsyncClient("k", transport=transport, rate_limits=None, **kwargs)


async def test_handler_answers_and_the_result_is_typed() -> None:
    """A sync handler sees the built request; its JSON becomes the typed result."""
    seen: list[MockRequest] = []

    def handler(request: MockRequest) -> MockResponse:
        seen.append(request)
        return MockResponse(json={"data": message_json(id="m-1")})

    async with client(MockTransport(handler)) as c:
        message = await c.messages.send(**SEND)
    assert message.id == "m-1"
    [request] = seen
    assert (request.method, request.path) == ("POST", "/v2/messages")
    assert request.json() == {"from": "+18005550101", "to": "+18445550001", "text": "Hi"}
    assert request.headers["Authorization"] == "Bearer k"
    # HTTP header names are case-insensitive, as in httpx's MockTransport and aiohttp.
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["CONTENT-TYPE"] == "application/json"


async def test_retries_and_errors_run_as_in_production() -> None:
    """An async handler answering 503 then 200 is retried; a 422 maps to its error."""
    answers = [MockResponse(status=503), MockResponse(json={"data": message_json()})]

    async def handler(request: MockRequest) -> MockResponse:
        return answers.pop(0)

    transport = MockTransport(handler)
    async with client(transport, backoff=telnyx_msg.Backoff(initial=0.0)) as c:
        await c.messages.send(**SEND)
        assert len(transport.requests) == 2
        transport.handler = lambda request: MockResponse(
            status=422,
            json={
                "errors": [{"code": "10015", "title": "Bad Request", "source": {"pointer": "/to"}}]
            },
        )
        with pytest.raises(telnyx_msg.UnprocessableEntityError) as caught:
            await c.messages.send(**SEND)
    assert caught.value.code == "10015"


async def test_simulated_failures_keep_the_outcome_rules() -> None:
    """A failure after the request was written is outcome_unknown and not retried for a send;
    a refused connection is retried."""
    calls = 0

    def dropped(request: MockRequest) -> MockResponse:
        nonlocal calls
        calls += 1
        raise MockTransportError("dropped", reached=True)

    async with client(MockTransport(dropped)) as c:
        with pytest.raises(telnyx_msg.APIConnectionError) as caught:
            await c.messages.send(**SEND)
    assert caught.value.outcome_unknown
    assert calls == 1

    def refused(request: MockRequest) -> MockResponse:
        raise MockTransportError("refused", reached=False)

    transport = MockTransport(refused)
    async with client(transport, backoff=telnyx_msg.Backoff(initial=0.0)) as c:
        with pytest.raises(telnyx_msg.APIConnectionError) as refused_error:
            await c.messages.send(**SEND)
    assert not refused_error.value.outcome_unknown
    assert len(transport.requests) == 3  # 1 + max_retries


async def test_validation_happens_before_the_transport() -> None:
    """Bad arguments never reach the handler."""
    transport = MockTransport(lambda request: MockResponse())
    async with client(transport) as c:
        with pytest.raises(telnyx_msg.ValidationError):
            await c.messages.send(from_="+18005550101", to="12", text="Hi")
    assert transport.requests == []


async def test_blocking_client_takes_a_transport_too() -> None:
    """Client(transport=...) runs the same pipeline from sync code."""
    transport = MockTransport(lambda request: MockResponse(json={"data": message_json()}))

    def run() -> str:
        with telnyx_msg.Client("k", transport=transport, rate_limits=None) as c:
            return c.messages.send(**SEND).id

    assert await anyio.to_thread.run_sync(run) == message_json()["id"]


async def test_blank_query_values_are_kept_and_empty_json_is_sent() -> None:
    """``request.query`` keeps ``name=``; ``json={}`` answers the body ``{}``, not nothing."""
    transport = MockTransport(lambda request: MockResponse(json={}))
    options = telnyx_msg.RequestOptions(extra_query={"filter[x]": "", "y": "z"})
    async with client(transport) as c:
        raw = await c.messaging_optouts.with_raw_response.list(options=options)
    assert raw.body == b"{}"
    assert transport.requests[0].query == {"filter[x]": "", "y": "z"}


async def test_one_transport_serves_client_after_client() -> None:
    """As httpx's: a transport outlives the client that used it (the next client's call
    failed with ClientClosedError "not sent, the client was closed"); a closed client still
    refuses calls itself."""
    transport = MockTransport(lambda request: MockResponse(json={"data": message_json()}))
    first = client(transport)
    async with first:
        await first.messages.retrieve("m")
    with pytest.raises(telnyx_msg.ClientClosedError):
        await first.messages.retrieve("m")

    def blocking() -> str:
        with telnyx_msg.Client("k", transport=transport, rate_limits=None) as c:
            return c.messages.retrieve("m").id

    assert await anyio.to_thread.run_sync(blocking) == message_json()["id"]
    async with client(transport) as second:
        await second.messages.send(**SEND)
    assert [r.method for r in transport.requests] == ["GET", "GET", "POST"]


def test_session_and_transport_exclude_each_other() -> None:
    """Passing both is a configuration error."""
    import aiohttp

    with pytest.raises(telnyx_msg.ConfigurationError, match="not both"):
        telnyx_msg.AsyncClient(
            "k",
            transport=MockTransport(lambda r: MockResponse()),
            session=aiohttp.ClientSession.__new__(aiohttp.ClientSession),
        )


async def test_int_retry_after_header_is_a_clear_type_error() -> None:
    """A handler writing ``headers={"Retry-After": 1}`` (an int, as users often do) gets a
    TypeError naming the header, as httpx's Response does, not an AttributeError ('int' object
    has no attribute 'strip') from deep inside the client's retry parsing."""

    def handler(request: MockRequest) -> MockResponse:
        return MockResponse(
            status=429,
            json={"errors": [{"code": "10011", "title": "Too many requests"}]},
            headers={"Retry-After": 1},  # type: ignore[arg-type]
        )

    transport = MockTransport(handler)
    async with telnyx_msg.AsyncClient("k", transport=transport, max_retries=1) as client:
        with pytest.raises(TypeError, match="Retry-After"):
            await client.messages.retrieve("m-1")


async def test_headers_as_a_list_of_pairs_still_reach_the_client() -> None:
    """A handler answering ``headers=[("Retry-After", "0"), ...]`` (the list-of-pairs form
    httpx's Response takes, and which worked until MockResponse began validating headers) now
    fails at construction with ``AttributeError: 'list' object has no attribute 'items'``
    from the validator, neither working nor naming what is wrong. The answer must reach the
    client, its 429 retried as with a dict."""
    answers = iter(
        [
            MockResponse(
                status=429,
                json={"errors": [{"code": "10011", "title": "Too many requests"}]},
                headers=[("Retry-After", "0"), ("x-request-id", "r-1")],
            ),
            MockResponse(json={"data": {"id": "m-1", "to": []}}),
        ]
    )

    def handler(request: MockRequest) -> MockResponse:
        return next(answers)

    transport = MockTransport(handler)
    async with telnyx_msg.AsyncClient("k", transport=transport, max_retries=1) as client:
        message = await client.messages.retrieve("m-1")
    assert message.id == "m-1"
    assert len(transport.requests) == 2


def test_a_non_string_value_in_a_list_of_pairs_names_the_header() -> None:
    """The check added for ``{"Retry-After": 1}`` holds for the pairs form too: a TypeError
    naming the header, not an AttributeError about ``items``."""
    with pytest.raises(TypeError, match="Retry-After"):
        MockResponse(headers=[("Retry-After", 1)])  # type: ignore[list-item]


async def test_headers_as_pairs_from_zip_reach_the_client() -> None:
    """``headers=zip(names, values)`` passes the str check, which iterates the pairs, and the
    transport then builds the response headers from the spent iterator: the request id (and a
    Retry-After) silently disappear. Before the check they reached the client; now the pairs
    must either reach it or be refused at construction."""
    names, values = ["x-request-id"], ["r-1"]

    def handler(request: MockRequest) -> MockResponse:
        return MockResponse(
            status=422,
            json={"errors": [{"code": "10015", "title": "Bad request"}]},
            headers=zip(names, values, strict=True),
        )

    async with telnyx_msg.AsyncClient("k", transport=MockTransport(handler)) as client:
        with pytest.raises(telnyx_msg.errors.APIStatusError) as caught:
            await client.messages.retrieve("m-1")
    assert caught.value.request_id == "r-1"


def _big_message(request: MockRequest) -> MockResponse:
    padding = "x" * 4000
    return MockResponse(json={"data": {"id": "m-1", "to": [], "text": padding}})


async def test_an_oversized_2xx_from_a_mock_transport_raises_as_in_production() -> None:
    """docs/testing.md promises that with ``MockTransport`` "validation, rate limits, retries,
    parsing and errors all run as in production", and ``max_response_size`` documents that a
    bigger 2xx raises ``APIResponseValidationError``. A unit test of how an application copes
    with that error must see it: a 4 KB answer to a client with ``max_response_size=1024``
    raises, naming the limit the client was given."""
    transport = MockTransport(_big_message)
    async with telnyx_msg.AsyncClient(
        "test", transport=transport, max_response_size=1024
    ) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as raised:
            await client.messages.retrieve("m-1")
    assert "1024" in str(raised.value)
    assert not raised.value.accepted
    assert len(transport.requests) == 1  # a 2xx that was too large is not retried


def test_the_blocking_client_applies_the_limit_with_a_mock_transport() -> None:
    """The same through the blocking ``Client`` and a raw response: the limit is the client's,
    whatever transport answers."""
    with (
        telnyx_msg.Client(
            "test", transport=MockTransport(_big_message), max_response_size=1024
        ) as client,
        pytest.raises(telnyx_msg.APIResponseValidationError),
    ):
        client.messages.with_raw_response.retrieve("m-1")


async def test_an_answer_within_the_limit_still_parses() -> None:
    """A response under the limit is read as before (guards the fix against refusing
    everything)."""
    async with telnyx_msg.AsyncClient(
        "test", transport=MockTransport(_big_message), max_response_size=100_000
    ) as client:
        message = await client.messages.retrieve("m-1")
    assert message.id == "m-1"


# A Telnyx error body of about 4 KB (a long detail), over a 1 KB max_response_size.
BIG_ERROR: dict[str, Any] = {
    "errors": [{"code": "40300", "title": "Blocked due to STOP message", "detail": "x" * 4000}]
}


async def _status_error(client: telnyx_msg.AsyncClient) -> telnyx_msg.APIStatusError:
    with pytest.raises(telnyx_msg.APIStatusError) as raised:
        await client.messages.retrieve("m-1")
    return raised.value


async def test_an_oversized_error_body_from_a_mock_transport_is_dropped_as_in_production(
    api_server: Any,
) -> None:
    """docs/errors.md: a body larger than ``max_response_size`` gives, for a 4xx/5xx, "the status
    error without a body"; the CHANGELOG says the limit now also holds for a transport passed
    in (``MockTransport``), so a unit test sees what production does. The same 4 KB 422 answer
    must give the same error through a real server and through ``MockTransport``: no body and
    no error code read from it. (The mock path still parses the whole body, so a unit test sees
    code 40300 where production sees none.)"""

    async def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(
            status=422, body=json.dumps(BIG_ERROR).encode(), content_type="application/json"
        )

    handler: Handler = answer
    server: ApiServer = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        "KEY0123456789", base_url=server.base_url, rate_limits=None, max_response_size=1024
    ) as client:
        real = await _status_error(client)

    def mock(_: MockRequest) -> MockResponse:
        return MockResponse(status=422, json=BIG_ERROR)

    async with telnyx_msg.AsyncClient(
        "KEY0123456789", transport=MockTransport(mock), rate_limits=None, max_response_size=1024
    ) as client:
        mocked = await _status_error(client)

    assert (real.status, real.body, real.code) == (422, None, None)  # production, for reference
    assert (mocked.status, mocked.body, mocked.code) == (real.status, real.body, real.code)
