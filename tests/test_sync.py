"""The blocking facade: plain code, inside a running loop, lifecycle and cleanup."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from tests.conftest import json_response, message_json


@pytest.fixture
def threaded_server() -> Iterator[str]:
    """An API server on its own loop thread, so a blocking caller cannot starve it."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        if request.method == "GET" and request.path.endswith("/messaging_optouts"):
            return json_response(
                {
                    "data": [{"from": "+1800", "to": "+1844"}],
                    "meta": {"page_number": 1, "total_pages": 1},
                }
            )
        return json_response({"data": message_json()})

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/v2"
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    yield state["url"]
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "telnyx_msg-client"]


def test_blocking_calls_from_plain_code(threaded_server: str) -> None:
    """Sends, lists and with_options work from ordinary blocking code."""
    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None) as client:
        message = client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
        assert isinstance(message, telnyx_msg.Message)
        assert message.to[0].phone_number == "+18445550001"
        assert [o.to for o in client.messaging_optouts.list()] == ["+1844"]
        fast = client.with_options(timeout=5.0, max_retries=0)
        assert fast.messages.retrieve("m").id == message.id
        fast.close()  # a view's close leaves the client running
        assert client.messages.retrieve("m").id == message.id
    assert _portal_threads() == []


@pytest.mark.anyio
async def test_blocking_client_inside_running_loop(threaded_server: str) -> None:
    """Called from a coroutine (as in Jupyter), the facade still works: it has its own loop."""
    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None) as client:
        message = client.messages.retrieve("m")
    assert message.id is not None
    assert asyncio.get_running_loop().is_running()


def test_close_is_idempotent_and_final(threaded_server: str) -> None:
    """close() stops the loop thread; a second close is harmless; later calls raise."""
    client = telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None)
    client.messages.retrieve("m")
    assert len(_portal_threads()) == 1
    client.close()
    client.close()
    assert _portal_threads() == []
    with pytest.raises(telnyx_msg.TelnyxError, match="closed"):
        client.messages.retrieve("m")


def test_validation_happens_in_caller_thread() -> None:
    """Bad arguments raise ValidationError directly, before any thread hop or I/O."""
    with (
        telnyx_msg.Client("k", base_url="http://127.0.0.1:9/v2", rate_limits=None) as client,
        pytest.raises(telnyx_msg.ValidationError) as caught,
    ):
        client.messages.send(from_="+18005550101", to="555-0001", text="Hi")
    assert caught.value.field == "to"


def test_unclosed_client_warns_and_cleans_up() -> None:
    """A Client dropped without close() emits ResourceWarning and stops its thread."""
    client = telnyx_msg.Client("k", base_url="http://127.0.0.1:9/v2", rate_limits=None)
    assert len(_portal_threads()) == 1
    with pytest.warns(ResourceWarning, match="not closed"):  # noqa: PT031 - del may or may not
        del client  # collect it at once (cycles), so both steps belong in the block
        gc.collect()
    assert _portal_threads() == []


def test_session_argument_rejected() -> None:
    """A foreign aiohttp session cannot serve the facade's own loop: clear error."""
    with pytest.raises(telnyx_msg.ConfigurationError, match="session"):
        telnyx_msg.Client("k", session=object())  # type: ignore[arg-type]
