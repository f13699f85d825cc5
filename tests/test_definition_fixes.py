"""SDK request shapes corrected against Telnyx's OpenAPI definition of the messaging API.

The definition: repository team-telnyx/openapi, file openapi/spec3.yml, commit
12de4dd039fd867f7a81c8ec415e6fb6477d5687 (vendored as tests/openapi/messaging.json).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from tests.conftest import ApiServer, json_response

pytestmark = pytest.mark.anyio

PROFILE = "4000eba1-a0c0-4563-9925-b25e842a7cb6"
HOSTED = {"id": "h1", "record_type": "messaging_phone_number", "phone_number": "+18005550101"}
META = {"page_number": 1, "page_size": 20, "total_pages": 1, "total_results": 0}


async def _answer(request: web.Request) -> web.Response:
    if request.path.endswith("/messaging_profile_metrics"):
        return json_response({"data": [], "meta": META})
    if request.path.endswith("/regenerate_secret"):
        return json_response({"data": {"id": PROFILE, "v1_secret": "s"}})
    return json_response({"data": HOSTED})


@pytest.fixture
async def server(api_server: Callable[[Any], Awaitable[ApiServer]]) -> ApiServer:
    """A recording server on 127.0.0.1."""
    return await api_server(_answer)


@pytest.fixture
async def client(server: ApiServer) -> AsyncIterator[telnyx_msg.AsyncClient]:
    """An AsyncClient pointed at the recording server."""
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as c:
        yield c


@pytest.mark.parametrize("kwargs", [{"page_number": 2}, {"page_size": 5}, {"id": PROFILE}])
async def test_profile_metrics_list_takes_only_time_frame(
    client: telnyx_msg.AsyncClient, server: ApiServer, kwargs: dict[str, Any]
) -> None:
    """messaging_profile_metrics.list refuses page_number, page_size and id before any I/O."""
    with pytest.raises(telnyx_msg.ValidationError, match="unexpected keyword argument"):
        await client.messaging_profile_metrics.list(**kwargs)
    assert server.requests == []


async def test_profile_metrics_list_sends_time_frame(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """time_frame is still sent as the one query parameter."""
    await client.messaging_profile_metrics.list(time_frame="3d")
    assert server.requests[0].query == {"time_frame": "3d"}


async def test_hosted_number_update_without_fields_sends_empty_object(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """An update given no fields still sends the required JSON body: {}."""
    await client.messaging_hosted_numbers.update("h1")
    recorded = server.requests[0]
    assert recorded.method == "PATCH"
    assert recorded.body == b"{}"
    assert recorded.headers["Content-Type"].startswith("application/json")


async def test_regenerate_secret_sends_no_body(
    client: telnyx_msg.AsyncClient, server: ApiServer
) -> None:
    """The definition documents no request body for regenerate_secret: none is sent."""
    await client.messaging_profiles.actions.regenerate_secret(PROFILE)
    assert server.requests[0].body == b""
