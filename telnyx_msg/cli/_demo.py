"""``telnyx-msg demo``: the whole flow against the embedded fake Telnyx, no account needed.

It starts :class:`~telnyx_msg.testing.FakeTelnyx` (with a request rate limit and a few injected
503s, so throttling and retries really happen), a local webhook receiver that verifies every
delivery with the fake's Ed25519 key, opts two recipients out with an inbound ``STOP``, then sends
``count`` messages concurrently through the real client (real rate limiter, real retries) and
waits for every accepted message's ``message.finalized`` webhook. Every number in the summary
is counted from what actually happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from typing import TextIO

import attrs
from aiohttp import web

from telnyx_msg._items import SendMessageItem
from telnyx_msg._ratelimit import RateLimits
from telnyx_msg.errors import WebhookVerificationError
from telnyx_msg.models import Message, WebhookEventType

SENDER = "+18005550101"  # the fake's seeded toll-free number
OPTED_OUT = ("+13125559001", "+13125559002")


@attrs.define
class DemoReport:
    """What the demo observed (printed by :func:`render`, asserted by the tests)."""

    requested: int = 0
    outcomes: Counter[str] = attrs.Factory(Counter)
    final: Counter[str] = attrs.Factory(Counter)
    webhooks_verified: int = 0
    webhooks_rejected: int = 0
    throttled: int = 0
    server_errors: int = 0
    http_requests: int = 0
    elapsed: float = 0.0
    send_elapsed: float = 0.0
    account_mps: float = 0.0
    pending: int = 0
    not_sent_reason: str | None = None  # the first not_sent outcome's error

    @property
    def accepted(self) -> int:
        """Messages Telnyx (the fake) accepted."""
        return self.outcomes["sent"]

    @property
    def complete(self) -> bool:
        """Every message sent or rejected, every accepted one finalized by a verified webhook
        (the command's exit 0)."""
        return (
            self.accepted > 0
            and self.pending == 0
            and self.webhooks_rejected == 0
            and self.outcomes["unknown"] == 0
            and self.outcomes["not_sent"] == 0
        )


def recipients(count: int) -> list[str]:
    """``count`` recipients: mostly fine, some that fail delivery, the opted-out ones (at
    least one fine: ``--count 1`` sent only to an opted-out number, and failed)."""
    numbers = [f"+1312555{n:04d}" for n in range(count)]
    for i, special in enumerate((*OPTED_OUT, "+13125550666")):
        if i < count - 1:
            numbers[(i * 97 + 13) % count] = special
    return numbers


async def run_demo(
    count: int = 300, concurrency: int = 50, account_mps: float = 100.0, out: TextIO | None = None
) -> DemoReport:
    """Run the demo flow and return its report (progress lines go to ``out``)."""
    from telnyx_msg.testing import ApiRateLimit, FakeConfig, FakeTelnyx, Faults

    report = DemoReport(requested=count, account_mps=account_mps)
    finalized: dict[str, str] = {}
    all_final = asyncio.Event()
    started = time.perf_counter()

    def say(text: str) -> None:
        if out is not None:
            print(text, file=out, flush=True)

    config = FakeConfig(
        delivery_delay=0.2,
        # Telnyx's API request limit, set below our send rate so 10011 throttling happens.
        api_rate_limit=ApiRateLimit(limit=max(10, int(account_mps * 0.8)), window=1.0),
        faults=Faults(error_rate=0.02, error_statuses=(503,), match=("POST /messages",), seed=7),
    )
    async with FakeTelnyx(config=config) as fake:
        client = fake.client(rate_limits=RateLimits(account_mps=account_mps), max_retries=4)
        sending_done = asyncio.Event()

        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                event = await client.webhooks.aunwrap(body, request.headers)
            except WebhookVerificationError:
                report.webhooks_rejected += 1
                return web.Response(status=400)
            report.webhooks_verified += 1
            if (
                event.event_type == WebhookEventType.MESSAGE_FINALIZED
                and isinstance(event.payload, Message)
                and event.payload.id
            ):
                status = str(event.payload.to[0].status) if event.payload.to else "unknown"
                finalized.setdefault(event.payload.id, status)
                if len(finalized) >= report.accepted > 0 and sending_done.is_set():
                    all_final.set()
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/webhooks", receive)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            hook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks"
            fake.set_webhook_url(hook_url)
            say(f"fake Telnyx API   {fake.base_url}  (key {fake.api_key!r})")
            say(f"webhook receiver  {hook_url}  (Ed25519 key {fake.public_key})")
            for number in OPTED_OUT:
                await fake.inject_inbound(from_=number, to=SENDER, text="STOP")
            say(
                f"sending {count} messages from {SENDER}, concurrency {concurrency}, "
                f"client limit {account_mps:g} msg/s after a first burst of "
                f"{math.ceil(account_mps)} ..."
            )
            accepted_ids: list[str] = []
            send_started = time.perf_counter()
            async with client:
                requests = (
                    SendMessageItem(
                        from_=SENDER, to=to, text=f"Demo message {i}", webhook_url=hook_url
                    )
                    for i, to in enumerate(recipients(count))
                )
                async for outcome in client.messages.send_many(requests, concurrency=concurrency):
                    report.outcomes[outcome.status] += 1
                    if outcome.status == "not_sent" and report.not_sent_reason is None:
                        report.not_sent_reason = str(outcome.error)
                    if outcome.message is not None and outcome.message.id:
                        accepted_ids.append(outcome.message.id)
                report.send_elapsed = time.perf_counter() - send_started
                sending_done.set()
                say(f"accepted {report.accepted}; waiting for delivery webhooks ...")
                if len(finalized) >= report.accepted:
                    all_final.set()
                with contextlib.suppress(asyncio.TimeoutError):  # reported as "awaiting webhook"
                    await asyncio.wait_for(all_final.wait(), timeout=30)
            report.pending = len(set(accepted_ids) - set(finalized))
            report.final.update(finalized[i] for i in accepted_ids if i in finalized)
            report.throttled = fake.stats.rate_limited + fake.stats.queue_full
            report.server_errors = fake.stats.faults
            report.http_requests = fake.stats.count("POST", "/messages")
        finally:
            await runner.cleanup()
    report.elapsed = time.perf_counter() - started
    return report


def render(report: DemoReport) -> str:
    """The human summary of a demo run."""
    rate = report.accepted / report.send_elapsed if report.send_elapsed else 0.0
    delivered = report.final["delivered"]
    failed = sum(n for status, n in report.final.items() if status != "delivered")
    lines = [
        "",
        f"telnyx-msg demo: {report.requested} messages against the embedded fake Telnyx",
        f"  sent (accepted)       {report.accepted:>6}",
        f"  rejected              {report.outcomes['rejected']:>6}   "
        "(recipients who texted STOP: error 40300)",
        f"  outcome unknown       {report.outcomes['unknown']:>6}   (never resent)",
        f"  not sent              {report.outcomes['not_sent']:>6}"
        + (f"   (first: {report.not_sent_reason})" if report.not_sent_reason else ""),
        f"  delivered             {delivered:>6}   (from verified message.finalized webhooks)",
        f"  delivery failed       {failed:>6}",
        f"  awaiting webhook      {report.pending:>6}",
        f"  throttled (429)       {report.throttled:>6}   (waited and retried automatically)",
        f"  server errors (503)   {report.server_errors:>6}   (retried automatically)",
        f"  send requests         {report.http_requests:>6}   (HTTP POSTs, retries included)",
        f"  webhooks verified     {report.webhooks_verified:>6}   "
        f"(Ed25519; {report.webhooks_rejected} rejected)",
        f"  time taken            {report.elapsed:>6.1f} s "
        f"(sending {report.send_elapsed:.1f} s, {rate:.0f} messages/s; "
        f"client limit {report.account_mps:g}/s after a burst of {math.ceil(report.account_mps)})",
    ]
    return "\n".join(lines)
