"""Static checks of the public API's types: run ``mypy --strict tests/typing/api.py``.

Never executed (pytest collects only ``test_*.py``). ``assert_type`` pins the inferred return
types; each ``# type: ignore[call-arg]`` marks a misspelled keyword, and because mypy runs with
``warn_unused_ignores`` (part of ``--strict``) an ignore that were not needed would itself be an
error, which proves the typo is caught.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import telnyx_msg
from telnyx_msg import RequestOptions, receivers
from telnyx_msg._pagination import AsyncPager, SyncPager
from telnyx_msg.models import (
    AlphanumericSenderId,
    AutorespConfig,
    HostedNumber,
    HostedNumberOrder,
    LinkClick,
    Message,
    MessagingNumbersBulkUpdate,
    MessagingProfile,
    OptOut,
    Page,
    ProfileMetrics,
    ProfileMetricsOverview,
    ShortCode,
    WhatsAppMessage,
)
from telnyx_msg.testing import MockRequest, MockResponse, MockTransport

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

FROM = "+18005550101"
TO = "+18445550001"
PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
WHATSAPP = {"type": "text", "text": {"body": "Hi"}}


async def async_api(client: telnyx_msg.AsyncClient) -> None:
    """The AsyncClient: awaited methods return models, list methods return AsyncPager."""
    async for outcome in client.messages.send_many([{"from_": FROM, "to": TO, "text": "Hi"}]):
        assert_type(outcome, telnyx_msg.SendOutcome)
    # Stopping early as docs/bulk-sending.md shows: aclose(), or contextlib.aclosing.
    outcomes = client.messages.send_many([{"from_": FROM, "to": TO, "text": "Hi"}])
    await outcomes.aclose()
    async with contextlib.aclosing(client.messages.send_many([])) as closing:
        async for outcome in closing:
            assert_type(outcome, telnyx_msg.SendOutcome)
    await client.messaging_optouts.list().pages().aclose()
    assert_type(await client.messages.send(to=TO, from_=FROM, text="Hi"), Message)
    assert_type(
        await client.messages.send(
            to=TO,
            from_=FROM,
            text="Hi",
            send_at=datetime(2030, 1, 1, tzinfo=timezone.utc),
            options=RequestOptions(idempotency_key="abc_123", timeout=5.0),
        ),
        Message,
    )
    assert_type(await client.messages.send_long_code(from_=FROM, to=TO, text="Hi"), Message)
    assert_type(await client.messages.send_group_mms(from_=FROM, to=[TO], text="Hi"), Message)
    assert_type(
        await client.messages.schedule(
            to=TO, from_=FROM, text="Hi", send_at="2030-01-01T12:00:00Z"
        ),
        Message,
    )
    assert_type(
        await client.messages.send_whatsapp(from_=FROM, to=TO, whatsapp_message=WHATSAPP),
        WhatsAppMessage,
    )
    assert_type(await client.messages.retrieve("m1"), Message)
    assert_type(await client.messages.cancel_scheduled("m1"), Message)
    assert_type(await client.messages.retrieve_group_messages("m1"), list[Message])

    numbers = client.messaging_hosted_numbers.list(page_size=250)
    assert_type(numbers, AsyncPager[HostedNumber])
    async for number in numbers:
        assert_type(number, HostedNumber)
    assert_type(await numbers.first_page(), Page[HostedNumber])
    assert_type(client.messaging_optouts.list(), AsyncPager[OptOut])
    assert_type(client.alphanumeric_sender_ids.list(), AsyncPager[AlphanumericSenderId])
    assert_type(await client.messaging_hosted_numbers.update("n1", tags=["a"]), HostedNumber)

    assert_type(
        await client.messaging_profile_metrics.list(time_frame="24h"), ProfileMetricsOverview
    )
    assert_type(await client.messaging_profiles.retrieve_metrics(PROFILE), ProfileMetrics)
    assert_type(
        await client.messaging_profiles.actions.regenerate_secret(PROFILE), MessagingProfile
    )

    profiles = client.messaging_profiles
    assert_type(profiles.list(filter={"name": {"contains": "Acme"}}), AsyncPager[MessagingProfile])
    assert_type(
        await profiles.create(name="Acme", whitelisted_destinations=["US"]), MessagingProfile
    )
    assert_type(await profiles.retrieve(PROFILE), MessagingProfile)
    assert_type(await profiles.update(PROFILE, webhook_url=""), MessagingProfile)
    assert_type(await profiles.delete(PROFILE), MessagingProfile)
    assert_type(profiles.list_phone_numbers(PROFILE), AsyncPager[HostedNumber])
    assert_type(profiles.list_short_codes(PROFILE), AsyncPager[ShortCode])
    assert_type(
        client.phone_numbers.messaging.list(filter={"type": "longcode"}), AsyncPager[HostedNumber]
    )
    assert_type(await client.phone_numbers.messaging.retrieve(FROM), HostedNumber)
    assert_type(
        await client.phone_numbers.messaging.update(FROM, messaging_profile_id=""), HostedNumber
    )
    assert_type(client.short_codes.list(), AsyncPager[ShortCode])
    assert_type(await client.short_codes.retrieve("s1"), ShortCode)
    assert_type(await client.short_codes.update("s1", messaging_profile_id=PROFILE), ShortCode)
    assert_type(await client.messaging_hosted_numbers.delete("n1"), HostedNumberOrder)
    bulk = client.messaging_numbers_bulk_updates
    assert_type(
        await bulk.create(messaging_profile_id=PROFILE, numbers=[FROM]), MessagingNumbersBulkUpdate
    )
    assert_type(await bulk.retrieve("o1"), MessagingNumbersBulkUpdate)
    await profiles.create(name="Acme")  # type: ignore[call-arg]
    await client.short_codes.update("s1")  # type: ignore[call-arg]
    await profiles.update(PROFILE, created_at="x")  # type: ignore[call-arg]
    client.phone_numbers.messaging.list(filter={"type": "long-code"})  # type: ignore[arg-type]

    configs = client.messaging_profiles.autoresp_configs
    assert_type(await configs.list(PROFILE), list[AutorespConfig])
    assert_type(
        await configs.create(PROFILE, op="stop", keywords=["STOP"], country_code="US"),
        AutorespConfig,
    )
    assert_type(
        await configs.update(
            "cfg1", profile_id=PROFILE, op="stop", keywords=["STOP"], country_code="US"
        ),
        AutorespConfig,
    )
    assert_type(await configs.delete("cfg1", profile_id=PROFILE), None)

    # Misspelled keywords are errors (each ignore would be "unused" otherwise).
    await client.messages.send(to=TO, from_=FROM, txt="Hi")  # type: ignore[call-arg]
    await client.messages.send(to=TO, frm=FROM, text="Hi")  # type: ignore[call-arg]
    await client.messages.send_whatsapp(from_=FROM, to=TO, whatsapp_msg=WHATSAPP)  # type: ignore[call-arg]
    client.messaging_hosted_numbers.list(pagesize=10)  # type: ignore[call-arg]
    await configs.delete("cfg1", profileid=PROFILE)  # type: ignore[call-arg]

    # Required keyword arguments are required for the type checker too.
    await client.messages.send(from_=FROM, text="Hi")  # type: ignore[call-arg]
    await client.messages.send_whatsapp(from_=FROM, to=TO)  # type: ignore[call-arg]


def sync_api(client: telnyx_msg.Client) -> None:
    """The blocking Client: same names, plain values and SyncPager."""
    for outcome in client.messages.send_many([{"from_": FROM, "to": TO, "text": "Hi"}]):
        assert_type(outcome, telnyx_msg.SendOutcome)
    client.messages.send_many([{"from_": FROM, "to": TO, "text": "Hi"}]).close()
    client.messaging_optouts.list().pages().close()
    assert_type(client.messages.send(to=TO, from_=FROM, text="Hi"), Message)
    assert_type(
        client.messages.send_with_alphanumeric_sender(
            from_="MyCompany", to=TO, text="Hi", messaging_profile_id=PROFILE
        ),
        Message,
    )
    assert_type(
        client.messages.send_whatsapp(from_=FROM, to=TO, whatsapp_message=WHATSAPP), WhatsAppMessage
    )
    assert_type(client.messages.retrieve_group_messages("m1"), list[Message])

    numbers = client.messaging_hosted_numbers.list()
    assert_type(numbers, SyncPager[HostedNumber])
    for number in numbers:
        assert_type(number, HostedNumber)
    for page in numbers.pages():
        assert_type(page, Page[HostedNumber])
    assert_type(client.messaging_optouts.list(), SyncPager[OptOut])
    assert_type(client.messaging_profiles.list(), SyncPager[MessagingProfile])
    assert_type(
        client.messaging_profiles.create(name="A", whitelisted_destinations=["*"]), MessagingProfile
    )
    assert_type(client.phone_numbers.messaging.update(FROM, tags=[]), HostedNumber)
    assert_type(client.short_codes.list(), SyncPager[ShortCode])
    assert_type(client.messaging_numbers_bulk_updates.retrieve("o1"), MessagingNumbersBulkUpdate)

    assert_type(client.messaging_profiles.autoresp_configs.delete("cfg1", profile_id=PROFILE), None)

    client.messages.send(to=TO, from_=FROM, txt="Hi")  # type: ignore[call-arg]
    client.messages.send_long_code(from_=FROM, to=TO, test="Hi")  # type: ignore[call-arg]
    client.messaging_profiles.autoresp_configs.delete("cfg1", profile=PROFILE)  # type: ignore[call-arg]
    client.messages.send_long_code(from_=FROM, text="Hi")  # type: ignore[call-arg]


async def clients() -> None:
    """Both clients are context managers yielding themselves."""
    async with telnyx_msg.AsyncClient("key") as client:
        assert_type(client, telnyx_msg.AsyncClient)
    with telnyx_msg.Client("key") as sync_client:
        assert_type(sync_client, telnyx_msg.Client)


async def send_many_items_are_checked(client: telnyx_msg.AsyncClient) -> None:
    """send_many items are TypedDicts: a misspelled key is a type error."""
    numbers = ["+18445550001", "+18445550002"]
    requests = (telnyx_msg.SendMessageItem(from_=FROM, to=n, text="Hi") for n in numbers)
    async for outcome in client.messages.send_many(requests):
        assert_type(outcome, telnyx_msg.SendOutcome)
    async for _ in client.messages.send_many(
        {"from_": FROM, "to": n, "txt": "Hi"}  # type: ignore[misc]
        for n in numbers
    ):
        pass
    group: telnyx_msg.SendGroupMmsItem = {"from_": FROM, "to": [TO, TO], "text": "g"}
    async for _ in client.messages.send_many([group]):
        pass
    # Each method's required keys (a missing one is an error, so each ignore is needed).
    whatsapp: telnyx_msg.SendWhatsAppItem = {"from_": FROM, "to": TO}  # type: ignore[typeddict-item]
    alpha: telnyx_msg.SendAlphanumericItem = {  # type: ignore[typeddict-item]
        "from_": "Acme",
        "to": TO,
        "messaging_profile_id": "p",
    }
    pool: telnyx_msg.SendNumberPoolItem = {"to": TO}  # type: ignore[typeddict-item]
    mixed: list[telnyx_msg.SendItem] = [
        {"to": TO, "text": "x"},
        {"from_": FROM, "to": TO, "whatsapp_message": {"type": "text"}},
        {"from_": FROM, "to": [TO, TO], "text": "g"},
        {"messaging_profile_id": "p", "to": TO, "text": "x"},
        whatsapp,
        alpha,
        pool,
    ]
    async for _ in client.messages.send_many(mixed):
        pass


async def webhooks_raw_responses_and_testing(
    client: telnyx_msg.AsyncClient, sync_client: telnyx_msg.Client
) -> None:
    """Webhook events, receivers, raw responses and the mock transport, as callers see them."""
    verifier = telnyx_msg.WebhookVerifier("public-key")
    event = verifier.unwrap(b"{}", {"telnyx-signature-ed25519": "s"})
    assert_type(event, telnyx_msg.WebhookEvent)
    assert_type(await verifier.aunwrap("{}", {}), telnyx_msg.WebhookEvent)
    assert_type(client.webhooks.unwrap(b"{}", {}), telnyx_msg.WebhookEvent)
    assert_type(event.payload, Message | LinkClick | Mapping[str, Any] | None)
    assert_type(event.occurred_at, datetime | None)

    tracker = telnyx_msg.DeliveryTracker()
    await tracker.handle(event)
    assert_type(await tracker.final_status("id", timeout=5), Message)

    async def on_received(event: telnyx_msg.WebhookEvent) -> None:
        assert_type(event.id, str | None)

    def blocking_handler(event: telnyx_msg.WebhookEvent) -> None:
        pass

    def wrong_handler(event: str) -> None:
        pass

    handlers = {"message.received": on_received}
    assert_type(receivers.asgi_app(verifier, handlers), receivers.AsgiWebhookApp)
    assert_type(receivers.aiohttp_handler(verifier, handlers), receivers.AiohttpWebhookHandler)
    receivers.asgi_app(verifier, {"message.received": blocking_handler})  # called on the loop
    receivers.asgi_app(verifier, {"message.received": tracker.record})
    receivers.asgi_app(verifier, {"message.received": wrong_handler})  # type: ignore[dict-item]

    raw = await client.messages.with_raw_response.send(to=TO, from_=FROM, text="Hi")
    assert_type(raw, telnyx_msg.RawResponse[Message])
    assert_type(raw.parse(), Message)
    assert_type(raw.status, int)
    assert_type(sync_client.messages.with_raw_response.retrieve("id").parse(), Message)

    def answer(request: MockRequest) -> MockResponse:
        return MockResponse(200, json={"data": {"id": "m1", "to": []}})

    async with telnyx_msg.AsyncClient("key", transport=MockTransport(answer)) as mocked:
        assert_type(mocked, telnyx_msg.AsyncClient)
