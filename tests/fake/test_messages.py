"""Message endpoints of the fake: shapes (docs/wire.md §3-§4), statuses, scheduling, groups."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from telnyx_msg.testing import (
    DEFAULT_LONG_CODE,
    DEFAULT_PROFILE_ID,
    DEFAULT_SHORT_CODE,
    DEFAULT_TOLL_FREE,
    FAILING_NUMBER,
    FakeConfig,
    FakeTelnyx,
    SeedNumber,
    Throughput,
)

from .helpers import Api, connect

pytestmark = pytest.mark.anyio

TO = "+18445550001"
# Every field the seed documents for OutboundMessagePayload ("Returns:" of POST /messages).
OUTBOUND_FIELDS = {
    "cc",
    "completed_at",
    "cost",
    "cost_breakdown",
    "direction",
    "encoding",
    "errors",
    "from",
    "id",
    "media",
    "messaging_profile_id",
    "organization_id",
    "parts",
    "received_at",
    "record_type",
    "sent_at",
    "smart_encoding_applied",
    "subject",
    "tags",
    "tcr_campaign_billable",
    "tcr_campaign_id",
    "tcr_campaign_registered",
    "text",
    "to",
    "type",
    "valid_until",
    "wait_seconds",
    "webhook_failover_url",
    "webhook_url",
}


def _in(minutes: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()


async def test_send_returns_outbound_message_shape(api: Api) -> None:
    """POST /messages answers {"data": OutboundMessagePayload} with every documented field."""
    reply = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="Hello")
    assert reply.status == 200
    data = reply.body["data"]
    assert set(data) == OUTBOUND_FIELDS
    assert data["record_type"] == "message"
    assert data["direction"] == "outbound"
    assert data["type"] == "SMS"
    assert data["from"] == {
        "phone_number": DEFAULT_TOLL_FREE,
        "carrier": "Telnyx",
        "line_type": "VoIP",
    }
    assert [(r["phone_number"], r["status"]) for r in data["to"]] == [(TO, "queued")]
    assert set(data["to"][0]) == {"phone_number", "status", "carrier", "line_type"}
    assert data["cost"] == {"amount": "0.0040", "currency": "USD"}
    assert data["encoding"] == "GSM-7"
    assert data["parts"] == 1
    assert data["messaging_profile_id"] == DEFAULT_PROFILE_ID
    assert data["sent_at"] is None
    assert data["completed_at"] is None
    assert data["errors"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages/long_code", {"from": DEFAULT_LONG_CODE, "to": TO, "text": "hi"}),
        ("/messages/short_code", {"from": DEFAULT_SHORT_CODE, "to": TO, "text": "hi"}),
        (
            "/messages/number_pool",
            {"messaging_profile_id": DEFAULT_PROFILE_ID, "to": TO, "text": "hi"},
        ),
        (
            "/messages/alphanumeric_sender_id",
            {"from": "ACME", "to": TO, "text": "hi", "messaging_profile_id": DEFAULT_PROFILE_ID},
        ),
        (
            "/messages/group_mms",
            {"from": DEFAULT_LONG_CODE, "to": [TO, "+18445550002"], "text": "hi"},
        ),
        ("/messages", {"messaging_profile_id": DEFAULT_PROFILE_ID, "to": TO, "text": "hi"}),
    ],
)
async def test_every_send_endpoint_returns_a_message(
    api: Api, path: str, body: dict[str, Any]
) -> None:
    """Each send endpoint answers 200 with one outbound message in the common shape."""
    reply = await api.post(path, body)
    assert reply.status == 200, reply.body
    data = reply.body["data"]
    assert set(data) == OUTBOUND_FIELDS
    assert data["direction"] == "outbound"
    assert all(r["status"] == "queued" for r in data["to"])


async def test_group_mms_is_one_message_with_all_recipients(api: Api) -> None:
    """A group MMS is one MMS message whose to[] lists every recipient; group GET returns it."""
    recipients = [f"+1844555000{i}" for i in range(1, 4)]
    reply = await api.post(
        "/messages/group_mms", {"from": DEFAULT_LONG_CODE, "to": recipients, "text": "hi all"}
    )
    data = reply.body["data"]
    assert data["type"] == "MMS"
    assert [r["phone_number"] for r in data["to"]] == recipients
    assert data["cost"] == {"amount": "0.0450", "currency": "USD"}
    group = await api.get(f"/messages/group/{data['id']}")
    assert group.status == 200
    assert set(group.body) == {"data"}
    assert [m["id"] for m in group.body["data"]] == [data["id"]]


async def test_group_mms_rejects_more_than_eight_recipients(api: Api) -> None:
    """Nine recipients on /messages/group_mms give 422 pointing at /to."""
    recipients = [f"+184455500{i:02d}" for i in range(9)]
    reply = await api.post(
        "/messages/group_mms", {"from": DEFAULT_LONG_CODE, "to": recipients, "text": "hi"}
    )
    assert reply.status == 422
    assert reply.body["errors"][0]["source"] == {"pointer": "/to"}


async def test_group_endpoint_404s_for_a_plain_message(api: Api) -> None:
    """GET /messages/group/{id} of a one-recipient SMS is a 404."""
    sent = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")
    reply = await api.get(f"/messages/group/{sent.body['data']['id']}")
    assert reply.status == 404


async def test_whatsapp_has_its_own_response_shape(api: Api) -> None:
    """POST /messages/whatsapp answers the WhatsApp shape of docs/wire.md §3.9."""
    content = {"type": "text", "text": {"body": "hello"}}
    reply = await api.post(
        "/messages/whatsapp",
        {"from": DEFAULT_LONG_CODE, "to": "US.13491208655302741918", "whatsapp_message": content},
    )
    assert reply.status == 200, reply.body
    data = reply.body["data"]
    assert set(data) == {
        "id",
        "body",
        "direction",
        "encoding",
        "from",
        "messaging_profile_id",
        "organization_id",
        "received_at",
        "record_type",
        "to",
        "type",
        "wait_seconds",
    }
    assert data["body"] == content
    assert data["type"] == "WHATSAPP"
    assert set(data["from"]) == {"carrier", "line_type", "phone_number", "status"}
    assert set(data["to"][0]) == {"carrier", "line_type", "phone_number", "status"}
    retrieved = await api.get(f"/messages/{data['id']}")
    assert retrieved.body == reply.body


async def test_whatsapp_requires_the_message_object(api: Api) -> None:
    """A WhatsApp send without whatsapp_message is a 422 pointing at it."""
    reply = await api.post("/messages/whatsapp", {"from": DEFAULT_LONG_CODE, "to": TO})
    assert reply.status == 422
    assert reply.body["errors"][0]["source"]["pointer"] == "/whatsapp_message"


async def test_status_moves_queued_sent_delivered(api: Api) -> None:
    """A message becomes sent (sent_at set) then delivered (completed_at set)."""
    sent = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="progress")
    message_id = sent.body["data"]["id"]
    statuses: list[str] = []
    for _ in range(200):
        data = (await api.get(f"/messages/{message_id}")).body["data"]
        if not statuses or statuses[-1] != data["to"][0]["status"]:
            statuses.append(data["to"][0]["status"])
        if statuses[-1] == "delivered":
            break
        await asyncio.sleep(0.005)
    assert statuses[0] == "queued"
    assert statuses[-1] == "delivered"
    assert data["sent_at"] is not None
    assert data["completed_at"] is not None
    assert data["sent_at"] <= data["completed_at"]


async def test_failing_number_ends_delivery_failed(api: Api) -> None:
    """A recipient in failing_numbers ends delivery_failed with error 40008."""
    sent = await api.send(from_=DEFAULT_TOLL_FREE, to=FAILING_NUMBER, text="doomed")
    await api.fake.settle()
    data = (await api.get(f"/messages/{sent.body['data']['id']}")).body["data"]
    assert data["to"][0]["status"] == "delivery_failed"
    assert [e["code"] for e in data["errors"]] == ["40008"]
    assert data["errors"][0]["title"] == "Undeliverable"


async def test_group_mms_fails_only_the_failing_recipient(api: Api) -> None:
    """In a group MMS only the failing recipient ends delivery_failed."""
    sent = await api.post(
        "/messages/group_mms", {"from": DEFAULT_LONG_CODE, "to": [TO, FAILING_NUMBER], "text": "x"}
    )
    await api.fake.settle()
    data = (await api.get(f"/messages/{sent.body['data']['id']}")).body["data"]
    assert [r["status"] for r in data["to"]] == ["delivered", "delivery_failed"]


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("{" * 80, "GSM-7", 1),
        ("{" * 81, "GSM-7", 2),
        ("é" * 160, "GSM-7", 1),
        ("ж" * 70, "UCS-2", 1),
        ("ж" * 71, "UCS-2", 2),
        ("ж" * 134, "UCS-2", 2),
        ("ж" * 135, "UCS-2", 3),
        ("😀" * 35, "UCS-2", 1),
    ],
)
async def test_encoding_and_parts(api: Api, text: str, encoding: str, parts: int) -> None:
    """GSM-7 splits at 160/153 septets, UCS-2 at 70/67 code units."""
    data = (await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text=text)).body["data"]
    assert (data["encoding"], data["parts"]) == (encoding, parts)


async def test_ucs2_can_be_forced(api: Api) -> None:
    """encoding=ucs2 encodes plain ASCII as UCS-2."""
    data = (await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="hi", encoding="ucs2")).body["data"]
    assert data["encoding"] == "UCS-2"


async def test_gsm7_forced_on_unencodable_text_is_400(api: Api) -> None:
    """encoding=gsm7 with a character outside GSM-7 is a 400 pointing at /encoding."""
    reply = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="жж", encoding="gsm7")
    assert reply.status == 400
    assert reply.body["errors"][0]["source"]["pointer"] == "/encoding"


async def test_media_makes_an_mms(api: Api) -> None:
    """media_urls make the message an MMS with media[] entries and one part."""
    data = (
        await api.send(from_=DEFAULT_TOLL_FREE, to=TO, media_urls=["https://example.com/cat.jpg"])
    ).body["data"]
    assert data["type"] == "MMS"
    assert data["parts"] == 1
    assert data["media"] == [
        {
            "url": "https://example.com/cat.jpg",
            "content_type": "image/jpeg",
            "sha256": None,
            "size": None,
        }
    ]
    assert data["cost"] == {"amount": "0.0150", "currency": "USD"}


async def test_retrieve_unknown_message_is_404(api: Api) -> None:
    """GET /messages/{unknown} is a 404 with code 10005."""
    reply = await api.get("/messages/00000000-0000-0000-0000-000000000000")
    assert reply.status == 404
    assert reply.error_code == "10005"


async def test_schedule_then_cancel(api: Api) -> None:
    """A scheduled message has status scheduled; DELETE answers it unwrapped and cancelled."""
    reply = await api.post(
        "/messages/schedule",
        {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "later", "send_at": _in(60)},
    )
    assert reply.status == 200
    data = reply.body["data"]
    assert data["to"][0]["status"] == "scheduled"
    cancelled = await api.request("DELETE", f"/messages/{data['id']}")
    assert cancelled.status == 200
    assert "data" not in cancelled.body
    assert cancelled.body["record_type"] == "message"
    assert cancelled.body["id"] == data["id"]
    assert cancelled.body["to"][0]["status"] == "cancelled"
    assert cancelled.body["cost"] == {"amount": "0.0", "currency": "USD"}
    assert cancelled.body["cost_breakdown"] is None
    assert "wait_seconds" not in cancelled.body
    again = await api.get(f"/messages/{data['id']}")
    assert again.body["data"]["to"][0]["status"] == "cancelled"


async def test_send_at_on_messages_schedules_too(api: Api) -> None:
    """POST /messages with send_at creates a scheduled message."""
    data = (await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x", send_at=_in(30))).body["data"]
    assert data["to"][0]["status"] == "scheduled"
    assert data["cost"] is None


async def test_cancel_of_a_queued_message_is_422(api: Api) -> None:
    """DELETE of a message that is not scheduled is a 422 Telnyx error."""
    sent = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="now")
    reply = await api.request("DELETE", f"/messages/{sent.body['data']['id']}")
    assert reply.status == 422
    assert reply.error_code == "10015"


async def test_cancel_within_a_minute_of_send_at_is_422(api: Api) -> None:
    """A scheduled message less than a minute from send_at cannot be cancelled."""
    sent = await api.post(
        "/messages/schedule",
        {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "soon", "send_at": _in(0.5)},
    )
    reply = await api.request("DELETE", f"/messages/{sent.body['data']['id']}")
    assert reply.status == 422


async def test_scheduled_message_is_sent_at_send_at(api: Api) -> None:
    """When send_at arrives a scheduled message is queued, sent and delivered."""
    sent = await api.post(
        "/messages/schedule",
        {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "soon", "send_at": _in(0.3 / 60)},
    )
    message_id = sent.body["data"]["id"]
    for _ in range(400):
        data = (await api.get(f"/messages/{message_id}")).body["data"]
        if data["to"][0]["status"] == "delivered":
            break
        await asyncio.sleep(0.01)
    assert data["to"][0]["status"] == "delivered"
    assert data["cost"] == {"amount": "0.0040", "currency": "USD"}


async def test_schedule_requires_send_at(api: Api) -> None:
    """POST /messages/schedule without send_at is a 422 pointing at /send_at."""
    reply = await api.post("/messages/schedule", {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x"})
    assert reply.status == 422
    assert reply.body["errors"][0]["source"]["pointer"] == "/send_at"


async def test_number_pool_rotates_over_profile_numbers(api: Api) -> None:
    """Number-pool sends alternate between the profile's long-code and toll-free numbers."""
    senders = []
    for _ in range(4):
        reply = await api.post(
            "/messages/number_pool",
            {"messaging_profile_id": DEFAULT_PROFILE_ID, "to": TO, "text": "pool"},
        )
        senders.append(reply.body["data"]["from"]["phone_number"])
    assert senders == [DEFAULT_LONG_CODE, DEFAULT_TOLL_FREE] * 2


async def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    """A repeated Idempotency-Key with the same body returns the same message, no new one."""
    body = {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "once"}
    headers = {"Idempotency-Key": "key-1"}
    first = await api.post("/messages", body, headers=headers)
    second = await api.post("/messages", body, headers=headers)
    assert first.status == second.status == 200
    assert second.body == first.body
    assert api.fake.stats.messages_sent == 1
    assert api.fake.stats.idempotent_replays == 1


async def test_idempotency_key_with_another_body_is_422(api: Api) -> None:
    """Reusing an Idempotency-Key with a different body is a 422."""
    headers = {"Idempotency-Key": "key-2"}
    await api.post("/messages", {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "a"}, headers=headers)
    reply = await api.post(
        "/messages", {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "b"}, headers=headers
    )
    assert reply.status == 422
    assert reply.body["errors"][0]["source"] == {"parameter": "Idempotency-Key"}


async def test_messages_beyond_max_messages_are_forgotten() -> None:
    """Only the newest max_messages messages stay retrievable."""
    async with FakeTelnyx(config=FakeConfig(max_messages=2)) as fake, connect(fake) as api:
        ids = [
            (await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="x")).body["data"]["id"]
            for _ in range(3)
        ]
        statuses = [(await api.get(f"/messages/{i}")).status for i in ids]
        assert statuses == [404, 200, 200]
        await fake.settle()


async def test_unknown_sender_belongs_to_the_default_profile(api: Api) -> None:
    """A well-formed sender that is not a hosted number is attributed to the first profile."""
    data = (await api.send(from_="+13125559999", to=TO, text="x")).body["data"]
    assert data["messaging_profile_id"] == DEFAULT_PROFILE_ID


async def test_strict_senders_refuse_unknown_numbers() -> None:
    """With strict_senders, a from that is not on the account gets 422 40305."""
    config = FakeConfig(strict_senders=True, numbers=[SeedNumber(phone_number="+13125550100")])
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        refused = await api.send(from_="+13125559999", to=TO, text="x")
        accepted = await api.send(from_="+13125550100", to=TO, text="x")
        assert refused.status == 422
        assert refused.error_code == "40305"
        assert accepted.status == 200
        await fake.settle()


def _in_seconds(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


async def test_send_at_is_ignored_where_the_endpoint_does_not_schedule(api: Api) -> None:
    """send_at is honoured by POST /messages and /messages/schedule only: a long-code send
    carrying one is queued now, not scheduled."""
    reply = await api.post(
        "/messages/long_code",
        {"from": DEFAULT_LONG_CODE, "to": TO, "text": "now", "send_at": _in_seconds(120)},
    )
    assert reply.status == 200
    assert reply.body["data"]["to"][0]["status"] == "queued"
    assert reply.body["data"]["cost"] is not None


async def test_a_scheduled_message_released_into_a_full_sender_queue_still_goes_out() -> None:
    """A scheduled message was accepted when scheduled: if its sender's queue is full when its
    send_at comes, it is queued anyway (wait 0), and goes out
    (it was left queued forever, with no cost)."""
    config = FakeConfig(
        throughput=Throughput(per_sender_mps={DEFAULT_TOLL_FREE: 0.05}, queue_depth=1)
    )
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        scheduled = await api.post(
            "/messages/schedule",
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "later", "send_at": _in_seconds(1.0)},
        )
        assert scheduled.status == 200
        message_id = scheduled.body["data"]["id"]
        fills = [await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="q") for _ in range(3)]
        assert [r.status for r in fills][-1] == 429  # the sender's queue is full
        for _ in range(100):
            await asyncio.sleep(0.05)
            if fake.message(message_id)["to"][0]["status"] in ("sent", "delivered"):
                break
        released = fake.message(message_id)
        assert released["to"][0]["status"] in ("sent", "delivered")
        assert released["wait_seconds"] == 0.0
        assert released["cost"] is not None
