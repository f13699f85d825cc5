"""send_many: a send stopped before it had a connection was never written, so it is not_sent.

The docs promise that stopping a run reports the sends "on the wire" ``unknown`` (never to be
resent automatically) and the ones that were never written ``not_sent`` (safe to resend). A
send still waiting for a pooled connection, or still opening its TCP (or TLS) connection, has
written nothing; reporting it ``unknown`` tells the user never to resend a message that
Telnyx never saw, and there is no message id to reconcile it with.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import SendItem, Timeout
from telnyx_msg._outcome import SendOutcome
from telnyx_msg._retry import Backoff
from telnyx_msg._transport import AiohttpTransport
from telnyx_msg._wire import HttpResponse, TransportError
from tests.conftest import ApiServer, json_response, message_json

pytestmark = pytest.mark.anyio

FROM = "+18005550101"
FAST = Backoff(initial=0.001, max=0.002)


def numbers(count: int) -> Iterator[SendItem]:
    for n in range(count):
        yield {"from_": FROM, "to": f"+1844555{n:04d}", "text": f"hi {n}"}


# One send with an Idempotency-Key: a transport may try it again, elsewhere, safely.
KEYED: list[SendItem] = [
    {
        "from_": FROM,
        "to": "+18445550000",
        "text": "hi",
        "options": telnyx_msg.RequestOptions(idempotency_key="k-1"),
    }
]


@contextlib.contextmanager
def stalled_base_url() -> Iterator[str]:
    """A base URL on 127.0.0.1 whose accept queue is full: Linux drops the SYNs of further
    connections, so a connection to it never opens (and nothing can be written)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.1)  # the fillers are queued
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v2"
    finally:
        listener.close()
        for filler in fillers:
            filler.close()


async def stop_keyed_send(
    client: telnyx_msg.AsyncClient, posts: list[int], settle: float
) -> list[SendOutcome]:
    """Send ``KEYED`` with ``send_many``; once the server has read it (``posts``) and
    ``settle`` seconds passed, stop the run: the outcomes ``on_stop`` received."""
    stopped: list[SendOutcome] = []
    outcomes = client.messages.send_many(KEYED, concurrency=1, on_stop=stopped.append)
    step = asyncio.ensure_future(outcomes.__anext__())
    for _ in range(500):  # bounded (5 s): the server reads the request
        if posts:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(settle)
    assert posts == [1]
    assert not step.done()
    step.cancel()  # the stop
    with contextlib.suppress(asyncio.CancelledError):
        await step
    await outcomes.aclose()
    return stopped


async def test_a_send_stopped_while_waiting_for_a_pooled_connection_is_not_sent(
    api_server: Any,
) -> None:
    """A client shared by a bulk run and another call (a ``retrieve`` that holds the only
    pooled connection): the run's send waits for that connection and writes nothing. Stopping
    the run then must report it ``not_sent`` (resendable), not ``unknown``: nothing reached
    the server."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if request.method == "GET":  # the other call: holds its connection
            await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server: ApiServer = await api_server(handler)
    stopped: list[SendOutcome] = []
    try:
        async with telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, rate_limits=None, backoff=FAST, pool_size=1
        ) as client:
            other = asyncio.ensure_future(client.messages.retrieve("m-1"))
            for _ in range(500):  # bounded (5 s): the other call holds the connection
                if server.in_flight == 1:
                    break
                await asyncio.sleep(0.01)
            assert server.in_flight == 1
            outcomes = client.messages.send_many(numbers(1), concurrency=1, on_stop=stopped.append)
            step = asyncio.ensure_future(outcomes.__anext__())
            await asyncio.sleep(0.2)  # the send waits for the pooled connection
            assert not step.done()
            step.cancel()  # the stop
            with contextlib.suppress(asyncio.CancelledError):
                await step
            await outcomes.aclose()
            release.set()
            await other
    finally:
        release.set()
    posts = [r for r in server.requests if r.method == "POST"]
    assert posts == []  # the item never reached the server
    assert [(o.index, o.status) for o in stopped] == [(0, "not_sent")], [
        (o.index, o.status, repr(o.error)) for o in stopped
    ]


@pytest.mark.skipif(
    sys.platform != "linux", reason="relies on Linux dropping SYNs to a full backlog"
)
async def test_sends_stopped_while_their_connection_opens_are_not_sent() -> None:
    """The first sends of a run open their connections (TCP, and TLS against Telnyx, which
    takes a while). A server whose accept backlog is full never completes the handshake, so
    nothing can have been written; a timeout (cancel scope) around the run then must leave those
    sends ``not_sent``, not ``unknown``."""
    stopped: list[SendOutcome] = []
    got: list[SendOutcome] = []
    with stalled_base_url() as base_url:
        async with telnyx_msg.AsyncClient(
            "k", base_url=base_url, rate_limits=None, backoff=FAST
        ) as client:
            with anyio.move_on_after(0.5):
                got.extend(
                    [
                        outcome
                        async for outcome in client.messages.send_many(
                            numbers(3), concurrency=3, on_stop=stopped.append
                        )
                    ]
                )
    assert got == []
    assert sorted((o.index, o.status) for o in stopped) == [
        (0, "not_sent"),
        (1, "not_sent"),
        (2, "not_sent"),
    ], [(o.index, o.status, repr(o.error)) for o in stopped]


async def test_a_send_stopped_while_its_retry_waits_for_a_connection_stays_unknown(
    api_server: Any,
) -> None:
    """The send's first attempt is read by the server, which then drops the connection (the
    outcome is unknown); its retry waits for the only pooled connection, held by another
    call. Stopping the run then reports the send ``unknown``, not ``not_sent``: the first
    attempt may have been accepted."""
    release, queued = asyncio.Event(), asyncio.Event()
    posts: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if request.method == "POST":
            posts.append(1)
            if len(posts) == 1:
                await asyncio.wait_for(queued.wait(), 10)  # the other call waits meanwhile
                assert request.transport is not None
                request.transport.close()  # read, then the connection is lost
                await asyncio.sleep(5)
        else:  # the other call: holds the connection
            await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server: ApiServer = await api_server(handler)
    stopped: list[SendOutcome] = []
    try:
        async with telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, rate_limits=None, backoff=FAST, pool_size=1
        ) as client:
            outcomes = client.messages.send_many(KEYED, concurrency=1, on_stop=stopped.append)
            step = asyncio.ensure_future(outcomes.__anext__())
            for _ in range(500):  # bounded (5 s): the first attempt reaches the server
                if posts:
                    break
                await asyncio.sleep(0.01)
            other = asyncio.ensure_future(client.messages.retrieve("m-1"))  # queued first
            await asyncio.sleep(0.2)
            queued.set()
            await asyncio.sleep(0.5)  # the retry now waits behind it for the connection
            assert not step.done()
            assert len(posts) == 1
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await step
            await outcomes.aclose()
            release.set()
            await other
    finally:
        release.set()
    assert [(o.index, o.status) for o in stopped] == [(0, "unknown")], [
        (o.index, o.status, repr(o.error)) for o in stopped
    ]


class Failover:
    """A user's transport: the SDK's ``AiohttpTransport``, trying a standby endpoint (same
    Idempotency-Key, so Telnyx would not repeat an accepted message) when the primary dropped
    the connection."""

    def __init__(self, primary: str, standby: str) -> None:
        self.inner = AiohttpTransport()
        self.primary, self.standby = primary, standby

    @property
    def pool_size(self) -> int:
        return self.inner.pool_size

    @property
    def max_response_size(self) -> int:
        return self.inner.max_response_size

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def other_loop(self) -> bool:
        return self.inner.other_loop()

    def grow_pool(self, size: int) -> int:
        return self.inner.grow_pool(size)

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeout,  # noqa: ASYNC109  # the Transport protocol's signature
    ) -> HttpResponse:
        try:
            return await self.inner.send(method, url, headers, body, timeout)
        except TransportError as exc:
            if not (exc.reached and "Idempotency-Key" in headers):
                raise
            standby = url.replace(self.primary, self.standby, 1)
            return await self.inner.send(method, standby, headers, body, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.skipif(
    sys.platform != "linux", reason="relies on Linux dropping SYNs to a full backlog"
)
async def test_a_custom_transport_stopped_after_it_wrote_the_request_reports_unknown(
    api_server: Any,
) -> None:
    """The primary reads the POST and drops the connection (it may have accepted it); the
    custom transport then connects to the standby, whose accept backlog is full. Stopping the
    run now must report the send ``unknown`` (never resend it), not ``not_sent``."""
    posts: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        posts.append(1)
        assert request.transport is not None
        request.transport.close()  # read, then the connection is lost
        await asyncio.sleep(1)
        return json_response({"data": message_json()})

    server: ApiServer = await api_server(handler)
    with stalled_base_url() as standby:
        transport = Failover(server.base_url, standby)
        async with telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, transport=transport, rate_limits=None, max_retries=0
        ) as client:
            # The primary read the request; the standby's connection is opening meanwhile.
            stopped = await stop_keyed_send(client, posts, settle=0.3)
    assert [(o.index, o.status) for o in stopped] == [(0, "unknown")], [
        (o.index, o.status, repr(o.error)) for o in stopped
    ]


class BudgetedFailover(Failover):
    """A user's transport: the SDK's ``AiohttpTransport``, giving the primary endpoint
    ``budget`` seconds, then trying a standby endpoint with the same request."""

    def __init__(self, primary: str, standby: str, budget: float) -> None:
        super().__init__(primary, standby)
        self.budget = budget

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeout,  # noqa: ASYNC109  # the Transport protocol's signature
    ) -> HttpResponse:
        try:
            return await asyncio.wait_for(
                self.inner.send(method, url, headers, body, timeout), self.budget
            )
        except asyncio.TimeoutError:  # Python 3.10: not the builtin
            standby = url.replace(self.primary, self.standby, 1)
            return await self.inner.send(method, standby, headers, body, timeout)


@pytest.mark.skipif(
    sys.platform != "linux", reason="relies on Linux dropping SYNs to a full backlog"
)
async def test_a_send_written_after_a_primary_gave_up_connecting_is_unknown_when_stopped(
    api_server: Any,
) -> None:
    """The primary's accept backlog is full (its connection never opens), so the transport's
    0.3 s budget for it runs out; the standby reads the POST and takes its time to answer.
    Stopping the run then must report the send ``unknown``, not ``not_sent``."""
    posts: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        posts.append(1)
        await asyncio.sleep(2)
        return json_response({"data": message_json()})

    standby_server: ApiServer = await api_server(handler)
    with stalled_base_url() as primary:
        transport = BudgetedFailover(primary, standby_server.base_url, budget=0.3)
        async with telnyx_msg.AsyncClient(
            "k", base_url=primary, transport=transport, rate_limits=None, max_retries=0
        ) as client:
            # Telnyx (the standby) has the message; its answer is pending.
            stopped = await stop_keyed_send(client, posts, settle=0.0)
    assert [(o.index, o.status) for o in stopped] == [(0, "unknown")], [
        (o.index, o.status, repr(o.error)) for o in stopped
    ]
