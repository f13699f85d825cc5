"""Receive verified Telnyx webhooks in a FastAPI (or any ASGI) application.

    pip install fastapi uvicorn           # not dependencies of telnyx_msg
    export TELNYX_PUBLIC_KEY=...
      # Mission Control > Keys & Credentials > Public Key
    python examples/webhooks_fastapi.py
      # serves POST http://127.0.0.1:8000/webhooks/telnyx

``telnyx_msg.receivers.asgi_app`` is a plain ASGI 3 application with no Starlette
dependency: FastAPI serves it as a route, and any ASGI server can serve it on its
own (``uvicorn module:receiver``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import telnyx_msg
from telnyx_msg.receivers import AsgiWebhookApp, asgi_app

PATH = "/webhooks/telnyx"


def create_receiver(
    public_key: str | None = None,
    events: list[telnyx_msg.WebhookEvent] | None = None,
) -> AsgiWebhookApp:
    """The ASGI receiver; handled events are appended to ``events`` (if given)."""
    key = public_key or os.environ.get("TELNYX_PUBLIC_KEY")
    if not key:
        raise SystemExit(
            "set TELNYX_PUBLIC_KEY (Mission Control > Keys & Credentials)"
        )
    verifier = telnyx_msg.WebhookVerifier(
        key, replay_store=telnyx_msg.MemoryReplayStore()
    )
    seen = events if events is not None else []

    async def on_event(event: telnyx_msg.WebhookEvent) -> None:
        message = event.payload
        if isinstance(message, telnyx_msg.Message):
            statuses = ", ".join(f"{r.phone_number} {r.status}" for r in message.to)
            # !a escapes non-ASCII: a print failing on the terminal's encoding would
            # fail the delivery, and Telnyx would send it again and again.
            print(f"{event.event_type} {message.id}: {message.text!a} {statuses}")
        seen.append(event)  # your own processing goes here; keep it idempotent

    return asgi_app(
        verifier,
        {
            "message.received": on_event,
            "message.sent": on_event,
            "message.finalized": on_event,
        },
    )


def create_app(receiver: AsgiWebhookApp) -> Any:
    """A FastAPI application serving ``receiver`` at ``PATH``."""
    try:
        from fastapi import FastAPI
        from starlette.routing import Route
    except ImportError:
        raise SystemExit(
            "this example needs FastAPI: pip install fastapi uvicorn"
        ) from None

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncGenerator[None, None]:
        # With Redis (queue=, a Redis replay store): refused credentials = no start.
        await receiver.startup()
        yield
        await receiver.aclose()  # wait for running handlers on shutdown

    # A Route whose endpoint is not a function serves it as an ASGI app.
    route = Route(PATH, receiver, methods=["POST"])
    return FastAPI(routes=[route], lifespan=lifespan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        import uvicorn
    except ImportError:
        raise SystemExit(
            "this example needs uvicorn: pip install fastapi uvicorn"
        ) from None
    uvicorn.run(create_app(create_receiver()), host=args.host, port=args.port)
