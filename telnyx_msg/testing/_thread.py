"""``serve_in_thread``: a started FakeTelnyx on a background thread, for synchronous code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from telnyx_msg.testing._fake import FakeTelnyx

__all__ = ["serve_in_thread"]

_START_TIMEOUT = 30.0


@contextlib.contextmanager
def serve_in_thread(**kwargs: Any) -> Iterator[FakeTelnyx]:
    """A :class:`FakeTelnyx` serving on its own event loop in a background thread.

    ``with serve_in_thread(config=FakeConfig(...)) as fake:`` works from synchronous tests
    (Flask, Django, scripts) and from async tests on any loop: the fake's coroutines
    (``settle``, ``inject_inbound``, ...) can be awaited from another loop, or run from
    synchronous code with ``fake.run(fake.settle())``. Keyword arguments go to ``FakeTelnyx``.
    Leaving the block closes the fake, stops the loop and joins the thread.
    """
    fake = FakeTelnyx(**kwargs)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="telnyx_msg-fake", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(_START_TIMEOUT)
        yield fake
    finally:
        try:
            asyncio.run_coroutine_threadsafe(fake.close(), loop).result(_START_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_START_TIMEOUT)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
