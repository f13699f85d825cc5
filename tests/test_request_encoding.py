"""What goes on the wire for escape-hatch values and what is refused before any I/O: a real
aiohttp server on 127.0.0.1 records each request."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg import RequestOptions, ValidationError
from tests.conftest import json_response, message_json

pytestmark = pytest.mark.anyio

FROM = "+18005550101"
TO = "+18445550001"


async def answer(request: web.Request) -> web.Response:
    await request.read()
    if "autoresp_configs" in request.path:
        return json_response({"data": {}})
    if request.method == "GET":
        return json_response({"data": [], "meta": {"page_number": 1}})
    return json_response({"data": message_json()})


def client_for(base_url: str) -> telnyx_msg.AsyncClient:
    return telnyx_msg.AsyncClient("k", base_url=base_url, rate_limits=None)


class Colour(enum.Enum):
    """An application's own enum: no ``__str__`` returning its value."""

    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


async def test_an_applications_own_enum_is_sent_by_value_in_the_query(api_server: Any) -> None:
    """A plain ``enum.Enum`` (or ``IntEnum``) of the caller's own, passed as a query value to
    ``client.request(params=...)`` or ``extra_query``, goes out as its value (``red``), not as
    its Python name (``Colour.RED``), like the SDK's own enums."""
    server = await api_server(answer)
    async with client_for(server.base_url) as client:
        await client.request(
            "GET", "/something_new", params={"colour": Colour.RED, "filter": {"c": Colour.RED}}
        )
        await client.messaging_optouts.list(
            options=RequestOptions(extra_query={"colour": Colour.RED, "size": Size.LARGE})
        ).first_page()
    first, second = server.requests
    assert first.query == {"colour": "red", "filter[c]": "red"}
    assert second.query["colour"] == "red"
    assert second.query["size"] == "3"


async def test_a_bare_string_for_a_list_argument_is_refused(api_server: Any) -> None:
    """``keywords="STOP"`` (a string where the API takes an array of keywords) and
    ``tags="vip"`` raise ValidationError before any request: the string would otherwise go
    out as is, or be read as a list of characters."""
    server = await api_server(answer)
    async with client_for(server.base_url) as client:
        with pytest.raises(ValidationError, match="keywords: must be a list of strings"):
            await client.messaging_profiles.autoresp_configs.create(
                "p1", op="stop", keywords="STOP", country_code="US"
            )
        with pytest.raises(ValidationError, match="tags: must be a list of strings"):
            await client.messaging_hosted_numbers.update("n1", tags="vip")
    assert server.requests == []


@pytest.mark.parametrize("value", [1, 0, "true"])
async def test_a_boolean_argument_takes_only_true_or_false(api_server: Any, value: Any) -> None:
    """``redaction_enabled=1`` (an int, or the string "true") is refused before any request:
    the API's booleans are JSON true/false, and ``1`` would be sent as ``1``."""
    server = await api_server(answer)
    async with client_for(server.base_url) as client:
        with pytest.raises(ValidationError, match="redaction_enabled: must be true or false"):
            await client.messaging_optouts.list(redaction_enabled=value).first_page()
    assert server.requests == []


async def test_page_number_zero_is_refused(api_server: Any) -> None:
    """``page_number=0`` is refused before any request (pages are numbered from 1)."""
    server = await api_server(answer)
    async with client_for(server.base_url) as client:
        with pytest.raises(ValidationError, match=r"page\[number\]: must be an integer >= 1"):
            await client.messaging_optouts.list(page_number=0).first_page()
    assert server.requests == []


async def test_an_alphanumeric_looking_sender_gets_no_phone_number_advice() -> None:
    """A sender that may be an alphanumeric sender ID ("Acme-Co": the dash is what is wrong)
    is not told to "start with '+' and the country code", advice for phone numbers only."""
    async with telnyx_msg.AsyncClient("k", base_url="http://127.0.0.1:9/v2") as client:
        with pytest.raises(ValidationError) as caught:
            await client.messages.send(from_="Acme-Co", to=TO, text="hi")
    message = str(caught.value)
    assert "'Acme-Co' is not a valid" in message
    assert "start with '+'" not in message
    assert "remove spaces" not in message
