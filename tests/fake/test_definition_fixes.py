"""FakeTelnyx answers corrected against Telnyx's OpenAPI definition of the messaging API."""

from __future__ import annotations

import pytest

from telnyx_msg.testing import FakeTelnyx
from telnyx_msg.testing._config import DEFAULT_LONG_CODE, DEFAULT_PROFILE_ID

from .helpers import Api

pytestmark = pytest.mark.anyio


async def test_create_alphanumeric_sender_id_answers_201(api: Api) -> None:
    """POST /alphanumeric_sender_ids answers 201, as the definition documents."""
    created = await api.post(
        "/alphanumeric_sender_ids",
        {"alphanumeric_sender_id": "ACME", "messaging_profile_id": DEFAULT_PROFILE_ID},
    )
    assert created.status == 201


async def test_alphanumeric_sender_id_omits_unset_fallback(api: Api) -> None:
    """Without a fallback the record has no us_long_code_fallback key (never null)."""
    created = await api.post(
        "/alphanumeric_sender_ids",
        {"alphanumeric_sender_id": "ACME", "messaging_profile_id": DEFAULT_PROFILE_ID},
    )
    record = created.body["data"]
    assert "us_long_code_fallback" not in record
    fetched = await api.get(f"/alphanumeric_sender_ids/{record['id']}")
    assert "us_long_code_fallback" not in fetched.body["data"]


async def test_alphanumeric_sender_id_keeps_given_fallback(api: Api) -> None:
    """A given fallback is answered as given."""
    created = await api.post(
        "/alphanumeric_sender_ids",
        {
            "alphanumeric_sender_id": "ACME",
            "messaging_profile_id": DEFAULT_PROFILE_ID,
            "us_long_code_fallback": DEFAULT_LONG_CODE,
        },
    )
    assert created.body["data"]["us_long_code_fallback"] == DEFAULT_LONG_CODE


async def test_inbound_mms_media_has_no_null_fields(telnyx_fake: FakeTelnyx, api: Api) -> None:
    """Inbound media items carry no null hash_sha256/size (the definition allows none)."""
    inbound = await telnyx_fake.inject_inbound(
        from_="+13125550001",
        to=DEFAULT_LONG_CODE,
        media_urls=["https://example.com/cat.jpg", "https://example.com/blob"],
    )
    fetched = await api.get(f"/messages/{inbound['id']}")
    media = fetched.body["data"]["media"]
    assert media == [
        {"url": "https://example.com/cat.jpg", "content_type": "image/jpeg"},
        {"url": "https://example.com/blob"},
    ]
    assert all(value is not None for item in media for value in item.values())


async def test_profile_metrics_ignores_paging_and_id(api: Api) -> None:
    """GET /messaging_profile_metrics returns every profile; page and id are not filters."""
    reply = await api.get(
        "/messaging_profile_metrics", params={"id": "nope", "page[size]": "1", "page[number]": "3"}
    )
    assert reply.status == 200
    assert [item["messaging_profile_id"] for item in reply.body["data"]] == [DEFAULT_PROFILE_ID]
    assert reply.body["meta"]["page_number"] == 1


async def test_group_mms_to_short_code_is_accepted(api: Api) -> None:
    """A group MMS may include a short-code recipient."""
    reply = await api.post(
        "/messages/group_mms",
        {"from": DEFAULT_LONG_CODE, "to": ["+13125550001", "12345"], "text": "Hi"},
    )
    assert reply.status == 200
    assert [r["phone_number"] for r in reply.body["data"]["to"]] == ["+13125550001", "12345"]
