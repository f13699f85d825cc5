"""send_many: bounded, lazy, one outcome per item, never a resend, clean stops."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import gc
import inspect
import itertools
import json
import logging
import sys
import time
import types
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import anyio
import anyio.to_thread
import pytest
from aiohttp import web

import telnyx_msg
import telnyx_msg.testing
from telnyx_msg import SendItem
from telnyx_msg._bulk import _snapshot
from telnyx_msg._outcome import SendOutcome
from telnyx_msg._retry import Backoff
from telnyx_msg.testing import DEFAULT_LONG_CODE, FakeTelnyx, serve_in_thread
from tests.conftest import (
    ApiServer,
    RecordingLimiter,
    json_response,
    message_json,
    serving_in_thread,
    telnyx_error,
)
from tests.redis_proc import RedisProcess

FROM = "+18005550101"

pytestmark = pytest.mark.anyio
FAST = Backoff(initial=0.001, max=0.002)


async def scripted(request: web.Request) -> web.Response:
    """Answers by recipient suffix: 1 → 422, 2 → 500, 3 → 429/40318, else 200 (after a beat)."""
    body = await request.json()
    to = body["to"] if isinstance(body["to"], str) else body["to"][0]
    await asyncio.sleep(0.005)
    if to.endswith("1"):
        return telnyx_error(422, "40305", "Invalid 'from' address")
    if to.endswith("2"):
        return telnyx_error(500, "10001", "Internal")
    if to.endswith("3"):
        return telnyx_error(429, "40318", "Message queue full")
    return json_response({"data": message_json(to=[{"phone_number": to, "status": "queued"}])})


def client_for(server: ApiServer, **kwargs: Any) -> telnyx_msg.AsyncClient:
    kwargs.setdefault("rate_limits", None)
    return telnyx_msg.AsyncClient("k", base_url=server.base_url, backoff=FAST, **kwargs)


def numbers(count: int) -> Iterator[SendItem]:
    for n in range(count):
        yield {"from_": "+18005550101", "to": f"+1844555{n:04d}", "text": f"hi {n}"}


async def test_outcomes_one_per_item_with_statuses(api_server: Any) -> None:
    """200 items, concurrency 10: ≤ 10 in flight, each index once, statuses by response."""
    server = await api_server(scripted)
    items = list(numbers(200))
    items[7] = {"from_": "+18005550101", "to": "555-0101", "text": "bad number"}
    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many(items, concurrency=10)]
    assert server.max_in_flight <= 10
    assert sorted(o.index for o in outcomes) == list(range(200))
    by_index = {o.index: o for o in outcomes}
    for index, outcome in by_index.items():
        assert outcome.request == items[index]
        to = str(items[index]["to"])
        if index == 7:
            assert outcome.status == "rejected"
            assert isinstance(outcome.error, telnyx_msg.ValidationError)
        elif to.endswith("1"):
            assert outcome.status == "rejected"
            assert isinstance(outcome.error, telnyx_msg.UnprocessableEntityError)
        elif to.endswith("2"):
            assert outcome.status == "unknown"
        elif to.endswith("3"):
            assert outcome.status == "not_sent"
            assert isinstance(outcome.error, telnyx_msg.QueueFullError)
        else:
            assert outcome.status == "sent"
            assert outcome.message is not None
            assert outcome.message.to[0].phone_number == to
    # never resent: one request per item except the invalid one (no I/O at all)
    sent_to = [r.json["to"] for r in server.requests]
    assert len(sent_to) == 199
    assert len(set(sent_to)) == 199


async def test_keyed_sends_retry_a_500_and_stay_unknown(api_server: Any) -> None:
    """With idempotency keys a 500 is retried (same key), and when every attempt failed the
    item is ``unknown``, not ``not_sent``: an earlier attempt may have been accepted. A 503 or
    408 (not processed) after the same retries is ``not_sent``, to be sent again."""
    server = await api_server(scripted)

    def keyed(to: str) -> SendItem:
        options = telnyx_msg.RequestOptions(idempotency_key=f"k-{to[-4:]}")
        return {"from_": "+18005550101", "to": to, "text": "hi", "options": options}

    unprocessed = [503]

    async def unavailable(request: web.Request) -> web.Response:
        return telnyx_error(unprocessed[0], "10001", "Not processed")

    async with client_for(server) as client:
        (outcome,) = [o async for o in client.messages.send_many([keyed("+18445550002")])]
    assert outcome.status == "unknown"
    assert isinstance(outcome.error, telnyx_msg.InternalServerError)
    assert [r.headers["Idempotency-Key"] for r in server.requests] == ["k-0002"] * 3
    server.handler = unavailable
    for status in (503, 408):
        unprocessed[0] = status
        async with client_for(server) as client:
            (outcome,) = [o async for o in client.messages.send_many([keyed("+18445550009")])]
        assert outcome.status == "not_sent", status


async def test_an_item_throttled_more_often_than_max_retries_is_still_sent(
    api_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``send_many`` item answered 429 ``10011`` more often than ``max_retries`` allows (the
    client's limiter is still slowing down to the account's limit) is retried until sent, up to
    8 such answers beyond ``max_retries``: Telnyx processed none of them. One answered 429
    for ever ends ``not_sent`` after 1 + 2 + 8 attempts; a single ``send`` still gives up after
    ``max_retries``, and ``max_retries=0`` still turns retries off. Guards against: an item
    ending ``not_sent`` (to be resent by hand) while the limiter converges."""
    seen: collections.Counter[str] = collections.Counter()

    async def throttling(request: web.Request) -> web.Response:
        to = (await request.json())["to"]
        seen[to] += 1
        if to.endswith("9") or seen[to] <= 6:
            return telnyx_error(429, "10011", "Too many requests")
        return json_response({"data": message_json(to=[{"phone_number": to, "status": "queued"}])})

    server = await api_server(throttling)
    caplog.set_level(logging.INFO, "telnyx_msg")
    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many(numbers(1))]
        assert [o.status for o in outcomes] == ["sent"]
        assert seen["+18445550000"] == 7
        assert "(retry 6 of 2 + up to 8 for 429s)" in caplog.text
        never: SendItem = {"from_": "+18005550101", "to": "+18445550009", "text": "hi"}
        (outcome,) = [o async for o in client.messages.send_many([never])]
        assert outcome.status == "not_sent"
        assert isinstance(outcome.error, telnyx_msg.RateLimitError)
        assert seen["+18445550009"] == 11
        with pytest.raises(telnyx_msg.RateLimitError):
            await client.messages.send(from_="+18005550101", to="+18445550001", text="hi")
        assert seen["+18445550001"] == 3
    async with client_for(server, max_retries=0) as client:
        single: SendItem = {"from_": "+18005550101", "to": "+18445550002", "text": "hi"}
        (outcome,) = [o async for o in client.messages.send_many([single])]
        assert outcome.status == "not_sent"
        assert seen["+18445550002"] == 1


async def test_a_throttled_send_many_item_backs_off_as_a_single_send_does(
    api_server: Any,
) -> None:
    """A ``send_many`` item answered 429 without a wait hint is retried after the documented
    exponential backoff, ``min(initial * 2**n, max)`` before retry ``n + 1``, as a single
    ``send`` is, also for the 429s it does not count against ``max_retries``. Guards against:
    those retries coming after half the initial delay every time (never growing), so a
    throttled run hit an account already over its limit far more often than a single send
    and spent its extra retries within a couple of seconds."""
    backoff = Backoff(initial=0.04, max=1.0, jitter=0.0)  # no jitter: exact lower bounds
    arrived: dict[str, list[float]] = collections.defaultdict(list)

    async def four_429s(request: web.Request) -> web.Response:
        to = (await request.json())["to"]
        arrived[to].append(asyncio.get_running_loop().time())
        if len(arrived[to]) <= 4:
            return telnyx_error(429, "10011", "Too many requests")
        return json_response({"data": message_json(to=[{"phone_number": to, "status": "queued"}])})

    server = await api_server(four_429s)
    item: SendItem = {"from_": "+18005550101", "to": "+18445550002", "text": "hi"}
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, backoff=backoff, max_retries=5
    ) as client:
        await client.messages.send(from_="+18005550101", to="+18445550001", text="hi")
        (outcome,) = [o async for o in client.messages.send_many([item])]
    assert outcome.status == "sent", outcome
    expected = [min(backoff.initial * 2**n, backoff.max) for n in range(4)]
    for to in ("+18445550001", "+18445550002"):
        times = arrived[to]
        waits = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert len(waits) == 4
        assert all(w >= e * 0.9 for w, e in zip(waits, expected, strict=True)), (to, waits)


async def test_input_is_consumed_lazily(api_server: Any) -> None:
    """Only as many items are pulled as the window needs; stopping pulls no more."""
    server = await api_server(scripted)
    pulled = 0

    def counting() -> Iterator[SendItem]:
        nonlocal pulled
        for item in numbers(10_000):
            pulled += 1
            yield item

    async with client_for(server) as client:
        outcomes = client.messages.send_many(counting(), concurrency=5)
        async with contextlib.aclosing(outcomes):
            seen = 0
            async for _ in outcomes:
                seen += 1
                if seen == 20:
                    break
    assert pulled <= 20 + 5
    assert len(server.requests) <= 20 + 5


async def slow_ok(request: web.Request) -> web.Response:
    """Every send accepted, after long enough that many are in flight at once."""
    body = await request.json()
    await asyncio.sleep(0.1)
    return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})


class BadRow(Exception):
    pass


def failing_after(count: int) -> Iterator[SendItem]:
    yield from numbers(count)
    raise BadRow(f"row {count} is malformed")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_failing_input_finishes_what_it_pulled_then_raises(
    api_server: Any, kind: str
) -> None:
    """The input raising mid-run: the sends already started are not abandoned (they finish and
    are yielded), nothing more is pulled, then the input's own exception is raised."""
    server = await api_server(slow_ok)

    async def failing_async() -> AsyncIterator[SendItem]:
        for item in failing_after(12):
            yield item

    source = failing_after(12) if kind == "sync" else failing_async()
    stopped: list[SendOutcome] = []
    outcomes: list[SendOutcome] = []

    async def consume(client: telnyx_msg.AsyncClient) -> None:
        async for outcome in client.messages.send_many(
            source, concurrency=10, on_stop=stopped.append
        ):
            outcomes.append(outcome)

    async with client_for(server) as client:
        with pytest.raises(BadRow, match="row 12 is malformed"):
            await consume(client)
    assert sorted(o.index for o in outcomes) == list(range(12))
    assert {o.status for o in outcomes} == {"sent"}
    assert stopped == []
    assert len(server.requests) == 12


async def test_a_refused_api_key_stops_pulling_and_lets_the_sends_in_flight_finish(
    api_server: Any,
) -> None:
    """Telnyx answers 401 (a wrong or revoked key): no further item is pulled (every one would
    be refused the same way), the sends in flight finish with their 401 as `not_sent` (the key
    was refused, not the message) and are yielded, then AuthenticationError is raised."""

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.05)
        return telnyx_error(401, "10009", "Authentication failed")

    server = await api_server(refuse)
    stopped: list[SendOutcome] = []
    outcomes: list[SendOutcome] = []

    async def consume(client: telnyx_msg.AsyncClient) -> None:
        async for outcome in client.messages.send_many(
            numbers(100), concurrency=5, on_stop=stopped.append
        ):
            outcomes.append(outcome)

    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.AuthenticationError):
            await consume(client)
    assert 0 < len(outcomes) <= 5
    assert {o.status for o in outcomes} == {"not_sent"}
    assert stopped == []
    assert len(server.requests) == len(outcomes)


async def test_async_iterable_input_and_group_mms_and_whatsapp(api_server: Any) -> None:
    """Async iterables work, and 'auto' routes list recipients and WhatsApp items correctly."""
    server = await api_server(scripted)

    async def source() -> AsyncIterator[SendItem]:
        yield {"from_": "+18005550101", "to": ["+18445550004", "+18445550005"], "text": "g"}
        yield {
            "from_": "+18005550101",
            "to": "+18445550006",
            "whatsapp_message": {"type": "text", "text": {"body": "w"}},
        }
        yield {"messaging_profile_id": "p1", "to": "+18445550008", "text": "pool"}

    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many(source(), concurrency=2)]
    assert {o.status for o in outcomes} == {"sent"}
    assert sorted(r.path for r in server.requests) == [
        "/v2/messages",
        "/v2/messages/group_mms",
        "/v2/messages/whatsapp",
    ]


async def test_explicit_method_and_bad_keywords(api_server: Any) -> None:
    """method= forces an endpoint; an unknown keyword is rejected before any I/O."""
    server = await api_server(scripted)
    items: list[SendItem] = [
        {"from_": "+18005550101", "to": "+18445550004", "text": "a"},
        # A typo a checker would catch; at run time it is rejected before any I/O.
        {"from_": "+18005550101", "to": "+18445550005", "txt": "typo"},  # type: ignore[list-item]
    ]
    async with client_for(server) as client:
        outcomes = sorted(
            [o async for o in client.messages.send_many(items, method="send_long_code")],
            key=lambda o: o.index,
        )
    assert [o.status for o in outcomes] == ["sent", "rejected"]
    assert isinstance(outcomes[1].error, telnyx_msg.ValidationError)
    assert [r.path for r in server.requests] == ["/v2/messages/long_code"]


async def test_settings_validated_before_io(api_server: Any) -> None:
    """A bad concurrency or an unknown method fails before any request."""
    server = await api_server(scripted)
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.ValidationError, match="concurrency"):
            client.messages.send_many(numbers(3), concurrency=0)
        with pytest.raises(telnyx_msg.ValidationError):
            client.messages.send_many(numbers(3), method="send_fax")  # type: ignore[arg-type]
    assert server.requests == []


@pytest.mark.parametrize(
    "requests", [{"from_": "+18005550101", "to": "+13125550001", "text": "hi"}, "+13125550001", 7]
)
async def test_one_item_instead_of_a_list_is_refused(api_server: Any, requests: Any) -> None:
    """A dict or a str passed as ``requests`` is refused at the call (both clients).

    Both are iterable: each key or character became a rejected item, and nothing was sent.
    """
    server = await api_server(scripted)
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.ValidationError, match=r"requests: .*pass \[item\]"):
            client.messages.send_many(requests)

    def blocking() -> None:
        with (
            telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client,
            pytest.raises(telnyx_msg.ValidationError, match="requests"),
        ):
            client.messages.send_many(requests)

    await anyio.to_thread.run_sync(blocking)
    assert server.requests == []


async def test_concurrency_above_the_pool_grows_the_clients_own_pool(api_server: Any) -> None:
    """concurrency=N above pool_size grows the client's own pool to N, so N sends are on the
    wire at once; a borrowed session's connector limit is refused before any request."""
    release = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(held)
    async with client_for(server, pool_size=4) as client:
        release.set()
        await client.messages.send(from_="+18005550101", to="+18445550001", text="first")
        release.clear()  # the session and its pool of 4 exist now: the pool must grow anyway
        outcomes = client.messages.send_many(numbers(12), concurrency=12)
        first = asyncio.ensure_future(outcomes.__anext__())
        for _ in range(500):  # bounded (5 s)
            if server.in_flight == 12:
                break
            await asyncio.sleep(0.01)
        assert server.in_flight == 12
        release.set()
        statuses = [(await first).status] + [o.status async for o in outcomes]
    assert statuses == ["sent"] * 12
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
        borrowed = telnyx_msg.AsyncClient("k", base_url=server.base_url, session=session)
        with pytest.raises(telnyx_msg.ValidationError, match="4 connections"):
            borrowed.messages.send_many(numbers(3), concurrency=5)
    # limit=0 is aiohttp's "no limit": any concurrency (it was refused as "0 connections")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        unlimited = telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, session=session, rate_limits=None
        )
        done = [o async for o in unlimited.messages.send_many(numbers(6), concurrency=300)]
        assert sorted(o.index for o in done) == list(range(6))


@pytest.mark.parametrize("on_stop_raises", [False, True])
async def test_stop_cancels_in_flight_and_reports_them(
    api_server: Any, on_stop_raises: bool
) -> None:
    """Closing the iterator leaves nothing in flight; stalled sends are reported unknown. An
    on_stop that raises does not lose the others: each gets its call, then the first error
    is raised from the stop."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    stopped: list[SendOutcome] = []

    def record(outcome: SendOutcome) -> None:
        stopped.append(outcome)
        if on_stop_raises and len(stopped) == 1:
            raise RuntimeError("on_stop failed")

    try:
        async with client_for(server) as client:
            outcomes = client.messages.send_many(numbers(100), concurrency=4, on_stop=record)
            task = asyncio.ensure_future(outcomes.__anext__())
            for _ in range(1000):  # bounded wait (10 s) for the 4 sends to reach the server
                if server.in_flight >= 4:
                    break
                await asyncio.sleep(0.01)
            task.cancel()  # the stop: the run's clean-up calls on_stop
            if on_stop_raises:
                with pytest.raises(RuntimeError, match="on_stop failed"):
                    await task
            else:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await outcomes.aclose()
            assert len(server.requests) == 4
            await asyncio.sleep(0.05)
            assert len(server.requests) == 4  # nothing new started after the stop
    finally:
        release.set()
    assert sorted(o.index for o in stopped) == [0, 1, 2, 3]
    assert {o.status for o in stopped} == {"unknown"}


async def test_stop_before_sends_start_reports_them_not_sent(api_server: Any) -> None:
    """Sends scheduled but not yet started when the run stops are not_sent, never written."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)
    stopped: list[SendOutcome] = []
    # The client has the second answer (not only the server the request): a plain response
    # hook runs in the send's own step, so once it ran, send 1 has finished.
    answered: list[int | None] = []
    hooks = {"response": [lambda event: answered.append(event.status)]}
    async with client_for(server, event_hooks=hooks) as client:
        outcomes = client.messages.send_many(numbers(10), concurrency=2, on_stop=stopped.append)
        first = await outcomes.__anext__()
        for _ in range(500):  # bounded (5 s): let the second send finish too
            if len(answered) == 2:
                break
            await asyncio.sleep(0.01)
        # The refill schedules send 2 only (the finished, unconsumed send 1 still holds a slot
        # of the window); send 1 is returned before send 2 runs.
        second = await outcomes.__anext__()
        await outcomes.aclose()
    assert {first.index, second.index} == {0, 1}
    assert {first.status, second.status} == {"sent"}
    assert sorted((o.index, o.status) for o in stopped) == [(2, "not_sent")]
    assert len(server.requests) == 2


async def test_stop_while_sends_wait_for_the_rate_limiter_reports_them_not_sent(
    api_server: Any,
) -> None:
    """Sends still waiting for a rate-limit token when the run stops were never written: they
    are not_sent (a --resume sends them), not unknown (which would hold them back)."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)
    stopped: list[SendOutcome] = []
    limits = telnyx_msg.RateLimits(account_mps=None, per_sender_mps={"+18005550101": 0.1})
    async with client_for(server, rate_limits=limits) as client:
        outcomes = client.messages.send_many(numbers(4), concurrency=4, on_stop=stopped.append)
        first = await outcomes.__anext__()  # the burst's token; the others wait 10 s each
        await asyncio.sleep(0.05)
        await outcomes.aclose()
    assert first.status == "sent"
    assert sorted((o.index, o.status) for o in stopped) == [
        (1, "not_sent"),
        (2, "not_sent"),
        (3, "not_sent"),
    ]
    assert len(server.requests) == 1


async def test_blocking_send_many(api_server: Any) -> None:
    """The blocking facade's send_many is a plain iterator over the same outcomes."""
    server = await api_server(scripted)

    def run() -> list[str]:
        with telnyx_msg.Client(
            "k", base_url=server.base_url, rate_limits=None, backoff=FAST
        ) as client:
            return [o.status for o in client.messages.send_many(numbers(30), concurrency=5)]

    statuses = await anyio.to_thread.run_sync(run)
    assert len(statuses) == 30
    assert statuses.count("sent") == 30 - 3 * 3


async def test_blocking_send_many_failing_input(api_server: Any) -> None:
    """Through the blocking facade too: every pulled item's outcome, then the input's error."""
    server = await api_server(slow_ok)

    def run() -> tuple[list[str], BaseException | None]:
        statuses: list[str] = []
        with telnyx_msg.Client(
            "k", base_url=server.base_url, rate_limits=None, backoff=FAST
        ) as client:
            try:
                for outcome in client.messages.send_many(failing_after(7), concurrency=5):
                    statuses.append(outcome.status)
            except BadRow as exc:
                return statuses, exc
        return statuses, None

    statuses, error = await anyio.to_thread.run_sync(run)
    assert isinstance(error, BadRow)
    assert statuses == ["sent"] * 7
    assert len(server.requests) == 7


async def test_skip_optouts_with_fake_telnyx() -> None:
    """Opted-out recipients are skipped as not_sent with skip_optouts, rejected (40300) without."""
    from telnyx_msg.testing import FakeTelnyx

    sender = "+18005550101"
    async with FakeTelnyx() as fake:
        await fake.inject_inbound(from_="+13125550042", to=sender, text="STOP")
        items: list[SendItem] = [
            {"from_": sender, "to": f"+131255500{n:02d}", "text": "hi"} for n in (41, 42)
        ]
        async with fake.client(rate_limits=None) as client:
            skipped = {
                o.request["to"]: o
                async for o in client.messages.send_many(items, skip_optouts=True)
            }
            assert skipped["+13125550041"].status == "sent"
            assert skipped["+13125550042"].status == "not_sent"
            assert "opted out" in skipped["+13125550042"].reason
            assert fake.stats.count("GET", "/messaging_optouts") == 1
            sent = {o.request["to"]: o async for o in client.messages.send_many(items)}
    assert sent["+13125550042"].status == "rejected"
    error = sent["+13125550042"].error
    assert isinstance(error, telnyx_msg.APIStatusError)
    assert error.code == "40300"


async def test_skip_optouts_skips_a_group_mms_with_an_opted_out_recipient() -> None:
    """A group MMS goes to every recipient in ``to``: one opted out skips the item (not_sent,
    naming that recipient); a group without one is sent."""
    from telnyx_msg.testing import FakeTelnyx

    sender = "+18005550101"
    async with FakeTelnyx() as fake:
        await fake.inject_inbound(from_="+13125550042", to=sender, text="STOP")
        items: list[SendItem] = [
            {"from_": sender, "to": ["+13125550041", "+13125550042"], "text": "hi"},
            {"from_": sender, "to": ["+13125550041", "+13125550043"], "text": "hi"},
        ]
        async with fake.client(rate_limits=None) as client:
            outcomes = [o async for o in client.messages.send_many(items, skip_optouts=True)]
    by_index = {o.index: o for o in outcomes}
    assert by_index[0].status == "not_sent"
    assert "+13125550042 opted out" in by_index[0].reason
    assert by_index[1].status == "sent", by_index[1].error


async def test_a_request_hook_that_raises_leaves_the_item_not_sent() -> None:
    """The bulk CLI journals each row in a request hook: on a full disk it raised, and the row
    was reported unknown (then never sent by a plain resume) although no request was written.
    The request may be written only after the request hooks ran."""

    async def journal(event: telnyx_msg.RequestEvent) -> None:
        if event.idempotency_key == "row-2":
            raise OSError(28, "No space left on device")

    async with telnyx_msg.testing.FakeTelnyx() as fake:
        async with fake.client(event_hooks={"request": [journal]}) as client:
            outcomes = [o async for o in client.messages.send_many(three_keyed_rows())]
        sent = {m["to"][0]["phone_number"] for m in fake.messages()}
    by_to = {o.request["to"]: o.status for o in outcomes}
    assert by_to == {"+13125550001": "sent", "+13125550002": "not_sent", "+13125550003": "sent"}
    assert sent == {"+13125550001", "+13125550003"}


def key(n: int) -> telnyx_msg.RequestOptions:
    return telnyx_msg.RequestOptions(idempotency_key=f"row-{n}")


def three_keyed_rows() -> list[SendItem]:
    """Rows to +13125550001..3, their Idempotency-Keys row-1..3."""
    return [
        {"from_": FROM, "to": f"+1312555000{n}", "text": "Hi", "options": key(n)} for n in (1, 2, 3)
    ]


async def test_a_send_made_by_an_items_event_hook_is_not_the_item() -> None:
    """An item's request hook sends an alert itself, then raises (its metrics sink is down):
    the item's own request was never written, so it is ``not_sent``. The hook's send took the
    item's bulk-run state as its own (it marked the item written: ``unknown``, never resent)
    and waited for the rate limiter without the call's timeout."""
    client: telnyx_msg.AsyncClient
    alerts: list[str] = []

    async def alert_then_fail(event: telnyx_msg.RequestEvent) -> None:
        if event.idempotency_key == "row-2" and not alerts:
            alerts.append("sent")
            await client.messages.send(from_=FROM, to="+13125550099", text="row 2 is going out")
            raise OSError(28, "No space left on device")

    async with telnyx_msg.testing.FakeTelnyx() as fake:
        async with fake.client(event_hooks={"request": [alert_then_fail]}) as client:
            outcomes = [o async for o in client.messages.send_many(three_keyed_rows())]
        sent = {m["to"][0]["phone_number"] for m in fake.messages()}
    by_to = {o.request["to"]: o.status for o in outcomes}
    assert by_to == {"+13125550001": "sent", "+13125550002": "not_sent", "+13125550003": "sent"}
    assert sent == {"+13125550001", "+13125550003", "+13125550099"}


async def test_concurrent_runs_on_one_client_each_get_their_connections() -> None:
    """Two send_many runs at once on one client (threads sharing a blocking Client): the pool
    grew to the larger concurrency only, so half the sends waited for a connection and those
    waiting past the connect timeout ended not_sent. Runs at once add up."""
    config = telnyx_msg.testing.FakeConfig(
        faults=telnyx_msg.testing.Faults(latency=0.3, match=("POST *",))
    )
    async with telnyx_msg.testing.FakeTelnyx(config=config) as fake:
        timeout = telnyx_msg.Timeout(10, connect=0.1)
        async with fake.client(pool_size=10, timeout=timeout, rate_limits=None) as client:

            async def run(first: int) -> list[str]:
                items: list[SendItem] = [
                    {"from_": FROM, "to": f"+1312555{n:04d}", "text": "Hi"}
                    for n in range(first, first + 10)
                ]
                return [o.status async for o in client.messages.send_many(items, concurrency=10)]

            statuses = await asyncio.gather(run(0), run(100))
            assert client._shared.transport.pool_size == 20
            assert client._shared.bulk_connections == 0  # released when the runs ended
    assert [set(s) for s in statuses] == [{"sent"}, {"sent"}]


async def test_stop_during_the_backoff_after_a_503_reports_not_sent(api_server: Any) -> None:
    """The only attempt was answered 503 (Telnyx did not process it) and the send sleeps out a
    Retry-After when the run stops: nothing was accepted, so it is not_sent (as it would be had
    the retries run out, or had the client been closed), not unknown."""

    async def unavailable(request: web.Request) -> web.Response:
        await request.read()
        response = telnyx_error(503, "10007", "Service unavailable")
        response.headers["Retry-After"] = "5"
        return response

    server = await api_server(unavailable)
    stopped: list[SendOutcome] = []
    # The client has read the 503 (the server having the request is not enough: stopped while
    # the answer is on its way, the send is rightly unknown). A plain response hook runs in the
    # send's own step, which goes on into the backoff.
    answered: list[int | None] = []
    hooks = {"response": [lambda event: answered.append(event.status)]}
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, event_hooks=hooks
    ) as client:
        outcomes = client.messages.send_many(numbers(1), concurrency=1, on_stop=stopped.append)
        step = asyncio.ensure_future(outcomes.__anext__())
        for _ in range(500):  # bounded (5 s): the 503 has been answered
            if answered:
                break
            await asyncio.sleep(0.01)
        assert answered == [503]
        step.cancel()  # the consuming task is cancelled while the send waits to retry
        await asyncio.gather(step, return_exceptions=True)
        await outcomes.aclose()
    assert len(server.requests) == 1
    assert [(o.index, o.status) for o in stopped] == [(0, "not_sent")]


async def test_stop_while_a_retry_waits_for_its_token_reports_not_sent(api_server: Any) -> None:
    """docs/bulk-sending.md: stopping "cancels the sends still waiting for a rate-limit token
    (not_sent: never written)". A retry after a 503 that waits for its sender lane's token is
    such a send: its only attempt was not processed."""
    answers = iter([503])

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        status = next(answers, 200)
        if status == 503:
            response = telnyx_error(503, "10007", "Service unavailable")
            response.headers["Retry-After"] = "0"
            return response
        return json_response({"data": message_json()})

    server = await api_server(handler)
    stopped: list[SendOutcome] = []
    limits = telnyx_msg.RateLimits(account_mps=None, per_sender_mps={FROM: 0.1})
    answered: list[int | None] = []  # what the client read (see the test above)
    hooks = {"response": [lambda event: answered.append(event.status)]}
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=limits, backoff=FAST, event_hooks=hooks
    ) as client:
        outcomes = client.messages.send_many(numbers(1), concurrency=1, on_stop=stopped.append)
        step = asyncio.ensure_future(outcomes.__anext__())
        for _ in range(500):  # bounded (5 s): the 503 has been answered
            if answered:
                break
            await asyncio.sleep(0.01)
        assert answered == [503]
        await asyncio.sleep(0.05)  # past the 1-2 ms backoff: the retry waits ~10 s for a token
        step.cancel()
        await asyncio.gather(step, return_exceptions=True)
        await outcomes.aclose()
    assert len(server.requests) == 1
    assert [(o.index, o.status) for o in stopped] == [(0, "not_sent")]


async def test_a_finished_outcome_is_not_held_back_by_a_slow_input(api_server: Any) -> None:
    """An async input that yields its next item only later (a queue fed by a producer, or a
    producer that waits for the previous outcome): the outcome of a finished send is yielded
    while the engine waits for the input, not only once `concurrency` items have arrived or the
    input has ended (that deadlocks a producer waiting for it)."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)
    first_seen = asyncio.Event()
    waited_in_vain: list[bool] = []

    async def paced() -> AsyncIterator[SendItem]:
        items = numbers(3)
        yield next(items)
        try:
            await asyncio.wait_for(first_seen.wait(), 3.0)  # bounded: no hang on failure
        except asyncio.TimeoutError:
            waited_in_vain.append(True)
        for item in items:
            yield item

    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        statuses = []
        async for outcome in client.messages.send_many(paced(), concurrency=10):
            statuses.append(outcome.status)
            first_seen.set()
    assert statuses == ["sent"] * 3
    assert waited_in_vain == []


async def test_a_refused_api_key_ends_the_run_without_waiting_for_a_slow_input(
    api_server: Any,
) -> None:
    """A 401 ends the pulling: the run raises AuthenticationError once the sends in flight are
    in, and does not wait for an idle async input's next item (a queue with nothing in it)."""

    async def refused(request: web.Request) -> web.Response:
        await request.read()
        return telnyx_error(401, "10009", "Authentication failed")

    server = await api_server(refused)
    never = asyncio.Event()

    async def idle_after_one() -> AsyncIterator[SendItem]:
        yield next(numbers(1))
        await asyncio.wait_for(never.wait(), 30)  # bounded: a hang fails, not blocks

    outcomes: list[str] = []
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:

        async def run() -> None:
            async for outcome in client.messages.send_many(idle_after_one(), concurrency=5):
                outcomes.append(outcome.status)

        with pytest.raises(telnyx_msg.AuthenticationError):
            await asyncio.wait_for(run(), 5)
    assert outcomes == ["not_sent"]
    assert len(server.requests) == 1


async def test_an_item_is_read_when_pulled_not_when_its_send_starts(api_server: Any) -> None:
    """A generator that refills one dict per row (a cursor or reader reusing its row object):
    each pulled item goes out as it was when pulled; the engine pulling the next rows before
    the earlier sends read theirs sent the last row `concurrency` times."""

    async def ok(request: web.Request) -> web.Response:
        body = await request.json()
        return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})

    server = await api_server(ok)

    def rows(count: int) -> Iterator[SendItem]:
        row: dict[str, Any] = {"from_": FROM, "text": "hi"}
        for n in range(count):
            row["to"] = f"+1844555{n:04d}"
            yield row  # type: ignore[misc]

    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        outcomes = [o async for o in client.messages.send_many(rows(5), concurrency=5)]
    assert {o.status for o in outcomes} == {"sent"}
    recipients = sorted(json.loads(r.body)["to"] for r in server.requests)
    assert recipients == [f"+1844555{n:04d}" for n in range(5)]


async def test_lists_refilled_in_place_are_read_when_pulled_too(api_server: Any) -> None:
    """The same for a list in the row (a group MMS's `to`, `media_urls`): only the dict was
    copied, so every send carried the last row's list, and each outcome said `sent`."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)
    groups = [[f"+1844555{n:02d}01", f"+1844555{n:02d}02"] for n in range(5)]

    def rows() -> Iterator[SendItem]:
        row: dict[str, Any] = {"from_": FROM, "to": [], "media_urls": [], "text": "hi"}
        for n, group in enumerate(groups):
            row["to"][:] = group
            row["media_urls"][:] = [f"https://cdn.example.com/{n}.png"]
            yield row  # type: ignore[misc]

    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        outcomes = [o async for o in client.messages.send_many(rows(), concurrency=5)]
    assert {o.status for o in outcomes} == {"sent"}
    sent = sorted((r.json["to"], r.json["media_urls"]) for r in server.requests)
    assert sent == [(g, [f"https://cdn.example.com/{n}.png"]) for n, g in enumerate(groups)]

    def blocking_run() -> set[str]:  # (in a thread: this loop serves the test server)
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as blocking:
            return {o.status for o in blocking.messages.send_many(rows(), concurrency=5)}

    assert await anyio.to_thread.run_sync(blocking_run) == {"sent"}
    again = sorted(r.json["to"] for r in server.requests[len(groups) :])
    assert again == groups


async def test_a_request_hook_raising_type_error_leaves_the_item_not_sent(api_server: Any) -> None:
    """A TypeError from a request hook (or a custom limiter) before anything was written is not
    the item's fault: not_sent, as for any other exception there, not rejected with a
    ValidationError blaming the item."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)

    def journal(event: Any) -> None:
        raise TypeError("journal bug")

    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, event_hooks={"request": [journal]}
    ) as client:
        outcomes = [o async for o in client.messages.send_many(numbers(1))]
    assert server.requests == []
    assert [(o.status, type(o.error)) for o in outcomes] == [("not_sent", TypeError)]


async def accept(request: web.Request) -> web.Response:
    body = await request.json()
    await asyncio.sleep(0.005)
    return json_response(
        {"data": message_json(to=[{"phone_number": body["to"], "status": "queued"}])}
    )


def sent_to(server: ApiServer) -> list[str]:
    return [r.json["to"] for r in server.requests]


async def test_async_input_not_pulled_after_a_break(api_server: Any) -> None:
    """The consumer breaks after the first outcome (holding the iterator, not closed yet):
    nothing more is pulled from the async input, nothing more is sent."""
    server = await api_server(accept)
    pulled: list[int] = []

    async def rows() -> Any:
        for n, item in enumerate(numbers(20)):
            pulled.append(n)
            yield item

    async with client_for(server) as client:
        outcomes = client.messages.send_many(rows(), concurrency=1)
        async for _ in outcomes:
            break
        await asyncio.sleep(0.2)
        assert pulled == [0]
        assert len(server.requests) == 1
        await outcomes.aclose()


async def test_async_input_not_sent_ahead_of_a_consumer_that_stops(api_server: Any) -> None:
    """concurrency=1, the loop body awaits (records the outcome), then stops: the one item is
    the only send (a list input behaves so; an async input sent a second, unasked-for one)."""
    server = await api_server(accept)
    stopped: list[Any] = []

    async def rows() -> Any:
        for item in numbers(20):
            yield item

    async with client_for(server) as client:
        outcomes = client.messages.send_many(rows(), concurrency=1, on_stop=stopped.append)
        async with contextlib.aclosing(outcomes):
            async for _ in outcomes:
                await asyncio.sleep(0.05)
                break
    assert sent_to(server) == ["+18445550000"]
    assert stopped == []


async def test_blocking_break_pulls_no_row_and_loses_none(api_server: Any) -> None:
    """Blocking Client, break after the first outcome: no further row is taken from the
    caller's iterator (resuming with the rest must not skip one), and any row pulled has an
    outcome. With the input read ahead, every break took one row, a third of them with no
    outcome at all."""
    server = await api_server(accept)

    def run() -> list[tuple[int, int]]:
        results = []
        for _ in range(10):
            with telnyx_msg.Client(
                "k", base_url=server.base_url, backoff=FAST, rate_limits=None
            ) as client:
                rows = iter(list(numbers(10)))
                got: list[Any] = []
                for outcome in client.messages.send_many(rows, concurrency=1, on_stop=got.append):
                    got.append(outcome)
                    break
                time.sleep(0.05)
            results.append((10 - len(list(rows)), len(got)))
        return results

    results = await anyio.to_thread.run_sync(run)
    assert all(pulled == outcomes for pulled, outcomes in results), results  # none lost
    assert all(pulled == 1 for pulled, _ in results), results  # none taken after the break


class FinishesItsRead:
    """An async iterator (not a generator) whose read is shielded: cancelled mid-read, it
    still completes the read and returns the row (a queue consumer that must not drop one)."""

    def __init__(self, count: int) -> None:
        self.rows = numbers(count)
        self.pulled = 0

    def __aiter__(self) -> FinishesItsRead:
        return self

    async def __anext__(self) -> Any:
        async def fetch() -> Any:
            await asyncio.sleep(0.03)
            return next(self.rows, None)

        task = asyncio.ensure_future(fetch())
        try:
            row = await asyncio.shield(task)
        except asyncio.CancelledError:
            row = await task
        if row is None:
            raise StopAsyncIteration
        self.pulled += 1
        return row


async def test_stop_while_an_input_read_outlives_its_cancel(api_server: Any) -> None:
    """aclose() while a read of such an input is pending: the run ends (with the input read
    ahead by a task of its own it hung, that task pulling and sending on), and no item is sent
    after the stop."""
    server = await api_server(accept)
    source = FinishesItsRead(30)
    stopped: list[Any] = []
    consumed = 0
    async with client_for(server) as client:
        outcomes = client.messages.send_many(source, concurrency=2, on_stop=stopped.append)
        async for _ in outcomes:
            consumed += 1
            if consumed == 2:
                break
        await asyncio.wait_for(outcomes.aclose(), 3)
    assert len(server.requests) == consumed + sum(o.status != "not_sent" for o in stopped)
    assert consumed + len(stopped) == source.pulled


async def test_input_raising_cancelled_error_does_not_end_the_run_as_complete(
    api_server: Any,
) -> None:
    """An async input whose read raises CancelledError (it awaited something another task
    cancelled) did not end: the iteration must not finish as if it had (with the input read
    ahead, 5 of 10 outcomes, then a normal end); the CancelledError propagates."""
    server = await api_server(accept)

    async def rows() -> Any:
        for n, item in enumerate(numbers(10)):
            if n == 5:
                future = asyncio.get_running_loop().create_future()
                future.cancel()
                await future
            yield item

    async with client_for(server) as client:
        with pytest.raises(asyncio.CancelledError):
            async for _ in client.messages.send_many(rows(), concurrency=2):
                pass


async def _one_send(server: ApiServer) -> list[SendOutcome]:
    """The outcomes of a send_many of one item against ``server``."""
    async with client_for(server) as client:
        item: SendItem = {"from_": FROM, "to": "+18445550004", "text": "a"}
        return [o async for o in client.messages.send_many([item])]


async def test_a_400_is_rejected(api_server: Any) -> None:
    """A 400 refuses the message for good: ``rejected``, like a 422, not ``not_sent``.
    Guards against ``status < 400`` -> ``<= 400`` (a 400 read as a redirect)."""

    async def bad_request(request: web.Request) -> web.Response:
        return telnyx_error(400, "10015", "Bad Request")

    outcomes = await _one_send(await api_server(bad_request))
    assert [o.status for o in outcomes] == ["rejected"]
    assert isinstance(outcomes[0].error, telnyx_msg.APIStatusError)
    assert outcomes[0].error.status == 400


async def test_an_unreadable_2xx_body_is_sent_with_the_error(api_server: Any) -> None:
    """Telnyx accepted it (its 2xx envelope names the message) but a field cannot be read:
    ``sent``, message None, the APIResponseValidationError in ``error``; never ``unknown``.
    Guards against APIResponseValidationError classified ``unknown``."""

    async def garbled(request: web.Request) -> web.Response:
        return json_response({"data": {"id": "m-1", "parts": "one"}})

    outcomes = await _one_send(await api_server(garbled))
    assert [o.status for o in outcomes] == ["sent"]
    assert outcomes[0].message is None
    assert isinstance(outcomes[0].error, telnyx_msg.APIResponseValidationError)
    assert outcomes[0].error.resource_id == "m-1"


async def test_a_2xx_html_page_is_unknown_not_sent(api_server: Any) -> None:
    """A proxy, a captive portal or a wrong base_url answering 200 with an HTML page: nothing
    says Telnyx accepted the message, so it is ``unknown`` (never resent; reconcile), not
    ``sent``, which told a user whose every send hit a portal that all were accepted.
    Guards against every APIResponseValidationError classified ``sent``."""

    async def portal(request: web.Request) -> web.Response:
        return web.Response(status=200, body=b"<html>Log in</html>", content_type="text/html")

    outcomes = await _one_send(await api_server(portal))
    assert [o.status for o in outcomes] == ["unknown"]
    error = outcomes[0].error
    assert isinstance(error, telnyx_msg.APIResponseValidationError)
    assert (error.accepted, error.outcome_unknown) == (False, True)
    assert "may or may not have been accepted" in str(error)


async def test_a_tuple_of_recipients_is_a_group_mms(api_server: Any) -> None:
    """``to`` as a tuple routes like a list: a group MMS.
    Guards against only a list inferred as a group."""

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    item: SendItem = {"from_": FROM, "to": ("+18445550004", "+18445550005"), "text": "g"}
    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many([item])]
    assert [o.status for o in outcomes] == ["sent"], outcomes[0].error
    assert [r.path for r in server.requests] == ["/v2/messages/group_mms"]


async def test_skip_optouts_skips_a_group_given_as_a_tuple() -> None:
    """A group MMS whose ``to`` is a tuple with an opted-out recipient is skipped too.
    Guards against only a list's recipients checked."""
    from telnyx_msg.testing import FakeTelnyx

    async with FakeTelnyx() as fake:
        await fake.inject_inbound(from_="+13125550042", to=FROM, text="STOP")
        items: list[SendItem] = [
            {"from_": FROM, "to": ("+13125550041", "+13125550042"), "text": "hi"},
        ]
        async with fake.client(rate_limits=None) as client:
            outcomes = [o async for o in client.messages.send_many(items, skip_optouts=True)]
    assert outcomes[0].status == "not_sent"
    assert "+13125550042 opted out" in outcomes[0].reason


async def test_a_response_hook_failing_after_the_write_leaves_the_item_unknown() -> None:
    """An error that is not the SDK's, raised after the request was written (a response hook
    that fails): the message may have been accepted, so ``unknown``, never ``not_sent``.
    Guards against the fallback ignoring ``gate.written``."""

    class HookFailed(Exception):
        pass

    async def explode(event: Any) -> None:
        raise HookFailed("journal unavailable")

    async with telnyx_msg.testing.FakeTelnyx() as fake:
        async with fake.client(rate_limits=None, event_hooks={"response": [explode]}) as client:
            outcomes = [
                o
                async for o in client.messages.send_many(
                    [{"from_": FROM, "to": "+13125550001", "text": "Hi"}]
                )
            ]
        accepted = len(fake.messages())
    assert accepted == 1
    assert [o.status for o in outcomes] == ["unknown"], outcomes[0].error


async def test_closing_the_outcomes_does_not_wait_for_sends_on_the_wire(api_server: Any) -> None:
    """The server holds requests 1 and 2 until the test lets them go; closing the iterator cancels
    the sends on the wire (reported ``unknown``) instead of waiting for Telnyx's answers.
    Guards against the in-flight tasks not cancelled at the stop (``aclose`` waited for
    the answers: here, forever)."""
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        body = await request.read()
        if b"+18445550000" not in body:
            await release.wait()
        return json_response({"data": message_json()})

    server = await api_server(hold)
    stopped: list[SendOutcome] = []
    items: list[SendItem] = [
        {"from_": FROM, "to": f"+1844555000{n}", "text": "a"} for n in range(3)
    ]
    try:
        async with client_for(server) as client:
            outcomes = client.messages.send_many(items, concurrency=3, on_stop=stopped.append)
            first = await outcomes.__anext__()  # item 0, answered at once
            assert first.status == "sent"
            for _ in range(1000):  # bounded (5 s)
                if server.in_flight >= 2:
                    break
                await asyncio.sleep(0.005)
            closing = asyncio.ensure_future(outcomes.aclose())
            await asyncio.wait({closing}, timeout=5)  # a hang guard, not a speed bound
            ended_before_the_answers = closing.done()
            release.set()
            await closing
    finally:
        release.set()
    assert ended_before_the_answers
    assert sorted(o.index for o in stopped) == [1, 2]
    assert {o.status for o in stopped} == {"unknown"}


async def _ok(request: web.Request) -> web.Response:
    return json_response({"data": message_json()})


async def test_a_read_only_mapping_item_is_sent(api_server: Any) -> None:
    """Any Mapping is a request (a ``MappingProxyType`` row, say), not only a dict.
    Guards against non-dict mappings rejected."""
    from types import MappingProxyType

    server = await api_server(_ok)
    item = MappingProxyType({"from_": FROM, "to": "+18445550004", "text": "a"})
    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many([item])]  # type: ignore[list-item]
    assert [o.status for o in outcomes] == ["sent"], outcomes[0].error
    assert len(server.requests) == 1


async def test_a_key_that_is_not_a_name_is_rejected_before_io(api_server: Any) -> None:
    """A request with a non-string key cannot be bound: ``rejected`` with a ValidationError
    before any I/O (not ``not_sent`` with a bare TypeError).
    Guards against the TypeError not turned into a ValidationError."""
    server = await api_server(_ok)
    item: Any = {"from_": FROM, "to": "+18445550004", "text": "a", 1: "x"}
    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many([item])]
    assert [o.status for o in outcomes] == ["rejected"]
    assert isinstance(outcomes[0].error, telnyx_msg.ValidationError)
    assert server.requests == []


async def test_an_async_input_that_ends_after_a_pause_ends_the_run(api_server: Any) -> None:
    """An async input that yields nothing and ends a moment later: the consumer, waiting with
    nothing in flight, is woken by the input's end (a run that missed that wake-up waited
    forever)."""
    server = await api_server(_ok)

    async def nothing() -> AsyncIterator[SendItem]:
        await asyncio.sleep(0.01)
        empty: tuple[SendItem, ...] = ()
        for item in empty:  # an async generator that yields nothing
            yield item

    async with client_for(server) as client:
        run = asyncio.ensure_future(_collect(client.messages.send_many(nothing())))
        await asyncio.wait({run}, timeout=5)  # a hang guard, not a speed bound
        assert run.done()
        assert run.result() == []


async def _collect(outcomes: Any) -> list[Any]:
    return [o async for o in outcomes]


async def test_an_async_item_read_as_a_refused_key_ends_the_run_is_not_sent(
    api_server: Any,
) -> None:
    """A 401 ends the pulling while another send is still in flight; the item the async input
    hands over meanwhile is not sent (``not_sent``, the same AuthenticationError) and never
    reaches the server. Guards against: ``if fatal or drain`` -> ``if fatal`` (it was sent)."""
    refused = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        if b"+18445550000" in body:
            return telnyx_error(401, "10009", "Authentication failed")
        await asyncio.sleep(0.5)  # still in flight when item 2 is handed over (at ~0.05 s)
        return json_response({"data": message_json()})

    async def on_response(event: Any) -> None:
        refused.set()

    async def rows() -> Any:
        yield {"from_": FROM, "to": "+18445550001", "text": "b"}
        yield {"from_": FROM, "to": "+18445550000", "text": "a"}
        await refused.wait()
        await asyncio.sleep(0.05)  # the refusal has reached the run
        yield {"from_": FROM, "to": "+18445550002", "text": "c"}

    server = await api_server(handler)
    outcomes: list[SendOutcome] = []
    async with client_for(server, event_hooks={"response": [on_response]}) as client:

        async def run() -> None:
            async for outcome in client.messages.send_many(rows(), concurrency=3):
                outcomes.append(outcome)

        with pytest.raises(telnyx_msg.AuthenticationError):
            await run()
    statuses = {o.index: o.status for o in outcomes}
    assert statuses == {0: "sent", 1: "not_sent", 2: "not_sent"}
    assert len(server.requests) == 2


def accept_after(delay: float) -> Any:
    async def accept(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(delay)
        return json_response(
            {"data": message_json(to=[{"phone_number": body["to"], "status": "queued"}])}
        )

    return accept


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories are 3.12+")
async def test_eager_task_factory_item_rejected_before_io_does_not_hang(
    api_server: Any,
) -> None:
    """Under asyncio.eager_task_factory a send that ends before its first suspension (a
    non-mapping item: rejected before I/O) reports inside create_task, before `running` holds
    it: its report raised KeyError and the run waited forever for it."""
    server = await api_server(accept_after(0.005))
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        async with client_for(server) as client:
            with anyio.fail_after(3):
                outcomes = [
                    o
                    async for o in client.messages.send_many(
                        ["oops", *numbers(2)],  # type: ignore[list-item]  # refused before I/O
                        concurrency=5,
                    )
                ]
    finally:
        loop.set_task_factory(previous)
    assert sorted((o.index, o.status) for o in outcomes) == [
        (0, "rejected"),
        (1, "sent"),
        (2, "sent"),
    ]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_anyio_cancel_scope_reports_every_pulled_item(api_server: Any, kind: str) -> None:
    """The consumer is cancelled by an anyio cancel scope (a Starlette request, a task group)
    while sends are in flight (and, for an async input, a read pending). anyio re-delivers the
    cancel at every await, so the engine's `finally` was cut short at its first gather: no
    on_stop call at all, two pulled items with no outcome."""
    server = await api_server(accept_after(0.3))
    pulled: list[int] = []

    async def slow_rows() -> Any:
        for n, item in enumerate(numbers(10)):
            if n == 2:
                await asyncio.sleep(0.5)
            pulled.append(n)
            yield item

    def rows() -> Any:
        for n, item in enumerate(numbers(10)):
            pulled.append(n)
            yield item

    stopped: list[Any] = []
    consumed: list[Any] = []
    async with client_for(server) as client:
        with anyio.move_on_after(0.1):
            source = slow_rows() if kind == "async" else rows()
            async for o in client.messages.send_many(source, concurrency=2, on_stop=stopped.append):
                consumed.append(o)
        await asyncio.sleep(0.5)
    assert pulled == [0, 1]
    assert sorted(o.index for o in consumed + stopped) == [0, 1]


async def test_blocking_input_raising_keyboard_interrupt_loses_no_outcome(
    api_server: Any,
) -> None:
    """Blocking Client: Ctrl-C lands while the caller's thread reads a slow input, and a send
    finished meanwhile. The step that carried that send's outcome had completed; the caller's
    thread raised KeyboardInterrupt from the input and dropped it: row 0 was sent, never
    reported."""
    server = await api_server(accept_after(0.05))

    def run() -> tuple[list[int], list[int]]:
        pulled: list[int] = []
        got: list[int] = []

        def rows() -> Any:
            for n, item in enumerate(numbers(10)):
                if n == 3:
                    time.sleep(0.3)
                    raise KeyboardInterrupt
                pulled.append(n)
                yield item

        def consume(client: telnyx_msg.Client) -> None:
            for outcome in client.messages.send_many(
                rows(), concurrency=4, on_stop=lambda o: got.append(o.index)
            ):
                got.append(outcome.index)

        client = telnyx_msg.Client("k", base_url=server.base_url, backoff=FAST, rate_limits=None)
        try:
            with pytest.raises(KeyboardInterrupt):
                consume(client)
        finally:
            client.close()
        return pulled, got

    pulled, got = await anyio.to_thread.run_sync(run)
    assert pulled == [0, 1, 2]
    assert sorted(got) == pulled  # got [1, 2]: row 0's outcome lost


def test_snapshot_copies_dicts_and_lists_nested_in_lists() -> None:
    """A row refilled in place (a dict inside a list, a list inside a list: a WhatsApp
    template's components) is read when pulled: its snapshot shares no mutable part.
    Guards against _bulk.py _copied returning `[v for v in values]` (nested dicts/lists shared)."""
    item: dict[str, Any] = {
        "to": "+15550001111",
        "whatsapp_message": {"template": {"components": [{"parameters": [{"text": "a"}]}]}},
        "grid": [["x"]],
    }
    snap = _snapshot(item)
    item["whatsapp_message"]["template"]["components"][0]["parameters"][0]["text"] = "b"
    item["grid"][0].append("y")
    assert snap["whatsapp_message"]["template"]["components"][0]["parameters"][0]["text"] == "a"
    assert snap["grid"] == [["x"]]


async def test_a_send_whose_limiter_swallows_the_stop_is_still_not_written(
    api_server: Any,
) -> None:
    """A custom limiter that catches the cancellation of a stopped run and returns (as some
    libraries' waits do): the send then went on to write its request after the run had
    stopped. The run's gate stops it at the last check before the network."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)

    class Swallowing(RecordingLimiter):
        async def wait(self) -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return  # swallowed: the wrong thing to do, and the SDK must survive it

    limiter = Swallowing()
    stopped: list[SendOutcome] = []
    items: list[SendItem] = [{"from_": FROM, "to": f"+1844555000{n}", "text": "hi"} for n in (1, 2)]
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=limiter) as client:
        outcomes = client.messages.send_many(items, concurrency=2, on_stop=stopped.append)
        first = asyncio.ensure_future(outcomes.__anext__())
        for _ in range(200):  # bounded (2 s)
            if len(limiter.taken) == 2:
                break
            await asyncio.sleep(0.01)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert server.requests == []
    assert sorted(o.status for o in stopped) == ["not_sent", "not_sent"]


KEY = "KEYtest"


def test_each_send_many_item_type_is_its_send_methods_keyword_arguments() -> None:
    """Guards against a regression (``to`` no longer required in SendNumberPoolItem), I05
    (``media_urls`` a ``list[str]``, refusing the tuples the methods take) and I07 (``send_at`` no
    longer a datetime): the item TypedDicts are only checked by mypy on a few literals. Each must
    have exactly its method's keywords, the same required ones, and the same type (the method's,
    less ``| None``)."""
    import typing

    from telnyx_msg import _requests

    client = telnyx_msg.AsyncClient(KEY)
    pairs: dict[str, Any] = {
        "send": telnyx_msg.SendMessageItem,
        "send_long_code": telnyx_msg.SendLongCodeItem,
        "send_short_code": telnyx_msg.SendShortCodeItem,
        "send_number_pool": telnyx_msg.SendNumberPoolItem,
        "send_with_alphanumeric_sender": telnyx_msg.SendAlphanumericItem,
        "send_group_mms": telnyx_msg.SendGroupMmsItem,
        "send_whatsapp": telnyx_msg.SendWhatsAppItem,
    }

    def spelled(hint: Any) -> str:
        # (On Python 3.10 a parametrized generic such as Sequence[str] passes for a type too.)
        plain = isinstance(hint, type) and not typing.get_args(hint)
        text = hint.__name__ if plain else repr(hint)
        for prefix in ("collections.abc.", "datetime.", "typing.", "telnyx_msg._config."):
            text = text.replace(prefix, "")
        return text

    aliases = {
        "MessageKind": spelled(_requests.MessageKind),
        "Encoding": spelled(_requests.Encoding),
    }
    for name, item in pairs.items():
        parameters = inspect.signature(getattr(client.messages, name)).parameters
        required = {k for k, p in parameters.items() if p.default is inspect.Parameter.empty}
        assert item.__required_keys__ | item.__optional_keys__ == set(parameters), name
        assert item.__required_keys__ == required, name
        hints = typing.get_type_hints(item)
        for key, parameter in parameters.items():
            declared = str(parameter.annotation).removesuffix(" | None")
            assert spelled(hints[key]) == aliases.get(declared, declared), (name, key)


def refilled_rows(count: int) -> Iterator[SendItem]:
    """A reader that refills one dict per row (as the docs allow: each row is sent as pulled)."""
    row: dict[str, Any] = {"from_": FROM, "text": "hi"}
    for n in range(count):
        row["to"] = f"+1844555{n:04d}"
        yield row  # type: ignore[misc]


async def test_an_outcome_names_the_recipient_its_item_was_sent_to(api_server: Any) -> None:
    """An input refilling one dict per row: each outcome's ``request`` must say what that item
    was when it was pulled and sent. It said the last row for every outcome, so a rejected
    item was reported (and would be fixed or resent) under another recipient, one already
    sent: resending the `not_sent`/`rejected` outcomes' requests messages the wrong person twice
    and never the right one."""

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        if body["to"].endswith("2"):
            return telnyx_error(422, "40310", "Invalid 'to' address")
        return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})

    server = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, backoff=FAST
    ) as client:
        outcomes = [o async for o in client.messages.send_many(refilled_rows(5), concurrency=5)]
    sent_to = {json.loads(r.body)["to"] for r in server.requests}
    assert sent_to == {f"+1844555{n:04d}" for n in range(5)}  # (each row went out as pulled)
    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert by_index[2].status == "rejected"
    assert by_index[2].request["to"] == "+18445550002"
    assert [by_index[n].request["to"] for n in range(5)] == [f"+1844555{n:04d}" for n in range(5)]


def test_a_blocking_outcome_names_the_recipient_its_item_was_sent_to() -> None:
    """The same through the blocking ``Client`` (its input is read in the caller's thread)."""
    with (
        telnyx_msg.testing.serve_in_thread() as fake,
        telnyx_msg.Client(fake.api_key, base_url=fake.base_url, rate_limits=None) as client,
    ):
        outcomes = list(client.messages.send_many(refilled_rows(4), concurrency=4))
    assert {o.status for o in outcomes} == {"sent"}
    assert sorted((o.index, o.request["to"]) for o in outcomes) == [
        (n, f"+1844555{n:04d}") for n in range(4)
    ]


async def test_one_queue_full_answer_does_not_drain_the_rest_of_the_input(
    api_server: Any,
) -> None:
    """One 429 ``40318`` (another process filled the sender's Telnyx queue) pauses that sender's
    lane 144 s, longer than the default 60 s timeout, so every later item of that sender met a
    client-side wait "longer than its timeout" and was reported ``not_sent`` at once: 2,000
    items pulled and written off in a fraction of a second with 5 requests made. The docs
    promise a run stops rather than draining its whole input as ``not_sent`` in a second;
    whether it then waits or stops pulling, no more than the items already in flight may be
    written off by the pause."""
    answered = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal answered
        body = await request.json()
        answered += 1
        if answered == 1:
            return telnyx_error(429, "40318", "Message queue full")
        return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})

    server = await api_server(handler)
    pulled = 0

    def rows() -> Iterator[SendItem]:
        nonlocal pulled
        for n in range(2000):
            pulled += 1
            yield {"from_": FROM, "to": f"+1844555{n:04d}", "text": "hi"}

    outcomes: list[telnyx_msg.SendOutcome] = []
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, backoff=FAST) as client:
        with anyio.move_on_after(3):  # (waiting is fine; this bounds the test)
            try:
                async for outcome in client.messages.send_many(rows(), concurrency=5):
                    outcomes.append(outcome)  # (kept if the run stops)
            except telnyx_msg.RateLimitError:  # (stopping the pulling is fine too)
                pass
    written_off = [
        o
        for o in outcomes
        if o.status == "not_sent" and isinstance(o.error, telnyx_msg.RateLimitError)
    ]
    assert len(server.requests) < 10
    assert len(written_off) <= 5 + 1, (
        f"{len(written_off)} of {pulled} pulled items written off as not_sent "
        f"after one queue-full answer: {written_off[-1].reason}"
    )


class Ambiguous:
    """A value whose ``==`` raises, as ``pandas.NA`` does ("boolean value of NA is
    ambiguous") and a numpy array compared with another does."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        raise TypeError("boolean value of NA is ambiguous")


async def test_send_many_reports_every_item_when_a_refilled_row_holds_an_uncomparable_value() -> (
    None
):
    """An input refilling one dict per row (rows from a data frame, where a missing cell is
    ``pandas.NA``): every pulled item gets exactly one outcome and the run ends. The outcome's
    ``request`` compares the refilled dict with the item as pulled (``_as_pulled``); a value
    whose ``==`` raised escaped the send's task, so that item never reported and the run
    waited forever for it (ended here after 5 s), then raised TypeError."""
    async with (
        telnyx_msg.testing.FakeTelnyx() as fake,
        fake.client(rate_limits=None, max_retries=0) as client,
    ):
        row: dict[str, Any] = {}

        def rows() -> Iterator[telnyx_msg.SendItem]:
            for n in range(3):
                row.clear()
                text: Any = Ambiguous() if n == 0 else f"m{n}"
                row.update({"text": text, "from_": FROM, "to": f"+1844555000{n}"})
                yield row  # type: ignore[misc]

        seen: list[tuple[int, str]] = []

        async def run() -> None:
            seen.extend(
                [
                    (o.index, o.status)
                    async for o in client.messages.send_many(rows(), concurrency=3)
                ]
            )

        await asyncio.wait_for(run(), 5)
    assert sorted(seen) == [(0, "rejected"), (1, "sent"), (2, "sent")]


def _refilled_rows(count: int) -> Iterator[telnyx_msg.SendItem]:
    """A reader that refills one dict per row (the docs allow it: each row is sent as pulled)."""
    row: dict[str, Any] = {"from_": FROM, "text": "hi"}
    for n in range(count):
        row["to"] = f"+1844555{n:04d}"
        yield row  # type: ignore[misc]


async def test_a_kept_outcome_names_the_recipient_its_item_was_sent_to_at_any_concurrency(
    api_server: Any,
) -> None:
    """An input refilling one dict per row, outcomes kept in a list (to resend the failed
    ones later): each outcome's ``request`` still says what its item was when sent. 516b678
    keeps the live dict as ``request`` when it has not changed *yet* when the outcome is made,
    which at ``concurrency`` below the input's length is always: the next pull refills it, so
    every kept outcome ended up naming the last row. Resending the rejected row 0 from its
    outcome messaged +18445550003, already sent, and never +18445550000."""

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        if body["to"] == "+18445550000":
            return web.json_response(
                {"errors": [{"code": "40310", "title": "Invalid 'to' address"}]}, status=400
            )
        return web.json_response(
            {"data": {"id": f"m-{body['to']}", "record_type": "message", "to": []}}
        )

    server: ApiServer = await api_server(handler)
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, max_retries=0
    ) as client:
        outcomes = [o async for o in client.messages.send_many(_refilled_rows(4), concurrency=1)]
    assert sorted((o.index, o.status, o.request["to"]) for o in outcomes) == [
        (0, "rejected", "+18445550000"),
        (1, "sent", "+18445550001"),
        (2, "sent", "+18445550002"),
        (3, "sent", "+18445550003"),
    ]


# --- what real programs feed send_many: refilled mappings, an async on_stop, a closed client --


async def _accepted(request: web.Request) -> web.Response:
    return json_response({"data": message_json()})


def _recipients(server: ApiServer) -> list[str]:
    return sorted(str(r.json["to"]) for r in server.requests)


def chained_rows(count: int) -> Iterator[Mapping[str, Any]]:
    """Rows layered over shared defaults with ``ChainMap``, the row dict refilled per row."""
    defaults = {"from_": FROM, "text": "hi"}
    row: dict[str, Any] = {}
    for n in range(count):
        row["to"] = f"+1844555{n:04d}"
        yield collections.ChainMap(row, defaults)


def proxied_rows(count: int) -> Iterator[Mapping[str, Any]]:
    """Rows handed out read-only (``MappingProxyType``) over one dict refilled per row."""
    row: dict[str, Any] = {"from_": FROM, "text": "hi"}
    for n in range(count):
        row["to"] = f"+1844555{n:04d}"
        yield types.MappingProxyType(row)


ROWS = {"chainmap": chained_rows, "mappingproxy": proxied_rows}
EXPECTED = [f"+1844555{n:04d}" for n in range(4)]


@pytest.mark.parametrize("kind", sorted(ROWS))
async def test_a_refilled_non_dict_mapping_sends_each_row_once(api_server: Any, kind: str) -> None:
    """A ``Mapping`` item that is not a dict (a ``ChainMap`` of a row over defaults, a
    read-only ``MappingProxyType``) over a row the input refills is read when pulled, as a
    dict item is: each row is sent once, to its own recipient, and each outcome's ``request``
    names that recipient. (It was read when the send task started: the last row was sent four
    times, the other three never, and all four outcomes said ``sent``.)"""
    server = await api_server(_accepted)
    async with client_for(server) as client:
        outcomes = [
            o
            async for o in client.messages.send_many(
                ROWS[kind](4),  # type: ignore[arg-type]
                concurrency=4,
            )
        ]
    assert _recipients(server) == EXPECTED
    assert sorted(o.request["to"] for o in outcomes) == EXPECTED


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_blocking_a_refilled_non_dict_mapping_sends_each_row_once(kind: str) -> None:
    """The same through the blocking ``Client``: each refilled row reaches Telnyx once."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(json.loads(await request.read())["to"])
        return json_response({"data": message_json()})

    with (
        serving_in_thread(record) as base_url,
        telnyx_msg.Client("k", base_url=base_url, rate_limits=None) as client,
    ):
        outcomes = list(
            client.messages.send_many(ROWS[kind](4), concurrency=4)  # type: ignore[arg-type]
        )
    assert sorted(seen) == EXPECTED
    assert sorted(o.request["to"] for o in outcomes) == EXPECTED


def _rows(count: int) -> Iterator[telnyx_msg.SendItem]:
    for n in range(count):
        yield {"from_": FROM, "to": f"+1844555{n:04d}", "text": "hi"}


async def test_an_async_on_stop_is_refused_before_any_io(api_server: Any) -> None:
    """``on_stop`` is called, never awaited: an ``async def`` one (natural next to an
    ``AsyncClient``, to write to a database) received none of the stopped sends' outcomes and
    only left "coroutine was never awaited" warnings behind. It is refused at the call with a
    ``ValidationError`` naming ``on_stop``, before any request, as a bad ``concurrency`` is."""
    server = await api_server(_accepted)
    got: list[SendOutcome] = []

    async def record(outcome: SendOutcome) -> None:
        got.append(outcome)

    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.ValidationError, match="on_stop"):
            client.messages.send_many(_rows(3), on_stop=record)  # type: ignore[arg-type]
    gc.collect()
    assert server.requests == []


def test_blocking_an_async_on_stop_is_refused_before_any_io() -> None:
    """The same through the blocking ``Client``."""
    seen: list[str] = []

    async def record_request(request: web.Request) -> web.Response:
        seen.append(request.path)
        return json_response({"data": message_json()})

    async def record(outcome: SendOutcome) -> None:
        raise AssertionError("never called")

    with (
        serving_in_thread(record_request) as base_url,
        telnyx_msg.Client("k", base_url=base_url, rate_limits=None) as client,
        pytest.raises(telnyx_msg.ValidationError, match="on_stop"),
    ):
        client.messages.send_many(_rows(3), on_stop=record)  # type: ignore[arg-type]
    gc.collect()
    assert seen == []


@pytest.mark.parametrize("method", [["send"], {"send": 1}])
async def test_an_unhashable_method_is_a_validation_error(api_server: Any, method: Any) -> None:
    """``method=["send"]`` (a list where a name belongs) is a ``ValidationError`` naming
    ``method``, like any other wrong method, not a bare ``TypeError: unhashable type``."""
    server = await api_server(_accepted)
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.ValidationError, match="method"):
            client.messages.send_many(_rows(1), method=method)
    assert server.requests == []


async def test_a_client_closed_before_the_first_outcome_pulls_nothing(api_server: Any) -> None:
    """``outcomes = client.messages.send_many(rows)``, then the client is closed (the
    ``async with`` block that made it ends) before the outcomes are read: reading them raises
    ``ClientClosedError`` and not one row was taken from the input, as when the client was
    closed before the call. (It pulled ``concurrency`` rows, yielded the first ``not_sent``,
    raised, and the other rows were consumed from the input with no outcome at all: a queue
    consumer's messages were gone.)"""
    server = await api_server(_accepted)
    pulled: list[int] = []

    def counted() -> Iterator[telnyx_msg.SendItem]:
        for n in range(10):
            pulled.append(n)
            yield {"from_": FROM, "to": f"+1844555{n:04d}", "text": "hi"}

    async with client_for(server) as client:
        outcomes = client.messages.send_many(counted(), concurrency=5)
    yielded: list[SendOutcome] = []

    async def consume() -> None:
        yielded.extend([o async for o in outcomes])

    with pytest.raises(telnyx_msg.ClientClosedError):
        await consume()
    assert server.requests == []
    assert (pulled, [o.index for o in yielded]) == ([], [])


class _AsyncRecorder:
    """An ``on_stop`` written as an object whose ``__call__`` is ``async def``."""

    def __init__(self) -> None:
        self.got: list[SendOutcome] = []

    async def __call__(self, outcome: SendOutcome) -> None:
        self.got.append(outcome)


class _StaticAsyncRecorder:
    """An ``on_stop`` object whose ``__call__`` is an ``async def`` held as a staticmethod."""

    got: ClassVar[list[SendOutcome]] = []

    @staticmethod
    async def __call__(outcome: SendOutcome) -> None:
        _StaticAsyncRecorder.got.append(outcome)


@pytest.mark.parametrize("wrap", ["instance", "partial", "static"])
async def test_an_on_stop_object_with_an_async_call_is_refused(api_server: Any, wrap: str) -> None:
    """An ``on_stop`` whose ``__call__`` is ``async def`` (a recorder object next to an
    ``AsyncClient``, or a ``functools.partial`` of one) is called and never awaited, as an
    ``async def`` function is: it would receive none of the stopped sends' outcomes. It is
    refused at the call with a ``ValidationError`` naming ``on_stop``, as an ``async def``
    function is. (It was accepted, and every outcome meant for it was lost.)"""
    server = await api_server(_accepted)
    recorder = _AsyncRecorder()
    wraps = {
        "instance": recorder,
        "partial": functools.partial(recorder),
        "static": _StaticAsyncRecorder(),
    }
    on_stop: Any = wraps[wrap]
    rows = [{"from_": FROM, "to": "+18445550000", "text": "hi"}]
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.ValidationError, match="on_stop"):
            client.messages.send_many(rows, on_stop=on_stop)  # type: ignore[arg-type]
    assert server.requests == []


async def test_a_dict_item_that_cannot_be_copied_is_rejected_alone(api_server: Any) -> None:
    """One malformed row (its ``media_urls`` list contains itself) is that row's ``rejected``
    outcome, as the same row wrapped in a ``ChainMap`` is, and the other rows are sent. (The
    copy taken when the dict was pulled recursed without end: the run raised
    ``RecursionError``, the bad row got no outcome, the row in flight was stopped and the
    rest were never sent.)"""
    server = await api_server(_accepted)
    looped: list[Any] = ["https://example.com/a.jpg"]
    looped.append(looped)

    def rows() -> Iterator[dict[str, Any]]:
        for n in range(4):
            row: dict[str, Any] = {"from_": FROM, "to": f"+1844555{n:04d}", "text": "hi"}
            if n == 1:
                row["media_urls"] = looped
            yield row

    stopped: list[SendOutcome] = []
    async with client_for(server) as client:
        outcomes = [
            o
            async for o in client.messages.send_many(
                rows(),  # type: ignore[arg-type]
                concurrency=4,
                on_stop=stopped.append,
            )
        ]
    assert stopped == []
    assert sorted((o.index, o.status) for o in outcomes) == [
        (0, "sent"),
        (1, "rejected"),
        (2, "sent"),
        (3, "sent"),
    ]


WRAPS: dict[str, Callable[[dict[str, Any]], Mapping[str, Any]]] = {
    "ChainMap": collections.ChainMap,
    "MappingProxyType": types.MappingProxyType,
}


def _whatsapp_rows(wrap: Callable[[dict[str, Any]], Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """Four WhatsApp rows whose ``whatsapp_message`` (typed ``Mapping[str, Any]``) is a view
    over one body the input refills for every row."""
    body: dict[str, Any] = {"type": "text"}
    for n in range(4):
        body["text"] = {"body": f"row {n}"}
        yield {
            "from_": DEFAULT_LONG_CODE,
            "to": f"+1844555{n:04d}",
            "whatsapp_message": wrap(body),
        }


def _whatsapp_bodies(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((m["to"][0]["phone_number"], m["body"]["text"]["body"]) for m in messages)


WHATSAPP_EXPECTED = [(f"+1844555{n:04d}", f"row {n}") for n in range(4)]


@pytest.mark.parametrize("kind", sorted(WRAPS))
async def test_a_refilled_nested_mapping_sends_each_rows_own_body(kind: str) -> None:
    """A row's ``whatsapp_message`` given as a ``ChainMap``/``MappingProxyType`` over a body
    the input refills is read when the row is pulled, as a top-level mapping is: every
    recipient gets its own row's text. (Only dicts and lists inside a row were copied: all four
    recipients got the last row's text, each reported ``sent``.)"""
    async with FakeTelnyx() as fake:
        async with fake.client(rate_limits=None) as client:
            outcomes = [
                o
                async for o in client.messages.send_many(
                    _whatsapp_rows(WRAPS[kind]),  # type: ignore[arg-type]
                    concurrency=4,
                )
            ]
        assert sorted((o.index, o.status) for o in outcomes) == [(n, "sent") for n in range(4)]
        assert _whatsapp_bodies(fake.messages()) == WHATSAPP_EXPECTED


@pytest.mark.parametrize("kind", sorted(WRAPS))
def test_blocking_a_refilled_nested_mapping_sends_each_rows_own_body(kind: str) -> None:
    """The same through the blocking ``Client``: each recipient gets its own row's text."""
    with serve_in_thread() as fake:
        with telnyx_msg.Client(fake.api_key, base_url=fake.base_url, rate_limits=None) as client:
            outcomes = list(
                client.messages.send_many(
                    _whatsapp_rows(WRAPS[kind]),  # type: ignore[arg-type]
                    concurrency=4,
                )
            )
        assert sorted((o.index, o.status) for o in outcomes) == [(n, "sent") for n in range(4)]
        assert _whatsapp_bodies(fake.messages()) == WHATSAPP_EXPECTED


@pytest.mark.parametrize("on_stop", ["log.txt", 42, ["outcomes"]])
async def test_an_on_stop_that_is_not_callable_is_refused_before_any_io(
    api_server: Any, on_stop: object
) -> None:
    """Mutant: ``check_on_stop`` without its ``not callable(on_stop)`` test.

    An ``on_stop`` that cannot be called at all (a file name, a list meant to collect the
    outcomes) is refused at the call with a ``ValidationError`` naming ``on_stop`` and the
    value's type, before any row is pulled or sent, not discovered only when a stop happens
    (when the stopped sends' outcomes would be lost to a ``TypeError``)."""
    server = await api_server(_accepted)
    pulled: list[int] = []

    def rows() -> Any:
        for n in range(3):
            pulled.append(n)
            yield {"from_": FROM, "to": f"+1844555{n:04d}", "text": "hi"}

    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.ValidationError, match="on_stop") as info:
            client.messages.send_many(rows(), on_stop=on_stop)  # type: ignore[arg-type]
    assert type(on_stop).__name__ in str(info.value)
    assert pulled == []
    assert server.requests == []


class _BrokenRow(Mapping[str, Any]):
    """A mapping row whose values cannot be read (a lazy view over a closed cursor)."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("cursor closed")

    def __iter__(self) -> Iterator[str]:
        return iter(("from_", "to", "text"))

    def __len__(self) -> int:
        return 3


async def test_a_mapping_row_that_cannot_be_read_is_its_own_outcome(api_server: Any) -> None:
    """Mutant: ``_read_item`` catching only ``RecursionError`` (not any ``Exception``).

    A mapping row whose reading raises (here ``RuntimeError``) ends as that row's own outcome,
    not sent, and the other rows are still sent and reported; the error does not escape and
    end the whole run with the rows after it never sent."""
    server = await api_server(_accepted)
    rows: list[Any] = [
        {"from_": FROM, "to": "+18445550000", "text": "hi"},
        _BrokenRow(),
        {"from_": FROM, "to": "+18445550002", "text": "hi"},
    ]
    async with client_for(server) as client:
        outcomes = [o async for o in client.messages.send_many(rows, concurrency=1)]
    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == [0, 1, 2]
    assert (by_index[0].status, by_index[2].status) == ("sent", "sent")
    assert by_index[1].status != "sent"
    assert isinstance(by_index[1].error, RuntimeError)
    assert sorted(str(r.json["to"]) for r in server.requests) == ["+18445550000", "+18445550002"]


async def test_send_many_on_a_closed_client_raises_at_the_call(api_server: Any) -> None:
    """Mutant: ``Core.send_many`` without its ``if shared.closed`` check at the call.

    ``send_many`` on an ``AsyncClient`` already closed raises ``ClientClosedError`` from the
    call itself, as the blocking ``Client`` does, not only once the returned iterator is
    read (a caller that builds the run in one place and reads it elsewhere learns at once),
    and no row is pulled."""
    server = await api_server(_accepted)
    pulled: list[int] = []

    def rows() -> Iterator[telnyx_msg.SendItem]:
        for n in range(3):
            pulled.append(n)
            yield {"from_": FROM, "to": f"+1844555{n:04d}", "text": "hi"}

    client = client_for(server)
    await client.aclose()
    with pytest.raises(telnyx_msg.ClientClosedError):
        client.messages.send_many(rows())
    assert pulled == []
    assert server.requests == []


# --- edges found by mutation testing ----------------------------------------------------------


def _item(n: int, **extra: Any) -> SendItem:
    row: SendItem = {"from_": FROM, "to": f"+1844555{n:04d}", "text": f"hi {n}"}
    row.update(extra)  # type: ignore[typeddict-item]
    return row


async def _accepted_to(request: web.Request) -> web.Response:
    body = await request.json()
    return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})


@pytest.mark.redis
async def test_limiter_outage_on_the_retry_of_a_possibly_accepted_send_is_unknown(
    api_server: Any, tmp_path: Path
) -> None:
    """An item with an idempotency key is answered 500 (Telnyx may have accepted it; retried
    with the same key), and the limiter's Redis dies before the retry: the retry never gets a
    token, but the first attempt may have been accepted, so the outcome is ``unknown`` (the
    error says ``outcome_unknown``), not ``not_sent``. Guards against: a message that Telnyx
    may have taken reported as safe to send again (sent twice when the user resends it)."""
    redis = RedisProcess(tmp_path)

    async def failing_then_dead(request: web.Request) -> web.Response:
        await request.read()
        redis.kill()  # the limiter's Redis goes down while Telnyx answers
        return telnyx_error(500, "10001", "Internal")

    server = await api_server(failing_then_dead)
    limits = telnyx_msg.RedisRateLimits(redis.url)
    keyed = _item(1, options=telnyx_msg.RequestOptions(idempotency_key="k-1"))
    seen: list[telnyx_msg.SendOutcome] = []
    try:
        async with telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, backoff=FAST, rate_limits=limits
        ) as client:
            outcomes = client.messages.send_many([keyed])
            seen.append(await anext(outcomes))
            with pytest.raises(telnyx_msg.RateLimiterUnavailableError):
                await anext(outcomes)
    finally:
        await limits.aclose()
        redis.close()
    assert len(server.requests) == 1
    assert [o.status for o in seen] == ["unknown"], [(o.status, o.reason) for o in seen]
    assert isinstance(seen[0].error, telnyx_msg.RateLimiterUnavailableError)
    assert seen[0].error.outcome_unknown


class SlowToStop(RecordingLimiter):
    """A limiter that holds the second send and, when that wait is cancelled, takes 0.3 s to
    let go whatever cancels it meanwhile (as a limiter finishing the release of a lease over
    the network does)."""

    async def wait(self) -> None:
        if len(self.taken) != 2:
            return
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 0.3
            for _ in range(100):  # bounded: each pass sleeps or is cancelled again
                if loop.time() >= deadline:
                    break
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(deadline - loop.time())
            raise


@pytest.mark.parametrize("on_stop_raises", [False, True])
async def test_a_stop_cancelled_again_still_reports_every_pulled_item(
    api_server: Any, caplog: pytest.LogCaptureFixture, on_stop_raises: bool
) -> None:
    """An anyio cancel scope ends a consumer that is busy between outcomes: one outcome waits
    unconsumed and one send is still ending when the stop is itself cancelled (anyio cancels
    every await), so the stop cannot wait. Both must still reach ``on_stop``: the waiting one
    at once, the other when its send ends (``not_sent``: it never got a token), also when
    ``on_stop`` raises for the first (logged: nobody is left to raise it to). Guards
    against: a pulled item with no outcome at all after a cancelled stop (the late path
    queueing outcomes no one will read, or dropping the unconsumed ones, or an ``on_stop``
    error escaping it and skipping the rest)."""
    server = await api_server(_accepted_to)
    limiter = SlowToStop()
    consumed: list[telnyx_msg.SendOutcome] = []
    stopped: list[telnyx_msg.SendOutcome] = []

    def on_stop(outcome: telnyx_msg.SendOutcome) -> None:
        stopped.append(outcome)
        if on_stop_raises and len(stopped) == 1:
            raise RuntimeError("the caller's on_stop failed")

    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, backoff=FAST, rate_limits=limiter
    ) as client:
        with anyio.move_on_after(0.5):
            outcomes = client.messages.send_many(
                [_item(0), _item(1), _item(2)], concurrency=3, on_stop=on_stop
            )
            async with contextlib.aclosing(outcomes):
                async for outcome in outcomes:
                    consumed.append(outcome)
                    await asyncio.sleep(30)  # busy: the next outcome waits for it
        for _ in range(100):  # bounded: 2 s
            if len(consumed) + len(stopped) == 3:
                break
            await asyncio.sleep(0.02)
    assert ("on_stop raised" in caplog.text) == on_stop_raises
    assert len(consumed) == 1
    assert sorted(o.index for o in consumed + stopped) == [0, 1, 2]
    by_index = {o.index: o.status for o in consumed + stopped}
    assert by_index == {0: "sent", 1: "not_sent", 2: "sent"}
    assert len(server.requests) == 2


async def test_a_send_that_never_started_reports_when_the_stop_is_cancelled(
    api_server: Any,
) -> None:
    """The consumer leaves the loop at its second outcome just as its task is cancelled (its
    own timeout expiring then): the send the run had just started for the third item never
    ran, and the stop, cancelled too, cannot wait. That item still gets exactly one outcome,
    ``not_sent`` through ``on_stop``, and nothing is written for it. Guards against: a pulled
    item with no outcome when a stop is cancelled before its send task first ran."""
    server = await api_server(_accepted_to)
    consumed: list[telnyx_msg.SendOutcome] = []
    stopped: list[telnyx_msg.SendOutcome] = []

    async def consume(client: telnyx_msg.AsyncClient) -> None:
        rows = [_item(0), _item(1), _item(2), _item(3)]
        outcomes = client.messages.send_many(rows, concurrency=2, on_stop=stopped.append)
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                consumed.append(outcome)
                if len(consumed) == 1:
                    await asyncio.sleep(0.3)  # meanwhile the other send finishes too
                    continue
                task = asyncio.current_task()
                assert task is not None
                task.cancel()  # cancelled as it stops: the stop's own wait is cut short
                break

    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, backoff=FAST, rate_limits=None
    ) as client:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.ensure_future(consume(client)), 5)
        for _ in range(100):  # bounded: 2 s
            if len(consumed) + len(stopped) == 3:
                break
            await asyncio.sleep(0.02)
    assert sorted(o.index for o in consumed) == [0, 1]
    assert [(o.index, o.status) for o in stopped] == [(2, "not_sent")]
    assert sorted(r.json["to"] for r in server.requests) == ["+18445550000", "+18445550001"]


async def test_breaking_out_after_a_slow_async_input_ended_raises_nothing(
    api_server: Any,
) -> None:
    """An async input (a queue consumer) yields one row, then ends after a pause, while the
    consumer of the outcomes is busy with the first outcome; the consumer then breaks out.
    Closing the run raises nothing and reports nothing more: the input's end is not an item.
    Guards against: the stop reading the result of an input read that ended (or failed)
    instead of produced an item, which raised RuntimeError (StopAsyncIteration inside the
    generator) out of ``aclose()``."""
    server = await api_server(_accepted_to)

    async def rows() -> AsyncIterator[SendItem]:
        yield _item(0)
        await asyncio.sleep(0.1)

    consumed: list[telnyx_msg.SendOutcome] = []
    stopped: list[telnyx_msg.SendOutcome] = []
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, backoff=FAST, rate_limits=None
    ) as client:
        outcomes = client.messages.send_many(rows(), concurrency=2, on_stop=stopped.append)
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                consumed.append(outcome)
                await asyncio.sleep(0.3)  # busy: meanwhile the input ends
                break
    assert [(o.index, o.status) for o in consumed] == [(0, "sent")]
    assert stopped == []
    assert len(server.requests) == 1


class HoldsThird(RecordingLimiter):
    """A limiter that grants at once, except the third send's token (held until cancelled)."""

    async def wait(self) -> None:
        if len(self.taken) == 3:
            await asyncio.sleep(30)


async def test_the_item_that_met_the_closed_client_is_yielded_before_the_run_raises(
    api_server: Any,
) -> None:
    """The client is closed while the consumer is busy: one outcome (``sent``) is already
    waiting, and the send still waiting for its token meets ``ClientClosedError``. Without
    ``on_stop``, the iteration yields both (the closed one ``not_sent``) and only then raises
    ``ClientClosedError``; nothing further is pulled. Guards against: the run raising at the
    first outcome after the close, leaving the item that met it with no outcome the caller
    can see (it is pulled, never sent, and never reported)."""

    async def second_slow(request: web.Request) -> web.Response:
        if (await request.json())["to"].endswith("1"):
            await asyncio.sleep(0.1)
        return await _accepted_to(request)

    server = await api_server(second_slow)
    pulled: list[int] = []

    def rows() -> Any:
        for n in range(10):
            pulled.append(n)
            yield _item(n)

    consumed: list[telnyx_msg.SendOutcome] = []
    client = telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, backoff=FAST, rate_limits=HoldsThird()
    )

    async def consume() -> None:
        async for outcome in client.messages.send_many(rows(), concurrency=3):
            consumed.append(outcome)
            if len(consumed) == 1:
                await asyncio.sleep(0.3)  # busy: the second send is accepted meanwhile
                await client.aclose()  # the app shuts down

    try:
        with pytest.raises(telnyx_msg.ClientClosedError):
            await asyncio.wait_for(consume(), 5)
    finally:
        await client.aclose()
    assert [(o.index, o.status) for o in consumed] == [(0, "sent"), (1, "sent"), (2, "not_sent")]
    assert isinstance(consumed[2].error, telnyx_msg.ClientClosedError)
    assert pulled == [0, 1, 2]
    assert len(server.requests) == 2
