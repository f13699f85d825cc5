"""Telnyx-shaped error answers of the fake: 401, 422, 404, 400, 409, and the request id."""

from __future__ import annotations

from typing import Any

import pytest

from telnyx_msg.testing import DEFAULT_LONG_CODE, DEFAULT_PROFILE_ID, DEFAULT_TOLL_FREE

from .helpers import Api

pytestmark = pytest.mark.anyio

TO = "+18445550001"


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_missing_or_wrong_key_is_401(api: Api, key: str | None) -> None:
    """No or a wrong Bearer key gives 401 with code 10009 and a request id."""
    reply = await api.get("/messaging_optouts", key=key)
    assert reply.status == 401
    assert reply.body == {
        "errors": [
            {
                "code": "10009",
                "title": "Authentication failed",
                "detail": "The required authentication headers were either invalid or not included "
                "in the request.",
                "meta": {"url": "https://developers.telnyx.com/docs/overview/errors/10009"},
            }
        ]
    }
    assert reply.headers["x-request-id"]


async def test_every_response_has_a_unique_request_id(api: Api) -> None:
    """Successes and errors all carry a distinct x-request-id header."""
    replies = [
        await api.get("/messaging_optouts"),
        await api.get("/nope"),
        await api.get("/messaging_optouts", key=None),
    ]
    ids = {r.headers["x-request-id"] for r in replies}
    assert len(ids) == 3


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        ({"from": DEFAULT_TOLL_FREE, "text": "x"}, "10015", "/to"),
        ({"from": DEFAULT_TOLL_FREE, "to": "18445550001", "text": "x"}, "10015", "/to"),
        ({"from": DEFAULT_TOLL_FREE, "to": "+1 844 555", "text": "x"}, "10015", "/to"),
        ({"from": DEFAULT_TOLL_FREE, "to": TO}, "10015", "/text"),
        ({"from": DEFAULT_TOLL_FREE, "to": TO, "text": ""}, "10015", "/text"),
        ({"from": "not a sender!", "to": TO, "text": "x"}, "40305", "/from"),
        ({"to": TO, "text": "x"}, "10015", "/from"),
        (
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x", "messaging_profile_id": "nope"},
            "10015",
            "/messaging_profile_id",
        ),
        ({"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x", "type": "FAX"}, "10015", "/type"),
        (
            {
                "from": DEFAULT_TOLL_FREE,
                "to": TO,
                "media_urls": ["https://e.x/a.png"],
                "type": "SMS",
            },
            "10015",
            "/type",
        ),
        (
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x", "encoding": "utf8"},
            "10015",
            "/encoding",
        ),
        (
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x", "send_at": "tomorrow"},
            "10015",
            "/send_at",
        ),
        (
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x", "send_at": "2001-01-01T00:00:00Z"},
            "10015",
            "/send_at",
        ),
        (
            {"from": DEFAULT_TOLL_FREE, "to": TO, "text": "x", "webhook_url": "ftp://x"},
            "10015",
            "/webhook_url",
        ),
        ({"from": DEFAULT_TOLL_FREE, "to": TO, "text": 5}, "10015", "/text"),
        ({"from": "ACME", "to": TO, "text": "x"}, "10015", "/messaging_profile_id"),
    ],
)
async def test_bad_send_fields_are_422(
    api: Api, body: dict[str, Any], code: str, pointer: str
) -> None:
    """Invalid send bodies get 422 with a Telnyx code and a JSON pointer to the field."""
    reply = await api.post("/messages", body)
    assert reply.status == 422, reply.body
    error = reply.body["errors"][0]
    assert (error["code"], error["source"]["pointer"]) == (code, pointer)
    assert error["title"]
    assert error["detail"]


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        ("/messages/long_code", {"to": TO, "text": "x"}, "/from"),
        ("/messages/number_pool", {"to": TO, "text": "x"}, "/messaging_profile_id"),
        (
            "/messages/alphanumeric_sender_id",
            {"from": "ACME", "to": TO, "messaging_profile_id": DEFAULT_PROFILE_ID},
            "/text",
        ),
        (
            "/messages/alphanumeric_sender_id",
            {
                "from": DEFAULT_LONG_CODE,
                "to": TO,
                "text": "x",
                "messaging_profile_id": DEFAULT_PROFILE_ID,
            },
            "/from",
        ),
        ("/messages/group_mms", {"from": DEFAULT_LONG_CODE, "to": TO, "text": "x"}, "/to"),
        (
            "/messages/group_mms",
            {"from": DEFAULT_LONG_CODE, "to": [TO, "bad"], "text": "x"},
            "/to/1",
        ),
    ],
)
async def test_endpoint_specific_required_fields(
    api: Api, path: str, body: dict[str, Any], pointer: str
) -> None:
    """Each send endpoint enforces its own required fields and formats."""
    reply = await api.post(path, body)
    assert reply.status == 422, reply.body
    assert reply.body["errors"][0]["source"]["pointer"] == pointer


@pytest.mark.parametrize(
    "path",
    [
        "/messages/3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "/alphanumeric_sender_ids/3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "/messaging_hosted_numbers/3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "/messaging_profiles/3fa85f64-5717-4562-b3fc-2c963f66afa6/metrics",
        "/messaging_profiles/3fa85f64-5717-4562-b3fc-2c963f66afa6/alphanumeric_sender_ids",
        "/messaging_profiles/3fa85f64-5717-4562-b3fc-2c963f66afa6/autoresp_configs",
        f"/messaging_profiles/{DEFAULT_PROFILE_ID}/autoresp_configs/nope",
        "/no/such/route",
    ],
)
async def test_unknown_ids_are_404(api: Api, path: str) -> None:
    """Unknown ids and routes get 404 with code 10005."""
    reply = await api.get(path)
    assert reply.status == 404
    assert reply.error_code == "10005"
    assert reply.body["errors"][0]["title"] == "Resource not found"


async def test_wrong_method_is_405_with_telnyx_body(api: Api) -> None:
    """A known path with an unsupported method gets 405 in the Telnyx error shape."""
    reply = await api.request("PUT", "/messages")
    assert reply.status == 405
    assert reply.body["errors"][0]["code"] == "10015"
    assert "POST" in reply.headers["Allow"]  # RFC 9110: a 405 names the allowed methods


async def test_invalid_json_is_400(api: Api) -> None:
    """A body that is not JSON gets 400."""
    reply = await api.request(
        "POST", "/messages", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400
    assert reply.error_code == "10015"


async def test_json_that_is_not_an_object_is_400(api: Api) -> None:
    """A JSON array body on a send is a 400."""
    reply = await api.post("/messages", [1, 2])
    assert reply.status == 400


async def test_bad_query_parameter_is_400(api: Api) -> None:
    """A malformed page[size] gets 400 naming the parameter."""
    reply = await api.get("/messaging_optouts", params={"page[size]": "lots"})
    assert reply.status == 400
    assert reply.body["errors"][0]["source"] == {"parameter": "page[size]"}


async def test_authentication_is_checked_before_the_body(api: Api) -> None:
    """An unauthenticated request with a broken body gets 401, not 400."""
    reply = await api.request(
        "POST",
        "/messages",
        data=b"{not json",
        key=None,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 401
