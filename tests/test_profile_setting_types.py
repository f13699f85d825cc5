"""Typed members of a messaging profile's settings objects and of auto-response configs.

``number_pool_settings`` weights are JSON numbers and its flags JSON booleans;
``url_shortener_settings.domain`` and its ``prefix`` are strings and its flags booleans; an
auto-response config's ``resp_text`` is a string. A value of another type (the string
``"false"`` read from a config file, a number for a text) must be refused before any request,
as every other argument is: sent as it is, ``"skip_unhealthy": "false"`` is not the boolean
the API takes (and any non-empty string reads as true), and ``"resp_text": 123`` is no text.
The fake must refuse such bodies too, or it hides a client that sends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg.testing import FakeTelnyx
from telnyx_msg.testing._config import DEFAULT_PROFILE_ID
from tests.conftest import ApiServer, json_response

pytestmark = pytest.mark.anyio

PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
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
    async with telnyx_msg.AsyncClient(
        "k", base_url=server.base_url, rate_limits=None, max_retries=0
    ) as c:
        yield c


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
