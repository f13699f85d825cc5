"""A plain (sync) test, as in a Flask or Django project, with a blocking Client."""

import telnyx_msg
from telnyx_msg.testing import DEFAULT_TOLL_FREE, FakeTelnyx


def test_message_is_delivered(
    telnyx_fake: FakeTelnyx, telnyx_client: telnyx_msg.Client
) -> None:
    msg = telnyx_client.messages.send(
        from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi"
    )
    telnyx_fake.run(telnyx_fake.settle())  # the fake's coroutines, from sync code
    assert telnyx_client.messages.retrieve(msg.id).to[0].status == "delivered"
    assert [m["to"][0]["phone_number"] for m in telnyx_fake.messages()] == [
        "+18445550001"
    ]
