"""Send one SMS with the blocking client (scripts, notebooks, Flask/Django views).

    export TELNYX_API_KEY=KEY...   # or paste what telnyx-msg mock-server prints
    python examples/send_one_blocking.py --from +18005550101 --to +18445550001 \\
        --text "Hello"

An idempotency key makes the send safe to retry after a timeout or a dropped
connection: Telnyx answers a repeated key with the first result instead of sending a
second message.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import telnyx_msg


def main(
    from_: str,
    to: str,
    text: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
) -> telnyx_msg.Message | None:
    """Send ``text`` from ``from_`` to ``to``; the message, or None if refused."""
    options = telnyx_msg.RequestOptions(idempotency_key=str(uuid.uuid4()))
    with telnyx_msg.Client(api_key, base_url=base_url) as client:
        try:
            message = client.messages.send(
                from_=from_, to=to, text=text, options=options
            )
        except (
            telnyx_msg.ValidationError
        ) as exc:  # caught before any request was made
            print(f"invalid {exc.field}: {exc.message}")
            return None
        except telnyx_msg.APIStatusError as exc:
            print(f"refused: {exc}")
            return None
    recipient = message.to[0]
    print(f"accepted {message.id}: {recipient.phone_number} {recipient.status}")
    return message


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--from", dest="from_", default="+18005550101")
    parser.add_argument("--to", default="+18445550001")
    parser.add_argument("--text", default="Hello from telnyx_msg")
    args = parser.parse_args()
    sys.exit(0 if main(args.from_, args.to, args.text) is not None else 1)
