"""``fake.client()``: the SDK's AsyncClient wired to the fake (a smoke test of the pairing)."""

from __future__ import annotations

import pytest

from telnyx_msg.testing import DEFAULT_LONG_CODE, DEFAULT_TOLL_FREE, FakeTelnyx

from .helpers import Receiver

pytestmark = pytest.mark.anyio


async def test_client_sends_and_verifies_webhooks(
    telnyx_fake: FakeTelnyx, receiver: Receiver
) -> None:
    """fake.client() sends through the fake and unwraps the fake's signed webhooks."""
    telnyx_fake.set_webhook_url(receiver.url())
    async with telnyx_fake.client() as client:
        message = await client.messages.send(
            from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hello"
        )
        await telnyx_fake.settle()
        await telnyx_fake.inject_inbound(from_="+18445550001", to=DEFAULT_LONG_CODE, text="hi")
        assert message.id is not None
        retrieved = await client.messages.retrieve(message.id)
        assert retrieved.to[0].status == "delivered"
        events = [client.webhooks.unwrap(d.body, d.headers) for d in receiver.received]
        assert [e.event_type for e in events] == [
            "message.sent",
            "message.finalized",
            "message.received",
        ]
