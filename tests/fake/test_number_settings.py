"""FakeTelnyx keeps state for messaging profiles, numbers' messaging settings, short codes and
bulk updates, driven through the SDK (both clients)."""

from __future__ import annotations

import anyio.to_thread
import pytest

import telnyx_msg
from telnyx_msg import models as m
from telnyx_msg.testing import FakeConfig, FakeTelnyx, SeedNumber
from telnyx_msg.testing._config import (
    DEFAULT_LONG_CODE,
    DEFAULT_PROFILE_ID,
    DEFAULT_SHORT_CODE,
    DEFAULT_TOLL_FREE,
)

from .helpers import Api

pytestmark = pytest.mark.anyio

SPARE = "+13125550199"
TO = "+13125550001"


def _spare_config() -> FakeConfig:
    """The default seed plus one number without a messaging profile."""
    return FakeConfig(
        numbers=[*FakeConfig().numbers, SeedNumber(phone_number=SPARE, messaging_profile_id=None)]
    )


async def test_profile_lifecycle(telnyx_fake: FakeTelnyx) -> None:
    """A created profile can be retrieved, listed by name, updated and deleted."""
    async with telnyx_fake.client() as client:
        profiles = client.messaging_profiles
        created = await profiles.create(
            name="Acme alerts",
            whitelisted_destinations=["US"],
            webhook_url="https://hooks.example/acme",
        )
        assert created.id is not None
        assert created.record_type == "messaging_profile"
        assert created.webhook_url == "https://hooks.example/acme"
        assert created.webhook_failover_url == ""  # created without one
        assert created.enabled is True
        assert (await profiles.retrieve(created.id)) == created
        by_contains = [p.id async for p in profiles.list(filter={"name": {"contains": "Acme"}})]
        by_name = [p.id async for p in profiles.list(filter={"name": "Acme alerts"})]
        by_eq = [p.id async for p in profiles.list(filter={"name": {"eq": "Acme"}})]
        assert by_contains == by_name == [created.id]
        assert by_eq == []
        everything = [p.id async for p in profiles.list()]
        assert everything == [DEFAULT_PROFILE_ID, created.id]
        updated = await profiles.update(
            created.id, name="Acme", mobile_only=True, whitelisted_destinations=["*"]
        )
        assert (updated.name, updated.mobile_only, updated.whitelisted_destinations) == (
            "Acme",
            True,
            ("*",),
        )
        assert updated.webhook_url == "https://hooks.example/acme"  # omitted: kept
        unchanged = await profiles.update(created.id)  # empty body: nothing changes
        assert unchanged.name == "Acme"
        deleted = await profiles.delete(created.id)
        assert deleted.id == created.id
        with pytest.raises(telnyx_msg.NotFoundError):
            await profiles.retrieve(created.id)


async def test_profile_create_and_update_bodies_are_checked(api: Api) -> None:
    """The fake refuses missing required keys and wrongly typed values (422, with a pointer)."""
    missing = await api.post("/messaging_profiles", {"name": "x"})
    assert missing.status == 422
    assert missing.body["errors"][0]["source"]["pointer"] == "/whitelisted_destinations"
    bad = await api.post("/messaging_profiles", {"name": "x", "whitelisted_destinations": ["usa"]})
    assert bad.status == 422
    wrong_type = await api.request(
        "PATCH", f"/messaging_profiles/{DEFAULT_PROFILE_ID}", json_body={"enabled": "yes"}
    )
    assert wrong_type.status == 422
    assert wrong_type.body["errors"][0]["source"]["pointer"] == "/enabled"
    not_e164 = await api.post(
        "/messaging_numbers_bulk_updates", {"messaging_profile_id": "", "numbers": ["3125550100"]}
    )
    assert not_e164.status == 422
    assert not_e164.body["errors"][0]["source"]["pointer"] == "/numbers"


async def test_unassigned_number_cannot_send_until_assigned() -> None:
    """A number without a messaging profile is an invalid sender (40305) until assigned."""
    async with FakeTelnyx(config=_spare_config()) as fake, fake.client() as client:
        with pytest.raises(telnyx_msg.UnprocessableEntityError) as info:
            await client.messages.send(from_=SPARE, to=TO, text="Hi")
        assert info.value.code == "40305"
        assert info.value.title == "Invalid 'from' address"
        settings = await client.phone_numbers.messaging.update(
            SPARE, messaging_profile_id=DEFAULT_PROFILE_ID
        )
        assert settings.messaging_profile_id == DEFAULT_PROFILE_ID
        sent = await client.messages.send(from_=SPARE, to=TO, text="Hi")
        assert sent.messaging_profile_id == DEFAULT_PROFILE_ID
        unassigned = await client.phone_numbers.messaging.update(SPARE, messaging_profile_id="")
        assert unassigned.messaging_profile_id is None
        with pytest.raises(telnyx_msg.UnprocessableEntityError):
            await client.messages.send(from_=SPARE, to=TO, text="Hi")


async def test_phone_numbers_messaging_list_retrieve_and_profile_numbers(
    telnyx_fake: FakeTelnyx,
) -> None:
    """Numbers are listed with filters, retrieved by number, and listed per profile."""
    async with telnyx_fake.client() as client:
        numbers = client.phone_numbers.messaging
        everything = [n.phone_number async for n in numbers.list(sort={"phone_number": "asc"})]
        assert everything == sorted([DEFAULT_LONG_CODE, DEFAULT_TOLL_FREE, DEFAULT_SHORT_CODE])
        tollfree = [n.phone_number async for n in numbers.list(filter={"type": "tollfree"})]
        assert tollfree == [DEFAULT_TOLL_FREE]
        several = [
            str(n.phone_number)
            async for n in numbers.list(
                filter={"phone_number": f"{DEFAULT_LONG_CODE},{DEFAULT_TOLL_FREE}"}
            )
        ]
        assert sorted(several) == sorted([DEFAULT_LONG_CODE, DEFAULT_TOLL_FREE])
        one = await numbers.retrieve(DEFAULT_LONG_CODE)
        assert isinstance(one, m.HostedNumber)
        assert one.phone_number == DEFAULT_LONG_CODE
        assert (await numbers.retrieve(str(one.id))) == one
        of_profile = [
            str(n.phone_number)
            async for n in client.messaging_profiles.list_phone_numbers(DEFAULT_PROFILE_ID)
        ]
        assert sorted(of_profile) == sorted([DEFAULT_LONG_CODE, DEFAULT_TOLL_FREE])
        with pytest.raises(telnyx_msg.NotFoundError):
            await numbers.retrieve("+19995550000")


async def test_short_codes_list_retrieve_and_unbind(telnyx_fake: FakeTelnyx) -> None:
    """Short codes are listed (also per profile and unassigned), retrieved and unbound."""
    async with telnyx_fake.client() as client:
        codes = [c async for c in client.short_codes.list()]
        assert [c.short_code for c in codes] == [DEFAULT_SHORT_CODE]
        code = codes[0]
        assert code.record_type == "short_code"
        assert code.messaging_profile_id == DEFAULT_PROFILE_ID
        assert (await client.short_codes.retrieve(str(code.id))) == code
        per_profile = [
            c.id async for c in client.messaging_profiles.list_short_codes(DEFAULT_PROFILE_ID)
        ]
        assert per_profile == [code.id]
        unbound = await client.short_codes.update(
            str(code.id), messaging_profile_id="", tags=["promo"]
        )
        assert unbound.messaging_profile_id is None
        assert unbound.tags == ("promo",)
        free = [
            c.id async for c in client.short_codes.list(filter={"messaging_profile_id": "null"})
        ]
        assert free == [code.id]
        with pytest.raises(telnyx_msg.UnprocessableEntityError):
            await client.messages.send_short_code(from_=DEFAULT_SHORT_CODE, to=TO, text="Hi")
        with pytest.raises(telnyx_msg.NotFoundError):
            await client.short_codes.retrieve("00000000-0000-4000-8000-000000000000")


async def test_deleting_a_profile_unassigns_its_numbers(telnyx_fake: FakeTelnyx) -> None:
    """After a profile is deleted its numbers have no profile (and cannot send)."""
    async with telnyx_fake.client() as client:
        await client.messaging_profiles.delete(DEFAULT_PROFILE_ID)
        number = await client.phone_numbers.messaging.retrieve(DEFAULT_LONG_CODE)
        assert number.messaging_profile_id is None
        with pytest.raises(telnyx_msg.UnprocessableEntityError):
            await client.messages.send(from_=DEFAULT_LONG_CODE, to=TO, text="Hi")


async def test_hosted_number_delete_answers_an_order(telnyx_fake: FakeTelnyx) -> None:
    """Deleting a hosted number answers the order and removes the number."""
    async with telnyx_fake.client() as client:
        order = await client.messaging_hosted_numbers.delete(DEFAULT_TOLL_FREE)
        assert isinstance(order, m.HostedNumberOrder)
        assert order.status == "deleted"
        assert order.messaging_profile_id == DEFAULT_PROFILE_ID
        assert [(n.phone_number, n.status) for n in order.phone_numbers] == [
            (DEFAULT_TOLL_FREE, "deleted")
        ]
        with pytest.raises(telnyx_msg.NotFoundError):
            await client.messaging_hosted_numbers.retrieve(DEFAULT_TOLL_FREE)


async def test_bulk_update_completes_on_read() -> None:
    """A bulk order starts pending; reading it applies it (known numbers succeed)."""
    config = _spare_config()
    async with (
        FakeTelnyx(config=config.__class__(numbers=config.numbers, delivery_delay=60.0)) as fake,
        fake.client() as client,
    ):
        other = await client.messaging_profiles.create(
            name="Other", whitelisted_destinations=["US"]
        )
        assert other.id is not None
        order = await client.messaging_numbers_bulk_updates.create(
            messaging_profile_id=other.id, numbers=[SPARE, "+19995550000"]
        )
        assert order.record_type == "messaging_numbers_bulk_update"
        assert (order.pending, order.success, order.failed) == ((SPARE, "+19995550000"), (), ())
        assert order.order_id is not None
        done = await client.messaging_numbers_bulk_updates.retrieve(order.order_id)
        assert (done.pending, done.success, done.failed) == ((), (SPARE,), ("+19995550000",))
        number = await client.phone_numbers.messaging.retrieve(SPARE)
        assert number.messaging_profile_id == other.id
        with pytest.raises(telnyx_msg.NotFoundError):
            await client.messaging_numbers_bulk_updates.retrieve("nope")


async def test_bulk_update_completes_after_the_delay() -> None:
    """Without a read, the order is applied delivery_delay seconds later (settle waits)."""
    async with FakeTelnyx(config=_spare_config()) as fake, fake.client() as client:
        await client.messaging_numbers_bulk_updates.create(
            messaging_profile_id=DEFAULT_PROFILE_ID, numbers=[SPARE]
        )
        await fake.settle()
        number = await client.phone_numbers.messaging.retrieve(SPARE)
        assert number.messaging_profile_id == DEFAULT_PROFILE_ID


async def test_blocking_client_drives_the_new_operations(telnyx_fake: FakeTelnyx) -> None:
    """The blocking Client reaches the same operations through the same resource tree."""

    def run() -> tuple[m.MessagingProfile, list[m.ShortCode], m.HostedNumber]:
        with telnyx_msg.Client(telnyx_fake.api_key, base_url=telnyx_fake.base_url) as client:
            profile = client.messaging_profiles.create(name="Sync", whitelisted_destinations=["US"])
            assert profile.id is not None
            codes = list(client.short_codes.list())
            number = client.phone_numbers.messaging.update(
                DEFAULT_LONG_CODE, messaging_profile_id=profile.id
            )
            return client.messaging_profiles.retrieve(profile.id), codes, number

    profile, codes, number = await anyio.to_thread.run_sync(run)
    assert profile.name == "Sync"
    assert [c.short_code for c in codes] == [DEFAULT_SHORT_CODE]
    assert number.messaging_profile_id == profile.id


async def test_null_keeps_number_settings_and_unbinds_short_codes(
    telnyx_fake: FakeTelnyx, api: Api
) -> None:
    """null keeps a number's profile (like an absent key); on a short code it unbinds."""
    kept = await api.request(
        "PATCH",
        f"/phone_numbers/{DEFAULT_LONG_CODE}/messaging",
        json_body={"messaging_profile_id": None, "tags": ["x"]},
    )
    assert kept.status == 200
    assert kept.body["data"]["messaging_profile_id"] == DEFAULT_PROFILE_ID
    assert kept.body["data"]["tags"] == ["x"]
    codes = await api.get("/short_codes")
    code_id = codes.body["data"][0]["id"]
    unbound = await api.request(
        "PATCH", f"/short_codes/{code_id}", json_body={"messaging_profile_id": None}
    )
    assert unbound.body["data"]["messaging_profile_id"] is None
    missing = await api.request("PATCH", f"/short_codes/{code_id}", json_body={"tags": []})
    assert missing.status == 422
