"""``serve_in_thread``: a started FakeTelnyx on a background thread, for sync and async code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from telnyx_msg.testing._fake import FakeTelnyx

__all__ = ["serve_in_thread"]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0

T = TypeVar("T")


@contextlib.contextmanager
def serve_in_thread(**kwargs: Any) -> Iterator[FakeTelnyx]:
    """A :class:`FakeTelnyx` serving on its own event loop in a background thread.

    ``with serve_in_thread(config=FakeConfig(...)) as fake:`` works from synchronous tests
    (Flask, Django, scripts) and from async tests on any loop: the fake's coroutines
    (``settle``, ``inject_inbound``, ...) can be awaited from another loop, or run from
    synchronous code with ``fake.run(fake.settle())``. Keyword arguments go to ``FakeTelnyx``.
    Leaving the block closes the fake, stops the loop and joins the thread.

    Entering and leaving only hand work to the fake's thread and wait for it (at most 30 s
    each), so both work inside a running event loop too; that loop is blocked meanwhile.
    """
    fake = FakeTelnyx(**kwargs)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=_serve, args=(loop,), name="telnyx_msg-fake", daemon=True)
    thread.start()
    try:
        _run_there(loop, fake.start(), _START_TIMEOUT, "start")
        yield fake
    finally:
        try:
            _run_there(loop, fake.close(), _STOP_TIMEOUT, "close")
        finally:
            # The thread itself shuts the loop down and closes it once run_forever returns.
            with contextlib.suppress(RuntimeError):  # already closed: the thread has ended
                loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            if thread.is_alive():
                raise RuntimeError(
                    f"the fake's event loop thread did not stop within {_STOP_TIMEOUT:g} s"
                )


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """The thread's body: run ``loop`` until stopped, then clean it up and close it here."""
    try:
        loop.run_forever()
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _run_there(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float, what: str
) -> T:
    """Run ``coro`` on ``loop`` (in its thread) and wait for it from this thread, bounded."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"the fake did not {what} within {timeout:g} s") from None
