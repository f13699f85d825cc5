"""Observability: event hooks, logging, and error hints a user can act on."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from unittest import mock

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg._retry import Backoff
from telnyx_msg.errors import ConfigurationError
from telnyx_msg.testing import DEFAULT_TOLL_FREE, FakeTelnyx, MockTransport, MockTransportError
from tests.conftest import json_response, message_json, telnyx_error

pytestmark = pytest.mark.anyio
KEY = "hook-secret-key-123"


async def test_event_hooks_see_every_attempt(api_server: Any) -> None:
    """Sync and async hooks get one request and one response event per attempt."""
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return telnyx_error(503, "10001", "Unavailable", headers={"x-request-id": "r-1"})
        return json_response({"data": message_json()}, headers={"x-request-id": "r-2"})

    server = await api_server(flaky)
    requests: list[telnyx_msg.RequestEvent] = []
    responses: list[telnyx_msg.ResponseEvent] = []

    async def on_response(event: telnyx_msg.ResponseEvent) -> None:
        responses.append(event)

    async with telnyx_msg.AsyncClient(
        KEY,
        base_url=server.base_url,
        rate_limits=None,
        backoff=Backoff(0.001, 0.001),
        event_hooks={"request": [requests.append], "response": [on_response]},
    ) as client:
        await client.messages.send(
            from_="+18005550101",
            to="+18445550001",
            text="hi",
            options=telnyx_msg.RequestOptions(idempotency_key="k1"),
        )
    assert [(e.method, e.path, e.attempt, e.idempotency_key) for e in requests] == [
        ("POST", "/messages", 0, "k1"),
        ("POST", "/messages", 1, "k1"),
    ]
    assert [(e.status, e.request_id) for e in responses] == [(503, "r-1"), (200, "r-2")]
    assert all(e.elapsed >= 0 for e in responses)
    assert KEY not in repr(requests) + repr(responses)


async def test_response_hook_sees_transport_errors() -> None:
    """A refused connection still produces a response event, with the error and no status."""
    responses: list[telnyx_msg.ResponseEvent] = []
    async with telnyx_msg.AsyncClient(
        KEY,
        base_url="http://127.0.0.1:9/v2",
        rate_limits=None,
        max_retries=0,
        event_hooks={"response": [responses.append]},
    ) as client:
        with pytest.raises(telnyx_msg.APIConnectionError):
            await client.messages.retrieve("m")
    assert len(responses) == 1
    assert responses[0].status is None
    assert responses[0].error is not None


async def test_a_cancelled_attempt_still_ends_for_the_hooks_and_the_log(
    api_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A call cancelled during its attempt (a timeout around it, a cancelled web handler) still
    gets its response event, carrying the CancelledError, and its debug line: a gauge or span
    opened by the request hook must close. The client stays usable."""

    async def slow(request: web.Request) -> web.Response:
        if request.headers.get("Idempotency-Key") == "slow":
            await asyncio.sleep(2)
        return json_response({"data": message_json()})

    server = await api_server(slow)
    opened: list[telnyx_msg.RequestEvent] = []
    closed: list[telnyx_msg.ResponseEvent] = []
    awaited: list[telnyx_msg.ResponseEvent] = []

    async def on_response(event: telnyx_msg.ResponseEvent) -> None:
        awaited.append(event)

    caplog.set_level(logging.DEBUG, logger="telnyx_msg")
    async with telnyx_msg.AsyncClient(
        KEY,
        base_url=server.base_url,
        rate_limits=None,
        event_hooks={"request": [opened.append], "response": [closed.append, on_response]},
    ) as client:
        options = telnyx_msg.RequestOptions(idempotency_key="slow")
        send = client.messages.send(
            from_="+18005550101", to="+18445550001", text="hi", options=options
        )
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(send, 0.3)
        assert len(opened) == len(closed) == len(awaited) == 1
        assert closed[0].status is None
        assert isinstance(closed[0].error, asyncio.CancelledError)
        assert closed[0].request is opened[0]
        assert "POST /messages -> CancelledError attempt=0" in caplog.text
        await client.messages.send(from_="+18005550101", to="+18445550001", text="hi")
        assert len(opened) == len(closed) == 2


def test_bad_event_hooks() -> None:
    """Unknown hook names or non-callables are configuration errors."""
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.AsyncClient(KEY, event_hooks={"reqest": [print]})
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.AsyncClient(KEY, event_hooks={"request": ["not callable"]})  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("status", "code", "needle"),
    [
        (429, "40318", "queue is full"),
        (422, "40300", "replied STOP"),
        (422, "40305", "10DLC"),
        (429, "10011", "RateLimits"),
        (401, "10009", "API key"),
    ],
)
async def test_error_hints(api_server: Any, status: int, code: str, needle: str) -> None:
    """Common Telnyx errors carry a one-line hint on the likely cause and fix."""

    async def fail(request: web.Request) -> web.Response:
        return telnyx_error(status, code, "Failure")

    server = await api_server(fail)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, max_retries=0
    ) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="hi")
    assert caught.value.hint is not None
    assert needle in caught.value.hint
    assert f"hint: {caught.value.hint}" in str(caught.value)


async def test_failing_bulk_run_logs_explain(
    api_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A bulk run hitting 503s logs each retry (INFO) and each attempt (DEBUG) with ids."""
    caplog.set_level(logging.DEBUG, logger="telnyx_msg")

    async def unavailable(request: web.Request) -> web.Response:
        return telnyx_error(503, "10001", "Unavailable", headers={"x-request-id": "req-9"})

    server = await api_server(unavailable)
    async with telnyx_msg.AsyncClient(
        KEY, base_url=server.base_url, rate_limits=None, backoff=Backoff(0.001, 0.001)
    ) as client:
        items: list[telnyx_msg.SendItem] = [
            {"from_": "+18005550101", "to": "+18445550001", "text": "hi"}
        ]
        outcomes = [o async for o in client.messages.send_many(items)]
    assert outcomes[0].status == "not_sent"
    retries = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(retries) == 2
    assert "503" in retries[0].getMessage()
    assert "request_id=req-9" in caplog.text
    assert KEY not in caplog.text


async def test_closing_during_a_backoff_sends_no_further_attempt(api_server: Any) -> None:
    """aclose() while a call sleeps before its retry: the call raises ClientClosedError and no
    further attempt starts (the request hook saw only the first one)."""

    async def unavailable(request: web.Request) -> web.Response:
        return telnyx_error(503, "10001", "Unavailable")

    server = await api_server(unavailable)
    attempts: list[int] = []
    answered = asyncio.Event()
    client = telnyx_msg.AsyncClient(
        "k",
        base_url=server.base_url,
        rate_limits=None,
        max_retries=3,
        backoff=Backoff(initial=30, max=30, jitter=0),
        event_hooks={
            "request": [lambda event: attempts.append(event.attempt)],
            "response": [lambda event: answered.set()],
        },
    )
    call = asyncio.ensure_future(client.messages.retrieve("m"))
    await asyncio.wait_for(answered.wait(), 10)
    await asyncio.sleep(0.1)  # the call is in its 30 s backoff now (a stalled loop cannot end it)
    await client.aclose()
    with pytest.raises(telnyx_msg.ClientClosedError):
        await call
    assert attempts == [0]
    assert len(server.requests) == 1


class AsyncHook:
    """A hook that is an object with an ``async def __call__`` (not a coroutine function)."""

    def __init__(self) -> None:
        self.events: list[object] = []

    async def __call__(self, event: object) -> None:
        self.events.append(event)


@pytest.mark.anyio
async def test_async_callable_object_hooks_are_awaited() -> None:
    hook = AsyncHook()
    async with FakeTelnyx() as fake, fake.client(event_hooks={"request": [hook]}) as client:
        await client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi")
    assert [type(e).__name__ for e in hook.events] == ["RequestEvent"]


def test_a_non_callable_among_callable_hooks_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="callables"):
        telnyx_msg.AsyncClient("k", event_hooks={"response": [print, "oops"]})  # type: ignore[list-item]


@pytest.mark.parametrize("entries", [print, "hook", 3])
def test_hooks_that_are_not_a_list_are_refused(entries: Any) -> None:
    """One callable instead of a list (a bare TypeError before), a str, a number."""
    with pytest.raises(ConfigurationError, match=r"event_hooks\['request'\] must be a list"):
        telnyx_msg.AsyncClient("k", event_hooks={"request": entries})


async def test_hooks_given_as_a_generator_all_run() -> None:
    """A generator of hooks was used up by the check and the hooks silently dropped."""
    hook = AsyncHook()
    hooks = {"request": (h for h in [hook])}
    async with FakeTelnyx() as fake, fake.client(event_hooks=hooks) as client:
        await client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi")
    assert len(hook.events) == 1


async def test_every_request_event_gets_its_response_event_whatever_ends_the_attempt() -> None:
    """A transport failing in a way of its own (a MockTransport handler's bug) or a later
    request hook raising ended the attempt with no response event: a gauge or span the first
    request hook opened never closed."""
    from telnyx_msg.testing import MockResponse, MockTransport

    def buggy(request: Any) -> MockResponse:
        raise RuntimeError("handler bug")

    started: list[Any] = []
    ended: list[Any] = []
    async with telnyx_msg.AsyncClient(
        "k",
        transport=MockTransport(buggy),
        event_hooks={"request": [started.append], "response": [ended.append]},
    ) as client:
        with pytest.raises(RuntimeError, match="handler bug"):
            await client.messages.retrieve("m-1")
    assert [(e.status, type(e.error).__name__) for e in ended] == [(None, "RuntimeError")]

    def refuse(event: Any) -> None:
        raise ValueError("second request hook refuses")

    ok = MockTransport(lambda request: MockResponse(json={"data": {"id": "m-1"}}))
    started.clear()
    ended.clear()
    async with telnyx_msg.AsyncClient(
        "k",
        transport=ok,
        event_hooks={"request": [started.append, refuse], "response": [ended.append]},
    ) as client:
        with pytest.raises(ValueError, match="refuses"):
            await client.messages.retrieve("m-1")
    assert len(started) == 1
    assert [(e.request, e.status, type(e.error).__name__) for e in ended] == [
        (started[0], None, "ValueError")
    ]
    assert ok.requests == []


async def test_a_call_cancelled_while_a_request_hook_runs_still_ends_the_event() -> None:
    """The same when the caller's timeout cancels the call inside a later async request
    hook (an audit write): the first hook's event had no end."""
    from telnyx_msg.testing import MockResponse, MockTransport

    started: list[Any] = []
    ended: list[Any] = []

    async def slow_hook(event: Any) -> None:
        await asyncio.sleep(10)

    ok = MockTransport(lambda request: MockResponse(json={"data": {"id": "m-1"}}))
    async with telnyx_msg.AsyncClient(
        "k",
        transport=ok,
        event_hooks={"request": [started.append, slow_hook], "response": [ended.append]},
    ) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.messages.retrieve("m-1"), 0.1)
    assert [(e.request, e.status, type(e.error).__name__) for e in ended] == [
        (started[0], None, "CancelledError")
    ]
    assert ok.requests == []


def test_one_mock_hook_instead_of_a_list_is_refused() -> None:
    """Guards against a regression (the ``callable(entries)`` check dropped): a MagicMock given as
    the hook itself, not in a list, is iterable (it iterates as empty), so it was taken as an empty
    list: never called, and the test asserting on it failed for no clear reason."""
    hook = mock.MagicMock()
    with pytest.raises(telnyx_msg.ConfigurationError, match="list of callables"):
        telnyx_msg.AsyncClient(KEY, event_hooks={"request": hook})


async def test_a_timed_out_attempt_reaches_the_response_hook_as_api_timeout_error(
    api_server: Any,
) -> None:
    """A metrics or tracing hook classifies failed attempts with the SDK's public errors
    (``isinstance(event.error, telnyx_msg.APITimeoutError)`` to count timeouts): the event of
    an attempt that timed out carries an ``APITimeoutError`` like the one the call raises, not
    ``telnyx_msg._wire.TransportError``, a private class no public name matches."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"data": {"id": "m-1"}})

    server = await api_server(slow)
    ended: list[telnyx_msg.ResponseEvent] = []
    async with telnyx_msg.AsyncClient(
        KEY,
        base_url=server.base_url,
        timeout=0.3,
        max_retries=0,
        rate_limits=None,
        event_hooks={"response": [ended.append]},
    ) as client:
        with pytest.raises(telnyx_msg.APITimeoutError) as raised:
            await client.messages.retrieve("m-1")
    assert len(ended) == 1
    assert ended[0].status is None
    error = ended[0].error
    assert isinstance(error, telnyx_msg.APITimeoutError), type(error)
    assert type(error) is type(raised.value)
    assert KEY not in repr(error)


async def test_a_refused_connection_reaches_the_response_hook_as_api_connection_error() -> None:
    """The same for a connection that could not be made (nothing listens on the port), on
    every attempt a retry makes: each response event carries an ``APIConnectionError``."""
    ended: list[telnyx_msg.ResponseEvent] = []
    async with telnyx_msg.AsyncClient(
        KEY,
        base_url="http://127.0.0.1:9/v2",
        max_retries=1,
        backoff=telnyx_msg.Backoff(initial=0.001, max=0.001),
        rate_limits=None,
        event_hooks={"response": [ended.append]},
    ) as client:
        with pytest.raises(telnyx_msg.APIConnectionError):
            await client.messages.retrieve("m-1")
    assert [e.request.attempt for e in ended] == [0, 1]
    for event in ended:
        assert isinstance(event.error, telnyx_msg.APIConnectionError), type(event.error)


async def test_a_mock_transport_failure_reaches_the_hook_as_the_public_error() -> None:
    """Unit tests with ``MockTransport`` see the same: a simulated read timeout on a send
    without an idempotency key ends the call with ``APITimeoutError(outcome_unknown=True)``,
    and the hook's event carries that error, so a hook can count unknown outcomes."""

    def handler(request: Any) -> Any:
        raise MockTransportError("read timed out", reached=True, timeout=True)

    ended: list[telnyx_msg.ResponseEvent] = []
    async with telnyx_msg.AsyncClient(
        KEY,
        transport=MockTransport(handler),
        rate_limits=None,
        event_hooks={"response": [ended.append]},
    ) as client:
        with pytest.raises(telnyx_msg.APITimeoutError) as raised:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
    assert raised.value.outcome_unknown
    assert len(ended) == 1
    error = ended[0].error
    assert isinstance(error, telnyx_msg.APITimeoutError), type(error)
    assert error.outcome_unknown


def test_the_blocking_client_hooks_see_the_public_error_too() -> None:
    """With the blocking ``Client`` (hooks run on its loop thread) the event carries the same
    public ``APIConnectionError`` the call raises in the caller's thread."""
    ended: list[telnyx_msg.ResponseEvent] = []
    with (
        telnyx_msg.Client(
            KEY,
            base_url="http://127.0.0.1:9/v2",
            max_retries=0,
            rate_limits=None,
            event_hooks={"response": [ended.append]},
        ) as client,
        pytest.raises(telnyx_msg.APIConnectionError),
    ):
        client.messaging_optouts.list().first_page()
    assert len(ended) == 1
    assert isinstance(ended[0].error, telnyx_msg.APIConnectionError), type(ended[0].error)
