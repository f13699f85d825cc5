"""Clearing a messaging profile's nullable settings with ``messaging_profiles.update``.

``PATCH /messaging_profiles/{id}`` types ``alpha_sender``, ``ai_assistant_id``, ``webhook_url``
and ``webhook_failover_url`` as ``string`` or ``null``: JSON ``null`` is how a setting is
removed (``alpha_sender`` has no other way: ``""`` does not match its pattern). As for
``number_pool_settings`` and ``url_shortener_settings``, passing ``None`` must send ``null``,
and leaving the argument out must send nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg.testing import FakeTelnyx
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
