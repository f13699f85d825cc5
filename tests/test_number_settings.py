"""Client side of the messaging-settings operations: argument checks before I/O and wire details
the OpenAPI definition asks for (empty PATCH bodies, ``""`` values, encoded path ids)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import ValidationError
from tests.conftest import ApiServer, json_response

pytestmark = pytest.mark.anyio

PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
raw_paths: list[str] = []


async def _answer(request: web.Request) -> web.Response:
    raw_paths.append(request.raw_path)
    if request.method == "GET" and request.path.endswith("/messaging_profiles"):
        return json_response({"data": [], "meta": {"page_number": 1, "total_pages": 1}})
    # Enough for every model these calls return (each has its always-sent fields).
    return json_response({"data": {"id": "x", "phone_number": "+13125550100", "order_id": "o"}})


@pytest.fixture
async def server(api_server: Callable[[Any], Awaitable[ApiServer]]) -> ApiServer:
    """A recording server on 127.0.0.1."""
    raw_paths.clear()
    return await api_server(_answer)


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[telnyx_msg.AsyncClient]:
    """An AsyncClient pointed at the recording server."""
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        yield c


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.messaging_profiles.update(PROFILE),
        lambda c: c.phone_numbers.messaging.update("+13125550100"),
    ],
    ids=["profile", "phone-number"],
)
async def test_update_without_fields_sends_empty_object(
    client: telnyx_msg.AsyncClient, server: ApiServer, call: Any
) -> None:
    """An update given no fields still sends {} (the request body is required)."""
    await call(client)
    assert server.requests[0].method == "PATCH"
    assert server.requests[0].body == b"{}"


async def test_phone_number_id_is_percent_encoded(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """An E.164 id keeps its '+' by being percent-encoded in the path."""
    await client.phone_numbers.messaging.retrieve("+13125550100")
    await client.phone_numbers.messaging.update("a/b c", tags=["x"])
    assert raw_paths[0] == "/v2/phone_numbers/%2B13125550100/messaging"
    assert raw_paths[1] == "/v2/phone_numbers/a%2Fb%20c/messaging"


async def test_profile_name_filter_accepts_string_or_object(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """filter[name] is sent as a plain value, or as filter[name][eq] / [contains]."""
    await client.messaging_profiles.list(filter={"name": "Acme"}).first_page()
    await client.messaging_profiles.list(filter={"name": {"eq": "Acme"}}).first_page()
    assert server.requests[0].query == {"filter[name]": "Acme"}
    assert server.requests[1].query == {"filter[name][eq]": "Acme"}


async def test_short_code_unbind_sends_empty_string(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """short_codes.update(messaging_profile_id="") sends the key with "" (unbind)."""
    await client.short_codes.update("s1", messaging_profile_id="")
    assert server.requests[0].json == {"messaging_profile_id": ""}


async def test_bulk_update_unassign_sends_empty_string(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """A bulk update with messaging_profile_id="" unassigns the numbers."""
    await client.messaging_numbers_bulk_updates.create(
        messaging_profile_id="", numbers=["+13125550100"]
    )
    assert server.requests[0].json == {"messaging_profile_id": "", "numbers": ["+13125550100"]}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda c: c.messaging_profiles.create(name="A", whitelisted_destinations=["usa"]),
            "whitelisted_destinations",
        ),
        (
            lambda c: c.messaging_profiles.create(name="A", whitelisted_destinations="US"),
            "whitelisted_destinations",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A", whitelisted_destinations=["US"], webhook_url="ftp://x"
            ),
            "webhook_url",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A", whitelisted_destinations=["US"], webhook_api_version="3"
            ),
            "webhook_api_version",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A", whitelisted_destinations=["US"], alpha_sender="TWELVE CHARS"
            ),
            "alpha_sender",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A", whitelisted_destinations=["US"], daily_spend_limit="$5"
            ),
            "daily_spend_limit",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A",
                whitelisted_destinations=["US"],
                number_pool_settings={"long_code_weight": 1},
            ),
            "number_pool_settings",
        ),
        (
            lambda c: c.messaging_profiles.update(
                PROFILE,
                number_pool_settings={
                    "long_code_weight": -1,
                    "toll_free_weight": 1,
                    "skip_unhealthy": True,
                },
            ),
            "number_pool_settings",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A", whitelisted_destinations=["US"], url_shortener_settings={"prefix": "x"}
            ),
            "url_shortener_settings",
        ),
        (
            lambda c: c.messaging_profiles.create(
                name="A", whitelisted_destinations=["US"], resource_group_id="x" * 65
            ),
            "resource_group_id",
        ),
        (lambda c: c.messaging_profiles.update(PROFILE, mobile_only="yes"), "mobile_only"),
        (lambda c: c.messaging_profiles.retrieve(""), "id"),
        (lambda c: c.phone_numbers.messaging.retrieve(""), "id"),
        (
            lambda c: c.phone_numbers.messaging.list(filter={"type": "long-code"}).first_page(),
            "filter",
        ),
        (
            lambda c: c.phone_numbers.messaging.list(sort={"phone_number": "up"}).first_page(),
            "sort",
        ),
        (lambda c: c.short_codes.update("s1", messaging_profile_id=None), "messaging_profile_id"),
        (
            lambda c: c.messaging_numbers_bulk_updates.create(
                messaging_profile_id=PROFILE, numbers=["3125550100"]
            ),
            "numbers",
        ),
        (lambda c: c.messaging_numbers_bulk_updates.retrieve(" "), "order_id"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
async def test_bad_arguments_fail_before_io(
    client: telnyx_msg.AsyncClient, server: ApiServer, call: Any, field: str
) -> None:
    """Arguments the definition does not allow raise ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        await call(client)
    assert info.value.field == field
    assert server.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": PROFILE},
        {"record_type": "messaging_profile"},
        {"created_at": "2024-01-01T00:00:00Z"},
        {"resource_group_id": "rg"},
    ],
)
async def test_profile_update_takes_no_read_only_or_create_only_fields(
    client: telnyx_msg.AsyncClient, server: ApiServer, kwargs: dict[str, Any]
) -> None:
    """Read-only fields and create-only fields are not arguments of update."""
    with pytest.raises(telnyx_msg.ValidationError):
        await client.messaging_profiles.update(PROFILE, **kwargs)
    assert server.requests == []


async def test_create_profile_requires_name_and_destinations(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """name and whitelisted_destinations are required arguments of create."""
    create: Any = client.messaging_profiles.create
    with pytest.raises(telnyx_msg.ValidationError, match="whitelisted_destinations="):
        await create(name="A")
    with pytest.raises(telnyx_msg.ValidationError, match="name="):
        await create(whitelisted_destinations=["US"])
    assert server.requests == []


async def test_destinations_accept_star_and_webhook_url_accepts_empty(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """["*"] (every destination) and webhook_url="" are sent as given."""
    await client.messaging_profiles.create(
        name="A", whitelisted_destinations=["*"], webhook_url="", webhook_failover_url=""
    )
    assert server.requests[0].json == {
        "name": "A",
        "whitelisted_destinations": ["*"],
        "webhook_url": "",
        "webhook_failover_url": "",
    }


async def test_update_is_retried_after_a_5xx_but_create_is_not(api_server: Any) -> None:
    """PATCH updates set absolute values and are retried; a profile create is not."""

    async def flaky(request: web.Request) -> web.Response:
        if len(srv.requests) == 1:
            return json_response({"errors": [{"code": "10007", "title": "Unexpected"}]}, 500)
        return json_response({"data": {"id": PROFILE}})

    srv: ApiServer = await api_server(flaky)
    async with telnyx_msg.AsyncClient(
        "k", base_url=srv.base_url, rate_limits=None, max_retries=1
    ) as client:
        profile = await client.messaging_profiles.update(PROFILE, name="B")
        assert profile.id == PROFILE
        assert len(srv.requests) == 2
        srv.requests.clear()
        with pytest.raises(telnyx_msg.InternalServerError):
            await client.messaging_profiles.create(name="A", whitelisted_destinations=["US"])
        assert len(srv.requests) == 1
