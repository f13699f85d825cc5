"""An async test under pytest-asyncio (strict mode; in auto mode, no marker)."""

import pytest

from telnyx_msg.testing import DEFAULT_TOLL_FREE, FakeTelnyx


@pytest.mark.asyncio
async def test_message_is_delivered(telnyx_fake: FakeTelnyx) -> None:
    async with telnyx_fake.client() as client:
        msg = await client.messages.send(
            from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi"
        )
        await telnyx_fake.settle()  # queued -> sent -> delivered
        fetched = await client.messages.retrieve(msg.id)
        assert fetched.to[0].status == "delivered"
