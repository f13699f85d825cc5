"""One RateLimits shared by blocking Clients in threads, against a fake allowing 20 req/s.

Guards: no message lost or sent twice while the client whose loop owns the limiter is closed
mid-run; a short timeout during a long 10011 block fails at once with retry_after and sends
nothing; once another Client's loop has taken the limiter over, the closed Client's loop (which
asyncio runs once more to cancel its tasks) no longer touches the limiter's state.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import telnyx_msg
from telnyx_msg.testing import (
    DEFAULT_TOLL_FREE,
    ApiRateLimit,
    FakeConfig,
    FakeTelnyx,
    serve_in_thread,
)

MEDIA = ["https://example.com/a.png"]


def _client(
    fake: FakeTelnyx, limits: telnyx_msg.RateLimits, *, timeout: float = 60.0, max_retries: int = 2
) -> telnyx_msg.Client:
    return telnyx_msg.Client(
        fake.api_key,
        base_url=fake.base_url,
        rate_limits=limits,
        timeout=timeout,
        max_retries=max_retries,
    )


def test_owner_closed_mid_run_every_message_sent_once() -> None:
    """Closing the blocking Client whose loop owns a shared RateLimits, while 12 threads send
    SMS and MMS through other clients, loses no message and sends none twice: the calls that
    waited on the closed client end ClientClosedError (resent on another client), the others
    go on under the next owner loop. (A request on the wire through the closed client ends
    ``outcome_unknown``: not resent, and sent at most once.)"""
    n = 120
    config = FakeConfig(api_rate_limit=ApiRateLimit(limit=20, window=1.0), throughput=None)
    with serve_in_thread(config=config) as fake:
        limits = telnyx_msg.RateLimits()
        clients = [_client(fake, limits, timeout=15.0) for _ in range(4)]
        lock = threading.Lock()
        rng = random.Random(1)

        # clients[0]'s loop uses the limiter first: it owns it
        clients[0].messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550000", text="first")

        def send(i: int) -> str:
            media = MEDIA if i % 2 else None
            for _ in range(10):
                with lock:
                    client = rng.choice(clients)
                try:
                    client.messages.send(
                        from_=DEFAULT_TOLL_FREE, to=f"+1844556{i:04d}", text="x", media_urls=media
                    )
                    return "ok"
                except telnyx_msg.RateLimitError:
                    continue  # 429 after its retries while the limiter converges: not processed
                except telnyx_msg.APIConnectionError as exc:  # ClientClosedError among them
                    if exc.outcome_unknown:
                        return f"unknown {i}"  # on the wire as its client closed
                    continue
            return "gave up"

        try:
            with ThreadPoolExecutor(12) as pool:
                futures = [pool.submit(send, i) for i in range(n)]
                time.sleep(1.5)
                owner = clients[0]
                with lock:
                    clients[0] = _client(fake, limits, timeout=15.0)
                owner.close()  # the owner loop stops; the next caller's loop takes over
                results = [f.result(timeout=40) for f in futures]
        finally:
            for client in clients:
                client.close()
        unknown = {f"+1844556{int(r.split()[1]):04d}" for r in results if r != "ok"}
        assert all(r == "ok" or r.startswith("unknown ") for r in results), results
        assert len(unknown) <= 2, results
        outbound = [m for m in fake.messages() if m["direction"] == "outbound"]
        counts = collections.Counter(to["phone_number"] for m in outbound for to in m["to"])
        sent = {f"+1844556{i:04d}" for i in range(n)} - unknown
        assert sent <= set(counts)  # every send that returned was accepted
        assert max(counts.values()) == 1  # none twice


@pytest.mark.parametrize("media", [False, True])
def test_short_timeout_during_long_block_fails_at_once(media: bool) -> None:
    """After a 429 10011 with x-ratelimit-reset 30, a send with timeout=2 from another
    blocking Client sharing the limiter raises the client-side RateLimitError at once with
    retry_after near 29 s, and nothing reaches the fake."""
    config = FakeConfig(api_rate_limit=ApiRateLimit(limit=3, window=30.0), throughput=None)
    with serve_in_thread(config=config) as fake:
        limits = telnyx_msg.RateLimits()
        with _client(fake, limits, max_retries=0) as a, _client(fake, limits) as b:
            for i in range(3):
                a.messages.send(from_=DEFAULT_TOLL_FREE, to=f"+1844555{i:04d}", text="x")
            with pytest.raises(telnyx_msg.RateLimitError):  # Telnyx's 429 10011
                a.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550003", text="x")
            posts = fake.stats.count("POST", "/messages")
            started = time.monotonic()
            with pytest.raises(telnyx_msg.RateLimitError) as caught:
                b.with_options(timeout=2.0).messages.send(
                    from_=DEFAULT_TOLL_FREE,
                    to="+18445559999",
                    text="y",
                    media_urls=MEDIA if media else None,
                )
            assert time.monotonic() - started < 1.0
            assert caught.value.retry_after is not None
            assert 25.0 < caught.value.retry_after <= 30.0
            assert fake.stats.count("POST", "/messages") == posts


class _PausingLoop(asyncio.SelectorEventLoop):
    """Pauses (not running, not closed) after its first ``run_until_complete`` returns, i.e.
    between the end of the Client's portal and asyncio's cancelling of the tasks left."""

    def __init__(self, pause: threading.Event | None, resume: threading.Event) -> None:
        super().__init__()
        self._pause = pause
        self._resume = resume
        self._runs = 0

    def run_until_complete(self, future: Any) -> Any:
        self._runs += 1
        try:
            return super().run_until_complete(future)
        finally:
            if self._pause is not None and self._runs == 1:
                self._pause.set()
                self._resume.wait(10)


class _Policy(asyncio.DefaultEventLoopPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.pause_next = False
        self.loops: list[_PausingLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = _PausingLoop(self.paused if self.pause_next else None, self.resume)
        if self.pause_next:
            self.loops.append(loop)
        self.pause_next = False
        return loop


@pytest.fixture
def policy() -> Iterator[_Policy]:
    old = asyncio.get_event_loop_policy()
    new = _Policy()
    asyncio.set_event_loop_policy(new)
    try:
        yield new
    finally:
        new.resume.set()
        asyncio.set_event_loop_policy(old)


def test_old_owner_loop_runs_no_limiter_code_after_the_handover(policy: _Policy) -> None:
    """A send forwarded to the owner Client's loop is waiting on the limiter when that Client
    is closed: the sender's loop takes over and sends, and the closed Client's loop thread, as
    it cancels the forwarded task during its shutdown, must not touch the limiter's state."""
    threads: list[tuple[int, float]] = []

    def clock() -> float:  # the limiter reads the clock whenever it touches its state
        now = time.monotonic()
        threads.append((threading.get_ident(), now))
        return now

    limits = telnyx_msg.RateLimits(account_mps=0.5, burst=1, clock=clock)
    with serve_in_thread() as fake:
        policy.pause_next = True
        owner = telnyx_msg.Client(fake.api_key, base_url=fake.base_url, rate_limits=limits)
        other = telnyx_msg.Client(fake.api_key, base_url=fake.base_url, rate_limits=limits)
        try:
            owner.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550000", text="owner")
            owner_thread = threads[-1][0]
            owner_loop = policy.loops[0]
            results: list[object] = []

            def send_other() -> None:
                try:
                    results.append(
                        other.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="x")
                    )
                except Exception as exc:  # reported by the assertion below
                    results.append(exc)

            sender = threading.Thread(target=send_other)
            sender.start()
            time.sleep(0.3)  # forwarded to the owner loop, waiting there for a token
            closer = threading.Thread(target=owner.close)
            closer.start()
            assert policy.paused.wait(5)  # the owner loop stopped; its shutdown has not run
            deadline = time.monotonic() + 3
            while limits._owner._loop is owner_loop and time.monotonic() < deadline:
                time.sleep(0.01)
            assert limits._owner._loop is not owner_loop, "the other loop did not take over"
            handed_over = len(threads)
            policy.resume.set()  # the old loop cancels its tasks now
            closer.join(10)
            sender.join(10)
            assert not closer.is_alive()
            assert not sender.is_alive()
            assert len(results) == 1, results
            assert isinstance(results[0], telnyx_msg.Message), results
            late = [t for t, _ in threads[handed_over:] if t == owner_thread]
            assert not late, "the closed Client's loop thread ran limiter code after the handover"
        finally:
            policy.resume.set()
            owner.close()
            other.close()
