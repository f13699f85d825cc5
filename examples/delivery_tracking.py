r"""Send a message and wait for its final delivery status, from verified webhooks.

    export TELNYX_API_KEY=KEY... TELNYX_PUBLIC_KEY=...  # or: telnyx-msg mock-server
    python examples/delivery_tracking.py --to +18445550001 --port 8080 \
        --public-url https://<tunnel>/webhooks/telnyx   # tunnel to port 8080

A local aiohttp receiver verifies the ``message.sent`` and ``message.finalized``
webhooks and feeds them to a ``DeliveryTracker``; the message is sent with
``webhook_url`` pointing at the receiver, so no profile setting is needed.
``--public-url`` is the address Telnyx can reach (e.g. a tunnel); without it the
local address is used, which works with the fake server.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

import telnyx_msg
from telnyx_msg.receivers import aiohttp_handler

PATH = "/webhooks/telnyx"


async def main(
    from_: str,
    to: str,
    text: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    public_url: str | None = None,
    timeout: float = 120.0,
    api_key: str | None = None,
    base_url: str | None = None,
    public_key: str | None = None,
) -> telnyx_msg.Message:
    """Send one message; return it in its final state (delivered, failed, ...)."""
    tracker = telnyx_msg.DeliveryTracker()
    async with telnyx_msg.AsyncClient(
        api_key, base_url=base_url, webhook_public_key=public_key
    ) as client:
        handler = aiohttp_handler(
            client.webhooks.verifier,
            {
                "message.sent": tracker.handle,
                "message.finalized": tracker.handle,
            },
        )
        app = web.Application()
        app.router.add_post(PATH, handler)
        app.on_cleanup.append(handler.on_cleanup)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            bound_port = runner.addresses[0][1]  # the real port when port=0
            url = public_url or f"http://{host}:{bound_port}{PATH}"
            message = await client.messages.send(
                from_=from_, to=to, text=text, webhook_url=url
            )
            print(f"sent {message.id}; waiting for its final status")
            final = await tracker.final_status(message.id, timeout=timeout)
        finally:
            await runner.cleanup()
    for recipient in final.to:
        print(f"{recipient.phone_number}: {recipient.status}")
    for error in final.errors:
        print(f"  error {error.code}: {error.title}")
    return final


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--from", dest="from_", default="+18005550101")
    parser.add_argument("--to", default="+18445550001")
    parser.add_argument("--text", default="Hello from telnyx_msg")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8080, help="0 picks a free port"
    )
    parser.add_argument(
        "--public-url", help="the receiver's URL as Telnyx reaches it"
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    asyncio.run(
        main(
            args.from_,
            args.to,
            args.text,
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            timeout=args.timeout,
        )
    )
