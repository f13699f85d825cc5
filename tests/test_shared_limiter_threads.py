"""One RateLimits shared by blocking Clients in threads, against a fake allowing 20 req/s.

Guards (passes on the current code): no message lost or sent twice while the client whose
loop owns the limiter is closed mid-run, and a short timeout during a long 10011 block fails
at once with retry_after and sends nothing.
"""

from __future__ import annotations

import collections
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
