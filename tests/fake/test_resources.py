"""Account resources of the fake: alphanumeric ids, hosted numbers, opt-outs, profiles,
auto-response configs and metrics (docs/wire.md §5-§9)."""

from __future__ import annotations

import re

import pytest

from telnyx_msg.testing import (
    DEFAULT_LONG_CODE,
    DEFAULT_ORGANIZATION_ID,
    DEFAULT_PROFILE_ID,
    DEFAULT_SHORT_CODE,
    DEFAULT_TOLL_FREE,
    FAILING_NUMBER,
    FakeConfig,
    FakeTelnyx,
    SeedNumber,
    SeedProfile,
)

from .helpers import Api, connect

pytestmark = pytest.mark.anyio

OTHER_PROFILE = "7e0b2a51-9c3d-4e8f-a1b2-c3d4e5f60718"
META_KEYS = {"page_number", "page_size", "total_pages", "total_results"}


async def test_alphanumeric_sender_id_lifecycle(api: Api) -> None:
    """Create, retrieve, list and delete an alphanumeric sender id, all wrapped in data."""
    created = await api.post(
        "/alphanumeric_sender_ids",
        {"alphanumeric_sender_id": "ACME", "messaging_profile_id": DEFAULT_PROFILE_ID},
    )
    assert created.status == 201  # the definition documents 201 for this POST
    record = created.body["data"]
    # No fallback was given: the key is left out (the definition types it as a plain string).
    assert set(record) == {
        "id",
        "alphanumeric_sender_id",
        "messaging_profile_id",
        "organization_id",
        "record_type",
    }
    assert record["record_type"] == "alphanumeric_sender_id"
    assert record["organization_id"] == DEFAULT_ORGANIZATION_ID
    retrieved = await api.get(f"/alphanumeric_sender_ids/{record['id']}")
    assert retrieved.body == {"data": record}
    listed = await api.get("/alphanumeric_sender_ids")
    assert listed.body["data"] == [record]
    assert set(listed.body["meta"]) == META_KEYS
    by_profile = await api.get(f"/messaging_profiles/{DEFAULT_PROFILE_ID}/alphanumeric_sender_ids")
    assert by_profile.body["data"] == [record]
    deleted = await api.request("DELETE", f"/alphanumeric_sender_ids/{record['id']}")
    assert deleted.body == {"data": record}
    gone = await api.get(f"/alphanumeric_sender_ids/{record['id']}")
    assert gone.status == 404


async def test_alphanumeric_list_filters_by_profile() -> None:
    """filter[messaging_profile_id] keeps only that profile's sender ids."""
    config = FakeConfig(profiles=[SeedProfile(), SeedProfile(id=OTHER_PROFILE, name="Other")])
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        for sender, profile in (("ONE", DEFAULT_PROFILE_ID), ("TWO", OTHER_PROFILE)):
            await api.post(
                "/alphanumeric_sender_ids",
                {"alphanumeric_sender_id": sender, "messaging_profile_id": profile},
            )
        reply = await api.get(
            "/alphanumeric_sender_ids", params={"filter[messaging_profile_id]": OTHER_PROFILE}
        )
        assert [r["alphanumeric_sender_id"] for r in reply.body["data"]] == ["TWO"]
        nested = await api.get(f"/messaging_profiles/{OTHER_PROFILE}/alphanumeric_sender_ids")
        assert [r["alphanumeric_sender_id"] for r in nested.body["data"]] == ["TWO"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            {
                "alphanumeric_sender_id": "WAYTOOLONGNAME",
                "messaging_profile_id": DEFAULT_PROFILE_ID,
            },
            "/alphanumeric_sender_id",
        ),
        (
            {"alphanumeric_sender_id": "12345", "messaging_profile_id": DEFAULT_PROFILE_ID},
            "/alphanumeric_sender_id",
        ),
        (
            {"alphanumeric_sender_id": "ACME", "messaging_profile_id": "nope"},
            "/messaging_profile_id",
        ),
        ({"messaging_profile_id": DEFAULT_PROFILE_ID}, "/alphanumeric_sender_id"),
    ],
)
async def test_alphanumeric_create_validation(api: Api, body: dict[str, str], pointer: str) -> None:
    """Bad alphanumeric sender ids or profiles give 422 pointing at the field."""
    reply = await api.post("/alphanumeric_sender_ids", body)
    assert reply.status == 422
    assert reply.body["errors"][0]["source"]["pointer"] == pointer


async def test_hosted_numbers_are_seeded(api: Api) -> None:
    """The default fake has a long code, a toll-free number and a short code on its profile."""
    reply = await api.get("/messaging_hosted_numbers")
    numbers = {r["phone_number"]: r for r in reply.body["data"]}
    assert {k: v["type"] for k, v in numbers.items()} == {
        DEFAULT_LONG_CODE: "long-code",
        DEFAULT_TOLL_FREE: "toll-free",
        DEFAULT_SHORT_CODE: "short-code",
    }
    record = numbers[DEFAULT_LONG_CODE]
    assert record["record_type"] == "messaging_phone_number"
    assert record["messaging_profile_id"] == DEFAULT_PROFILE_ID
    assert set(record["features"]) == {"sms", "mms"}
    assert set(record["features"]["sms"]) == {
        "domestic_two_way",
        "international_inbound",
        "international_outbound",
    }
    assert set(record["health"]) == {
        "inbound_outbound_ratio",
        "message_count",
        "spam_ratio",
        "success_ratio",
    }
    assert reply.body["meta"] == {
        "page_number": 1,
        "page_size": 20,
        "total_pages": 1,
        "total_results": 3,
    }


async def test_hosted_number_filters_and_sort(api: Api) -> None:
    """phone_number filters (exact and contains) and sort[phone_number] work."""
    contains = await api.get(
        "/messaging_hosted_numbers", params={"filter[phone_number][contains]": "555010"}
    )
    assert {r["phone_number"] for r in contains.body["data"]} == {
        DEFAULT_LONG_CODE,
        DEFAULT_TOLL_FREE,
    }
    exact = await api.get(
        "/messaging_hosted_numbers", params={"filter[phone_number]": DEFAULT_SHORT_CODE}
    )
    assert [r["phone_number"] for r in exact.body["data"]] == [DEFAULT_SHORT_CODE]
    desc = await api.get("/messaging_hosted_numbers", params={"sort[phone_number]": "desc"})
    phones = [r["phone_number"] for r in desc.body["data"]]
    assert phones == sorted(phones, reverse=True)
    bad = await api.get("/messaging_hosted_numbers", params={"sort[phone_number]": "up"})
    assert bad.status == 400


async def test_hosted_number_retrieve_by_id_or_phone(api: Api) -> None:
    """GET /messaging_hosted_numbers/{id} accepts the record id or the phone number."""
    by_phone = await api.get(f"/messaging_hosted_numbers/{DEFAULT_TOLL_FREE}")
    by_id = await api.get(f"/messaging_hosted_numbers/{by_phone.body['data']['id']}")
    assert by_phone.status == by_id.status == 200
    assert by_id.body == by_phone.body


async def test_hosted_number_patch_semantics(api: Api) -> None:
    """PATCH keeps absent/null fields, unassigns on "", replaces tags."""
    path = f"/messaging_hosted_numbers/{DEFAULT_LONG_CODE}"
    tagged = await api.request("PATCH", path, json_body={"tags": ["a", "b"]})
    assert tagged.body["data"]["tags"] == ["a", "b"]
    assert tagged.body["data"]["messaging_profile_id"] == DEFAULT_PROFILE_ID
    kept = await api.request(
        "PATCH", path, json_body={"messaging_profile_id": None, "messaging_product": None}
    )
    assert kept.body["data"]["messaging_profile_id"] == DEFAULT_PROFILE_ID
    assert kept.body["data"]["messaging_product"] == "A2P"
    cleared = await api.request("PATCH", path, json_body={"messaging_profile_id": ""})
    assert cleared.body["data"]["messaging_profile_id"] is None
    unknown = await api.request("PATCH", path, json_body={"messaging_profile_id": "nope"})
    assert unknown.status == 422


async def test_hosted_number_health_reflects_traffic(api: Api) -> None:
    """A hosted number's health counts its messages and delivery success."""
    await api.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="ok")
    await api.send(from_=DEFAULT_TOLL_FREE, to=FAILING_NUMBER, text="fails")
    await api.fake.settle()
    health = (await api.get(f"/messaging_hosted_numbers/{DEFAULT_TOLL_FREE}")).body["data"][
        "health"
    ]
    assert health["message_count"] == 2
    assert health["success_ratio"] == 0.5


async def test_regenerate_secret_changes_v1_secret(api: Api) -> None:
    """regenerate_secret returns the profile with a new v1_secret."""
    path = f"/messaging_profiles/{DEFAULT_PROFILE_ID}/actions/regenerate_secret"
    first = await api.post(path)
    second = await api.post(path)
    assert first.status == second.status == 200
    profile = second.body["data"]
    assert profile["record_type"] == "messaging_profile"
    assert profile["id"] == DEFAULT_PROFILE_ID
    assert profile["v1_secret"] != first.body["data"]["v1_secret"]
    assert profile["webhook_api_version"] in ("1", "2", "2010-04-01")
    missing = await api.post("/messaging_profiles/nope/actions/regenerate_secret")
    assert missing.status == 404


async def test_autoresp_config_crud(api: Api) -> None:
    """Auto-response configs: create, list (data+meta), retrieve, PUT, delete answers "OK"."""
    base = f"/messaging_profiles/{DEFAULT_PROFILE_ID}/autoresp_configs"
    created = await api.post(
        base, {"op": "info", "keywords": ["HELP"], "country_code": "US", "resp_text": "Call us"}
    )
    assert created.status == 200
    record = created.body["data"]
    assert set(record) == {
        "id",
        "op",
        "keywords",
        "country_code",
        "resp_text",
        "created_at",
        "updated_at",
    }
    listed = await api.get(base)
    assert listed.body["data"] == [record]
    assert listed.body["meta"]["total_results"] == 1
    assert (await api.get(f"{base}/{record['id']}")).body == {"data": record}
    updated = await api.request(
        "PUT",
        f"{base}/{record['id']}",
        json_body={"op": "stop", "keywords": ["ARRET"], "country_code": "FR"},
    )
    assert updated.body["data"]["keywords"] == ["ARRET"]
    assert "resp_text" not in updated.body["data"]
    assert updated.body["data"]["created_at"] == record["created_at"]
    by_country = await api.get(base, params={"country_code": "US"})
    assert by_country.body["data"] == []
    deleted = await api.request("DELETE", f"{base}/{record['id']}")
    assert deleted.status == 200
    assert deleted.body == "OK"
    assert (await api.get(f"{base}/{record['id']}")).status == 404


async def test_autoresp_validation(api: Api) -> None:
    """A config with an unknown op is a 422 pointing at /op."""
    reply = await api.post(
        f"/messaging_profiles/{DEFAULT_PROFILE_ID}/autoresp_configs",
        {"op": "shout", "keywords": ["X"], "country_code": "US"},
    )
    assert reply.status == 422
    assert reply.body["errors"][0]["source"]["pointer"] == "/op"


async def test_opt_outs_list_shape_and_filters(api: Api) -> None:
    """Inbound STOPs appear in /messaging_optouts with filters and redaction."""
    await api.fake.inject_inbound(from_="+18445550001", to=DEFAULT_LONG_CODE, text="STOP")
    await api.fake.inject_inbound(from_="+18445550002", to=DEFAULT_TOLL_FREE, text=" quit ")
    reply = await api.get("/messaging_optouts")
    assert reply.status == 200
    assert reply.body["meta"]["total_results"] == 2
    item = reply.body["data"][0]
    assert set(item) == {"from", "to", "keyword", "messaging_profile_id", "created_at"}
    assert item["from"] == DEFAULT_LONG_CODE
    assert item["to"] == "+18445550001"
    assert item["keyword"] == "STOP"
    # Telnyx writes this timestamp with a space, not "T" (docs/wire.md §7).
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00", item["created_at"])
    only = await api.get("/messaging_optouts", params={"filter[from]": DEFAULT_TOLL_FREE})
    assert [r["to"] for r in only.body["data"]] == ["+18445550002"]
    redacted = await api.get("/messaging_optouts", params={"redaction_enabled": "true"})
    assert all(r["to"].endswith("****") for r in redacted.body["data"])
    later = await api.get("/messaging_optouts", params={"created_at[gte]": "2999-01-01T00:00:00Z"})
    assert later.body["data"] == []
    earlier = await api.get(
        "/messaging_optouts", params={"created_at[lte]": "2999-01-01T00:00:00Z"}
    )
    assert len(earlier.body["data"]) == 2


async def test_metrics_count_messages_actually_sent(api: Api) -> None:
    """Profile metrics count sent, delivered, the error ratio and received messages."""
    for to in ("+18445550001", "+18445550002", "+18445550003", FAILING_NUMBER):
        await api.send(from_=DEFAULT_TOLL_FREE, to=to, text="m")
    await api.fake.inject_inbound(from_="+18445550001", to=DEFAULT_TOLL_FREE, text="hello")
    await api.fake.settle()
    listed = await api.get("/messaging_profile_metrics", params={"time_frame": "1h"})
    assert listed.status == 200
    assert set(listed.body["meta"]) == META_KEYS
    overview = listed.body["data"][0]
    assert overview == {
        "record_type": "messaging_profile_metrics",
        "messaging_profile_id": DEFAULT_PROFILE_ID,
        "phone_numbers": 3,
        "outbound": {"sent": 4, "delivered": 3, "errors": 0.25},
        "inbound": {"received": 1},
    }
    detail = await api.get(f"/messaging_profiles/{DEFAULT_PROFILE_ID}/metrics")
    assert detail.body["data"]["overview"] == overview
    [hour] = detail.body["data"]["detailed"]
    assert hour["metrics"] == [
        {"label": "tollfree", "sent": 4, "delivered": 3, "errors": 0.25, "received": 1}
    ]


async def test_metrics_reject_unknown_time_frame(api: Api) -> None:
    """time_frame outside 1h/3h/24h/3d/7d/30d is a 400."""
    reply = await api.get("/messaging_profile_metrics", params={"time_frame": "2h"})
    assert reply.status == 400
    assert reply.body["errors"][0]["source"] == {"parameter": "time_frame"}


async def test_seeded_numbers_are_configurable() -> None:
    """FakeConfig.numbers replaces the default hosted numbers."""
    config = FakeConfig(
        numbers=[
            SeedNumber(
                phone_number="+447700900123", type="long-code", country_code="GB", tags=["uk"]
            )
        ]
    )
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        reply = await api.get("/messaging_hosted_numbers")
        [record] = reply.body["data"]
        assert (record["phone_number"], record["country_code"], record["tags"]) == (
            "+447700900123",
            "GB",
            ["uk"],
        )
