"""Conformance with Telnyx's OpenAPI definition of the messaging operations.

The definition is vendored as ``tests/openapi/messaging.json`` (team-telnyx/openapi,
``openapi/spec3.yml`` at commit 12de4dd039fd867f7a81c8ec415e6fb6477d5687; see the README
next to it). Two checks:

- the endpoint catalogue has every operation with the same method, path, parameters, body
  properties and required flags, and the response models have every documented field;
- every operation, driven through the SDK against FakeTelnyx, is answered with a body valid
  against the operation's response schema for that status, and the webhooks the fake signs are
  valid against the definition's webhook schemas.

Where the definition contradicts itself, ``_patched`` applies one named, commented patch per
erratum (labels E1-E8 and N2/N7 as listed in ``tests/openapi/README.md``) to a copy of it;
nothing else is loosened.
"""

from __future__ import annotations

import copy
import enum
import json
import re
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import telnyx_msg
from telnyx_msg import endpoints as ep
from telnyx_msg import models as m
from telnyx_msg._spec import Endpoint
from telnyx_msg.testing import FakeConfig, FakeTelnyx, SeedNumber
from telnyx_msg.testing._config import (
    DEFAULT_LONG_CODE,
    DEFAULT_PROFILE_ID,
    DEFAULT_SHORT_CODE,
    DEFAULT_TOLL_FREE,
)
from tests.fake.helpers import Receiver

pytestmark = pytest.mark.anyio

DEFINITION_PATH = Path(__file__).parent / "openapi" / "messaging.json"
DEFINITION: dict[str, Any] = json.loads(DEFINITION_PATH.read_text(encoding="utf-8"))
BASE_URI = "urn:telnyx:openapi:messaging"
METHODS = ("get", "post", "put", "patch", "delete")

OPERATIONS = [
    (method.upper(), path)
    for path, item in DEFINITION["paths"].items()
    for method in item
    if method in METHODS
]
CATALOGUE: dict[tuple[str, str], Endpoint[Any, Any]] = {
    (e.method, e.path): e for name in ep.__all__ if isinstance(e := getattr(ep, name), Endpoint)
}

# --- (a) the catalogue against the definition -------------------------------------------------

#: Request fields of the definition the SDK deliberately does not take, with the reason. Empty:
#: every documented parameter and body property is an argument.
OMITTED_REQUEST_FIELDS: dict[tuple[str, str], dict[str, str]] = {}

#: Response-model fields the operation's schema does not list, and why they exist.
_LATER = "in the later definition the official SDK 4.189 was generated from"
SHARED_MODEL_FIELDS: dict[str, dict[str, str]] = {
    "Message": {
        "body": _LATER,
        "template_id": _LATER,
        "template_name": _LATER,
        "autoresponse_type": "inbound messages carry it; one model for both directions",
        "wait_seconds": "outbound sends carry it; one model for every message answer",
        "smart_encoding_applied": "outbound messages carry it; one model for both directions",
    },
    "Recipient": {"agent_id": _LATER, "agent_name": _LATER},
    "Sender": {
        "agent_id": _LATER,
        "agent_name": _LATER,
        "status": "inbound senders carry it; one model for both directions",
    },
    "Media": {
        "sha256": "outbound media carry it; one model for both directions",
        "hash_sha256": "inbound media carry it; one model for both directions",
    },
    "MessagingProfile": {"features": _LATER},
}


def _deref(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = DEFINITION
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _definition_request(method: str, path: str) -> tuple[set[str], set[str], set[str], set[str]]:
    """(path params, query heads, body properties, required non-path fields) of an operation."""
    operation = DEFINITION["paths"][path][method.lower()]
    in_path, query, body, required = set(), set(), set(), set()
    for parameter in map(_deref, operation.get("parameters", [])):
        if parameter["in"] == "path":
            in_path.add(parameter["name"])
        else:
            assert parameter["in"] == "query", parameter
            query.add(parameter["name"].split("[")[0])
            if parameter.get("required"):
                required.add(parameter["name"].split("[")[0])
    request_body = operation.get("requestBody")
    if request_body is not None:
        schema = _deref(_deref(request_body)["content"]["application/json"]["schema"])
        writable = {
            name
            for name, prop in schema.get("properties", {}).items()
            if not _deref(prop).get("readOnly")
        }  # read-only: never sent (N2)
        body |= writable
        required |= set(schema.get("required", ())) & writable
    return in_path, query, body, required


def test_catalogue_has_every_operation_of_the_definition() -> None:
    """The 44 operations of the definition are the catalogue's, with the same method and path."""
    assert len(OPERATIONS) == 44
    assert set(CATALOGUE) == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda x: str(x))
def test_request_fields_match_the_definition(method: str, path: str) -> None:
    """Path, query and body fields and their required flags are the definition's."""
    endpoint = CATALOGUE[(method, path)]
    in_path, query, body, required = _definition_request(method, path)
    omitted = OMITTED_REQUEST_FIELDS.get((method, path), {})
    ours: dict[str, set[str]] = {"path": set(), "query": set(), "body": set()}
    for plan in endpoint.fields:
        ours[plan.location].add(plan.wire.split("[")[0] if plan.location == "query" else plan.wire)
    assert ours["path"] == in_path
    assert ours["query"] == query - set(omitted)
    assert ours["body"] == body - set(omitted)
    ours_required = {p.wire.split("[")[0] for p in endpoint.required if p.location != "path"}
    assert ours_required == required - set(omitted)
    # A documented request body is always sent (an update without fields sends {}).
    operation = DEFINITION["paths"][path][method.lower()]
    assert endpoint.json_body == ("requestBody" in operation)


def _documented_enums(method: str, path: str) -> Iterator[tuple[list[str], list[Any]]]:
    """(wire name split at brackets, enum) of each enum-typed parameter and body property."""
    operation = DEFINITION["paths"][path][method.lower()]
    for parameter in map(_deref, operation.get("parameters", [])):
        schema = _deref(parameter.get("schema", {}))
        parts = parameter["name"].replace("]", "").split("[")
        if "enum" in schema:
            yield parts, schema["enum"]
        for key, prop in schema.get("properties", {}).items():  # deepObject parameters
            if "enum" in _deref(prop):
                yield [*parts, key], _deref(prop)["enum"]
    request_body = operation.get("requestBody")
    if request_body is not None:
        schema = _deref(_deref(request_body)["content"]["application/json"]["schema"])
        for key, prop in schema.get("properties", {}).items():
            prop = _deref(prop)
            if "enum" in prop and not prop.get("readOnly"):
                yield [key], prop["enum"]


def _literal_values(annotation: Any, keys: list[str]) -> set[Any] | None:
    """The Literal (or enum) values an annotation allows at ``keys`` inside TypedDicts."""
    values: set[Any] = set()
    found = False
    stack = [(annotation, keys)]
    while stack:
        tp, rest = stack.pop()
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            stack += [(arg, rest) for arg in typing.get_args(tp)]
        elif origin is typing.Literal and not rest:
            values |= set(typing.get_args(tp))
            found = True
        elif isinstance(tp, type) and issubclass(tp, enum.Enum) and not rest:
            values |= {member.value for member in tp}
            found = True
        elif rest and typing.is_typeddict(tp):
            hints = typing.get_type_hints(tp)
            if rest[0] in hints:
                stack.append((hints[rest[0]], rest[1:]))
    return values if found else None


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda x: str(x))
def test_request_enums_match_the_definition(method: str, path: str) -> None:
    """Every documented enum is typed as exactly those values (Literal or str enum)."""
    endpoint = CATALOGUE[(method, path)]
    assert isinstance(endpoint.request, type)
    hints = typing.get_type_hints(endpoint.request)
    by_head = {plan.wire.split("[")[0]: plan.name for plan in endpoint.fields}
    for parts, documented in _documented_enums(method, path):
        name = by_head[parts[0]]
        assert _literal_values(hints[name], parts[1:]) == set(documented), (parts, documented)


def _model_in(annotation: Any) -> type[Any] | None:
    for arg in typing.get_args(annotation) or (annotation,):
        if typing.get_origin(arg) is tuple:
            arg = typing.get_args(arg)[0]
        if isinstance(arg, type) and attrs.has(arg) and issubclass(arg, m._Model):
            return arg
    return None


def _compare_model(schema: Any, cls: type[Any], where: str) -> Iterator[str]:
    schema = _deref(schema)
    for variant in schema.get("oneOf", ()):
        yield from _compare_model(variant, cls, where)
    if "items" in schema:
        schema = _deref(schema["items"])
    properties = schema.get("properties", {})
    if not properties:
        return
    fields = {f.name.rstrip("_"): f for f in attrs.fields(cls) if f.name != "extra"}
    for name in sorted(set(properties) - set(fields)):
        yield f"{where}: {cls.__name__} lacks {name!r}"
    for name in sorted(
        set(fields) - set(properties) - set(SHARED_MODEL_FIELDS.get(cls.__name__, {}))
    ):
        yield f"{where}: {cls.__name__}.{name} is not in the definition"
    hints = typing.get_type_hints(cls)
    for name, prop in properties.items():
        if name in fields:
            nested = _model_in(hints[fields[name].name])
            if nested is not None:
                yield from _compare_model(prop, nested, f"{where}.{name}")


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=lambda x: str(x))
def test_response_model_has_every_documented_field(method: str, path: str) -> None:
    """The response model (and its nested models) declare every field of the 2xx schema."""
    endpoint = CATALOGUE[(method, path)]
    responses = DEFINITION["paths"][path][method.lower()]["responses"]
    success = _deref(next(v for k, v in responses.items() if k.startswith("2")))
    schema = _deref(success["content"]["application/json"].get("schema", {}))
    if endpoint.response is type(None):
        assert schema.get("type") == "string"  # the "OK" of a delete
        return
    if endpoint.envelope == "data":
        schema = schema["properties"]["data"]
    assert list(_compare_model(schema, endpoint.response, f"{method} {path}")) == []


# --- (b) FakeTelnyx's answers against the definition ------------------------------------------


def _patched() -> dict[str, Any]:
    """A copy of the definition with each erratum's reading applied as an explicit patch."""
    doc = copy.deepcopy(DEFINITION)
    schemas = doc["components"]["schemas"]

    # N7: +E.164 is spelled x-format "e164", "E+164" and "+E.164". x-format is not a JSON
    # Schema keyword, so it becomes a real format, checked by _format_checker().
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("x-format") in ("e164", "E+164", "+E.164"):
                node["format"] = "e164"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)

    # E1: a scheduled message is answered with OutboundMessagePayload (and a cancelled one by
    # GET /messages/{id}), whose to[].status lists neither value; both are valid statuses.
    status = schemas["OutboundMessagePayload"]["properties"]["to"]["items"]["properties"]["status"]
    status["enum"] = [*status["enum"], "scheduled", "cancelled"]

    # E2: OptOutItem.created_at is format date-time, but its own example separates date and
    # time with a space; accept both separators.
    created = schemas["OptOutItem"]["properties"]["created_at"]
    del created["format"]
    created["anyOf"] = [{"format": "date-time"}, {"pattern": _SPACE_DATE_TIME}]

    # E3: PhoneNumberWithMessagingSettings.phone_number is +E.164, yet its type lists short
    # codes, which are 3-8 digits: a short code is a valid phone_number there.
    phone = schemas["PhoneNumberWithMessagingSettings"]["properties"]["phone_number"]
    del phone["format"]
    phone["anyOf"] = [{"format": "e164"}, {"pattern": r"^[0-9]{3,8}$"}]

    # E4: four error answers are documented as a bare messaging_Error while every other error
    # (the same operations' 4XX included) is messaging_Errors; errors come as {"errors": [...]}.
    for path, method, statuses in (
        ("/messages/{id}", "delete", ("403", "404")),
        ("/messaging_optouts", "get", ("400", "401")),
    ):
        for code in statuses:
            content = doc["paths"][path][method]["responses"][code]["content"]
            content["application/json"]["schema"] = {
                "anyOf": [
                    {"$ref": "#/components/schemas/messaging_Error"},
                    {"$ref": "#/components/schemas/messaging_Errors"},
                ]
            }

    # E5: whitelisted_destinations items match ^[A-Z]{2}$, but the property's description says
    # ["*"] allows every destination: "*" is valid too.
    destinations = schemas["MessagingProfile"]["properties"]["whitelisted_destinations"]
    destinations["items"]["pattern"] = "^([A-Z]{2}|\\*)$"

    # E8: the webhook URLs are format url but default to "", and a profile created without
    # them is answered with "": "" is valid besides a URL (and null).
    for key in ("webhook_url", "webhook_failover_url"):
        prop = schemas["MessagingProfile"]["properties"][key]
        del prop["format"]
        prop["anyOf"] = [{"format": "url"}, {"const": ""}]
    return doc


_SPACE_DATE_TIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def _format_checker() -> FormatChecker:
    """uuid (jsonschema's), RFC 3339 date-time, http(s) url and +E.164 (the x-formats)."""
    checker = FormatChecker(formats=("uuid",))
    checker.checks("date-time")(
        lambda value: not isinstance(value, str) or _DATE_TIME.fullmatch(value) is not None
    )
    checker.checks("url")(
        lambda value: not isinstance(value, str) or _URL.fullmatch(value) is not None
    )
    checker.checks("e164")(
        lambda value: not isinstance(value, str) or _E164.fullmatch(value) is not None
    )
    return checker


PATCHED = _patched()
REGISTRY: Registry[Any] = Registry().with_resource(
    BASE_URI, Resource.from_contents(PATCHED, default_specification=DRAFT202012)
)
FORMATS = _format_checker()


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _validate(pointer: str, instance: Any) -> None:
    """Validate ``instance`` against the schema at ``pointer`` of the patched definition."""
    validator = Draft202012Validator(
        {"$ref": f"{BASE_URI}#/{pointer}"}, registry=REGISTRY, format_checker=FORMATS
    )
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


def _route(method: str, path: str) -> tuple[str, str]:
    """The definition's (method, path template) of a request path under /v2."""
    for op_method, template in OPERATIONS:
        pattern = "^/v2" + re.sub(r"\{\w+\}", "[^/]+", template) + "$"
        if op_method == method and re.match(pattern, path):
            return op_method, template
    raise AssertionError(f"{method} {path} is no operation of the definition")


def _response_pointer(method: str, template: str, status: int) -> str:
    responses = PATCHED["paths"][template][method.lower()]["responses"]
    key = next((k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None)
    assert key is not None, f"{method} {template} does not document status {status}"
    response = responses[key]
    base = ["paths", template, method.lower(), "responses", key]
    if "$ref" in response:  # a shared response component
        base = response["$ref"].removeprefix("#/").split("/")
        base = [part.replace("~1", "/").replace("~0", "~") for part in base]
    return _pointer(*base, "content", "application/json", "schema")


SPARE = "+13125550199"
TO = "+13125550001"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver for the profile's webhook URL."""
    server = Receiver()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def _errors_are_raised(call: Callable[[], Any]) -> None:
    with pytest.raises(telnyx_msg.APIStatusError):
        await call()


async def _drive_every_operation(client: telnyx_msg.AsyncClient, fake: FakeTelnyx) -> None:
    """Call each of the 44 operations at least once (plus a few documented errors)."""
    messages = client.messages
    profile = DEFAULT_PROFILE_ID
    sent = await messages.send(from_=DEFAULT_LONG_CODE, to=TO, text="Hello")
    await messages.send_with_alphanumeric_sender(
        from_="ACME", to=TO, text="Hi", messaging_profile_id=profile
    )
    group = await messages.send_group_mms(
        from_=DEFAULT_LONG_CODE,
        to=[TO, "+13125550002"],
        text="Hi",
        media_urls=["https://example.com/a.png"],
    )
    await messages.send_long_code(from_=DEFAULT_LONG_CODE, to=TO, text="Hi")
    await messages.send_number_pool(messaging_profile_id=profile, to=TO, text="Hi")
    await messages.send_short_code(from_=DEFAULT_SHORT_CODE, to=TO, text="Hi")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    scheduled = await messages.schedule(from_=DEFAULT_LONG_CODE, to=TO, text="Later", send_at=later)
    await messages.send_whatsapp(
        from_=DEFAULT_LONG_CODE, to=TO, whatsapp_message={"type": "text", "text": {"body": "Hi"}}
    )
    await fake.settle()
    assert sent.id is not None
    assert group.id is not None
    assert scheduled.id is not None
    await messages.retrieve(sent.id)
    inbound = await fake.inject_inbound(
        from_=TO, to=DEFAULT_LONG_CODE, text="Look", media_urls=["https://example.com/cat.jpg"]
    )
    await messages.retrieve(inbound["id"])  # inbound MMS
    await messages.retrieve(scheduled.id)  # scheduled (E1)
    await messages.cancel_scheduled(scheduled.id)
    await messages.retrieve(scheduled.id)  # cancelled (E1)
    await messages.retrieve_group_messages(group.id)
    await _errors_are_raised(lambda: messages.retrieve("00000000-0000-4000-8000-000000000000"))
    await _errors_are_raised(lambda: messages.cancel_scheduled(sent.id or ""))
    await _errors_are_raised(
        lambda: messages.cancel_scheduled("00000000-0000-4000-8000-000000000000")
    )  # E4

    senders = client.alphanumeric_sender_ids
    alnum = await senders.create(alphanumeric_sender_id="ACME", messaging_profile_id=profile)
    assert alnum.id is not None
    [_ async for _ in senders.list(filter={"messaging_profile_id": profile})]
    await senders.retrieve(alnum.id)
    [_ async for _ in client.messaging_profiles.list_alphanumeric_sender_ids(profile)]
    await senders.delete(alnum.id)
    await _errors_are_raised(lambda: senders.retrieve(alnum.id or ""))

    hosted = client.messaging_hosted_numbers
    [_ async for _ in hosted.list(sort={"phone_number": "desc"})]
    await hosted.retrieve(DEFAULT_LONG_CODE)
    await hosted.update(DEFAULT_LONG_CODE, tags=["a"])
    await hosted.update(DEFAULT_LONG_CODE)  # {} body

    await fake.inject_inbound(from_=TO, to=DEFAULT_LONG_CODE, text="STOP")
    [_ async for _ in client.messaging_optouts.list()]
    await client.messaging_profile_metrics.list(time_frame="24h")

    profiles = client.messaging_profiles
    await profiles.retrieve_metrics(profile)
    await profiles.actions.regenerate_secret(profile)
    configs = profiles.autoresp_configs
    config = await configs.create(
        profile, op="info", keywords=["HELP"], country_code="US", resp_text="Reply STOP to stop"
    )
    assert config.id is not None
    await configs.list(profile)
    await configs.retrieve(config.id, profile_id=profile)
    await configs.update(
        config.id, profile_id=profile, op="info", keywords=["INFO"], country_code="US"
    )
    await configs.delete(config.id, profile_id=profile)

    created = await profiles.create(
        name="Acme",
        whitelisted_destinations=["*"],
        number_pool_settings={
            "long_code_weight": 1,
            "toll_free_weight": 2,
            "skip_unhealthy": False,
        },
        url_shortener_settings={"domain": "acme.link"},
    )
    assert created.id is not None
    [_ async for _ in profiles.list(filter={"name": {"contains": "Ac"}})]
    await profiles.retrieve(created.id)
    await profiles.update(created.id, webhook_url="https://hooks.example/acme", alpha_sender="Acme")
    [_ async for _ in profiles.list_phone_numbers(profile)]
    [_ async for _ in profiles.list_short_codes(profile)]

    numbers = client.phone_numbers.messaging
    [_ async for _ in numbers.list(filter={"type": "shortcode"})]
    [_ async for _ in numbers.list()]
    await numbers.retrieve(DEFAULT_SHORT_CODE)  # E3
    await numbers.update(SPARE, messaging_profile_id=created.id)
    await numbers.update(SPARE, messaging_profile_id="")
    await _errors_are_raised(lambda: numbers.retrieve("+19995550000"))

    codes = [c async for c in client.short_codes.list()]
    assert codes[0].id is not None
    await client.short_codes.retrieve(codes[0].id)
    await client.short_codes.update(codes[0].id, messaging_profile_id=created.id, tags=["x"])
    [_ async for _ in client.short_codes.list(filter={"messaging_profile_id": "null"})]

    order = await client.messaging_numbers_bulk_updates.create(
        messaging_profile_id=created.id, numbers=[SPARE, "+19995550000"]
    )
    assert order.order_id is not None
    await client.messaging_numbers_bulk_updates.retrieve(order.order_id)

    await hosted.delete(DEFAULT_TOLL_FREE)
    await profiles.delete(created.id)
    await _errors_are_raised(lambda: profiles.retrieve(created.id or ""))


async def test_fake_answers_every_operation_as_the_definition_documents(receiver: Receiver) -> None:
    """Every answer of the fake, success or error, is valid against its response schema."""
    config = FakeConfig(
        numbers=[*FakeConfig().numbers, SeedNumber(phone_number=SPARE, messaging_profile_id=None)]
    )
    async with (
        FakeTelnyx(config=config) as fake,
        telnyx_msg.AsyncClient(
            fake.api_key, base_url=fake.base_url, rate_limits=None, max_retries=0
        ) as client,
    ):
        fake.set_webhook_url(receiver.url())
        await _drive_every_operation(client, fake)
        await fake.settle()
        # The fake records each answer's raw body: validate exactly what went on the wire.
        exchanges = list(fake.stats.requests)
    covered = set()
    for exchange in exchanges:
        assert exchange.status is not None, exchange
        assert exchange.answer is not None, exchange
        method, template = _route(exchange.method, exchange.path)
        covered.add((method, template))
        pointer = _response_pointer(method, template, exchange.status)
        _validate(pointer, json.loads(exchange.answer))
    assert covered == set(OPERATIONS)
    assert {e.status for e in exchanges} >= {200, 201, 404, 422}


async def test_fake_webhooks_match_the_definition(receiver: Receiver) -> None:
    """Signed message.sent/finalized, message.received and link-click webhooks are valid."""
    async with FakeTelnyx() as fake, fake.client(rate_limits=None) as client:
        fake.set_webhook_url(receiver.url())
        sent = await client.messages.send(
            from_=DEFAULT_LONG_CODE, to=TO, text="Hello", media_urls=["https://example.com/a.png"]
        )
        await client.messages.send(from_=DEFAULT_LONG_CODE, to="+13125550666", text="Fails")
        await fake.settle()
        await fake.inject_inbound(
            from_=TO, to=DEFAULT_LONG_CODE, text="Hi", media_urls=["https://example.com/cat.jpg"]
        )
        assert sent.id is not None
        await fake.inject_link_click(message_id=sent.id, url="https://example.com/x")
        deliveries = await receiver.wait_for(6)
        verifier = telnyx_msg.WebhookVerifier(fake.public_key)
    hooks = PATCHED["webhooks"]
    seen = set()
    for delivery in deliveries:
        verifier.unwrap(delivery.body, delivery.headers)  # signed by the fake
        document = delivery.json()
        data = document["data"]
        if data.get("record_type") == "link_clicked":
            name = "replacedLinkClick"
        elif data["event_type"] == "message.received":
            name = "inboundMessage"
        else:
            name = "deliveryUpdate"
        assert hooks[name]["post"]["requestBody"]["content"]["application/json"]["schema"]
        _validate(
            _pointer(
                "webhooks", name, "post", "requestBody", "content", "application/json", "schema"
            ),
            document,
        )
        seen.add(data.get("event_type", "message.link_click"))
    assert seen == {"message.sent", "message.finalized", "message.received", "message.link_click"}


def test_patches_are_needed() -> None:
    """Each erratum patch changes a value the fake really answers (so none is dead)."""
    unpatched = Registry().with_resource(
        BASE_URI, Resource.from_contents(DEFINITION, default_specification=DRAFT202012)
    )

    def valid(schema: str, instance: Any, registry: Registry[Any]) -> bool:
        validator = Draft202012Validator(
            {"$ref": f"{BASE_URI}#/components/schemas/{schema}"},
            registry=registry,
            format_checker=FORMATS,
        )
        return validator.is_valid(instance)

    samples = [
        (
            "OptOutItem",
            {"from": DEFAULT_LONG_CODE, "to": TO, "created_at": "2025-04-28 12:00:38.631252+00:00"},
        ),  # E2
        ("MessagingProfile", {"whitelisted_destinations": ["*"]}),  # E5
        ("MessagingProfile", {"webhook_url": ""}),  # E8
        ("OutboundMessagePayload", {"to": [{"phone_number": TO, "status": "scheduled"}]}),  # E1
    ]
    for schema, instance in samples:
        assert valid(schema, instance, REGISTRY)
        assert not valid(schema, instance, unpatched)
