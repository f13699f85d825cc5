"""Send one SMS with the asyncio client, then read it back.

    export TELNYX_API_KEY=KEY...   # or paste what telnyx-msg mock-server prints
    python examples/send_one_async.py --from +18005550101 --to +18445550001 \\
        --text "Hello"

The key comes from ``$TELNYX_API_KEY`` and the API root from ``$TELNYX_BASE_URL``
(default ``https://api.telnyx.com/v2``), unless passed explicitly.
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
    """Send ``text`` from ``from_`` to ``to``; return it as Telnyx has it now."""
    async with telnyx_msg.AsyncClient(api_key, base_url=base_url) as client:
        try:
            message = await client.messages.send(from_=from_, to=to, text=text)
        except telnyx_msg.APIStatusError as exc:
            # "409 [40300] ... (request_id=...)": status, code, title, request id
            print(f"not sent: {exc}")
            raise
        recipient = message.to[0]
        print(f"accepted {message.id}: {recipient.phone_number} {recipient.status}")
        message = await client.messages.retrieve(message.id or "")
        status = message.to[0].status
        print(f"now {status}, {message.parts} part(s), {message.encoding}")
        return message


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--from", dest="from_", default="+18005550101")
    parser.add_argument("--to", default="+18445550001")
    parser.add_argument("--text", default="Hello from telnyx_msg")
    args = parser.parse_args()
    asyncio.run(main(args.from_, args.to, args.text))
