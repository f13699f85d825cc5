"""Set up a sender: create a messaging profile with a webhook URL, assign a number
to it, send, and receive the delivery webhooks the profile's URL gets.

    export TELNYX_API_KEY=KEY... TELNYX_PUBLIC_KEY=...  # or: telnyx-msg mock-server
    python examples/setup_sender.py --number +13125550100 --to +18445550001 \\
        --public-url https://<tunnel>/webhooks/telnyx

A local aiohttp receiver verifies the webhooks and feeds them to a
``DeliveryTracker``. The message is sent without a ``webhook_url`` of its own, so
the webhooks go to the profile's URL. ``--public-url`` is the address Telnyx can
reach (e.g. a tunnel); without it the local address is used, which works with the
fake server. A number only sends once it belongs to a messaging profile; Telnyx
refuses it otherwise (422, code 40305).
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

import telnyx_msg
from telnyx_msg.models import MessagingProfile
from telnyx_msg.receivers import aiohttp_handler

PATH = "/webhooks/telnyx"


async def main(
    number: str,
    to: str,
    text: str,
    *,
    name: str = "telnyx_msg example",
    destinations: tuple[str, ...] = ("US",),
    host: str = "127.0.0.1",
    port: int = 8080,
    public_url: str | None = None,
    timeout: float = 120.0,
    api_key: str | None = None,
    base_url: str | None = None,
    public_key: str | None = None,
) -> tuple[MessagingProfile, telnyx_msg.Message]:
    """Create the profile, assign ``number``, send; return the profile and the final
    message.
    """
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
            url = public_url or f"http://{host}:{runner.addresses[0][1]}{PATH}"
            # 1. A profile whose webhooks go to our receiver.
            profile = await client.messaging_profiles.create(
                name=name,
                whitelisted_destinations=list(destinations),
                webhook_url=url,
            )
            print(f"profile {profile.id}: webhooks to {profile.webhook_url}")
            # 2. The number sends for that profile from now on.
            settings = await client.phone_numbers.messaging.update(
                number, messaging_profile_id=profile.id
            )
            profile_id = settings.messaging_profile_id
            print(f"{settings.phone_number} assigned to {profile_id}")
            # 3. Send; the delivery webhooks arrive at the profile's URL.
            message = await client.messages.send(from_=number, to=to, text=text)
            print(f"sent {message.id}; waiting for its final status")
            final = await tracker.final_status(message.id or "", timeout=timeout)
        finally:
            await runner.cleanup()
    for recipient in final.to:
        print(f"{recipient.phone_number}: {recipient.status}")
    return profile, final


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument(
        "--number", default="+13125550100", help="a number of your account"
    )
    parser.add_argument("--to", default="+18445550001")
    parser.add_argument("--text", default="Hello from telnyx_msg")
    parser.add_argument("--name", default="telnyx_msg example")
    parser.add_argument(
        "--destinations",
        default="US",
        help="comma-separated ISO country codes, or *",
    )
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
            args.number,
            args.to,
            args.text,
            name=args.name,
            destinations=tuple(args.destinations.split(",")),
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            timeout=args.timeout,
        )
    )
