"""The core under transport faults: honest outcome_unknown, bounded bodies, counted attempts.

Every test runs a real aiohttp server on 127.0.0.1 that stalls, drops, closes idle keep-alive
connections or answers with odd bodies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import gc
import gzip
import ipaddress
import math
import os
import ssl
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import telnyx_msg
from telnyx_msg import RequestOptions, Timeout
from telnyx_msg._retry import Backoff
from telnyx_msg._transport import _Connector
from tests.conftest import ApiServer, RecordingLimiter, json_response, message_json, raw_reply

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.001, max=0.002)
SEND: telnyx_msg.SendMessageItem = {"from_": "+18005550101", "to": "+18445550001", "text": "Hello"}


def client_for(server: ApiServer | str, **kwargs: Any) -> telnyx_msg.AsyncClient:
    kwargs.setdefault("backoff", FAST)
    kwargs.setdefault("rate_limits", None)
    base = server if isinstance(server, str) else server.base_url
    return telnyx_msg.AsyncClient("secret-key", base_url=base, **kwargs)


# --- 1: waiting for a pooled connection is "not sent" ------------------------------------------


async def test_pool_wait_timeout_is_not_sent(api_server: Any) -> None:
    """A send that never got a pooled connection times out on the connect timeout, not sent."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    try:
        async with client_for(
            server, pool_size=1, max_retries=0, timeout=Timeout(total=3.0, connect=0.3)
        ) as client:
            first = asyncio.ensure_future(client.messages.send(**SEND))
            for _ in range(200):  # bounded (2 s): the first send holds the only connection
                if server.requests:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(telnyx_msg.APITimeoutError) as caught:
                await asyncio.wait_for(client.messages.send(**SEND), 10)
            release.set()
            await asyncio.wait_for(first, 10)
    finally:
        release.set()
    assert caught.value.outcome_unknown is False
    assert len(server.requests) == 1


async def test_unknown_only_when_the_server_saw_it(api_server: Any) -> None:
    """40 sends through a pool of 4 to a slow server: every "may have been sent" reached it."""

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.3)
        return json_response({"data": message_json()})

    server = await api_server(slow)
    async with client_for(
        server, pool_size=4, max_retries=0, timeout=Timeout(total=0.5, connect=0.4)
    ) as client:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(client.messages.send(**SEND) for _ in range(40)), return_exceptions=True
            ),
            30,
        )
    sent = sum(isinstance(r, telnyx_msg.Message) for r in results)
    unknown = sum(getattr(r, "outcome_unknown", False) for r in results)
    assert sent + unknown <= len(server.requests)
    assert (
        sent
        + unknown
        + sum(isinstance(r, telnyx_msg.APITimeoutError) and not r.outcome_unknown for r in results)
        == 40
    )


# --- 2: a keep-alive connection the server closed while idle -----------------------------------


@pytest.fixture
def idle_closing_server() -> Iterator[ApiServer]:
    """A server in its own thread and loop that closes keep-alive connections after 0.1 s idle.

    Its own loop, so it closes connections while the client's loop is busy.
    """

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = ApiServer(ok)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.dispatch)
        runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        server.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v2"
        runner_box.append(runner)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner_box[0].cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def test_stale_keepalive_connection_is_replaced_for_sends(
    idle_closing_server: ApiServer,
) -> None:
    """A send on a connection the server closed while idle goes out on a fresh one."""
    server = idle_closing_server
    async with client_for(server, max_retries=0) as client:
        await client.messages.send(**SEND)
        # Block the loop: the server's FIN arrives but the client has not processed it yet,
        # the moment a busy client picks the pooled connection.
        time.sleep(0.4)  # noqa: ASYNC251  (blocking on purpose, see above)
        message = await client.messages.send(**SEND)
    assert message.id
    assert len(server.requests) == 2
    assert server.requests[0].peer != server.requests[1].peer


async def test_idle_connections_are_dropped_before_common_server_timeouts(api_server: Any) -> None:
    """A connection idle for 2 s is not reused (servers commonly close them after 2-5 s)."""

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    async with client_for(server) as client:
        await client.messages.retrieve("m")
        await client.messages.retrieve("m")
        await asyncio.sleep(2.0)
        await client.messages.retrieve("m")
    peers = [r.peer for r in server.requests]
    assert peers[0] == peers[1]
    assert peers[2] != peers[1]


# --- 3: closing the client while a send waits --------------------------------------------------


async def test_close_while_waiting_for_a_token(api_server: Any) -> None:
    """aclose() during a rate-limit wait: the send raises ClientClosedError, nothing is written
    and no new session is opened."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)
    limits = telnyx_msg.RateLimits(account_mps=2.0, burst=1)
    client = client_for(server, rate_limits=limits)
    await client.messages.send(**SEND)
    waiting = asyncio.ensure_future(client.messages.send(**SEND))
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(telnyx_msg.ClientClosedError) as caught:
        await asyncio.wait_for(waiting, 10)
    assert caught.value.outcome_unknown is False
    assert len(server.requests) == 1
    with pytest.raises(telnyx_msg.ClientClosedError):
        await client.messages.send(**SEND)
    assert client._shared.transport.closed


async def test_close_wakes_a_long_rate_limit_wait(api_server: Any) -> None:
    """A send waiting (unbounded timeout) for a token due in 100 s raises ClientClosedError as
    soon as the client is closed, instead of waiting for the token."""
    server = await api_server(ok_handler)
    client = client_for(
        server, rate_limits=telnyx_msg.RateLimits(account_mps=0.01, burst=1), timeout=math.inf
    )
    await client.messages.send(**SEND)
    waiting = asyncio.ensure_future(client.messages.send(**SEND))
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(telnyx_msg.ClientClosedError):
        await asyncio.wait_for(waiting, 10)
    assert len(server.requests) == 1


async def test_close_while_waiting_for_a_pooled_connection(api_server: Any) -> None:
    """aclose() while a send waits for a pooled connection: ClientClosedError (not sent), not
    a bare CancelledError; the send on the wire is "may have been sent"."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    client = client_for(server, pool_size=1, max_retries=0)
    try:
        first = asyncio.ensure_future(client.messages.send(**SEND))
        for _ in range(200):  # bounded (2 s)
            if server.requests:
                break
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(client.messages.send(**SEND))
        await asyncio.sleep(0.05)
        await client.aclose()
        results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 10)
    finally:
        release.set()
    assert isinstance(results[0], telnyx_msg.APIConnectionError)
    assert results[0].outcome_unknown is True
    assert isinstance(results[1], telnyx_msg.ClientClosedError)
    assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "reached"), [(503, False), (500, True)])
async def test_close_ends_a_retry_backoff_at_once(
    api_server: Any, status: int, reached: bool
) -> None:
    """aclose() while a call sleeps before its retry: ClientClosedError at once (it waited out
    the whole backoff, up to a minute), "maybe sent" only if the failed attempt was ambiguous."""

    async def failing(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"errors": []}, status=status)

    server = await api_server(failing)
    # The client has read the answer (the server having the request is not enough: closed
    # while the answer is on its way, the call is rightly "maybe sent"). A plain response hook
    # runs in the call's own step, which goes on into the backoff.
    answered: list[int | None] = []
    client = client_for(
        server,
        backoff=Backoff(initial=300, max=300, jitter=0, max_wait=300),
        event_hooks={"response": [lambda event: answered.append(event.status)]},
    )
    options = RequestOptions(idempotency_key="k-1")  # a 500 is retried only with a key
    sending = client.messages.send(from_=SEND["from_"], to=SEND["to"], text="Hi", options=options)
    waiting = asyncio.ensure_future(sending)
    for _ in range(500):  # bounded (5 s)
        if answered:
            break
        await asyncio.sleep(0.01)
    assert answered == [status]
    await client.aclose()
    with pytest.raises(telnyx_msg.ClientClosedError, match="waited to retry") as caught:
        await asyncio.wait_for(waiting, 10)
    assert caught.value.outcome_unknown is reached
    assert len(server.requests) == 1


async def test_close_under_a_request_on_the_wire_ends_the_call_without_a_backoff(
    api_server: Any,
) -> None:
    """aclose() while a retryable call's request is on the wire: the closing session cuts it
    off, and the call raised only after sleeping its whole backoff (a blocking close() took
    ~0.5 s per in-flight call's default backoff, up to a Retry-After's minute) before finding
    the client closed. It ends at once now, "maybe sent"."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    client = client_for(server, backoff=Backoff(initial=300, max=300, jitter=0, max_wait=300))
    waiting = asyncio.ensure_future(client.messages.retrieve("m-1"))  # a GET: retried
    try:
        for _ in range(200):  # bounded (2 s)
            if server.requests:
                break
            await asyncio.sleep(0.01)
        await client.aclose()
        with pytest.raises(telnyx_msg.ClientClosedError, match="client was closed") as caught:
            await asyncio.wait_for(waiting, 10)
    finally:
        release.set()
    assert caught.value.outcome_unknown is True
    assert len(server.requests) == 1


async def test_blocking_close_ends_a_retry_backoff_as_not_sent(api_server: Any) -> None:
    """Client.close() while another thread's call waits to retry after a 503: that call raises
    ClientClosedError (not sent); it was cancelled as if on the wire (APIConnectionError,
    outcome unknown), and a blocking send_many yielded no not_sent outcome for it."""

    async def unavailable(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"errors": []}, status=503, headers={"Retry-After": "30"})

    server = await api_server(unavailable)
    # Both calls have read their 503 (see test_close_ends_a_retry_backoff_at_once): the hook
    # runs on the client's loop in the call's own step, which goes on into the backoff.
    answered: list[int | None] = []
    client = telnyx_msg.Client(
        "secret-key",
        base_url=server.base_url,
        rate_limits=None,
        event_hooks={"response": [lambda event: answered.append(event.status)]},
    )
    outcomes: list[telnyx_msg.SendOutcome] = []

    def run() -> None:
        outcomes.extend(client.messages.send_many([SEND], concurrency=1))

    def send() -> None:
        client.messages.send(**SEND)

    calls = [threading.Thread(target=run), threading.Thread(target=send)]
    errors: list[BaseException] = []
    for call in calls:
        call.run = _catching(call.run, errors)  # type: ignore[method-assign]
        call.start()
    for _ in range(500):  # bounded (5 s)
        if len(answered) == 2:
            break
        await asyncio.sleep(0.01)
    assert answered == [503, 503]
    await anyio.to_thread.run_sync(client.close)
    for call in calls:
        await anyio.to_thread.run_sync(call.join, 10)
    assert [type(e) for e in errors] == [telnyx_msg.ClientClosedError] * 2, errors
    assert not any(getattr(e, "outcome_unknown", True) for e in errors)
    assert [o.status for o in outcomes] == ["not_sent"]
    assert len(server.requests) == 2


def _catching(run: Any, errors: list[BaseException]) -> Any:
    def wrapped() -> None:
        try:
            run()
        except BaseException as exc:  # recorded for the test to check
            errors.append(exc)

    return wrapped


async def ok_handler(request: web.Request) -> web.Response:
    await request.read()
    return json_response({"data": message_json()})


async def test_send_many_stops_when_the_client_is_closed(api_server: Any) -> None:
    """Closing the client mid-run stops send_many with ClientClosedError; waiting items are
    not_sent, never unknown."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return json_response({"data": message_json()})

    server = await api_server(ok)
    limits = telnyx_msg.RateLimits(account_mps=5.0, burst=1)
    client = client_for(server, rate_limits=limits)
    items = [SEND.copy() for _ in range(100)]
    seen: list[str] = []
    stopped: list[str] = []

    async def consume() -> None:
        async for outcome in client.messages.send_many(
            items, concurrency=10, on_stop=lambda o: stopped.append(o.status)
        ):
            seen.append(outcome.status)
            if len(seen) == 2:
                await client.aclose()

    with pytest.raises(telnyx_msg.ClientClosedError):
        await asyncio.wait_for(consume(), 20)
    assert "unknown" not in seen + stopped
    assert seen.count("sent") + stopped.count("sent") == len(server.requests)
    assert len(seen) + len(stopped) <= 12


# --- 5 and 12: bodies that cannot be read ------------------------------------------------------


async def test_gzip_bomb_is_cut_off(api_server: Any) -> None:
    """A 2xx whose body inflates past max_response_size raises APIResponseValidationError
    (not read, so its acceptance is unknown) without inflating it in memory."""
    bomb = gzip.compress(b"{" + b" " * (200 * 1024 * 1024), compresslevel=9)

    async def gzipped(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            body=bomb,
            headers={
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
                "x-request-id": "req-9",
            },
        )

    server = await api_server(gzipped)
    async with client_for(server, max_response_size=1024 * 1024) as client:
        tracemalloc.start()
        try:
            with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
                await client.messages.send(**SEND)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 40 * 1024 * 1024
    assert caught.value.accepted is False  # never read: not known to be Telnyx's answer
    assert caught.value.outcome_unknown is True
    assert caught.value.status == 200
    assert caught.value.request_id == "req-9"
    assert "max_response_size" in str(caught.value)


async def test_oversized_plain_body_is_cut_off(api_server: Any) -> None:
    """A plain body longer than the cap is not read; the error says the request was accepted."""

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * (3 * 1024 * 1024))

    server = await api_server(big)
    async with client_for(server, max_response_size=1024 * 1024) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError):
            await client.messages.retrieve("m")


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        (b'{"data": {"id": "abc", "to": [', False),
        (b"<html>oops</html>", False),
        (b"", False),
        (b'{"data": null}', False),
        (b'{"data": []}', False),
        (b'{"data": {"id": "abc", "parts": "one"}}', True),
    ],
)
async def test_unreadable_2xx_is_response_validation_error(
    api_server: Any, body: bytes, accepted: bool
) -> None:
    """A 2xx send answer that cannot be parsed: APIResponseValidationError with status,
    request id, body and method/path. Telnyx's envelope (a ``data`` object) whose fields could
    not be read was accepted: send_many reports it sent. Any other body (cut short, an HTML
    page, empty, no ``data`` object) may be a proxy's or a wrong base_url's: whether it was
    accepted is unknown, and send_many says so (``unknown``, not resent) instead of ``sent``."""

    async def odd(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=200,
            body=body,
            content_type="application/json",
            headers={"x-request-id": "req-1"},
        )

    server = await api_server(odd)
    async with client_for(server) as client:
        with pytest.raises(telnyx_msg.APIResponseValidationError) as caught:
            await client.messages.send(**SEND)
        outcomes = [o async for o in client.messages.send_many([SEND.copy()])]
    error = caught.value
    assert isinstance(error, telnyx_msg.TelnyxError)
    assert (error.status, error.request_id, error.method, error.path) == (
        200,
        "req-1",
        "POST",
        "/messages",
    )
    assert error.accepted is accepted
    assert error.outcome_unknown is not accepted
    assert error.body == body.decode()
    status = "sent" if accepted else "unknown"
    assert [(o.status, o.message) for o in outcomes] == [(status, None)]
    assert isinstance(outcomes[0].error, telnyx_msg.APIResponseValidationError)
    assert len(server.requests) == 2


# --- 13: attempts are wire requests ------------------------------------------------------------


async def _drop(request: web.Request) -> web.Response:
    await request.read()
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.05)
    return json_response({"data": message_json()})


async def test_attempts_are_wire_requests(api_server: Any) -> None:
    """max_retries=2 on a GET whose connection drops: 3 requests on the wire, 3 hook calls."""
    server = await api_server(_drop)
    attempts: list[int] = []

    async def on_request(event: Any) -> None:
        attempts.append(event.attempt)

    async with client_for(server, event_hooks={"request": [on_request]}) as client:
        with pytest.raises(telnyx_msg.APIConnectionError):
            await client.messages.retrieve("m", options=RequestOptions(max_retries=2))
    assert attempts == [0, 1, 2]
    assert len(server.requests) == 3


async def test_deflate_body_within_cap_is_read(api_server: Any) -> None:
    """Compressed answers under the cap still parse (the cap applies after decompression)."""
    payload = json_response({"data": message_json()}).body
    assert isinstance(payload, bytes)

    async def deflated(request: web.Request) -> web.Response:
        return web.Response(
            body=zlib.compress(payload),
            headers={"Content-Encoding": "deflate", "Content-Type": "application/json"},
        )

    server = await api_server(deflated)
    async with client_for(server, max_response_size=len(payload)) as client:
        message = await client.messages.retrieve("m")
    assert message.id


async def test_blocking_client_shared_by_threads_reports_unknown_only_if_reached(
    api_server: Any,
) -> None:
    """A blocking Client (pool 2) shared by 12 threads and a slow server: sends that never
    got a connection are not "may have been sent"."""

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.3)
        return json_response({"data": message_json()})

    server = await api_server(slow)
    results: list[object] = []

    def run() -> None:
        with telnyx_msg.Client(
            "k",
            base_url=server.base_url,
            rate_limits=None,
            pool_size=2,
            max_retries=0,
            timeout=Timeout(total=0.5, connect=0.4),
        ) as client:

            def one() -> None:
                try:
                    results.append(client.messages.send(**SEND))
                except telnyx_msg.TelnyxError as exc:
                    results.append(exc)

            threads = [threading.Thread(target=one) for _ in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)

    await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    assert len(results) == 12
    sent = sum(isinstance(r, telnyx_msg.Message) for r in results)
    unknown = sum(getattr(r, "outcome_unknown", False) for r in results)
    assert sent + unknown <= len(server.requests)


async def test_limiter_without_timeout_keyword_still_works(api_server: Any) -> None:
    """A limiter written before acquire(timeout=) existed is still called (without it)."""

    class Legacy:
        def __init__(self) -> None:
            self.calls = 0

        async def acquire(self, sender: str | None, message_type: str = "SMS") -> None:
            self.calls += 1

        def on_response(
            self, sender: str | None, *, status: int, code: str | None, reset_after: float | None
        ) -> None:
            return None

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    legacy = Legacy()
    async with client_for(server, rate_limits=legacy) as client:
        await client.messages.send(**SEND)
    assert legacy.calls == 1


# --- TLS: pooled connections are reused, and replaced once the server closed them --------------


def _tls_contexts(
    tmp_path: Path, dns_name: str | None = None
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 (and ``dns_name``), written to
    ``tmp_path/cert.pem``: (server context, client context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    *([x509.DNSName(dns_name)] if dns_name else []),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_through_a_connect_proxy(tmp_path: Path) -> None:
    """HTTPS_PROXY with credentials, end to end: the client tunnels through CONNECT (sending
    Proxy-Authorization to the proxy only), verifies the server's certificate for the API's
    host name (trusted through SSL_CERT_FILE, as docs/configuration.md says), and never
    resolves that host itself: only the proxy knows where it is."""
    server_ctx, _ = _tls_contexts(tmp_path, dns_name="api.telnyx.test")
    seen: list[dict[str, str]] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return json_response({"data": message_json()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    api_port = runner.addresses[0][1]
    tunnels: list[tuple[str, str | None]] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ")
        headers = dict(line.split(": ", 1) for line in head[1:] if line)
        tunnels.append((f"{method} {target}", headers.get("Proxy-Authorization")))
        # The one host this proxy serves: the name resolves here, not in the client.
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", api_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy_server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    proxy_port = proxy_server.sockets[0].getsockname()[1]
    script = (
        "import asyncio, telnyx_msg\n"
        "async def main():\n"
        f"    async with telnyx_msg.AsyncClient('secret-key', base_url='https://api.telnyx.test:{api_port}/v2', rate_limits=None, max_retries=0) as c:\n"  # noqa: E501
        "        m = await c.messages.send(from_='+18005550101', to='+18445550001', text='hi')\n"
        "        print(m.id)\n"
        "asyncio.run(main())\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        "HTTPS_PROXY": f"http://user:s3cret@127.0.0.1:{proxy_port}",
        "SSL_CERT_FILE": str(tmp_path / "cert.pem"),
    }
    try:
        result = await anyio.run_process([sys.executable, "-c", script], env=env, check=False)
    finally:
        proxy_server.close()
        await runner.cleanup()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == message_json()["id"]
    auth = "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert tunnels == [(f"CONNECT api.telnyx.test:{api_port}", auth)]
    assert len(seen) == 1
    assert seen[0]["Authorization"] == "Bearer secret-key"
    assert "Proxy-Authorization" not in seen[0]  # the proxy's credentials stay with the proxy


async def test_tls_connections_are_reused_and_stale_ones_replaced(tmp_path: Path) -> None:
    """Over TLS (1.3 session tickets arrive after the handshake) the client's connector reuses
    a live pooled connection, and replaces one the server closed while idle."""
    server_ctx, client_ctx = _tls_contexts(tmp_path)
    peers: list[Any] = []

    async def ok(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return json_response({"data": message_json()})

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: list[Any] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", ok)
        runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
        box.extend([runner, runner.addresses[0][1]])
        ready.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(box[0].cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    url = f"https://127.0.0.1:{box[1]}/v2/messages/m"
    try:
        connector = _Connector(ssl=client_ctx, limit=4)
        async with aiohttp.ClientSession(connector=connector) as session:
            for pause in (0.0, 0.05, 1.0):
                # 1 s: the server (0.5 s idle timeout) has closed the pooled connection; the
                # client (1.5 s) would still use it
                time.sleep(pause)  # noqa: ASYNC251  (the loop must not see the close first)
                async with session.post(url, data=b"{}") as resp:
                    assert resp.status == 200
                    await resp.read()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert peers[0] == peers[1]
    assert peers[2] != peers[1]


async def test_untrusted_tls_certificate_says_how_to_fix_the_trust_store(
    tmp_path: Path,
) -> None:
    """A certificate the machine's trust store cannot verify (a python.org macOS build without
    its CA bundle, a TLS-inspecting proxy) fails before anything is written, and the error says
    what to do about it rather than only "certificate verify failed"."""
    server_ctx, _ = _tls_contexts(tmp_path)

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx).start()
    port = runner.addresses[0][1]
    attempts: list[int] = []

    async def count(event: Any) -> None:
        attempts.append(event.attempt)

    try:
        async with telnyx_msg.AsyncClient(
            "k",
            base_url=f"https://127.0.0.1:{port}/v2",
            max_retries=2,
            rate_limits=None,
            event_hooks={"request": [count]},
        ) as client:
            with pytest.raises(telnyx_msg.APIConnectionError) as info:
                await client.messages.retrieve("m")  # a GET: retried after a connect failure
    finally:
        await runner.cleanup()
    assert not info.value.outcome_unknown
    assert "SSL_CERT_FILE" in str(info.value)
    assert attempts == [0]  # not retried: the same certificate fails the same way


async def test_per_call_timeouts_do_not_grow_memory(api_server: Any) -> None:
    """A service passing each call its remaining deadline (a new timeout every call) keeps a
    bounded transport: the per-timeout cache stopped growing (it kept one entry per value)."""

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    async with client_for(server) as client:

        async def calls(start: int, count: int) -> None:
            for n in range(start, start + count):
                options = RequestOptions(timeout=30.0 + n / 10_000)
                await client.messages.retrieve("m", options=options)

        await calls(0, 300)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            await calls(300, 3000)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    # What the client's own code keeps (the test server records every request, by design).
    ours = [tracemalloc.Filter(True, str(Path(telnyx_msg.__file__).parent / "*"))]
    diff = after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    grown = sum(stat.size_diff for stat in diff)
    assert grown < 50_000, f"{grown} bytes kept after 3,000 calls"


async def test_total_timeouts_of_different_lengths_each_end_their_own_call(
    api_server: Any,
) -> None:
    """Calls share one deadline timer: a short per-call timeout started after a long one still
    ends its call first, and the long one still ends (both outcome unknown: the server had them)."""

    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.wait_for(release.wait(), 30)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    async with client_for(server, max_retries=0) as client:
        slow = asyncio.ensure_future(
            client.messages.send(
                from_="+18005550101",
                to="+18445550001",
                text="Hi",
                options=RequestOptions(timeout=3.0),
            )
        )
        for _ in range(200):  # bounded (2 s): the long call is on the wire first
            if server.requests:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(telnyx_msg.APITimeoutError) as short:
            await asyncio.wait_for(
                client.messages.send(
                    from_="+18005550101",
                    to="+18445550001",
                    text="Hi",
                    options=RequestOptions(timeout=0.2),
                ),
                10,
            )
        assert short.value.outcome_unknown
        assert not slow.done()
        with pytest.raises(telnyx_msg.APITimeoutError) as long:
            await asyncio.wait_for(slow, 10)
        assert long.value.outcome_unknown
        assert "3 s" in str(long.value)
        release.set()


async def test_a_stuck_call_does_not_make_finished_calls_pile_up(api_server: Any) -> None:
    """While one call waits out a long timeout, thousands of others finish: what the transport
    keeps for their deadlines stays bounded by the calls in flight, not by the calls made."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path.endswith("/stuck"):
            await asyncio.wait_for(release.wait(), 30)
        return json_response({"data": message_json()})

    server = await api_server(answer)
    async with client_for(server, max_retries=0) as client:
        stuck = asyncio.ensure_future(client.messages.retrieve("stuck"))
        for _ in range(200):  # bounded (2 s)
            if server.requests:
                break
            await asyncio.sleep(0.01)
        for _ in range(300):
            await client.messages.retrieve("m")
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(4000):
                await client.messages.retrieve("m")
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert not stuck.done()
        release.set()
        await asyncio.wait_for(stuck, 10)
    ours = [tracemalloc.Filter(True, str(Path(telnyx_msg.__file__).parent / "*"))]
    diff = after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    grown = sum(stat.size_diff for stat in diff)
    assert grown < 100_000, f"{grown} bytes kept after 4,000 calls"


async def test_calls_stuck_among_many_finished_ones_still_time_out(api_server: Any) -> None:
    """Hundreds of calls stuck on the server while hundreds of others finish behind them (the
    transport then drops the finished ones from its deadline bookkeeping): every stuck call
    still ends at its timeout, as outcome unknown, and none is left hanging."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path.endswith("/stuck"):
            await asyncio.wait_for(release.wait(), 30)
        return json_response({"data": message_json()})

    server = await api_server(answer)
    async with client_for(server, max_retries=0, pool_size=400, timeout=4.0) as client:
        stuck = [asyncio.ensure_future(client.messages.retrieve("stuck")) for _ in range(300)]
        for _ in range(200):  # bounded (2 s): every stuck call is on the wire
            if len(server.requests) >= 300:
                break
            await asyncio.sleep(0.01)
        for _ in range(700):
            await client.messages.retrieve("m")
        outcomes = await asyncio.wait_for(asyncio.gather(*stuck, return_exceptions=True), 20)
        release.set()
    assert all(isinstance(o, telnyx_msg.APITimeoutError) for o in outcomes), outcomes[:3]
    assert all(o.outcome_unknown for o in outcomes if isinstance(o, telnyx_msg.APITimeoutError))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_caller_cancellation_in_the_same_turn_as_the_attempt_deadline_wins(
    api_server: Any,
) -> None:
    """The caller's asyncio.timeout (or task.cancel()) that comes due in the same loop turn as
    the client's own per-attempt deadline (a busy loop) still ends the call with the caller's
    TimeoutError: it is not swallowed into APITimeoutError followed by more retries."""

    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        if request.path.endswith("/warm"):
            return json_response({"data": []})
        await asyncio.wait_for(release.wait(), 5)
        return json_response({"data": message_json()})

    server = await api_server(stall)
    async with client_for(
        server, max_retries=3, timeout=telnyx_msg.Timeout(total=0.1, connect=0.5)
    ) as client:
        await client.request("GET", "/warm")  # a pooled connection, modules loaded

        async def busy() -> None:
            await asyncio.sleep(0.05)
            time.sleep(0.2)  # noqa: ASYNC251  # both deadlines pass while the loop is blocked

        blocker = asyncio.ensure_future(busy())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.15):  # type: ignore[attr-defined,unused-ignore]
                await client.messages.retrieve("m")
        await blocker
        release.set()
    assert len(server.requests) == 2  # /warm and one attempt: no retry after the caller gave up


async def test_a_body_cut_short_reads_as_a_lost_connection_not_a_400() -> None:
    """A response body shorter than its Content-Length: APIConnectionError whose text came
    from aiohttp as "<ContentLengthError: 400, message='...'>", read as if Telnyx answered
    400. The parser's text stays; its code goes."""

    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n"
        b'\r\n{"data": {"id": "m1"'
    )
    async with (
        raw_reply(reply) as base_url,
        telnyx_msg.AsyncClient("k", base_url=base_url, rate_limits=None, max_retries=0) as client,
    ):
        with pytest.raises(telnyx_msg.APIConnectionError) as caught:
            await client.messages.retrieve("m1")
    assert "connection lost" in str(caught.value)
    assert "content length" in str(caught.value)
    assert "400" not in str(caught.value)


async def test_timeout_in_a_task_that_once_swallowed_a_cancel(api_server: Any) -> None:
    """A task whose cancelling() count is left at 1 (an earlier cancel caught without
    uncancel(), as asyncio.timeout tolerates) gets the client's timeout as APITimeoutError,
    not a bare CancelledError nobody asked for."""

    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 5)
        return json_response({})

    server = await api_server(hang)
    async with client_for(server, timeout=0.3, max_retries=0) as client:

        async def job() -> BaseException | None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)
            try:
                await client.messages.send(**SEND)
            except BaseException as exc:
                return exc
            return None

        task = asyncio.create_task(job())
        await asyncio.sleep(0.05)
        task.cancel()
        error = await asyncio.wait_for(task, 5)
        release.set()
    assert isinstance(error, telnyx_msg.APITimeoutError), repr(error)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_a_caller_cancelling_a_pool_wait_as_the_client_closes_is_cancelled(
    api_server: Any,
) -> None:
    """Pool of 1 held by a slow request; a second request waits for the connection. Its caller
    cancels it in the loop turn the client starts closing: the caller's cancellation
    wins (the task ends cancelled), it is not turned into ClientClosedError.
    Guards against: ``and not _cancelling(task)`` dropped."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return json_response({"data": message_json()})

    server = await api_server(slow)
    client = telnyx_msg.AsyncClient("k", base_url=server.base_url, pool_size=1, rate_limits=None)
    holder = asyncio.ensure_future(client.messages.retrieve("m1"))
    for _ in range(1000):  # bounded (5 s)
        if server.requests:
            break
        await asyncio.sleep(0.005)
    waiter = asyncio.ensure_future(client.messages.retrieve("m2"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(server.requests) == 1  # the second waits for the pooled connection
    closing = asyncio.create_task(client.aclose())
    await asyncio.sleep(0)  # the close began: the transport refuses, the pool wait is woken
    waiter.cancel()  # and the caller cancels in the same turn
    await asyncio.gather(waiter, holder, closing, return_exceptions=True)
    release.set()
    assert waiter.cancelled(), waiter.exception()


async def test_a_plain_body_exactly_at_the_cap_is_read(api_server: Any) -> None:
    """A body with a Content-Length equal to ``max_response_size`` is read, not cut off.
    Guards against: ``length > limit`` -> ``>=``."""
    payload = json_response({"data": message_json()}).body
    assert isinstance(payload, bytes)

    async def plain(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/json")

    server = await api_server(plain)
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, max_response_size=len(payload)
    ) as client:
        message = await client.messages.retrieve("m")
    assert message.id


async def test_localhost_is_never_proxied(api_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY pointing at a dead proxy, a ``localhost`` base URL still reaches the
    local server directly. Guards against: the ``_LOOPBACK`` names proxied (only
    127.x addresses were covered)."""
    import socket

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a proxy address nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    url = server.base_url.replace("127.0.0.1", "localhost")
    async with telnyx_msg.AsyncClient("k", base_url=url, rate_limits=None, max_retries=0) as client:
        message = await client.messages.retrieve("m")
    assert message.id
    assert len(server.requests) == 1


async def test_a_session_its_owner_closed_raises_client_closed(api_server: Any) -> None:
    """A session passed in and closed by its owner: the call raises ClientClosedError (nothing
    sent), not aiohttp's RuntimeError. Guards against: the closed-session check."""
    import aiohttp

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    session = aiohttp.ClientSession()
    await session.close()
    client = telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, session=session
    )
    with pytest.raises(telnyx_msg.ClientClosedError):
        await client.messages.retrieve("m")
    await client.aclose()
    assert server.requests == []


_PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


async def _proxy_answer(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"data": {"id": "m", "to": []}})


@pytest.mark.parametrize("blocking", [False, True])
async def test_an_https_proxy_url_is_not_silently_bypassed(
    api_server: Any, monkeypatch: pytest.MonkeyPatch, blocking: bool
) -> None:
    """docs/configuration.md: HTTPS_PROXY / HTTP_PROXY are honoured "as httpx and the official
    SDK honour them". httpx (the official SDK) accepts an ``https://`` proxy URL; aiohttp cannot
    use one and drops it with only a logging warning, so the client connects straight to the
    API host, around the proxy the machine is configured to use. A migrating user must be told
    that their proxy setting was not used (an error naming the proxy), not get a direct
    connection (here: a DNS failure for the API host that says nothing about the proxy)."""
    server = await api_server(_proxy_answer)
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    address = server.base_url.removesuffix("/v2").removeprefix("http://")
    monkeypatch.setenv("HTTP_PROXY", f"https://{address}")
    monkeypatch.setenv("HTTPS_PROXY", f"https://{address}")
    settings: dict[str, Any] = {
        "base_url": "http://api.telnyx.invalid/v2",
        "rate_limits": None,
        "max_retries": 0,
        "timeout": 5.0,
    }
    error: telnyx_msg.TelnyxError | None = None
    if blocking:

        def call() -> telnyx_msg.TelnyxError | None:
            with telnyx_msg.Client("KEY0123456789abcdef", **settings) as client:
                try:
                    client.messages.retrieve("m")
                except telnyx_msg.TelnyxError as exc:
                    return exc
            return None

        error = await anyio.to_thread.run_sync(call)
    else:
        async with telnyx_msg.AsyncClient("KEY0123456789abcdef", **settings) as client:
            try:
                await client.messages.retrieve("m")
            except telnyx_msg.TelnyxError as exc:
                error = exc
    assert server.requests == []  # aiohttp cannot talk to an https:// proxy at all
    assert error is not None
    assert "proxy" in str(error).lower(), f"the error does not mention the proxy: {error}"


async def test_an_https_proxy_is_not_refused_for_a_host_no_proxy_excludes(
    api_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY names an ``https://`` proxy (which aiohttp cannot use) but NO_PROXY
    excludes the API host: no proxy is used for that host at all, so the call must go
    straight to it and succeed, not be refused with the https:// proxy error (the NO_PROXY
    exclusion is exactly the fix that error message recommends)."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"data": {"id": "m", "to": []}})

    server = await api_server(ok)
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    # 0.0.0.0 reaches this host's listeners on Linux, and is not skipped as loopback.
    base_url = server.base_url.replace("127.0.0.1", "0.0.0.0")
    monkeypatch.setenv("HTTP_PROXY", "https://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "0.0.0.0")
    async with telnyx_msg.AsyncClient(
        "KEY0123456789abcdef", base_url=base_url, rate_limits=None, max_retries=0, timeout=5.0
    ) as client:
        message = await client.messages.retrieve("m")
    assert message.id == "m"
    assert len(server.requests) == 1


# --- a caller's cancellation in the loop turn the SDK cancels the same task ------------------
# The limiter's own timeout and aclose() cancel a waiting task themselves; a cancellation the
# caller makes in that same turn (asyncio.timeout, task.cancel(), a TaskGroup) must still win,
# as it does for the per-attempt deadline and the pool wait above.


async def _client_with_a_queue(api_server: Any) -> tuple[telnyx_msg.AsyncClient, list[Any]]:
    """A client whose account lane (10/s, burst 1) is used up, with two sends queued ahead:
    the next send's own wait looks short (0.1 s) but lasts 0.3 s, past its 0.2 s timeout."""

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    client = telnyx_msg.AsyncClient(
        "k",
        base_url=server.base_url,
        rate_limits=telnyx_msg.RateLimits(account_mps=10.0, burst=1),
        timeout=telnyx_msg.Timeout(total=0.2, connect=0.2),
        max_retries=0,
    )
    await client.messages.send(**SEND)  # takes the only token
    ahead = [asyncio.ensure_future(client.messages.send(**SEND)) for _ in range(2)]
    await asyncio.sleep(0)
    return client, ahead


async def _block_the_loop() -> None:
    await asyncio.sleep(0.05)
    time.sleep(0.45)  # noqa: ASYNC251  # both deadlines pass while the loop is blocked


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_the_callers_timeout_in_the_same_turn_as_the_limiter_timeout_wins(
    api_server: Any,
) -> None:
    """The caller's asyncio.timeout(0.25) and the send's 0.2 s limiter bound pass in the same
    loop turn: the caller gets its TimeoutError, not the limiter's RateLimitError."""
    client, ahead = await _client_with_a_queue(api_server)
    async with client:
        blocker = asyncio.ensure_future(_block_the_loop())
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.25):  # type: ignore[attr-defined,unused-ignore]
                    await client.messages.send(**SEND)
        finally:
            await blocker
            await asyncio.gather(*ahead, return_exceptions=True)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_a_task_cancel_in_the_same_turn_as_the_limiter_timeout_is_not_swallowed(
    api_server: Any,
) -> None:
    """A worker that treats RateLimitError as "try again later" is cancelled (its server shuts
    down) in the turn its send's limiter wait times out: the task must end cancelled, not
    carry on into its next send as if nobody had asked it to stop."""
    client, ahead = await _client_with_a_queue(api_server)
    attempts: list[str] = []

    async def send_once() -> None:
        try:
            await client.messages.send(**SEND)
            attempts.append("sent")
        except telnyx_msg.RateLimitError:
            attempts.append("rate limited")
            await asyncio.sleep(0.05)

    async def worker() -> None:
        for _ in range(3):  # bounded
            await send_once()

    async with client:
        task = asyncio.ensure_future(worker())
        asyncio.get_running_loop().call_later(0.25, task.cancel)
        blocker = asyncio.ensure_future(_block_the_loop())
        try:
            await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
        finally:
            await blocker
            await asyncio.gather(*ahead, return_exceptions=True)
    assert task.cancelled(), f"the cancelled worker carried on: {attempts}"


class _Held(RecordingLimiter):
    """A limiter whose grant never comes (a sender paused for minutes by a 40318)."""

    def __init__(self) -> None:
        super().__init__()
        self.forever = asyncio.Event()

    async def wait(self) -> None:
        await self.forever.wait()


async def _cancel_as_the_client_closes(client: telnyx_msg.AsyncClient, waiter: Any) -> None:
    closing = asyncio.create_task(client.aclose())
    await asyncio.sleep(0)  # the close began: it cancelled the waits it knows of
    waiter.cancel()  # and the caller cancels in the same turn
    await asyncio.wait_for(asyncio.gather(waiter, closing, return_exceptions=True), 10)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_a_caller_cancelling_a_rate_limit_wait_as_the_client_closes_is_cancelled(
    api_server: Any,
) -> None:
    """A send waits for a rate-limit token; its caller cancels it in the turn aclose() runs.
    The task must end cancelled (the caller asked for it), not with ClientClosedError, which
    a worker loop catching TelnyxError would take as "retry later" and keep running."""

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json()})

    server = await api_server(ok)
    limiter = _Held()
    client = telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=limiter)
    waiter = asyncio.ensure_future(client.messages.send(**SEND))
    for _ in range(500):  # bounded (5 s)
        if limiter.taken:
            break
        await asyncio.sleep(0.01)
    assert limiter.taken  # waiting for its token
    await _cancel_as_the_client_closes(client, waiter)
    assert not server.requests
    assert waiter.cancelled(), repr(waiter.exception())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_a_caller_cancelling_a_retry_backoff_as_the_client_closes_is_cancelled(
    api_server: Any,
) -> None:
    """A call sleeps before its retry (a 503); its caller cancels it in the turn aclose()
    runs. The task must end cancelled, not with ClientClosedError."""

    async def unavailable(request: web.Request) -> web.Response:
        return web.json_response({"errors": []}, status=503)

    server = await api_server(unavailable)
    answered: list[int | None] = []
    client = telnyx_msg.AsyncClient(
        "k",
        base_url=server.base_url,
        rate_limits=None,
        backoff=Backoff(initial=300, max=300, jitter=0, max_wait=300),
        event_hooks={"response": [lambda event: answered.append(event.status)]},
    )
    waiter = asyncio.ensure_future(client.messages.send(**SEND))
    for _ in range(500):  # bounded (5 s)
        if answered:
            break
        await asyncio.sleep(0.01)
    assert answered == [503]
    await asyncio.sleep(0.01)  # the call went on into its 300 s backoff
    await _cancel_as_the_client_closes(client, waiter)
    assert len(server.requests) == 1
    assert waiter.cancelled(), repr(waiter.exception())


async def _accepted(request: web.Request) -> web.Response:
    await request.read()
    return json_response({"data": message_json()})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_two_concurrent_acloses_end_a_token_wait_with_client_closed_error(
    api_server: Any,
) -> None:
    """A send waiting for a token, when two aclose() calls run in the same loop turn, raises
    ClientClosedError (not sent), as with one aclose(): nobody cancelled the caller's task,
    so it must not end with a bare CancelledError (which the caller reads as "I was
    cancelled" and which kills a worker loop that handles ClientClosedError)."""
    server = await api_server(_accepted)
    client = telnyx_msg.AsyncClient(
        "secret-key",
        base_url=server.base_url,
        rate_limits=telnyx_msg.RateLimits(account_mps=0.2, burst=1),  # a 5 s wait
        backoff=Backoff(initial=0.001, max=0.002),
    )
    await client.messages.send(**SEND)  # takes the only token
    waiting = asyncio.ensure_future(client.messages.send(**SEND))
    await asyncio.sleep(0.05)
    await asyncio.gather(client.aclose(), client.aclose())
    done, _ = await asyncio.wait({waiting}, timeout=10)
    assert done, "the waiting send did not end"
    assert not waiting.cancelled(), "the send ended with a bare CancelledError"
    assert isinstance(waiting.exception(), telnyx_msg.ClientClosedError)
    assert len(server.requests) == 1


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_two_concurrent_acloses_end_a_backoff_with_client_closed_error(
    api_server: Any,
) -> None:
    """A send sleeping before its retry (503, long backoff), when two aclose() calls run in
    the same loop turn, raises ClientClosedError, not a bare CancelledError."""

    async def unavailable(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503)

    server = await api_server(unavailable)
    answered = asyncio.Event()
    client = telnyx_msg.AsyncClient(
        "secret-key",
        base_url=server.base_url,
        rate_limits=None,
        backoff=Backoff(initial=30.0, max=30.0),
        max_retries=1,
        event_hooks={"response": [lambda event: answered.set()]},
    )
    options = telnyx_msg.RequestOptions(idempotency_key="order-42")
    waiting = asyncio.ensure_future(
        client.messages.send(from_=SEND["from_"], to=SEND["to"], text="Hello", options=options)
    )
    await asyncio.wait_for(answered.wait(), 10)  # the 503 was read: the backoff is next
    await asyncio.sleep(0.05)
    await asyncio.gather(client.aclose(), client.aclose())
    done, _ = await asyncio.wait({waiting}, timeout=10)
    assert done, "the waiting send did not end"
    assert not waiting.cancelled(), "the send ended with a bare CancelledError"
    assert isinstance(waiting.exception(), telnyx_msg.ClientClosedError)


SENT_ONCE: dict[str, Any] = {"from_": "+18005550101", "to": "+18445550100", "text": "hi"}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no cancellation count")
async def test_close_during_a_token_wait_in_a_task_that_once_swallowed_a_cancel(
    api_server: Any,
) -> None:
    """Mutant: the token wait's ``cancels = task.cancelling()`` replaced by ``cancels = 0``.

    A task whose ``cancelling()`` count was left at 1 (an earlier cancel caught without
    ``uncancel()``) waits for a rate-limit token when the client is closed: the send raises
    ``ClientClosedError`` (not sent), as in any other task, not a bare ``CancelledError``
    that nobody asked for."""
    server = await api_server(_accepted)
    limits = telnyx_msg.RateLimits(account_mps=0.5, burst=1)
    client = client_for(server, rate_limits=limits)
    await client.messages.send(**SENT_ONCE)

    async def job() -> BaseException | None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        try:
            await client.messages.send(**SENT_ONCE)
        except BaseException as exc:  # what the send ended with
            return exc
        return None

    task = asyncio.create_task(job())
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.1)  # now waiting for the token
    await client.aclose()
    error = await asyncio.wait_for(task, 10)
    assert isinstance(error, telnyx_msg.ClientClosedError), repr(error)
    assert len(server.requests) == 1
