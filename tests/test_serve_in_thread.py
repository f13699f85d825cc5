"""``serve_in_thread`` entered and left from plain code and from inside a running event loop.

The fake serves on its own loop in its own thread; leaving the block must only talk to that
thread (never run a loop in the caller's thread), so it works the same from an ``async def``
test, and an error raised in the block is the one the caller sees.
"""

from __future__ import annotations

import inspect
import socket
import threading

import pytest

from telnyx_msg.testing import DEFAULT_TOLL_FREE, FakeTelnyx, serve_in_thread

THREAD_NAME = "telnyx_msg-fake"


def fake_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def assert_stopped(fake: FakeTelnyx, port: int) -> None:
    """The fake's thread ended and nothing listens on its port any more."""
    assert fake_threads() == []
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 5):
        pass


@pytest.mark.anyio
async def test_entered_and_left_inside_a_running_loop() -> None:
    """From an async test: the fake answers the test's client, and leaving the block inside
    the test's loop closes it and stops its thread."""
    assert fake_threads() == []
    with serve_in_thread() as fake:
        port = fake.port
        assert len(fake_threads()) == 1
        async with fake.client() as client:
            sent = await client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi")
            await fake.settle()
            assert (await client.messages.retrieve(str(sent.id))).to[0].status == "delivered"
        assert [m["id"] for m in fake.messages()] == [sent.id]
    assert_stopped(fake, port)


@pytest.mark.anyio
async def test_an_error_in_the_block_is_not_hidden_inside_a_running_loop() -> None:
    """The block's own exception reaches the async test, and the fake still stops."""
    served: list[FakeTelnyx] = []

    def fail_inside() -> None:
        with serve_in_thread() as fake:
            served.append(fake)
            raise ZeroDivisionError("the test's own error")

    with pytest.raises(ZeroDivisionError, match="the test's own error"):
        fail_inside()
    assert_stopped(served[0], served[0].port)


def test_entered_and_left_from_plain_code() -> None:
    """From synchronous code (no loop running): the same, with ``fake.run`` for coroutines."""
    from telnyx_msg import Client

    with serve_in_thread() as fake:
        port = fake.port
        with Client(fake.api_key, base_url=fake.base_url) as client:
            sent = client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi")
        fake.run(fake.settle())
        assert [m["id"] for m in fake.messages()] == [sent.id]
    assert_stopped(fake, port)


@pytest.mark.anyio
async def test_run_in_async_code_is_a_clear_error_and_nothing_else() -> None:
    """``fake.run(...)`` from the fake's own loop raises, and closes the coroutine it was
    given (the error came with a "coroutine ... was never awaited" warning)."""
    async with FakeTelnyx() as fake:
        coroutine = fake.settle()
        with pytest.raises(RuntimeError, match="await the coroutine"):
            fake.run(coroutine)
        # Closed: nothing left to warn about when it is collected.
        assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED


def test_thread_stops_when_the_fake_cannot_start() -> None:
    """A fake that fails to start (its port is taken) raises, and leaves no thread behind."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError), serve_in_thread(port=port):
            pass
    assert [t for t in threading.enumerate() if t.name == "telnyx_msg-fake"] == []


def test_run_timing_out_cancels_the_coroutine_and_raises_timeout_error() -> None:
    """``fake.run(coro, timeout)`` that times out raises the builtin TimeoutError (on 3.10 it
    was concurrent.futures.TimeoutError, which ``except TimeoutError`` misses) and cancels the
    coroutine, which ran on in the fake's thread (a timed-out inject went on delivering)."""
    import asyncio

    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with serve_in_thread() as fake:
        with pytest.raises(TimeoutError, match="not done within"):
            fake.run(slow(), timeout=0.05)
        assert cancelled.wait(5)


def test_run_after_the_thread_stopped_says_so() -> None:
    """Sync code calling ``fake.run(...)`` after leaving ``serve_in_thread`` gets an error
    naming the real cause (the fake's thread/loop stopped), and the coroutine is closed."""
    with serve_in_thread() as fake:
        pass
    coroutine = fake.settle()
    with pytest.raises(RuntimeError) as caught:
        fake.run(coroutine)
    message = str(caught.value)
    assert "await the coroutine" not in message, message
    assert "stopped" in message, message
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED
