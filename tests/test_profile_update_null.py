"""Messaging profile arguments: clearing nullable settings, and the types of settings members.

``PATCH /messaging_profiles/{id}`` types ``alpha_sender``, ``ai_assistant_id``, ``webhook_url``
and ``webhook_failover_url`` as ``string`` or ``null``: JSON ``null`` is how a setting is
removed (``alpha_sender`` has no other way: ``""`` does not match its pattern). As for
``number_pool_settings`` and ``url_shortener_settings``, passing ``None`` must send ``null``,
and leaving the argument out must send nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg.testing import DEFAULT_PROFILE_ID, FakeTelnyx
from tests.conftest import ApiServer, json_response

pytestmark = pytest.mark.anyio

PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
NULLABLE = ["alpha_sender", "ai_assistant_id", "webhook_url", "webhook_failover_url"]


async def _answer(request: web.Request) -> web.Response:
    await request.read()
    return json_response({"data": {"id": PROFILE, "record_type": "messaging_profile"}})


@pytest.fixture
async def server(api_server: Callable[[Any], Awaitable[ApiServer]]) -> ApiServer:
    """A recording server on 127.0.0.1."""
    return await api_server(_answer)


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[telnyx_msg.AsyncClient]:
    """An AsyncClient pointed at the recording server."""
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        yield c


@pytest.mark.parametrize("field", NULLABLE)
async def test_none_clears_a_nullable_profile_setting(
    client: telnyx_msg.AsyncClient, server: ApiServer, field: str
) -> None:
    """update(id, <field>=None) sends {"<field>": null}, the definition's way to remove the
    setting; an update that leaves the argument out still sends nothing for it."""
    await client.messaging_profiles.update(PROFILE, **{field: None})
    await client.messaging_profiles.update(PROFILE, name="Renamed")
    cleared, untouched = server.requests
    assert cleared.method == "PATCH"
    assert cleared.json == {field: None}
    assert untouched.json == {"name": "Renamed"}


async def test_alpha_sender_can_be_removed_from_a_profile() -> None:
    """A profile's alphanumeric sender can be removed again: after update(alpha_sender=None)
    the profile has none (before the fix the call silently sent {} and the sender stayed)."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None) as client:
        created = await client.messaging_profiles.create(
            name="Acme", whitelisted_destinations=["US"], alpha_sender="Acme"
        )
        assert created.alpha_sender == "Acme"
        updated = await client.messaging_profiles.update(created.id, alpha_sender=None)
        assert updated.alpha_sender is None
        assert (await client.messaging_profiles.retrieve(created.id)).alpha_sender is None


# --- typed members of the settings objects, and autoresp resp_text ---------------------------
# ``number_pool_settings`` weights are JSON numbers and its flags JSON booleans;
# ``url_shortener_settings.domain`` and its ``prefix`` are strings and its flags booleans; an
# auto-response config's ``resp_text`` is a string. A value of another type (the string
# ``"false"`` read from a config file, a number for a text) is refused before any request, as
# every other argument is: sent as it is, ``"skip_unhealthy": "false"`` is not the boolean the
# API takes (any non-empty string reads as true). The fake refuses such bodies too, or it
# would hide a client that sends them.

POOL = {"long_code_weight": 1, "toll_free_weight": 2, "skip_unhealthy": False}

BAD_POOLS: list[tuple[str, dict[str, Any]]] = [
    ("skip_unhealthy", {**POOL, "skip_unhealthy": "false"}),
    ("sticky_sender", {**POOL, "sticky_sender": "yes"}),
    ("long_code_weight", {**POOL, "long_code_weight": "1"}),
    ("toll_free_weight", {**POOL, "toll_free_weight": True}),
]
BAD_SHORTENERS: list[tuple[str, dict[str, Any]]] = [
    ("domain", {"domain": 5}),
    ("send_webhooks", {"domain": "acme.link", "send_webhooks": "no"}),
    ("prefix", {"domain": "acme.link", "prefix": 7}),
]


@pytest.mark.parametrize(("member", "pool"), BAD_POOLS, ids=[m for m, _ in BAD_POOLS])
async def test_number_pool_member_of_the_wrong_type_is_refused_before_io(
    client: telnyx_msg.AsyncClient, server: ApiServer, member: str, pool: dict[str, Any]
) -> None:
    """update(number_pool_settings=...) with a string flag or weight (or a bool weight)
    raises ValidationError naming number_pool_settings, and nothing is sent; today the
    value goes out as given (``"skip_unhealthy": "false"``)."""
    with pytest.raises(telnyx_msg.ValidationError) as info:
        await client.messaging_profiles.update(PROFILE, number_pool_settings=cast(Any, pool))
    assert "number_pool_settings" in str(info.value)
    assert server.requests == []


@pytest.mark.parametrize(
    ("member", "shortener"), BAD_SHORTENERS, ids=[m for m, _ in BAD_SHORTENERS]
)
async def test_url_shortener_member_of_the_wrong_type_is_refused_before_io(
    client: telnyx_msg.AsyncClient, server: ApiServer, member: str, shortener: dict[str, Any]
) -> None:
    """create(url_shortener_settings=...) with a non-string domain or prefix, or a string
    flag, raises ValidationError naming url_shortener_settings, and nothing is sent."""
    with pytest.raises(telnyx_msg.ValidationError) as info:
        await client.messaging_profiles.create(
            name="Acme",
            whitelisted_destinations=["US"],
            url_shortener_settings=cast(Any, shortener),
        )
    assert "url_shortener_settings" in str(info.value)
    assert server.requests == []


@pytest.mark.parametrize("resp_text", [123, ["Bye"]])
async def test_autoresp_resp_text_must_be_a_string(
    client: telnyx_msg.AsyncClient, server: ApiServer, resp_text: Any
) -> None:
    """autoresp_configs.create / update with a resp_text that is not a string raise
    ValidationError naming resp_text before any request (today ``"resp_text": 123`` is sent)."""
    configs = client.messaging_profiles.autoresp_configs
    with pytest.raises(telnyx_msg.ValidationError) as info:
        await configs.create(
            PROFILE, op="stop", keywords=["STOP"], country_code="US", resp_text=resp_text
        )
    assert info.value.field == "resp_text"
    with pytest.raises(telnyx_msg.ValidationError) as info:
        await configs.update(
            "c1",
            profile_id=PROFILE,
            op="stop",
            keywords=["STOP"],
            country_code="US",
            resp_text=resp_text,
        )
    assert info.value.field == "resp_text"
    assert server.requests == []


@pytest.mark.parametrize(("member", "pool"), BAD_POOLS, ids=[m for m, _ in BAD_POOLS])
async def test_fake_refuses_a_number_pool_member_of_the_wrong_type(
    member: str, pool: dict[str, Any]
) -> None:
    """FakeTelnyx answers 422 to a profile update whose number_pool_settings member has the
    wrong JSON type (sent raw, past the SDK's checks), as the definition's schema says;
    accepting it would hide a client that sends ``"skip_unhealthy": "false"``."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None, max_retries=0) as client:
        with pytest.raises(telnyx_msg.APIStatusError) as info:
            await client.request(
                "PATCH",
                f"/messaging_profiles/{DEFAULT_PROFILE_ID}",
                json={"number_pool_settings": pool},
            )
        assert info.value.status == 422
        profile = await client.messaging_profiles.retrieve(DEFAULT_PROFILE_ID)
        assert profile.number_pool_settings is None
