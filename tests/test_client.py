"""AsyncClient configuration, timeouts, sessions, headers and lifecycle."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import math
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import RequestOptions, Timeout
from tests.conftest import json_response, message_json


async def ok(request: web.Request) -> web.Response:
    return json_response({"data": message_json()})


@pytest.mark.anyio
async def test_runs_on_the_event_loop_the_session_asks_for() -> None:
    """Under ``nox -s uvloop`` the async tests really run on uvloop's loop, else on asyncio's."""
    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    assert on_uvloop is (os.environ.get("TELNYX_MSG_TEST_UVLOOP") == "1")


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No argument and no TELNYX_API_KEY: ConfigurationError at construction."""
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    with pytest.raises(telnyx_msg.ConfigurationError, match="TELNYX_API_KEY"):
        telnyx_msg.AsyncClient()
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.Client()


@pytest.mark.anyio
async def test_environment_configuration(api_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """TELNYX_API_KEY and TELNYX_BASE_URL configure a client built with no arguments."""
    server = await api_server(ok)
    monkeypatch.setenv("TELNYX_API_KEY", "env-key")
    monkeypatch.setenv("TELNYX_BASE_URL", server.base_url + "/")
    async with telnyx_msg.AsyncClient(rate_limits=None) as client:
        assert client.base_url == server.base_url
        await client.messages.retrieve("m")
    assert server.requests[0].headers["Authorization"] == "Bearer env-key"


@pytest.mark.anyio
async def test_key_from_a_secret_file_with_a_final_newline(
    api_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key read from a file or a mounted secret ends with a newline: it is dropped.

    It was a ConfigurationError, so `TELNYX_API_KEY=$(cat key.txt)`-style setups that keep
    the newline could not start.
    """
    server = await api_server(ok)
    monkeypatch.setenv("TELNYX_API_KEY", "env-key\r\n")
    async with telnyx_msg.AsyncClient(base_url=server.base_url, rate_limits=None) as client:
        await client.messages.retrieve("m")
    assert server.requests[0].headers["Authorization"] == "Bearer env-key"


@pytest.mark.parametrize("key", ["KEY\nX-Injected: 1", "my key", "KEY\x00", "KEY\u00e9"])
def test_key_that_is_not_one_token_is_refused(key: str) -> None:
    """A key with a break, space or non-ASCII inside is refused before any I/O, not echoed."""
    with pytest.raises(telnyx_msg.ConfigurationError, match="printable ASCII") as caught:
        telnyx_msg.AsyncClient(key, rate_limits=None)
    assert "KEY" not in str(caught.value)


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TELNYX_BASE_URL the client talks to https://api.telnyx.com/v2."""
    monkeypatch.delenv("TELNYX_BASE_URL", raising=False)
    client = telnyx_msg.AsyncClient("k", rate_limits=None)
    assert client.base_url == "https://api.telnyx.com/v2"


@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_base_url_is_not_production(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``base_url=""`` (a test or staging setting that came out empty) is a
    ConfigurationError; it silently meant https://api.telnyx.com/v2. An empty
    ``$TELNYX_BASE_URL`` still counts as unset."""
    monkeypatch.delenv("TELNYX_BASE_URL", raising=False)
    with pytest.raises(telnyx_msg.ConfigurationError, match="base_url"):
        telnyx_msg.AsyncClient("k", base_url=url, rate_limits=None)
    with pytest.raises(telnyx_msg.ConfigurationError, match="base_url"):
        telnyx_msg.Client("k", base_url=url, rate_limits=None)
    monkeypatch.setenv("TELNYX_BASE_URL", "")
    assert telnyx_msg.AsyncClient("k", rate_limits=None).base_url == "https://api.telnyx.com/v2"


@pytest.mark.parametrize(
    "url",
    [
        "api.telnyx.com",
        "ftp://x/v2",
        "http://x/v2?a=1",
        "http:// x",
        # These passed the check and failed at the first call (a bare ValueError from yarl).
        "http://127.0.0.1:99999/v2",
        "http://127.0.0.1:abc/v2",
        "http://127.0.0.1:8765:1/v2",
        "http://[::1/v2",
        "http://:8765/v2",
        # Credentials in the URL would show in reprs and events (and the calls failed with a
        # bare ValueError); a backslash is read as a different host by some parsers.
        "http://user:secret@127.0.0.1:8765/v2",
        "https://user@api.telnyx.com/v2",
        "http://127.0.0.1\\@evil.example/v2",
    ],
)
def test_bad_base_url(url: str) -> None:
    """A base_url that is not an http(s) URL with a host (and a valid port) is a
    ConfigurationError when the client is built."""
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.AsyncClient("k", base_url=url)


@pytest.mark.parametrize("timeout", [None, 0, -1, float("nan"), "5", True])
def test_bad_timeouts_rejected(timeout: Any) -> None:
    """timeout=None (wait forever), zero, negative or non-numbers are rejected."""
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.AsyncClient("k", timeout=timeout, rate_limits=None)
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.AsyncClient("k", rate_limits=None).with_options(timeout=timeout)


def test_timeout_values() -> None:
    """A number is the total with a 5 s connect limit; math.inf opts out explicitly."""
    client = telnyx_msg.AsyncClient("k", timeout=30, rate_limits=None)
    assert client.timeout == Timeout(total=30.0, connect=5.0)
    assert client.with_options(timeout=2).timeout == Timeout(total=2.0, connect=2.0)
    assert telnyx_msg.AsyncClient("k").timeout == Timeout(60.0, 5.0)
    assert telnyx_msg.AsyncClient("k", timeout=Timeout(total=math.inf)).timeout.total == math.inf
    # Timeout(1.0) is timeout=1.0: its connect limit was 5 s, so an attempt could take 6 s.
    assert Timeout(1.0) == Timeout(total=1.0, connect=1.0) == client.with_options(timeout=1).timeout
    assert Timeout(math.inf) == Timeout(math.inf, 5.0)
    assert Timeout(2.0, connect=10.0).connect == 10.0


@pytest.mark.parametrize("retries", [-1, None, 1.5, True])
def test_bad_max_retries(retries: Any) -> None:
    """max_retries must be an int >= 0."""
    with pytest.raises(telnyx_msg.ConfigurationError):
        telnyx_msg.AsyncClient("k", max_retries=retries)


@pytest.mark.anyio
async def test_timeout_per_client_view_and_call(api_server: Any) -> None:
    """The shortest applicable timeout wins per call: client, with_options view, options."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return json_response({"data": message_json()})

    server = await api_server(slow)
    try:
        async with telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, timeout=30, max_retries=0, rate_limits=None
        ) as client:
            with pytest.raises(telnyx_msg.APITimeoutError):
                await client.with_options(timeout=0.1).messages.retrieve("m")
            with pytest.raises(telnyx_msg.APITimeoutError):
                await client.messages.retrieve("m", options=RequestOptions(timeout=0.1))
    finally:
        release.set()
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_borrowed_session_stays_open(api_server: Any) -> None:
    """A session passed in is used for requests and left open by aclose()."""
    server = await api_server(ok)
    async with aiohttp.ClientSession() as session:
        client = telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, session=session, rate_limits=None
        )
        await client.messages.retrieve("m")
        await client.aclose()
        assert not session.closed
        async with session.get(server.base_url + "/messages/x") as resp:
            assert resp.status == 200
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_borrowed_session_settings_cannot_change_what_a_response_means(
    api_server: Any,
) -> None:
    """A session passed in with raise_for_status=True or auto_decompress=False: a 422 is still
    an UnprocessableEntityError (aiohttp raised, and it read as a lost connection: an unknown
    outcome for a send) and a gzip-encoded 2xx is still read (it was compressed bytes)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["to"].endswith("9"):
            return web.json_response(
                {"errors": [{"code": "40310", "title": "Invalid 'to' address"}]}, status=422
            )
        data = json.dumps({"data": message_json()}).encode()
        return web.Response(
            body=gzip.compress(data),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    server = await api_server(answer)
    for settings in ({"raise_for_status": True}, {"auto_decompress": False}):
        async with aiohttp.ClientSession(**settings) as session:  # type: ignore[arg-type]
            client = telnyx_msg.AsyncClient(
                "k", base_url=server.base_url, session=session, rate_limits=None
            )
            sent = await client.messages.send(from_="+18005550101", to="+18445550001", text="a")
            assert sent.id == message_json()["id"]
            with pytest.raises(telnyx_msg.UnprocessableEntityError) as info:
                await client.messages.send(from_="+18005550101", to="+18445550009", text="b")
            assert not info.value.outcome_unknown
            await client.aclose()


@pytest.mark.anyio
async def test_proxy_from_the_environment(api_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP(S)_PROXY is honoured as httpx and the official SDK do: the request goes to the
    proxy in absolute form (the target host is never resolved here); loopback hosts are never
    proxied, so a proxy without NO_PROXY=localhost cannot break a local fake."""
    seen: list[tuple[str, str]] = []
    credentials: list[str | None] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append((request.host, request.path))
        credentials.append(request.headers.get("Proxy-Authorization"))
        return json_response({"data": message_json()})

    server = await api_server(proxy)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    address = server.base_url.removesuffix("/v2").removeprefix("http://")
    monkeypatch.setenv("HTTP_PROXY", f"http://user:s3cret@{address}")
    async with telnyx_msg.AsyncClient(
        "k", base_url="http://api.telnyx.invalid/v2", rate_limits=None, max_retries=0
    ) as client:
        await client.messages.send(from_="+18005550101", to="+18445550001", text="hi")
    assert seen == [("api.telnyx.invalid", "/v2/messages")]
    assert credentials == ["Basic " + base64.b64encode(b"user:s3cret").decode()]

    with socket.socket() as sock:  # a proxy address nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, max_retries=0
    ) as client:
        await client.messages.retrieve("m")  # straight to 127.0.0.1
    assert seen[-1] == (server.base_url.split("/")[2], "/v2/messages/m")


@pytest.mark.anyio
async def test_views_share_the_session(api_server: Any) -> None:
    """with_options views reuse the parent's connection pool; closing a view is a no-op."""
    server = await api_server(ok)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        view = client.with_options(max_retries=0)
        await view.messages.retrieve("m")
        await view.aclose()
        await client.messages.retrieve("m")
    # Both calls arrived on the same keep-alive connection: one pool.
    assert server.requests[0].peer == server.requests[1].peer
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_closed_client_raises(api_server: Any) -> None:
    """After aclose() (twice is fine) a call raises TelnyxError instead of hanging."""
    server = await api_server(ok)
    client = telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None)
    await client.messages.retrieve("m")
    await client.aclose()
    await client.aclose()
    with pytest.raises(telnyx_msg.TelnyxError, match="closed"):
        await client.messages.retrieve("m")


@pytest.mark.anyio
async def test_headers(api_server: Any) -> None:
    """JSON in and out, a versioned User-Agent, and per-call extra headers."""
    server = await api_server(ok)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        await client.messages.retrieve("m", options=RequestOptions(extra_headers={"X-Trace": "t1"}))
        await client.messages.retrieve("m")
    first, second = server.requests
    assert first.headers["Accept"] == "application/json"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"].startswith(f"telnyx_msg/{telnyx_msg.__version__} python/")
    assert "aiohttp/" in first.headers["User-Agent"]
    assert first.headers["X-Trace"] == "t1"
    assert "X-Trace" not in second.headers
    assert "Idempotency-Key" not in second.headers


def test_authorization_cannot_be_overridden() -> None:
    """extra_headers may not replace the Authorization header: a ValidationError naming
    extra_headers, as for its other mistakes (it was a ConfigurationError, which a caller
    catching ValidationError for bad options missed)."""
    with pytest.raises(telnyx_msg.ValidationError, match="Authorization; use api_key") as info:
        RequestOptions(extra_headers={"authorization": "Bearer other"})
    assert info.value.field == "extra_headers"


@pytest.mark.parametrize(
    "name",
    ["Content-Length", "transfer-encoding", "Host", "Connection", "Upgrade", "TE", "Trailer"],
)
def test_headers_that_frame_the_request_are_refused(name: str) -> None:
    """extra_headers may not set the headers that frame or route the request: Content-Length
    "0" silently dropped the JSON body, Transfer-Encoding sent a body framed two ways (a
    request-smuggling shape), Host sent it to another virtual host."""
    with pytest.raises(telnyx_msg.ValidationError, match="frame") as info:
        RequestOptions(extra_headers={name: "0"})
    assert info.value.field == "extra_headers"


@pytest.mark.anyio
async def test_non_json_success_body(api_server: Any) -> None:
    """A 2xx with a non-JSON body raises TelnyxError naming the endpoint, not a JSON error."""

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>")

    server = await api_server(html)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.TelnyxError, match="GET /messages/"):
            await client.messages.retrieve("m")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "outcome"), [(301, "not_sent"), (307, "not_sent"), (303, "unknown")]
)
async def test_a_redirect_is_an_error_not_an_acceptance(
    api_server: Any, status: int, outcome: str
) -> None:
    """A 3xx (an http:// base_url behind nginx, a proxy) is an APIStatusError whose hint names
    base_url, never a sent message; it is not followed, nor retried. send_many reports it
    not_sent (the URL was refused, not the message), but a 303, which a server sends after
    acting on a POST, unknown."""

    async def moved(request: web.Request) -> web.Response:
        return web.Response(
            status=status,
            headers={"Location": "https://api.telnyx.com/v2/messages"},
            text=f"<html>{status}</html>",
        )

    server = await api_server(moved)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as caught:
            await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
        assert caught.value.status == status
        assert caught.value.outcome_unknown is (status == 303)
        assert "base_url" in str(caught.value)
        with pytest.raises(telnyx_msg.APIStatusError):
            await client.request("DELETE", "/messages/m")
        outcomes = client.messages.send_many(
            [{"from_": "+18005550101", "to": "+18445550001", "text": "Hi"}]
        )
        [result] = [o async for o in outcomes]
    assert result.status == outcome
    assert [r.method for r in server.requests] == ["POST", "DELETE", "POST"]


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16"])
async def test_success_body_in_any_json_encoding(api_server: Any, encoding: str) -> None:
    """UTF-8 takes the fast path; the other encodings JSON allows are still understood."""
    message = {**message_json(), "text": "Café ✓"}

    async def encoded(request: web.Request) -> web.Response:
        return web.Response(
            body=json.dumps({"data": message}).encode(encoding), content_type="application/json"
        )

    server = await api_server(encoded)
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        result = await client.messages.retrieve("m")
    assert result.text == "Café ✓"


@pytest.mark.anyio
async def test_many_clients_close_cleanly(api_server: Any) -> None:
    """Creating and closing clients repeatedly leaks no session (ResourceWarning is an error)."""
    server = await api_server(ok)
    for _ in range(50):
        async with telnyx_msg.AsyncClient(
            "k", base_url=server.base_url, rate_limits=None
        ) as client:
            await client.messages.retrieve("m")
    assert len(server.requests) == 50


@pytest.mark.anyio
async def test_an_explicit_base_url_wins_over_the_environment(
    api_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """base_url= given in code is used even when TELNYX_BASE_URL is set (as api_key= wins
    over TELNYX_API_KEY): the environment only fills in what the code left out, so a test
    pointed at a local server never reaches what a shell or CI variable names."""
    server = await api_server(ok)
    monkeypatch.setenv("TELNYX_BASE_URL", "http://127.0.0.1:9/elsewhere")
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        assert client.base_url == server.base_url
        await client.messages.retrieve("m")
    assert len(server.requests) == 1


@contextlib.contextmanager
def _other_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """A second event loop running in its own thread (another asyncio.run in a worker thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.anyio
async def test_a_client_whose_session_another_loop_made_meanwhile_sends_nothing(
    api_server: Any,
) -> None:
    """One module-level AsyncClient used from two event loops at once (two threads each in
    its own asyncio.run, e.g. a sync web framework's workers): whichever loop opens the session
    first owns it, and a call of the other loop that passed the "first used in another event
    loop" check before that (while it waited in a request hook or for the rate limiter) must
    still stop with that ConfigurationError, before anything is written. It went out over the
    other loop's pooled connection: the message was sent, and the caller got aiohttp's bare
    ``RuntimeError: ... attached to a different loop`` (not a TelnyxError, not
    outcome_unknown), so it would be sent again."""
    server = await api_server(ok)
    with _other_loop_thread() as second:

        async def hook(event: telnyx_msg.RequestEvent) -> None:
            if asyncio.get_running_loop() is second:
                return

            # While this call (on the test's loop) is in its hook, the other loop's call
            # opens the client's session and completes.
            async def send_b() -> None:
                await client.messages.send(from_="+18005550101", to="+18445550001", text="B")

            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(send_b(), second))

        client = telnyx_msg.AsyncClient(
            "KEY0123456789",
            base_url=server.base_url,
            rate_limits=None,
            max_retries=0,
            timeout=5.0,
            event_hooks={"request": [hook]},
        )
        try:
            with pytest.raises(telnyx_msg.ConfigurationError, match="another event loop"):
                await client.messages.send(from_="+18005550101", to="+18445550001", text="A")
        finally:
            closing = asyncio.run_coroutine_threadsafe(client.aclose(), second)
            await asyncio.wrap_future(closing)
    assert [r.json["text"] for r in server.requests] == ["B"]


@pytest.mark.anyio
async def test_a_base_url_read_from_a_file_with_a_final_newline_works(
    api_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TELNYX_BASE_URL filled from a secret file or an env file often ends with a newline,
    as TELNYX_API_KEY does; the key's surrounding whitespace is dropped (docs/configuration.md),
    but the URL's was refused with "must be an http(s) URL without query", which it is, and
    names no query: the same deployment worked for the key and failed on the URL."""
    server = await api_server(ok)
    monkeypatch.setenv("TELNYX_API_KEY", "KEY0123456789\n")
    monkeypatch.setenv("TELNYX_BASE_URL", server.base_url + "\n")
    async with telnyx_msg.AsyncClient(rate_limits=None, max_retries=0) as client:
        assert client.base_url == server.base_url
        await client.messages.retrieve("m")
    assert [r.path for r in server.requests] == ["/v2/messages/m"]


@pytest.mark.anyio
async def test_an_internationalized_base_url_reaches_its_host(
    api_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resolve_base_url accepts a host IDNA can encode (it checks exactly that), and a path
    with non-ASCII text; the first call then died with a bare ``UnicodeEncodeError`` (not a
    TelnyxError) for the host, and wrote the path's raw UTF-8 bytes on the wire (a 400 from
    any HTTP server) for the path. A proxy on 127.0.0.1 stands in for the host: it must see
    the host IDNA-encoded and the path percent-encoded."""
    server = await api_server(ok)
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.base_url.removesuffix("/v2"))
    async with telnyx_msg.AsyncClient(
        "KEY0123456789", base_url="http://bücher.example/v2/ü", rate_limits=None, max_retries=0
    ) as client:
        await client.messages.retrieve("m")
    assert [(r.headers["Host"], r.path) for r in server.requests] == [
        ("xn--bcher-kva.example", "/v2/ü/messages/m")
    ]


def _sdk_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers on the loop whose callback is an SDK object's method (CPython's timer heap)."""
    scheduled: list[asyncio.TimerHandle] = getattr(loop, "_scheduled", [])
    count = 0
    for handle in scheduled:
        owner = getattr(getattr(handle, "_callback", None), "__self__", None)
        if not handle.cancelled() and type(owner).__module__.startswith("telnyx_msg"):
            count += 1
    return count


@pytest.mark.anyio
async def test_a_closed_client_leaves_no_timer_on_the_loop(api_server: Any) -> None:
    """After ``async with AsyncClient(...)`` exits, nothing of the client is still scheduled
    on the event loop (a timer left behind keeps the closed client's state alive until it
    fires, the request timeout later)."""
    server = await api_server(ok)
    loop = asyncio.get_running_loop()
    for _ in range(20):
        async with telnyx_msg.AsyncClient("k", base_url=server.base_url) as client:
            await client.messages.retrieve("m")
    assert _sdk_timers(loop) == 0
