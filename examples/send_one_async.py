"""Send one SMS with the asyncio client, then read it back.

    export TELNYX_API_KEY=KEY...          # or: telnyx-msg mock-server, and export what it prints
    python examples/send_one_async.py --from +18005550101 --to +18445550001 --text "Hello"

The key comes from ``$TELNYX_API_KEY`` and the API root from ``$TELNYX_BASE_URL`` (default
``https://api.telnyx.com/v2``), unless passed explicitly.
"""

from __future__ import annotations

import argparse
import asyncio

import telnyx_msg


async def main(
    from_: str,
    to: str,
    text: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
) -> telnyx_msg.Message:
    """Send ``text`` from ``from_`` to ``to``; return the message as Telnyx reports it now."""
    async with telnyx_msg.AsyncClient(api_key, base_url=base_url) as client:
        try:
            message = await client.messages.send(from_=from_, to=to, text=text)
        except telnyx_msg.APIStatusError as exc:
            # e.g. "409 [40300] ... (request_id=...)": status, Telnyx code, title, request id
            print(f"not sent: {exc}")
            raise
        print(f"accepted {message.id}: {message.to[0].phone_number} {message.to[0].status}")
        message = await client.messages.retrieve(message.id or "")
        print(f"now {message.to[0].status}, {message.parts} part(s), {message.encoding}")
        return message


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="from_", default="+18005550101")
    parser.add_argument("--to", default="+18445550001")
    parser.add_argument("--text", default="Hello from telnyx_msg")
    args = parser.parse_args()
    asyncio.run(main(args.from_, args.to, args.text))
