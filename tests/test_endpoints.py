"""Every operation of the SDK: HTTP method, path, query, JSON body, auth, and the parsed result."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import models as m
from telnyx_msg._pagination import AsyncPager
from telnyx_msg.testing import FakeTelnyx
from tests.conftest import ApiServer, json_response, message_json

pytestmark = pytest.mark.anyio

PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
ALNUM = {
    "id": "a1",
    "alphanumeric_sender_id": "MyCompany",
    "messaging_profile_id": PROFILE,
    "organization_id": "o1",
    "record_type": "alphanumeric_sender_id",
    "us_long_code_fallback": "+18005550101",
}
HOSTED = {
    "id": "h1",
    "record_type": "messaging_phone_number",
    "phone_number": "+18005550101",
    "country_code": "US",
    "type": "toll-free",
    "messaging_profile_id": PROFILE,
    "eligible_messaging_products": ["A2P"],
    "tags": ["x"],
    "features": {
        "sms": {
            "domestic_two_way": True,
            "international_inbound": False,
            "international_outbound": True,
        },
        "mms": None,
    },
    "health": {
        "inbound_outbound_ratio": 0.4,
        "message_count": 10,
        "spam_ratio": 0.0,
        "success_ratio": 0.99,
    },
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-02T00:00:00Z",
}
OPTOUT = {
    "from": "+18005550101",
    "to": "+18445550001",
    "keyword": "STOP",
    "messaging_profile_id": PROFILE,
    "created_at": "2025-04-28 12:00:38.631252+00:00",
}
AUTORESP = {
    "id": "c1",
    "op": "start",
    "keywords": ["START"],
    "country_code": "US",
    "resp_text": "Welcome",
    "created_at": "2023-03-22T00:06:49.068817+00:00",
    "updated_at": "2023-03-22T00:06:49.068817+00:00",
}
PROFILE_JSON = {
    "id": PROFILE,
    "record_type": "messaging_profile",
    "name": "p",
    "enabled": True,
    "v1_secret": "new-secret",
    "webhook_api_version": "2",
    "whitelisted_destinations": ["US"],
    "number_pool_settings": {
        "long_code_weight": 1.0,
        "toll_free_weight": 2.0,
        "skip_unhealthy": True,
    },
}
SUMMARY = {
    "record_type": "messaging_profile_metrics",
    "messaging_profile_id": PROFILE,
    "phone_numbers": 3,
    "outbound": {"sent": 10, "delivered": 9, "errors": 0.1},
    "inbound": {"received": 4},
}
META = {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 1}
SHORT_CODE = {
    "id": "s1",
    "record_type": "short_code",
    "short_code": "55501",
    "country_code": "US",
    "messaging_profile_id": PROFILE,
    "tags": ["t"],
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-02T00:00:00Z",
}
ORDER = {
    "id": "o1",
    "record_type": "messaging_hosted_number_order",
    "messaging_profile_id": PROFILE,
    "status": "deleted",
    "phone_numbers": [
        {
            "id": "h1",
            "record_type": "messaging_hosted_number",
            "phone_number": "+18005550101",
            "status": "deleted",
        }
    ],
}
BULK = {
    "order_id": "b1",
    "record_type": "messaging_numbers_bulk_update",
    "success": ["+18005550101"],
    "pending": [],
    "failed": ["+13125550100"],
}
WHATSAPP = {
    "id": "w1",
    "body": {"text": {"body": "hi"}},
    "direction": "outbound",
    "encoding": "utf-8",
    "from": {"phone_number": "+13125551234", "status": "received"},
    "to": [{"phone_number": "+13125550000", "status": "queued"}],
    "type": "WHATSAPP",
    "record_type": "message",
    "wait_seconds": 0.5,
}


@attrs.frozen
class Case:
    """One operation: how to call it, what must go on the wire, what comes back."""

    name: str
    call: Callable[[telnyx_msg.AsyncClient], Any]
    method: str
    path: str
    response: Any
    check: Callable[[Any], bool]
    body: dict[str, Any] | None = None
    query: dict[str, str] = attrs.Factory(dict)


def msg(**kw: Any) -> dict[str, Any]:
    return {"data": message_json(**kw)}


SEND_KW: dict[str, Any] = {"from_": "+18005550101", "to": "+18445550001", "text": "Hello"}
SEND_BODY = {"from": "+18005550101", "to": "+18445550001", "text": "Hello"}


def is_message(result: Any) -> bool:
    return (
        isinstance(result, m.Message)
        and result.id is not None
        and result.to[0].phone_number == "+18445550001"
        and result.to[0].status == m.MessageStatus.QUEUED
    )


CASES = [
    Case(
        "messages.send",
        lambda c: c.messages.send(
            **SEND_KW,
            media_urls=["https://x/a.png"],
            webhook_url="https://h/1",
            webhook_failover_url="https://h/2",
            use_profile_webhooks=False,
            type="MMS",
            subject="S",
            auto_detect=True,
            encoding="auto",
            messaging_profile_id=PROFILE,
            send_at=datetime(2030, 1, 1, 12, tzinfo=timezone.utc),
        ),
        "POST",
        "/v2/messages",
        msg(),
        is_message,
        body={
            **SEND_BODY,
            "media_urls": ["https://x/a.png"],
            "webhook_url": "https://h/1",
            "webhook_failover_url": "https://h/2",
            "use_profile_webhooks": False,
            "type": "MMS",
            "subject": "S",
            "auto_detect": True,
            "encoding": "auto",
            "messaging_profile_id": PROFILE,
            "send_at": "2030-01-01T12:00:00+00:00",
        },
    ),
    Case(
        "messages.send minimal",
        lambda c: c.messages.send(**SEND_KW),
        "POST",
        "/v2/messages",
        msg(),
        is_message,
        body=SEND_BODY,
    ),
    Case(
        "messages.send_with_alphanumeric_sender",
        lambda c: c.messages.send_with_alphanumeric_sender(
            from_="MyCompany",
            to="+18445550001",
            text="Hi",
            messaging_profile_id=PROFILE,
            webhook_url="https://h/1",
        ),
        "POST",
        "/v2/messages/alphanumeric_sender_id",
        msg(),
        is_message,
        body={
            "from": "MyCompany",
            "to": "+18445550001",
            "text": "Hi",
            "messaging_profile_id": PROFILE,
            "webhook_url": "https://h/1",
        },
    ),
    Case(
        "messages.send_group_mms",
        lambda c: c.messages.send_group_mms(
            from_="+13125551234",
            to=["+18655551234", "+14155551234"],
            text="Hi",
            media_urls=["https://x/a.png"],
            subject="S",
        ),
        "POST",
        "/v2/messages/group_mms",
        msg(
            to=[
                {"phone_number": "+18445550001", "status": "queued"},
                {"phone_number": "+14155551234", "status": "queued"},
            ]
        ),
        is_message,
        body={
            "from": "+13125551234",
            "to": ["+18655551234", "+14155551234"],
            "text": "Hi",
            "media_urls": ["https://x/a.png"],
            "subject": "S",
        },
    ),
    Case(
        "messages.send_long_code",
        lambda c: c.messages.send_long_code(**SEND_KW, encoding="gsm7", auto_detect=False),
        "POST",
        "/v2/messages/long_code",
        msg(),
        is_message,
        body={**SEND_BODY, "encoding": "gsm7", "auto_detect": False},
    ),
    Case(
        "messages.send_number_pool",
        lambda c: c.messages.send_number_pool(
            messaging_profile_id=PROFILE, to="+18445550001", text="Hello"
        ),
        "POST",
        "/v2/messages/number_pool",
        msg(),
        is_message,
        body={"messaging_profile_id": PROFILE, "to": "+18445550001", "text": "Hello"},
    ),
    Case(
        "messages.send_short_code",
        lambda c: c.messages.send_short_code(from_="12345", to="+18445550001", text="Hello"),
        "POST",
        "/v2/messages/short_code",
        msg(),
        is_message,
        body={"from": "12345", "to": "+18445550001", "text": "Hello"},
    ),
    Case(
        "messages.schedule",
        lambda c: c.messages.schedule(**SEND_KW, send_at="2030-07-01T15:00:00Z"),
        "POST",
        "/v2/messages/schedule",
        msg(to=[{"phone_number": "+18445550001", "status": "scheduled"}]),
        lambda r: isinstance(r, m.Message) and r.to[0].status == m.MessageStatus.SCHEDULED,
        body={**SEND_BODY, "send_at": "2030-07-01T15:00:00Z"},
    ),
    Case(
        "messages.send_whatsapp",
        lambda c: c.messages.send_whatsapp(
            from_="+13125551234",
            to="+13125550000",
            whatsapp_message={"type": "text", "text": {"body": "hi"}},
            type="WHATSAPP",
        ),
        "POST",
        "/v2/messages/whatsapp",
        {"data": WHATSAPP},
        lambda r: (
            isinstance(r, m.WhatsAppMessage)
            and r.body == {"text": {"body": "hi"}}
            and r.from_ is not None
            and r.from_.status == "received"
            and r.wait_seconds == 0.5
        ),
        body={
            "from": "+13125551234",
            "to": "+13125550000",
            "whatsapp_message": {"type": "text", "text": {"body": "hi"}},
            "type": "WHATSAPP",
        },
    ),
    Case(
        "messages.retrieve",
        lambda c: c.messages.retrieve("40385f64"),
        "GET",
        "/v2/messages/40385f64",
        msg(),
        is_message,
    ),
    Case(
        "messages.retrieve inbound",
        lambda c: c.messages.retrieve(id="m2"),
        "GET",
        "/v2/messages/m2",
        {
            "data": message_json(
                direction="inbound",
                to="+18445550001",
                media=[{"url": "u", "hash_sha256": "abc", "size": 3}],
            )
        },
        lambda r: (
            r.direction == m.Direction.INBOUND
            and r.to[0].phone_number == "+18445550001"
            and r.media[0].hash_sha256 == "abc"
        ),
    ),
    Case(
        "messages.cancel_scheduled",
        lambda c: c.messages.cancel_scheduled("m3"),
        "DELETE",
        "/v2/messages/m3",
        message_json(
            to=[{"phone_number": "+18445550001", "status": "cancelled"}],
            cost={"amount": "0.0", "currency": "USD"},
            cost_breakdown=None,
        ),
        lambda r: (
            r.to[0].status == m.MessageStatus.CANCELLED
            and r.cost is not None
            and r.cost.amount == Decimal("0.0")
        ),
    ),
    Case(
        "messages.retrieve_group_messages",
        lambda c: c.messages.retrieve_group_messages("g1"),
        "GET",
        "/v2/messages/group/g1",
        {"data": [message_json(), message_json(id="x2")]},
        lambda r: isinstance(r, list) and len(r) == 2 and r[1].id == "x2",
    ),
    Case(
        "alphanumeric_sender_ids.create",
        lambda c: c.alphanumeric_sender_ids.create(
            alphanumeric_sender_id="MyCompany",
            messaging_profile_id=PROFILE,
            us_long_code_fallback="+18005550101",
        ),
        "POST",
        "/v2/alphanumeric_sender_ids",
        {"data": ALNUM},
        lambda r: isinstance(r, m.AlphanumericSenderId) and r.alphanumeric_sender_id == "MyCompany",
        body={
            "alphanumeric_sender_id": "MyCompany",
            "messaging_profile_id": PROFILE,
            "us_long_code_fallback": "+18005550101",
        },
    ),
    Case(
        "alphanumeric_sender_ids.retrieve",
        lambda c: c.alphanumeric_sender_ids.retrieve("a1"),
        "GET",
        "/v2/alphanumeric_sender_ids/a1",
        {"data": ALNUM},
        lambda r: r.id == "a1" and r.record_type == "alphanumeric_sender_id",
    ),
    Case(
        "alphanumeric_sender_ids.delete",
        lambda c: c.alphanumeric_sender_ids.delete("a1"),
        "DELETE",
        "/v2/alphanumeric_sender_ids/a1",
        {"data": ALNUM},
        lambda r: r.id == "a1",
    ),
    Case(
        "messaging_hosted_numbers.retrieve by number",
        lambda c: c.messaging_hosted_numbers.retrieve("+18005550101"),
        "GET",
        "/v2/messaging_hosted_numbers/+18005550101",
        {"data": HOSTED},
        lambda r: (
            isinstance(r, m.HostedNumber)
            and r.features is not None
            and r.features.sms is not None
            and r.features.sms.domestic_two_way is True
            and r.health is not None
            and r.health.message_count == 10
            and r.created_at == datetime(2024, 1, 1, tzinfo=timezone.utc)
        ),
    ),
    Case(
        "messaging_hosted_numbers.update",
        lambda c: c.messaging_hosted_numbers.update("h1", messaging_profile_id="", tags=["a", "b"]),
        "PATCH",
        "/v2/messaging_hosted_numbers/h1",
        {"data": HOSTED},
        lambda r: r.id == "h1",
        body={"messaging_profile_id": "", "tags": ["a", "b"]},
    ),
    Case(
        "messaging_profile_metrics.list",
        lambda c: c.messaging_profile_metrics.list(time_frame="7d"),
        "GET",
        "/v2/messaging_profile_metrics",
        {"data": [SUMMARY], "meta": META},
        lambda r: (
            isinstance(r, m.ProfileMetricsOverview)
            and r.data[0].outbound is not None
            and r.data[0].outbound.sent == 10
            and r.meta is not None
            and r.meta.total_pages == 1
        ),
        query={"time_frame": "7d"},
    ),
    Case(
        "messaging_profiles.actions.regenerate_secret",
        lambda c: c.messaging_profiles.actions.regenerate_secret(PROFILE),
        "POST",
        f"/v2/messaging_profiles/{PROFILE}/actions/regenerate_secret",
        {"data": PROFILE_JSON},
        lambda r: (
            isinstance(r, m.MessagingProfile)
            and r.v1_secret == "new-secret"
            and r.number_pool_settings is not None
            and r.number_pool_settings.toll_free_weight == 2.0
        ),
    ),
    Case(
        "messaging_profiles.retrieve_metrics",
        lambda c: c.messaging_profiles.retrieve_metrics(PROFILE, time_frame="24h"),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}/metrics",
        {
            "data": {
                "overview": SUMMARY,
                "detailed": [
                    {
                        "timestamp": "2024-01-01T00:00:00Z",
                        "metrics": [
                            {
                                "label": "longcode",
                                "sent": 3,
                                "delivered": 2,
                                "outbound_error_ratio": 0.3,
                                "received": 1,
                            }
                        ],
                    }
                ],
            }
        },
        lambda r: (
            isinstance(r, m.ProfileMetrics)
            and r.overview is not None
            and r.detailed[0].metrics[0].errors == 0.3
        ),
        query={"time_frame": "24h"},
    ),
    Case(
        "messaging_profiles.create",
        lambda c: c.messaging_profiles.create(
            name="Acme",
            whitelisted_destinations=["US", "CA"],
            webhook_url="https://h.example/w",
            number_pool_settings={
                "long_code_weight": 1,
                "toll_free_weight": 2,
                "skip_unhealthy": True,
            },
            url_shortener_settings={"domain": "acme.link"},
            daily_spend_limit="10.50",
            mobile_only=False,
            resource_group_id="rg1",
        ),
        "POST",
        "/v2/messaging_profiles",
        {"data": PROFILE_JSON},
        lambda r: isinstance(r, m.MessagingProfile) and r.id == PROFILE,
        body={
            "name": "Acme",
            "whitelisted_destinations": ["US", "CA"],
            "webhook_url": "https://h.example/w",
            "number_pool_settings": {
                "long_code_weight": 1,
                "toll_free_weight": 2,
                "skip_unhealthy": True,
            },
            "url_shortener_settings": {"domain": "acme.link"},
            "daily_spend_limit": "10.50",
            "mobile_only": False,
            "resource_group_id": "rg1",
        },
    ),
    Case(
        "messaging_profiles.retrieve",
        lambda c: c.messaging_profiles.retrieve(PROFILE),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}",
        {"data": PROFILE_JSON},
        lambda r: isinstance(r, m.MessagingProfile) and r.whitelisted_destinations == ("US",),
    ),
    Case(
        "messaging_profiles.update",
        lambda c: c.messaging_profiles.update(
            PROFILE, name="Renamed", webhook_url="", whitelisted_destinations=["*"], v1_secret="s3"
        ),
        "PATCH",
        f"/v2/messaging_profiles/{PROFILE}",
        {"data": PROFILE_JSON},
        lambda r: isinstance(r, m.MessagingProfile),
        body={
            "name": "Renamed",
            "webhook_url": "",
            "whitelisted_destinations": ["*"],
            "v1_secret": "s3",
        },
    ),
    Case(
        "messaging_profiles.delete",
        lambda c: c.messaging_profiles.delete(PROFILE),
        "DELETE",
        f"/v2/messaging_profiles/{PROFILE}",
        {"data": PROFILE_JSON},
        lambda r: isinstance(r, m.MessagingProfile) and r.id == PROFILE,
    ),
    Case(
        "phone_numbers.messaging.retrieve",
        lambda c: c.phone_numbers.messaging.retrieve("1293384261075731499"),
        "GET",
        "/v2/phone_numbers/1293384261075731499/messaging",
        {"data": HOSTED},
        lambda r: isinstance(r, m.HostedNumber) and r.phone_number == "+18005550101",
    ),
    Case(
        "phone_numbers.messaging.update",
        lambda c: c.phone_numbers.messaging.update(
            "h1", messaging_profile_id="", messaging_product="P2P", tags=[]
        ),
        "PATCH",
        "/v2/phone_numbers/h1/messaging",
        {"data": HOSTED},
        lambda r: isinstance(r, m.HostedNumber),
        body={"messaging_profile_id": "", "messaging_product": "P2P", "tags": []},
    ),
    Case(
        "short_codes.retrieve",
        lambda c: c.short_codes.retrieve("s1"),
        "GET",
        "/v2/short_codes/s1",
        {"data": SHORT_CODE},
        lambda r: (
            isinstance(r, m.ShortCode)
            and r.short_code == "55501"
            and r.tags == ("t",)
            and r.updated_at == datetime(2024, 1, 2, tzinfo=timezone.utc)
        ),
    ),
    Case(
        "short_codes.update",
        lambda c: c.short_codes.update("s1", messaging_profile_id="", tags=["a"]),
        "PATCH",
        "/v2/short_codes/s1",
        {"data": SHORT_CODE},
        lambda r: isinstance(r, m.ShortCode) and r.messaging_profile_id == PROFILE,
        body={"messaging_profile_id": "", "tags": ["a"]},
    ),
    Case(
        "messaging_hosted_numbers.delete",
        lambda c: c.messaging_hosted_numbers.delete("h1"),
        "DELETE",
        "/v2/messaging_hosted_numbers/h1",
        {"data": ORDER},
        lambda r: (
            isinstance(r, m.HostedNumberOrder)
            and r.status == "deleted"
            and r.phone_numbers[0].phone_number == "+18005550101"
        ),
    ),
    Case(
        "messaging_numbers_bulk_updates.create",
        lambda c: c.messaging_numbers_bulk_updates.create(
            messaging_profile_id=PROFILE, numbers=["+18005550101", "+13125550100"], assign_only=True
        ),
        "POST",
        "/v2/messaging_numbers_bulk_updates",
        {"data": BULK},
        lambda r: isinstance(r, m.MessagingNumbersBulkUpdate) and r.order_id == "b1",
        body={
            "messaging_profile_id": PROFILE,
            "numbers": ["+18005550101", "+13125550100"],
            "assign_only": True,
        },
    ),
    Case(
        "messaging_numbers_bulk_updates.retrieve",
        lambda c: c.messaging_numbers_bulk_updates.retrieve("b1"),
        "GET",
        "/v2/messaging_numbers_bulk_updates/b1",
        {"data": BULK},
        lambda r: (
            isinstance(r, m.MessagingNumbersBulkUpdate)
            and r.success == ("+18005550101",)
            and r.failed == ("+13125550100",)
        ),
    ),
    Case(
        "messaging_profiles.autoresp_configs.list",
        lambda c: c.messaging_profiles.autoresp_configs.list(
            PROFILE, country_code="US", created_at={"gte": "a", "lte": "b"}
        ),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}/autoresp_configs",
        {"data": [AUTORESP], "meta": META},
        lambda r: isinstance(r, list) and r[0].op == m.AutorespOp.START,
        query={"country_code": "US", "created_at[gte]": "a", "created_at[lte]": "b"},
    ),
    Case(
        "messaging_profiles.autoresp_configs.create",
        lambda c: c.messaging_profiles.autoresp_configs.create(
            PROFILE, op="start", keywords=["START"], country_code="US", resp_text="Welcome"
        ),
        "POST",
        f"/v2/messaging_profiles/{PROFILE}/autoresp_configs",
        {"data": AUTORESP},
        lambda r: isinstance(r, m.AutorespConfig) and r.keywords == ("START",),
        body={"op": "start", "keywords": ["START"], "country_code": "US", "resp_text": "Welcome"},
    ),
    Case(
        "messaging_profiles.autoresp_configs.retrieve",
        lambda c: c.messaging_profiles.autoresp_configs.retrieve("c1", profile_id=PROFILE),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}/autoresp_configs/c1",
        {"data": AUTORESP},
        lambda r: r.id == "c1" and r.created_at is not None and r.created_at.tzinfo is not None,
    ),
    Case(
        "messaging_profiles.autoresp_configs.update",
        lambda c: c.messaging_profiles.autoresp_configs.update(
            "c1", profile_id=PROFILE, op="stop", keywords=["STOP"], country_code="US"
        ),
        "PUT",
        f"/v2/messaging_profiles/{PROFILE}/autoresp_configs/c1",
        {"data": AUTORESP},
        lambda r: r.id == "c1",
        body={"op": "stop", "keywords": ["STOP"], "country_code": "US"},
    ),
    Case(
        "messaging_profiles.autoresp_configs.delete",
        lambda c: c.messaging_profiles.autoresp_configs.delete("c1", profile_id=PROFILE),
        "DELETE",
        f"/v2/messaging_profiles/{PROFILE}/autoresp_configs/c1",
        "OK",
        lambda r: r is None,
    ),
]

PAGED = [
    Case(
        "alphanumeric_sender_ids.list",
        lambda c: c.alphanumeric_sender_ids.list(
            filter={"messaging_profile_id": PROFILE}, page_size=5
        ),
        "GET",
        "/v2/alphanumeric_sender_ids",
        {"data": [ALNUM], "meta": META},
        lambda r: isinstance(r, m.AlphanumericSenderId),
        query={"filter[messaging_profile_id]": PROFILE, "page[size]": "5"},
    ),
    Case(
        "messaging_profiles.list_alphanumeric_sender_ids",
        lambda c: c.messaging_profiles.list_alphanumeric_sender_ids(PROFILE, page_number=1),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}/alphanumeric_sender_ids",
        {"data": [ALNUM], "meta": META},
        lambda r: isinstance(r, m.AlphanumericSenderId),
        query={"page[number]": "1"},
    ),
    Case(
        "messaging_hosted_numbers.list",
        lambda c: c.messaging_hosted_numbers.list(
            filter={"messaging_profile_id": PROFILE, "phone_number": {"contains": "555"}},
            sort={"phone_number": "desc"},
        ),
        "GET",
        "/v2/messaging_hosted_numbers",
        {"data": [HOSTED], "meta": META},
        lambda r: isinstance(r, m.HostedNumber),
        query={
            "filter[messaging_profile_id]": PROFILE,
            "filter[phone_number][contains]": "555",
            "sort[phone_number]": "desc",
        },
    ),
    Case(
        "messaging_profiles.list",
        lambda c: c.messaging_profiles.list(
            filter={"name": {"contains": "Acme"}}, page_number=2, page_size=10
        ),
        "GET",
        "/v2/messaging_profiles",
        {"data": [PROFILE_JSON], "meta": META},
        lambda r: isinstance(r, m.MessagingProfile),
        query={"filter[name][contains]": "Acme", "page[number]": "2", "page[size]": "10"},
    ),
    Case(
        "messaging_profiles.list_phone_numbers",
        lambda c: c.messaging_profiles.list_phone_numbers(PROFILE, page_size=250),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}/phone_numbers",
        {"data": [HOSTED], "meta": META},
        lambda r: isinstance(r, m.HostedNumber),
        query={"page[size]": "250"},
    ),
    Case(
        "messaging_profiles.list_short_codes",
        lambda c: c.messaging_profiles.list_short_codes(PROFILE),
        "GET",
        f"/v2/messaging_profiles/{PROFILE}/short_codes",
        {"data": [SHORT_CODE], "meta": META},
        lambda r: isinstance(r, m.ShortCode),
    ),
    Case(
        "phone_numbers.messaging.list",
        lambda c: c.phone_numbers.messaging.list(
            filter={
                "type": "shortcode",
                "messaging_profile_id": PROFILE,
                "phone_number": "+18005550101,+13125550100",
            },
            sort={"phone_number": "asc"},
        ),
        "GET",
        "/v2/phone_numbers/messaging",
        {"data": [HOSTED], "meta": META},
        lambda r: isinstance(r, m.HostedNumber),
        query={
            "filter[type]": "shortcode",
            "filter[messaging_profile_id]": PROFILE,
            "filter[phone_number]": "+18005550101,+13125550100",
            "sort[phone_number]": "asc",
        },
    ),
    Case(
        "short_codes.list",
        lambda c: c.short_codes.list(filter={"messaging_profile_id": "null"}),
        "GET",
        "/v2/short_codes",
        {"data": [SHORT_CODE], "meta": META},
        lambda r: isinstance(r, m.ShortCode),
        query={"filter[messaging_profile_id]": "null"},
    ),
    Case(
        "messaging_optouts.list",
        lambda c: c.messaging_optouts.list(
            filter={"messaging_profile_id": PROFILE, "from": "+18005550101"},
            created_at={"gte": datetime(2024, 1, 1, tzinfo=timezone.utc)},
            redaction_enabled=True,
            page_size=1,
        ),
        "GET",
        "/v2/messaging_optouts",
        {"data": [OPTOUT], "meta": META},
        lambda r: (
            isinstance(r, m.OptOut)
            and r.from_ == "+18005550101"
            and r.created_at is not None
            and r.created_at.microsecond == 631252
        ),
        query={
            "filter[messaging_profile_id]": PROFILE,
            "filter[from]": "+18005550101",
            "created_at[gte]": "2024-01-01T00:00:00+00:00",
            "redaction_enabled": "true",
            "page[size]": "1",
        },
    ),
]


def test_every_operation_is_covered() -> None:
    """The tables below exercise every resource method the client exposes (44 operations)."""
    names = {c.name.split(" ")[0] for c in CASES + PAGED}
    client = telnyx_msg.AsyncClient("k", base_url="http://127.0.0.1:9/v2", rate_limits=None)
    exposed = set()
    for attr in (
        "messages",
        "alphanumeric_sender_ids",
        "messaging_hosted_numbers",
        "messaging_optouts",
        "messaging_profile_metrics",
        "messaging_profiles",
        "messaging_profiles.actions",
        "messaging_profiles.autoresp_configs",
        "phone_numbers.messaging",
        "short_codes",
        "messaging_numbers_bulk_updates",
    ):
        resource: Any = client
        for part in attr.split("."):
            resource = getattr(resource, part)
        for method in dir(type(resource)):
            if not method.startswith("_") and method != "send_many":  # composite, test_bulk
                exposed.add(f"{attr}.{method}")
    assert names == exposed
    assert len(exposed) == 44


def _serve(response: Any) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return json_response(response)

    return handler


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_operation_wire_and_result(case: Case, api_server: Any) -> None:
    """The call sends exactly the documented request and returns the typed result."""
    server: ApiServer = await api_server(_serve(case.response))
    async with telnyx_msg.AsyncClient(
        "secret-key", base_url=server.base_url, rate_limits=None
    ) as client:
        result = await case.call(client)
    assert len(server.requests) == 1
    seen = server.requests[0]
    assert seen.method == case.method
    assert seen.path == case.path
    assert seen.query == case.query
    assert seen.headers["Authorization"] == "Bearer secret-key"
    assert seen.headers["User-Agent"].startswith("telnyx_msg/")
    if case.body is None:
        assert seen.body == b""
    else:
        assert seen.json == case.body
    assert case.check(result), result


@pytest.mark.parametrize("case", PAGED, ids=lambda c: c.name)
async def test_list_operation_wire_and_items(case: Case, api_server: Any) -> None:
    """A list call does no I/O until iterated, then sends the documented query."""
    server: ApiServer = await api_server(_serve(case.response))
    async with telnyx_msg.AsyncClient(
        "secret-key", base_url=server.base_url, rate_limits=None
    ) as client:
        pager = case.call(client)
        assert isinstance(pager, AsyncPager)
        assert server.requests == []
        items = [item async for item in pager]
    assert len(items) == 1
    assert case.check(items[0]), items[0]
    assert len(server.requests) == 1
    seen = server.requests[0]
    assert (seen.method, seen.path, seen.query) == (case.method, case.path, case.query)
    assert seen.headers["Authorization"] == "Bearer secret-key"


@pytest.mark.parametrize("case", CASES + PAGED, ids=lambda c: c.name)
async def test_blocking_facade_same_operations(case: Case, api_server: Any) -> None:
    """The blocking Client sends the same request and returns the same typed result."""
    server: ApiServer = await api_server(_serve(case.response))

    def run() -> Any:
        with telnyx_msg.Client("secret-key", base_url=server.base_url, rate_limits=None) as c:
            call: Any = case.call
            result = call(c)
            return list(result) if case in PAGED else result

    import anyio.to_thread

    result = await anyio.to_thread.run_sync(run)
    seen = server.requests[0]
    assert (seen.method, seen.path, seen.query) == (case.method, case.path, case.query)
    assert seen.json == case.body
    if case in PAGED:
        assert len(result) == 1
        assert case.check(result[0])
    else:
        assert case.check(result)


POOL: Any = {"long_code_weight": 1, "toll_free_weight": 2, "skip_unhealthy": True}
SHORTENER: Any = {"domain": "acme.link"}


def _last_patch_body(fake: FakeTelnyx) -> Any:
    patches = [r for r in fake.stats.requests if r.method == "PATCH"]
    assert patches, "no PATCH was sent"
    return patches[-1].json


async def test_update_with_none_disables_the_number_pool() -> None:
    """``number_pool_settings=None`` sends ``null`` and the profile's pool is off afterwards."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        profiles = client.messaging_profiles
        created = await profiles.create(
            name="Acme", whitelisted_destinations=["US"], number_pool_settings=POOL
        )
        assert created.number_pool_settings is not None
        updated = await profiles.update(created.id, number_pool_settings=None)
        body = _last_patch_body(fake)
        assert body == {"number_pool_settings": None}, json.dumps(body)
        assert updated.number_pool_settings is None
        assert (await profiles.retrieve(created.id)).number_pool_settings is None


async def test_update_with_none_disables_the_url_shortener() -> None:
    """``url_shortener_settings=None`` sends ``null`` and the shortener is off afterwards."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        profiles = client.messaging_profiles
        created = await profiles.create(
            name="Acme", whitelisted_destinations=["US"], url_shortener_settings=SHORTENER
        )
        assert created.url_shortener_settings is not None
        updated = await profiles.update(created.id, url_shortener_settings=None)
        assert _last_patch_body(fake) == {"url_shortener_settings": None}
        assert updated.url_shortener_settings is None


async def test_update_without_the_argument_keeps_the_number_pool() -> None:
    """Leaving the argument out still keeps the pool (an omitted PATCH field is unchanged)."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        profiles = client.messaging_profiles
        created = await profiles.create(
            name="Acme", whitelisted_destinations=["US"], number_pool_settings=POOL
        )
        updated = await profiles.update(created.id, name="Acme 2")
        assert "number_pool_settings" not in _last_patch_body(fake)
        assert updated.number_pool_settings == created.number_pool_settings
