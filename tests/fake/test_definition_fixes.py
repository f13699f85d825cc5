"""FakeTelnyx answers corrected against Telnyx's OpenAPI definition of the messaging API."""

from __future__ import annotations

import pytest

import telnyx_msg
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


PARTS_TO = "+13125550001"
# 153 GSM-7 characters per concatenated part: 1531 characters need 11 parts, 10000 need 66.
TOO_LONG = ("x" * 1531, "x" * 10_000)


@pytest.mark.parametrize("text", TOO_LONG, ids=("11-parts", "66-parts"))
async def test_send_of_more_than_ten_parts_is_never_answered_with_parts_over_ten(
    text: str,
) -> None:
    """An over-long SMS is refused with a 4xx error, or answered with at most 10 parts."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        status: int | None = None
        try:
            message = await client.messages.send(from_=DEFAULT_LONG_CODE, to=PARTS_TO, text=text)
        except telnyx_msg.APIStatusError as exc:
            status = exc.status
        if status is not None:
            assert 400 <= status < 500
        else:
            assert message.parts is not None
            assert 1 <= message.parts <= 10, f"answered parts={message.parts}"


async def test_inbound_of_more_than_ten_parts_is_never_stored_with_parts_over_ten() -> None:
    """An injected inbound text that would need 11 parts is refused or kept within 10 parts."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        try:
            inbound = await fake.inject_inbound(
                from_=PARTS_TO, to=DEFAULT_LONG_CODE, text="x" * 1531
            )
        except ValueError:
            return
        message = await client.messages.retrieve(inbound["id"])
        assert message.parts is not None
        assert 1 <= message.parts <= 10, f"answered parts={message.parts}"


async def test_create_update_and_list_a_wildcard_country_config() -> None:
    """create, update and list all take ``country_code="*"`` and answer it unchanged."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        configs = client.messaging_profiles.autoresp_configs
        created = await configs.create(
            DEFAULT_PROFILE_ID, op="stop", keywords=["STOP"], country_code="*"
        )
        assert created.country_code == "*"
        updated = await configs.update(
            created.id,
            profile_id=DEFAULT_PROFILE_ID,
            op="start",
            keywords=["START", "BEGIN"],
            country_code="*",
        )
        assert updated.country_code == "*"
        listed = await configs.list(DEFAULT_PROFILE_ID, country_code="*")
        assert [c.id for c in listed] == [created.id]
