"""Escape hatches for what the SDK does not model yet: extra_body / extra_query and
client.request(), through the same pipeline as the methods, in both clients."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import RequestOptions, ValidationError
from telnyx_msg.models import MessageType
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


@pytest.mark.parametrize("spelling", ["/messages", "/messages/", "//messages"])
async def test_request_to_a_send_path_takes_the_rate_limits(api_server: Any, spelling: str) -> None:
    """client.request('POST', '/messages', ...) waits for the sender's lane like send(),
    however the path is spelled."""
    server = await api_server(answer)
    limits = telnyx_msg.RateLimits(account_mps=None, per_sender_mps={"+18005550101": 1.0}, burst=1)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=limits) as client:
        body = {"from": "+18005550101", "to": "+18445550001", "text": "Hi"}
        await client.request("POST", "/messages", json=body)
        with pytest.raises(telnyx_msg.RateLimitError):  # the lane's next token is 1 s away
            await client.request("POST", spelling, json=body, options=RequestOptions(timeout=0.2))
    assert len(server.requests) == 1


async def test_request_takes_an_idempotency_key_only_where_telnyx_deduplicates(
    api_server: Any,
) -> None:
    """A key makes a POST retryable: on a send path a 500 is retried with it (one message);
    elsewhere (a schedule, a new profile) a retry could act twice, so the key is refused
    before any request, as the methods refuse it (it was sent and retried: two schedules)."""
    failures = [500]

    async def flaky(request: web.Request) -> web.Response:
        await request.read()
        if failures:
            return telnyx_error(failures.pop(), "10007", "Unexpected error")
        return json_response({"data": message_json()})

    server = await api_server(flaky)
    body = {"from": "+18005550101", "to": "+18445550001", "text": "Hi"}
    async with client_for(server, backoff=telnyx_msg.Backoff(initial=0.01)) as client:
        await client.request(
            "POST", "/messages", json=body, options=RequestOptions(idempotency_key="k-1")
        )
        assert len(server.requests) == 2
        for path in ("/messages/schedule", "/messaging_profiles", "/not_modelled_yet"):
            with pytest.raises(ValidationError, match="does not accept an Idempotency-Key") as e:
                await client.request(
                    "POST", path, json=body, options=RequestOptions(idempotency_key="k-2")
                )
            assert e.value.field == "idempotency_key"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("FETCH", "/messages"), "method"),
        (("GET", "messages"), "path"),
        (("GET", "/messages?x=1"), "path"),
        (("GET", "/messages/x\r\nX-Injected: 1"), "path"),
        (("GET", "/messages/\x00"), "path"),
        (("GET", "/messages/caf\udce9"), "path"),
        (("GET", "/../admin"), "path"),
        (("GET", "/messages/./x"), "path"),
        (("GET", "/a/%2e%2e/b"), "path"),  # RFC 3986: %2e is a dot
        (("GET", "/a/%2E/b"), "path"),
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


NAIVE = datetime(2030, 1, 1, 12)
_SELF: dict[str, Any] = {}
_SELF["self"] = _SELF


def _send_with(**options: Any) -> Any:
    def call(client: telnyx_msg.AsyncClient) -> Any:
        return client.messages.send(
            from_="+18005550101", to="+18445550001", text="Hi", options=RequestOptions(**options)
        )

    return call


def _request_with(method: str = "POST", **kwargs: Any) -> Any:
    return lambda client: client.request(method, "/something_new", **kwargs)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        # JSON has no NaN or Infinity: Python's encoder wrote them, and servers refuse the body
        (_send_with(extra_body={"x": float("nan")}), "x"),
        (_send_with(extra_body={"y": {"z": float("inf")}}), "y.z"),
        (_request_with(json={"l": [1, float("-inf")]}), "l[1]"),
        # not JSON types: a bare TypeError from json.dumps
        (_request_with(json={"s": {1}}), "s"),
        (_request_with(json={"d": Decimal("1.5")}), "d"),
        (_send_with(extra_body={"b": b"bytes"}), "b"),
        (_send_with(extra_body={"k": {1: "int key"}}), "k"),
        # a naive datetime has no zone: refused, as send_at refuses it
        (_send_with(extra_body={"n": {"when": NAIVE}}), "n.when"),
        # not a query value: the object's repr went into the URL
        (_request_with("GET", params={"o": object()}), "o"),
        (_request_with("GET", params={"filter": {"o": {1, 2}}}), "filter[o]"),
        (_request_with("GET", params={"ids": ["a", object()]}), "ids[1]"),
        (_request_with("GET", params={"x": float("nan")}), "x"),
        (_request_with("GET", params={"when": NAIVE}), "when"),
        (_send_with(extra_query={"o": object()}), "o"),
        (_send_with(extra_query={5: "x"}), "extra_query"),
        # a lone surrogate cannot be percent-encoded: a bare UnicodeEncodeError
        (_request_with("GET", params={"filter": {"from": "caf\udce9"}}), "filter[from]"),
        (_send_with(extra_body=_SELF), "self.self"),  # (the options hold a copy of _SELF)
    ],
    ids=[
        "extra_body-nan",
        "extra_body-inf-nested",
        "json-inf-in-list",
        "json-set",
        "json-decimal",
        "extra_body-bytes",
        "extra_body-int-key",
        "extra_body-naive-datetime",
        "params-object",
        "params-set-nested",
        "params-object-in-list",
        "params-nan",
        "params-naive-datetime",
        "extra_query-object",
        "extra_query-int-name",
        "params-lone-surrogate",
        "extra_body-contains-itself",
    ],
)
async def test_values_that_cannot_be_encoded_are_refused_before_io(
    api_server: Any, call: Any, field: str
) -> None:
    """An escape-hatch value JSON or a query string cannot carry as it is raises a
    ValidationError naming the field, and nothing is sent (it was invalid JSON on the wire, a
    repr in the URL, or a bare TypeError)."""
    server = await api_server(answer)
    async with client_for(server) as client:
        with pytest.raises(ValidationError) as caught:
            await call(client)
    assert caught.value.field == field
    assert server.requests == []


async def test_a_naive_datetime_in_request_json_is_refused(api_server: Any) -> None:
    """client.request's json= refuses a naive datetime, as extra_body and send_at do."""
    server = await api_server(answer)
    async with client_for(server) as client:
        with pytest.raises(ValidationError) as caught:
            await client.request("POST", "/something_new", json={"when": NAIVE})
    assert caught.value.field == "when"
    assert server.requests == []


async def test_aware_datetimes_and_enums_are_encoded(api_server: Any) -> None:
    """What the escape hatches do accept: aware datetimes as ISO 8601, enums by value, tuples
    as lists, None as null in a body and left out of a query; in a query list too (a bool
    was spelled True and an enum MessageType.MMS there)."""
    server = await api_server(answer)
    when = datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
    async with client_for(server) as client:
        await client.request(
            "POST",
            "/something_new",
            json={"at": when, "t": (1, 2.5, None)},
            params={
                "at": when,
                "type": MessageType.SMS,
                "none": None,
                "list": [True, MessageType.MMS, 2, when],
            },
            options=RequestOptions(extra_body={"at2": when, "type": MessageType.MMS}),
        )
    (sent,) = server.requests
    assert sent.json == {
        "at": "2030-01-01T12:00:00+00:00",
        "t": [1, 2.5, None],
        "at2": "2030-01-01T12:00:00+00:00",
        "type": "MMS",
    }
    at = "2030-01-01T12:00:00+00:00"
    assert sent.query == {"at": at, "type": "SMS", "list": f"true,MMS,2,{at}"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        # None is "left out" for a parameter, but a list item cannot be left out (unchecked,
        # it is an IndexError from inside the encoder)
        ({"ids": ["a", None]}, "ids[1]"),
        ({"filter": {"ids": [None]}}, "filter[ids][0]"),
        # a bool is not a key (unchecked, it goes out as filter[True]=x)
        ({"filter": {True: "x"}}, "filter"),
    ],
    ids=["none-in-list", "none-in-nested-list", "bool-key"],
)
async def test_query_values_a_list_or_mapping_cannot_hold_are_refused_before_io(
    api_server: Any, params: dict[str, Any], field: str
) -> None:
    server = await api_server(answer)
    async with client_for(server) as client:
        with pytest.raises(ValidationError) as caught:
            await client.request("GET", "/something_new", params=params)
        assert caught.value.field == field
        with pytest.raises(ValidationError) as caught:
            await client.messages.send(
                from_="+18005550101",
                to="+18445550001",
                text="Hi",
                options=RequestOptions(extra_query=params),
            )
        assert caught.value.field == field
    assert server.requests == []


async def test_a_backoff_is_checked_when_the_client_or_view_is_made() -> None:
    """`with_options(backoff=None)` (None means the default in the constructor) and
    `AsyncClient(backoff="fast")` were accepted, then the first retry raised AttributeError
    in place of the error being retried."""
    from telnyx_msg.testing import MockResponse, MockTransport

    calls = 0

    def flaky(request: Any) -> MockResponse:
        nonlocal calls
        calls += 1
        return MockResponse(status=503) if calls == 1 else MockResponse(json={"data": {"id": "m"}})

    fast = telnyx_msg.Backoff(initial=0.01, max=0.01)
    async with telnyx_msg.AsyncClient("k", transport=MockTransport(flaky), backoff=fast) as client:
        view = client.with_options(backoff=None)
        assert (await view.messages.retrieve("m")).id == "m"
        assert calls == 2
        for bad in ("fast", 0.5):
            with pytest.raises(telnyx_msg.ConfigurationError, match="backoff must be"):
                client.with_options(backoff=bad)  # type: ignore[arg-type]
            with pytest.raises(telnyx_msg.ConfigurationError, match="backoff must be"):
                telnyx_msg.AsyncClient("k", backoff=bad)  # type: ignore[arg-type]


async def test_request_options_keep_their_own_copy_of_the_mappings(api_server: Any) -> None:
    """The headers were checked when the options were built but kept by reference: an
    Authorization added to the caller's dict afterwards went out (another account's key)."""
    headers = {"X-Trace-Id": "abc"}
    body = {"note": "before"}
    options = RequestOptions(extra_headers=headers, extra_body=body)
    headers["Authorization"] = "Bearer someone-elses-key"
    headers["X-Trace-Id"] = "abc\r\nX-Injected: 1"
    body["note"] = "after"
    server = await api_server(answer)
    async with telnyx_msg.AsyncClient("KEYmine0123", base_url=server.base_url) as client:
        await client.request("POST", "/messages", json={"x": 1}, options=options)
    sent = server.requests[0]
    assert sent.headers["Authorization"] == "Bearer KEYmine0123"
    assert sent.headers["X-Trace-Id"] == "abc"
    assert sent.json == {"x": 1, "note": "before"}


@pytest.mark.parametrize(
    "body",
    [
        {"from": 18005550101, "to": "+18445550001", "text": "Hi"},
        {"from": ["+18005550101"], "to": "+18445550001", "text": "Hi"},
        {"messaging_profile_id": {"id": "p"}, "to": "+18445550001", "text": "Hi"},
    ],
)
async def test_a_send_whose_sender_is_not_a_string_is_a_validation_error(
    api_server: Any, body: dict[str, Any]
) -> None:
    """client.request (or extra_body) on a send path: a sender that is not a string raised a
    bare TypeError ("unhashable type: 'list'") inside the rate limiter."""
    server = await api_server(answer)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
        with pytest.raises(ValidationError, match="must be a string"):
            await client.request("POST", "/messages", json=body)
        with pytest.raises(ValidationError, match="must be a string"):
            await client.messages.send(
                from_="+18005550101",
                to="+18445550001",
                text="Hi",
                options=RequestOptions(extra_body={"from": ["+18005550101"]}),
            )
    assert server.requests == []
