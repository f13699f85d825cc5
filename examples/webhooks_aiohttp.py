"""Receive verified Telnyx webhooks with aiohttp.

    export TELNYX_PUBLIC_KEY=...
      # Mission Control > Keys & Credentials > Public Key
    python examples/webhooks_aiohttp.py
      # serves POST http://127.0.0.1:8080/webhooks/telnyx

Point your messaging profile's webhook URL (or a message's ``webhook_url``) at that
path, through a tunnel if Telnyx cannot reach this machine. Every delivery is
verified (Ed25519, timestamp window, replayed event ids) and handled; the answer
(200, or 5xx so that Telnyx redelivers) comes after the handler returned, so no
event is lost.
"""

from __future__ import annotations

import argparse
import os

from aiohttp import web

import telnyx_msg
from telnyx_msg.receivers import AiohttpWebhookHandler, aiohttp_handler

PATH = "/webhooks/telnyx"
EVENTS = web.AppKey("events", list[telnyx_msg.WebhookEvent])
RECEIVER = web.AppKey("receiver", AiohttpWebhookHandler)


async def on_received(event: telnyx_msg.WebhookEvent) -> None:
    """An inbound message (``message.received``)."""
    message = event.payload
    if isinstance(message, telnyx_msg.Message) and message.from_ is not None:
        # !a escapes non-ASCII: a print failing on the terminal's encoding would
        # fail the delivery, and Telnyx would send it again and again.
        print(f"inbound from {message.from_.phone_number}: {message.text!a}")


async def on_delivery(event: telnyx_msg.WebhookEvent) -> None:
    """A delivery update (``message.sent`` or ``message.finalized``)."""
    message = event.payload
    if isinstance(message, telnyx_msg.Message):
        statuses = ", ".join(f"{r.phone_number} {r.status}" for r in message.to)
        print(f"{event.event_type} {message.id}: {statuses}")


def create_app(public_key: str | None = None) -> web.Application:
    """The aiohttp app; ``public_key`` defaults to ``$TELNYX_PUBLIC_KEY``."""
    key = public_key or os.environ.get("TELNYX_PUBLIC_KEY")
    if not key:
        raise SystemExit(
            "set TELNYX_PUBLIC_KEY (Mission Control > Keys & Credentials)"
        )
    verifier = telnyx_msg.WebhookVerifier(
        key, replay_store=telnyx_msg.MemoryReplayStore()
    )
    events: list[telnyx_msg.WebhookEvent] = []

    async def record(event: telnyx_msg.WebhookEvent) -> None:
        events.append(event)  # your own processing goes here; keep it idempotent

    async def received(event: telnyx_msg.WebhookEvent) -> None:
        await on_received(event)
        await record(event)

    async def delivery(event: telnyx_msg.WebhookEvent) -> None:
        await on_delivery(event)
        await record(event)

    handler = aiohttp_handler(
        verifier,
        {
            "message.received": received,
            "message.sent": delivery,
            "message.finalized": delivery,
        },
    )
    app = web.Application()
    app[EVENTS] = events
    app[RECEIVER] = handler
    app.router.add_post(PATH, handler)
    app.on_startup.append(handler.on_startup)  # a Redis that refuses us: no start
    app.on_cleanup.append(handler.on_cleanup)  # shutdown waits for running handlers
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)
