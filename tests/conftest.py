"""Shared fixtures: a scriptable aiohttp server that records every request, and redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import attrs
import pytest
from aiohttp import web

from tests.redis_proc import _free_port, _ping

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _AsyncioLeaks(logging.Handler):
    """What asyncio reports only in its log, never as a warning: a task garbage-collected while
    still pending, a task's exception nobody retrieved, an aiohttp session or connector nobody
    closed, a callback on a closed loop. Each means the SDK lost track of work or connections;
    the suite fails on any (see ``pytest_sessionfinish``)."""

    PHRASES = (
        "Task was destroyed but it is pending",
        "exception was never retrieved",
        "Unclosed client session",
        "Unclosed connector",
        "Event loop is closed",
    )

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(phrase in message for phrase in self.PHRASES):
            during = os.environ.get("PYTEST_CURRENT_TEST", "outside a test")
            self.found.append(f"{' '.join(message.split())[:400]} (seen during {during})")


_LEAKS = _AsyncioLeaks()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger("asyncio").addHandler(_LEAKS)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    gc.collect()  # a pending task is reported when it is collected
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: its controller reports them
        workeroutput["asyncio_leaks"] = _LEAKS.found
        return
    if _LEAKS.found:
        print(f"\nasyncio reported {len(_LEAKS.found)} lost task(s) or exception(s):")
        for message in _LEAKS.found[:20]:
            print(f"  {message}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: collect what a worker's asyncio logger reported."""
    _LEAKS.found.extend(getattr(node, "workeroutput", {}).get("asyncio_leaks", []))


@pytest.fixture
def anyio_backend() -> Any:
    """Run async tests on asyncio (the SDK is asyncio-first), on uvloop's event loop when
    ``TELNYX_MSG_TEST_UVLOOP=1`` (``nox -s uvloop``: uvicorn serves on uvloop when installed)."""
    if os.environ.get("TELNYX_MSG_TEST_UVLOOP") == "1":
        return ("asyncio", {"use_uvloop": True})
    return "asyncio"


@attrs.define
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    peer: Any = None

    @property
    def json(self) -> Any:
        """The decoded JSON body (None when empty)."""
        return json.loads(self.body) if self.body else None


@attrs.define
class ApiServer:
    """A real aiohttp server; ``handler`` answers, ``requests`` records what arrived."""

    handler: Handler
    requests: list[Recorded] = attrs.Factory(list)
    base_url: str = ""
    in_flight: int = 0
    max_in_flight: int = 0

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        loop = asyncio.get_running_loop()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                loop.time(),
                peer,
            )
        )
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(request)
        finally:
            self.in_flight -= 1


# Hypothesis example counts scale by TELNYX_MSG_TEST_EXAMPLES (a fraction): the versions
# sessions rerun the whole suite on other interpreters and dependency floors, where the
# property tests' full strength (run by `tests`) buys little beside their time.
EXAMPLES_SCALE = float(os.environ.get("TELNYX_MSG_TEST_EXAMPLES", "1"))


def examples(count: int) -> int:
    """``count`` Hypothesis examples, scaled for the session (at least 20)."""
    return max(20, round(count * EXAMPLES_SCALE))


@contextlib.contextmanager
def serving_in_thread(handler: Handler) -> Iterator[str]:
    """``handler`` for every path, served on 127.0.0.1 by a loop of its own thread (a blocking
    caller, or ``main()`` running its own loop, cannot starve it); yields the ``/v2`` base URL."""
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        box["runner"] = runner
        box["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/v2"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        yield str(box["url"])
    finally:
        if "runner" in box:
            asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response (``payload`` may be any JSON value)."""
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


def telnyx_error(
    status: int,
    code: str,
    title: str = "Error",
    detail: str = "",
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A Telnyx-shaped error response."""
    return json_response(
        {"errors": [{"code": code, "title": title, "detail": detail}]},
        status=status,
        headers=headers,
    )


@pytest.fixture
async def api_server() -> AsyncIterator[Callable[[Handler], Awaitable[ApiServer]]]:
    """Start ``await api_server(handler)`` servers on 127.0.0.1; all stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> ApiServer:
        server = ApiServer(handler)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.dispatch)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        server.base_url = f"http://127.0.0.1:{port}/v2"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_reply(response: bytes) -> AsyncIterator[str]:
    """A 127.0.0.1 server that answers each request with ``response`` verbatim, then closes
    the connection (for replies aiohttp's own server would never send); yields its base URL."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v2"
    finally:
        server.close()
        await server.wait_closed()


class RecordingLimiter:
    """A custom rate limiter (the ``Limiter`` protocol) that records each ``acquire`` as
    ``(sender, message_type)`` in ``taken``, then awaits :meth:`wait` (nothing by default)."""

    def __init__(self) -> None:
        self.taken: list[tuple[str | None, str]] = []

    async def acquire(
        self,
        sender: str | None,
        message_type: str = "SMS",
        *,
        timeout: float | None = None,  # the Limiter protocol's
    ) -> None:
        self.taken.append((sender, message_type))
        await self.wait()

    async def wait(self) -> None:
        """What a grant waits for; override to hold or misbehave."""

    def on_response(
        self, sender: str | None, *, status: int, code: str | None, reset_after: float | None
    ) -> None:
        return None


def message_json(**overrides: Any) -> dict[str, Any]:
    """A realistic outbound message payload (docs/wire.md §4.1)."""
    payload: dict[str, Any] = {
        "record_type": "message",
        "id": "40385f64-5717-4562-b3fc-2c963f66afa6",
        "direction": "outbound",
        "type": "SMS",
        "messaging_profile_id": "4000eba1-a0c0-4563-9925-b25e842a7cb6",
        "organization_id": "b448f9cc-a842-4784-98e9-03c1a5872950",
        "from": {"phone_number": "+18005550101", "carrier": "Telnyx", "line_type": "VoIP"},
        "to": [
            {
                "phone_number": "+18445550001",
                "status": "queued",
                "carrier": "T-Mobile USA",
                "line_type": "Wireless",
            }
        ],
        "cc": [],
        "text": "Hello",
        "media": [],
        "encoding": "GSM-7",
        "parts": 1,
        "tags": [],
        "cost": None,
        "received_at": "2025-07-01T15:00:00.000+00:00",
        "sent_at": None,
        "completed_at": None,
        "valid_until": "2025-07-01T19:00:00.000+00:00",
        "errors": [],
        "wait_seconds": 0.0,
    }
    payload.update(overrides)
    return payload


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free 127.0.0.1 port, without persistence.

    Skipped when the binary is missing, except under CI (``CI=true``), where .ci/run installs
    it and a missing server must fail rather than silently skip the Redis tests.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server binary not found (apt-get install -y redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
