"""The retry policy: what is retried how often, server hints, and no duplicate sends."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import RequestOptions, SendItem
from telnyx_msg._outcome import SendOutcome
from telnyx_msg._retry import Backoff, server_hint, status_retryable
from tests.conftest import ApiServer, json_response, message_json, telnyx_error
from tests.redis_proc import _free_port

FAST = Backoff(initial=0.001, max=0.002)
SEND: dict[str, Any] = {"from_": "+18005550101", "to": "+18445550001", "text": "Hello"}


def client_for(server: ApiServer, **kwargs: Any) -> telnyx_msg.AsyncClient:
    kwargs.setdefault("backoff", FAST)
    kwargs.setdefault("rate_limits", None)
    return telnyx_msg.AsyncClient("secret-key", base_url=server.base_url, **kwargs)


def failing(
    status: int, code: str = "10001", times: int = 1_000_000, headers: dict[str, str] | None = None
) -> Callable[[web.Request], Any]:
    """A handler that fails ``times`` times with ``status`` and then succeeds."""
    state = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        state["n"] += 1
        if state["n"] <= times:
            return telnyx_error(status, code, "Failure", headers=headers)
        return json_response({"data": message_json()})

    return handler


# --- pure functions ---------------------------------------------------------------------------


def test_backoff_envelope() -> None:
    """Delays double from 0.5 s, cap at 8 s, and jitter only shortens by up to 25 %."""
    backoff = Backoff()
    assert [backoff.delay(n, lambda: 0.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    rng = random.Random(7)
    for n in range(3):
        low, high = 0.5 * 2**n * 0.75, 0.5 * 2**n
        samples = [backoff.delay(n, rng.random) for _ in range(1000)]
        assert all(low <= s <= high for s in samples)
    assert max(backoff.delay(rng.randrange(0, 100), rng.random) for _ in range(10_000)) <= 8.0
    assert backoff.delay(10_000, lambda: 0.0) == 8.0


@pytest.mark.parametrize(
    ("headers", "status", "expected"),
    [
        ({"retry-after": "2"}, 429, 2.0),
        ({"retry-after": "0.25"}, 503, 0.25),
        ({"retry-after": "0"}, 429, 0.0),
        ({"retry-after": "-3"}, 429, 0.0),
        ({"retry-after": "120"}, 429, 120.0),
        ({"retry-after-ms": "250"}, 429, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 429, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 429, 9.0),
        ({"retry-after": "soon"}, 429, None),
        ({"retry-after": "nan"}, 429, None),
        # Not the digits (and a fraction) the headers use: Python's float() reads these as
        # numbers ("1_0" as 10 s), a server means nothing by them.
        ({"retry-after": "1_0"}, 429, None),
        ({"retry-after": "1e3"}, 429, None),
        ({"retry-after": "infinity"}, 429, None),
        ({"x-ratelimit-reset": "0x10"}, 429, None),
        ({"retry-after": "9" * 400}, 429, None),
        ({"x-ratelimit-reset": " 2.5 "}, 429, 2.5),
        ({"retry-after": ""}, 429, None),
        ({"x-ratelimit-reset": "3"}, 429, 3.0),
        ({"x-ratelimit-reset": "3"}, 503, None),
        ({"retry-after": "1", "x-ratelimit-reset": "30"}, 429, 1.0),
        ({}, 429, None),
    ],
)
def test_server_hint_table(headers: dict[str, str], status: int, expected: float | None) -> None:
    """Hints are read in order retry-after-ms, Retry-After, then x-ratelimit-reset on 429."""
    assert server_hint(headers, status) == expected


def test_server_hint_http_date() -> None:
    """An HTTP-date Retry-After is converted to seconds from now (past dates mean 0)."""
    now = 1_700_000_000.0
    assert server_hint(
        {"retry-after": formatdate(now + 30, usegmt=True)}, 429, lambda: now
    ) == pytest.approx(30.0)
    assert server_hint({"retry-after": formatdate(now - 30, usegmt=True)}, 429, lambda: now) == 0.0


# --- the status table (G5) --------------------------------------------------------------------

# status, code, attempts for GET, attempts for a POST send without key, outcome_unknown on POST
STATUS_TABLE = [
    (400, "10015", 1, 1, False),
    (401, "10009", 1, 1, False),
    (403, "10010", 1, 1, False),
    (404, "10005", 1, 1, False),
    (409, "10001", 1, 1, False),
    (422, "40305", 1, 1, False),
    (408, "10001", 3, 3, False),
    (429, "10011", 3, 3, False),
    (429, "40318", 1, 1, False),
    (500, "10001", 3, 1, True),
    (501, "10001", 3, 1, True),
    (502, "10001", 3, 1, True),
    (503, "10001", 3, 3, False),
    (504, "10001", 3, 1, True),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "code", "get_attempts", "post_attempts", "unknown"), STATUS_TABLE
)
async def test_status_attempts(
    api_server: Any, status: int, code: str, get_attempts: int, post_attempts: int, unknown: bool
) -> None:
    """Each status is retried exactly as the policy table says, for GET and for a send."""
    server = await api_server(failing(status, code))
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as get_error:
            await client.messages.retrieve("m1")
        assert len(server.requests) == get_attempts
        assert get_error.value.outcome_unknown is False
        server.requests.clear()
        with pytest.raises(telnyx_msg.APIStatusError) as post_error:
            await client.messages.send(**SEND)
        assert len(server.requests) == post_attempts
        assert post_error.value.outcome_unknown is unknown
        assert post_error.value.status == status
        assert post_error.value.code == code
        server.requests.clear()
        # With an idempotency key a send is retried like a GET; a 5xx that may have been
        # accepted still leaves its outcome unknown once the retries run out.
        keyed = RequestOptions(idempotency_key="order-42")
        with pytest.raises(telnyx_msg.APIStatusError) as keyed_error:
            await client.messages.send(**SEND, options=keyed)
        assert len(server.requests) == get_attempts
        assert {r.headers["Idempotency-Key"] for r in server.requests} == {"order-42"}
        assert keyed_error.value.outcome_unknown is unknown
    if code == "40318":
        assert isinstance(post_error.value, telnyx_msg.QueueFullError)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "directive", "attempts"),
    [
        (500, "true", 3),  # a send Telnyx says it did not process: safe to repeat
        (409, "True", 3),
        (503, "false", 1),  # normally retried; the server says no
        (429, "false", 1),
        (500, "maybe", 1),  # anything else: the policy table decides
        (503, "maybe", 3),
    ],
)
async def test_x_should_retry_overrides_the_status_rule(
    api_server: Any, status: int, directive: str, attempts: int
) -> None:
    """``x-should-retry`` is the server's explicit word on a send; it wins over the table."""
    server = await api_server(failing(status, headers={"x-should-retry": directive}))
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as error:
            await client.messages.send(**SEND)
    assert len(server.requests) == attempts
    assert error.value.status == status


@pytest.mark.anyio
async def test_retry_then_success(api_server: Any) -> None:
    """Two 503s then a 200: the call succeeds after exactly three requests."""
    server = await api_server(failing(503, times=2))
    async with client_for(server) as client:
        message = await client.messages.send(**SEND)
    assert message.id is not None
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_max_retries_per_client_view_and_call(api_server: Any) -> None:
    """max_retries applies per client, per with_options view, and per call."""
    server = await api_server(failing(503))
    async with client_for(server, max_retries=4) as client:
        with pytest.raises(telnyx_msg.InternalServerError):
            await client.messages.retrieve("m")
        assert len(server.requests) == 5
        server.requests.clear()
        with pytest.raises(telnyx_msg.InternalServerError):
            await client.with_options(max_retries=1).messages.retrieve("m")
        assert len(server.requests) == 2
        server.requests.clear()
        with pytest.raises(telnyx_msg.InternalServerError):
            await client.messages.retrieve("m", options=RequestOptions(max_retries=0))
        assert len(server.requests) == 1


@pytest.mark.anyio
async def test_idempotency_key_makes_send_retryable(api_server: Any) -> None:
    """With an idempotency key a 500 is retried and every attempt carries the same key."""
    server = await api_server(failing(500, times=2))
    async with client_for(server) as client:
        message = await client.messages.send(
            **SEND, options=RequestOptions(idempotency_key="order-42:sms")
        )
    assert message.id is not None
    assert [r.headers.get("Idempotency-Key") for r in server.requests] == ["order-42:sms"] * 3
    assert len({r.body for r in server.requests}) == 1


# --- server hints (G1, G3) --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "0.3"}, 0.3),
        ({"retry-after-ms": "250"}, 0.25),
        (
            {"x-ratelimit-reset": "0.3", "x-ratelimit-limit": "10", "x-ratelimit-remaining": "0"},
            0.3,
        ),
    ],
)
async def test_hint_is_honoured(api_server: Any, headers: dict[str, str], wait: float) -> None:
    """A 429 hint is slept through before the retry (backoff alone would wait ~1 ms)."""
    server = await api_server(failing(429, "10011", times=1, headers=headers))
    async with client_for(server) as client:
        await client.messages.send(**SEND)
    first, second = server.requests
    assert second.at - first.at >= wait * 0.95


@pytest.mark.anyio
async def test_long_hint_raises_at_once(api_server: Any) -> None:
    """Retry-After above max_wait raises RateLimitError with retry_after, without retrying."""
    server = await api_server(failing(429, "10011", headers={"Retry-After": "120"}))
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.RateLimitError) as caught:
            await client.messages.send(**SEND)
    assert caught.value.retry_after == 120.0
    assert caught.value.code == "10011"
    assert len(server.requests) == 1
    assert "retry after 120 s" in str(caught.value)


@pytest.mark.anyio
async def test_max_wait_is_configurable(api_server: Any) -> None:
    """A shorter max_wait turns a 2 s hint into an immediate RateLimitError."""
    server = await api_server(failing(429, "10011", headers={"Retry-After": "2"}))
    backoff = Backoff(initial=0.001, max=0.002, max_wait=1.0)
    async with client_for(server, backoff=backoff) as client:
        with pytest.raises(telnyx_msg.RateLimitError) as caught:
            await client.messages.send(**SEND)
    assert caught.value.retry_after == 2.0
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_exhausted_rate_limit_reports_hint(api_server: Any) -> None:
    """After the retries run out the RateLimitError still carries the server's hint."""
    server = await api_server(failing(429, "10011", headers={"Retry-After": "0.01"}))
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.RateLimitError) as caught:
            await client.messages.send(**SEND)
    assert len(server.requests) == 3
    assert caught.value.retry_after == 0.01


# --- ambiguous failures never duplicate a send (G4) -------------------------------------------


@pytest.mark.anyio
async def test_post_stall_sent_once_outcome_unknown(api_server: Any) -> None:
    """A send whose server reads the body then stalls is sent once and raises outcome_unknown."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    try:
        async with client_for(server, timeout=0.3) as client:
            with pytest.raises(telnyx_msg.APITimeoutError) as caught:
                await client.messages.send(**SEND)
    finally:
        release.set()
    assert caught.value.outcome_unknown is True
    assert len(server.requests) == 1
    assert "idempotency_key" in str(caught.value)


@pytest.mark.anyio
async def test_get_stall_is_retried(api_server: Any) -> None:
    """A read that times out is retried: GET cannot duplicate anything."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    try:
        async with client_for(server, timeout=0.2) as client:
            with pytest.raises(telnyx_msg.APITimeoutError) as caught:
                await client.messages.retrieve("m1")
    finally:
        release.set()
    assert len(server.requests) == 3
    assert caught.value.outcome_unknown is True


async def _drop(request: web.Request) -> web.Response:
    await request.read()
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.05)
    return json_response({"data": message_json()})


def _drop_then(later: Callable[[], web.Response]) -> Callable[[web.Request], Any]:
    """A handler that drops the first connection after reading the body, then answers
    ``later()``: an attempt that may have been processed, then retries that were not."""
    seen = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        seen["n"] += 1
        if seen["n"] == 1:
            return await _drop(request)
        return later()

    return handler


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("later", "error"),
    [
        (lambda: telnyx_error(429, "10011", "Too many requests"), telnyx_msg.RateLimitError),
        (lambda: telnyx_error(503, "10001", "Service unavailable"), telnyx_msg.APIStatusError),
    ],
)
async def test_a_retry_after_a_possibly_processed_attempt_stays_outcome_unknown(
    api_server: Any, later: Callable[[], web.Response], error: type[Exception]
) -> None:
    """With an Idempotency-Key a send dropped after it was written is retried; when the
    retries then run out on answers that say "not processed" (429, 503), the first attempt
    may still have been accepted: the error says outcome_unknown, not that nothing was sent."""
    server = await api_server(_drop_then(later))
    options = RequestOptions(idempotency_key="k-1")
    async with client_for(server, max_retries=2) as client:
        with pytest.raises(error) as caught:
            await client.messages.send(**SEND, options=options)
    assert len(server.requests) == 3
    assert getattr(caught.value, "outcome_unknown", None) is True
    assert "outcome unknown" in str(caught.value)


@pytest.mark.anyio
async def test_a_cancel_retried_after_a_lost_answer_says_it_may_have_worked(
    api_server: Any,
) -> None:
    """``messages.cancel_scheduled``: the first DELETE is read and its answer lost (the
    message was cancelled), the retry meets 422 "Only messages with status=scheduled can be
    cancelled". The error is outcome_unknown, and its hint must not send the user hunting for
    a rejected field ("a field or parameter was rejected"): the cancel most likely worked."""
    refusal = "Only messages with status=scheduled can be cancelled."
    server = await api_server(
        _drop_then(lambda: telnyx_error(422, "10015", "Bad Request", refusal))
    )
    async with client_for(server, max_retries=1) as client:
        with pytest.raises(telnyx_msg.UnprocessableEntityError) as caught:
            await client.messages.cancel_scheduled("m-1")
    assert len(server.requests) == 2
    assert caught.value.outcome_unknown is True
    hint = caught.value.hint or ""
    assert "earlier attempt of this call may have succeeded" in hint, str(caught.value)
    assert "rejected" not in hint


@pytest.mark.anyio
async def test_a_retry_that_cannot_connect_after_a_possibly_processed_attempt() -> None:
    """The first attempt is dropped after it was written, then the server is gone (connection
    refused): the error is a connect error, yet outcome_unknown, since the first may have been
    accepted; send_many reports such a send unknown, never not_sent."""
    received: list[bytes] = []

    async def read_then_vanish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        received.append(await reader.readexactly(length))
        server.close()  # nothing listens any more: every retry is refused
        writer.transport.abort()

    server = await asyncio.start_server(read_then_vanish, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v2"
    item = telnyx_msg.SendMessageItem(
        from_="+18005550101",
        to="+18445550001",
        text="Hello",
        options=RequestOptions(idempotency_key="k-2"),
    )
    try:
        async with telnyx_msg.AsyncClient(
            "k", base_url=base_url, backoff=FAST, rate_limits=None, max_retries=2
        ) as client:
            (outcome,) = [o async for o in client.messages.send_many([item])]
    finally:
        server.close()
        await server.wait_closed()
    assert len(received) == 1
    assert outcome.status == "unknown"
    assert isinstance(outcome.error, telnyx_msg.APIConnectionError)
    assert "cannot connect" in str(outcome.error)
    assert outcome.error.outcome_unknown is True


@pytest.mark.anyio
async def test_post_connection_drop_sent_once(api_server: Any) -> None:
    """A connection dropped after the body was written: the send is not repeated."""
    server = await api_server(_drop)
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.APIConnectionError) as caught:
            await client.messages.send(**SEND)
    assert not isinstance(caught.value, telnyx_msg.APITimeoutError)
    assert caught.value.outcome_unknown is True
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_post_connection_drop_retried_with_key(api_server: Any) -> None:
    """With an idempotency key the same dropped send is retried, key unchanged."""
    server = await api_server(_drop)
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.APIConnectionError):
            await client.messages.send(**SEND, options=RequestOptions(idempotency_key="k-1"))
    assert len(server.requests) == 3
    assert {r.headers["Idempotency-Key"] for r in server.requests} == {"k-1"}


@pytest.mark.anyio
async def test_connection_refused_is_retried_for_sends(caplog: pytest.LogCaptureFixture) -> None:
    """A refused connection never reached Telnyx: even a send is retried (3 attempts)."""
    caplog.set_level(logging.DEBUG, logger="telnyx_msg")
    base = f"http://127.0.0.1:{_free_port()}/v2"  # nothing listens there
    async with telnyx_msg.AsyncClient(
        "secret-key", base_url=base, backoff=FAST, rate_limits=None
    ) as client:
        with pytest.raises(telnyx_msg.APIConnectionError) as caught:
            await client.messages.send(**SEND)
    assert caught.value.outcome_unknown is False
    attempts = [r for r in caplog.records if "POST /messages ->" in r.getMessage()]
    assert len(attempts) == 3
    assert "secret-key" not in caplog.text


def test_a_jitter_above_one_never_makes_a_negative_delay() -> None:
    """``jitter`` is validated only as >= 0: a value above 1 takes at most the whole delay off
    (0-100 %), never more: a negative delay would retry at once, hammering the server."""
    backoff = Backoff(jitter=3.0)
    assert backoff.delay(0, lambda: 0.0) == 0.5
    assert backoff.delay(0, lambda: 0.5) == 0.25
    assert backoff.delay(0, lambda: 0.999) >= 0.0
    rng = random.Random(11)
    samples = [backoff.delay(n, rng.random) for n in range(5) for _ in range(200)]
    assert all(0.0 <= s <= 8.0 for s in samples)


def test_x_should_retry_is_read_with_surrounding_whitespace() -> None:
    """The directive is compared trimmed and case-insensitively (a value a MockTransport or a
    proxy hands over untrimmed still decides); any other value falls back to the status rows."""
    assert status_retryable(400, None, False, " TRUE ") is True
    assert status_retryable(503, None, True, "false\t") is False
    assert status_retryable(503, None, True, " maybe ") is True


def refused_after_a_500(posts: list[int]) -> Any:
    """A first attempt that may have been accepted (500), then the key refused (401)."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        posts.append(1)
        if len(posts) == 1:  # may have been accepted
            return telnyx_error(500, "10007", "Unexpected error")
        return telnyx_error(401, "10009", "Authentication failed")

    return handler


async def collect(outcomes: AsyncIterator[SendOutcome], into: list[SendOutcome]) -> None:
    """Each outcome into ``into`` as it arrives (kept when the iteration then raises)."""
    async for outcome in outcomes:
        into.append(outcome)  # an error ends the loop: keep what came


def keyed_item() -> SendItem:
    return {
        "from_": "+18005550101",
        "to": "+18445550000",
        "text": "hi",
        "options": telnyx_msg.RequestOptions(idempotency_key="k-1"),
    }


@pytest.mark.anyio
async def test_a_refused_key_after_a_possibly_accepted_attempt_is_unknown(
    api_server: Any,
) -> None:
    """The item's first attempt may have been accepted (500), its retry is refused (401):
    ``send_many`` reports it ``unknown``, not ``not_sent`` (which the bulk CLI's --resume, or
    the caller, resends: the recipient would get the message twice)."""
    posts: list[int] = []
    server: ApiServer = await api_server(refused_after_a_500(posts))
    got: list[SendOutcome] = []
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, backoff=FAST
    ) as client:
        outcomes = client.messages.send_many(iter([keyed_item()]), concurrency=1)
        with pytest.raises(telnyx_msg.AuthenticationError):
            await collect(outcomes, got)
    assert len(posts) == 2
    assert [(o.index, o.status) for o in got] == [(0, "unknown")], [
        (o.index, o.status, str(o.error)) for o in got
    ]


@pytest.mark.anyio
async def test_a_refused_key_after_a_possibly_accepted_attempt_hints_at_the_key(
    api_server: Any,
) -> None:
    """The same send with ``messages.send``: the 401's hint still names the API key (the
    thing to fix; the retry cannot have met the earlier attempt's result as a 401), while the
    message says the outcome is unknown."""
    posts: list[int] = []
    server: ApiServer = await api_server(refused_after_a_500(posts))
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, backoff=FAST
    ) as client:
        with pytest.raises(telnyx_msg.AuthenticationError) as caught:
            await client.messages.send(
                from_="+18005550101",
                to="+18445550000",
                text="hi",
                options=telnyx_msg.RequestOptions(idempotency_key="k-1"),
            )
    error = caught.value
    assert len(posts) == 2
    assert error.outcome_unknown
    assert error.hint is not None
    assert "API key" in error.hint, str(error)
