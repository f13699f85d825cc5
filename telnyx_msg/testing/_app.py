"""The aiohttp.web application of the fake: one middleware (request id, counters, faults, auth,
rate limit, error bodies) and one small handler per operation the SDK wraps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from aiohttp import web

from telnyx_msg.errors import QUEUE_FULL_CODE
from telnyx_msg.testing._errors import (
    ApiError,
    injected,
    invalid,
    not_found,
    too_many_requests,
    unauthorized,
)
from telnyx_msg.testing._records import RecordedRequest
from telnyx_msg.testing._state import JSON

if TYPE_CHECKING:
    from telnyx_msg.testing._fake import FakeTelnyx

_log = logging.getLogger("telnyx_msg.testing")

PREFIX = "/v2"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Telnyx's documented Idempotency-Key format
# (https://developers.telnyx.com/docs/development/api-fundamentals/idempotency).
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_:-]{1,255}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The current request's raw body and parsed JSON. aiohttp runs a request's middleware and
# handler in one task, so a context variable hands them over without request storage (whose
# string keys aiohttp >= 3.14 warns about).
_RAW: ContextVar[bytes] = ContextVar("telnyx_fake_raw", default=b"")
_JSON: ContextVar[Any] = ContextVar("telnyx_fake_json", default=None)


def _json(document: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(document).encode(), status=status, content_type="application/json"
    )


def _body() -> JSON:
    body = _JSON.get()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", "", status=400)
    return body


class Api:
    """Routes and middleware bound to one :class:`FakeTelnyx`."""

    def __init__(self, fake: FakeTelnyx) -> None:
        self.fake = fake

    def application(self) -> web.Application:
        """Build the ``aiohttp.web.Application`` serving every operation under ``/v2``."""
        app = web.Application(middlewares=[self.middleware])
        p = PREFIX
        send = self.send
        app.add_routes(
            [
                web.post(f"{p}/messages", send),
                web.post(f"{p}/messages/alphanumeric_sender_id", send),
                web.post(f"{p}/messages/group_mms", send),
                web.post(f"{p}/messages/long_code", send),
                web.post(f"{p}/messages/number_pool", send),
                web.post(f"{p}/messages/short_code", send),
                web.post(f"{p}/messages/schedule", send),
                web.post(f"{p}/messages/whatsapp", send),
                web.get(f"{p}/messages/group/{{message_id}}", self.group_messages),
                web.get(f"{p}/messages/{{id}}", self.retrieve_message),
                web.delete(f"{p}/messages/{{id}}", self.cancel_message),
                web.get(f"{p}/alphanumeric_sender_ids", self.list_alphanumeric),
                web.post(f"{p}/alphanumeric_sender_ids", self.create_alphanumeric),
                web.get(f"{p}/alphanumeric_sender_ids/{{id}}", self.retrieve_alphanumeric),
                web.delete(f"{p}/alphanumeric_sender_ids/{{id}}", self.delete_alphanumeric),
                web.get(f"{p}/messaging_hosted_numbers", self.list_numbers),
                web.get(f"{p}/messaging_hosted_numbers/{{id}}", self.retrieve_number),
                web.patch(f"{p}/messaging_hosted_numbers/{{id}}", self.update_number),
                web.delete(f"{p}/messaging_hosted_numbers/{{id}}", self.delete_number),
                web.get(f"{p}/messaging_optouts", self.list_opt_outs),
                web.get(f"{p}/messaging_profiles", self.list_profiles),
                web.post(f"{p}/messaging_profiles", self.create_profile),
                web.get(f"{p}/messaging_profiles/{{id}}", self.retrieve_profile),
                web.patch(f"{p}/messaging_profiles/{{id}}", self.update_profile),
                web.delete(f"{p}/messaging_profiles/{{id}}", self.delete_profile),
                web.get(f"{p}/messaging_profiles/{{id}}/phone_numbers", self.list_profile_numbers),
                web.get(
                    f"{p}/messaging_profiles/{{id}}/short_codes", self.list_profile_short_codes
                ),
                web.get(f"{p}/phone_numbers/messaging", self.list_phone_numbers),
                web.get(f"{p}/phone_numbers/{{id}}/messaging", self.retrieve_number),
                web.patch(f"{p}/phone_numbers/{{id}}/messaging", self.update_number),
                web.get(f"{p}/short_codes", self.list_short_codes),
                web.get(f"{p}/short_codes/{{id}}", self.retrieve_short_code),
                web.patch(f"{p}/short_codes/{{id}}", self.update_short_code),
                web.post(f"{p}/messaging_numbers_bulk_updates", self.create_bulk_update),
                web.get(f"{p}/messaging_numbers_bulk_updates/{{order_id}}", self.bulk_update),
                web.get(f"{p}/messaging_profile_metrics", self.list_profile_metrics),
                web.post(
                    f"{p}/messaging_profiles/{{id}}/actions/regenerate_secret",
                    self.regenerate_secret,
                ),
                web.get(
                    f"{p}/messaging_profiles/{{id}}/alphanumeric_sender_ids",
                    self.list_profile_alphanumeric,
                ),
                web.get(f"{p}/messaging_profiles/{{id}}/metrics", self.profile_metrics),
                web.get(
                    f"{p}/messaging_profiles/{{profile_id}}/autoresp_configs", self.list_autoresp
                ),
                web.post(
                    f"{p}/messaging_profiles/{{profile_id}}/autoresp_configs", self.create_autoresp
                ),
                web.get(
                    f"{p}/messaging_profiles/{{profile_id}}/autoresp_configs/{{cfg_id}}",
                    self.retrieve_autoresp,
                ),
                web.put(
                    f"{p}/messaging_profiles/{{profile_id}}/autoresp_configs/{{cfg_id}}",
                    self.update_autoresp,
                ),
                web.delete(
                    f"{p}/messaging_profiles/{{profile_id}}/autoresp_configs/{{cfg_id}}",
                    self.delete_autoresp,
                ),
            ]
        )
        return app

    # -- middleware --------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Wrap every request: id, counters, faults, auth, rate limit, Telnyx error bodies."""
        stats = self.fake.stats
        request_id = str(uuid.uuid4())
        # Tracked so close() can wait for handlers whose client already hung up: aiohttp
        # forgets those connections, so its own shutdown would not wait for them.
        task = asyncio.current_task()
        handlers = self.fake._handlers
        if task is not None:
            handlers.add(task)
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        headers: dict[str, str] = {"x-request-id": request_id}
        response: web.StreamResponse | None = None
        try:
            response = await self._guarded(request, handler, headers)
        except ApiError as exc:
            response = self._error(exc, headers)
        except web.HTTPException as exc:
            error = (
                not_found("The requested URL")
                if exc.status == 404
                else ApiError(exc.status, "10015", "Bad Request", exc.reason)
            )
            if "Allow" in exc.headers:  # a 405 says which methods the path takes (RFC 9110)
                headers["Allow"] = exc.headers["Allow"]
            response = self._error(error, headers)
        except Exception:
            _log.exception("fake Telnyx handler failed")
            response = self._error(injected(500), headers)
        finally:
            stats.in_flight -= 1
            if task is not None:
                handlers.discard(task)
        if response is not None:
            response.headers.update(headers)
        if stats.request_log_size:
            stats.record_request(
                RecordedRequest(
                    request.method,
                    request.path,
                    tuple(request.query.items()),
                    request.headers.copy(),
                    _JSON.get(),
                    None if response is None else response.status,
                    request_id,
                    response.body
                    if isinstance(response, web.Response) and isinstance(response.body, bytes)
                    else None,
                )
            )
        if response is None:
            # The connection was aborted on purpose; aiohttp discards whatever we return.
            return web.Response(status=499)
        return response

    async def _guarded(
        self, request: web.Request, handler: Handler, headers: dict[str, str]
    ) -> web.StreamResponse | None:
        fake = self.fake
        method = request.method
        resource = request.match_info.route.resource
        path = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else request.path
        route = resource.canonical[len(PREFIX) :] if resource is not None else path
        fake.stats.record_route(method, route)
        raw = await request.read() if request.body_exists else b""
        _RAW.set(raw)
        _JSON.set(None)
        bad_json = False
        if raw:
            try:
                _JSON.set(json.loads(raw))
            except ValueError:
                bad_json = method in _BODY_METHODS
        action = await fake._fault(method, path)
        if isinstance(action, int):
            raise injected(action)
        if action == "drop":
            self._abort(request)
            return None
        if request.headers.get("Authorization") != fake._auth_header:
            raise unauthorized()
        window = fake._window
        if window is not None:
            allowed, remaining, reset = window.hit(fake._clock())
            headers["x-ratelimit-limit"] = str(window.limit)
            headers["x-ratelimit-remaining"] = str(remaining)
            headers["x-ratelimit-reset"] = str(reset)
            if not allowed:
                fake.stats.rate_limited += 1
                raise too_many_requests()
        if bad_json:
            raise invalid("The request body is not valid JSON.", "", status=400)
        try:
            response = await handler(request)
        except ApiError as exc:
            # Rendered here so that a stall or a drop_after also applies to error answers.
            response = self._error(exc, headers)
        if action == "stall" and not await fake._pause(fake.config.faults.stall_seconds):
            self._abort(request)  # the fake is closing: stop waiting, answer nothing
            return None
        if action == "drop_after":
            self._abort(request)
            return None
        return response

    @staticmethod
    def _abort(request: web.Request) -> None:
        if request.transport is not None:
            request.transport.abort()

    def _error(self, error: ApiError, headers: dict[str, str]) -> web.Response:
        response = _json(error.body(), error.status)
        retry_after = self.fake.config.faults.retry_after
        if retry_after is not None and error.status in (429, 503):
            headers["Retry-After"] = (
                retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
            )
        if error.code == QUEUE_FULL_CODE:
            self.fake.stats.queue_full += 1
        return response

    # -- messages ----------------------------------------------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        """The eight send endpoints (``/messages/schedule`` ignores ``Idempotency-Key``)."""
        fake = self.fake
        endpoint = request.path[len(PREFIX) :]
        body = _body()
        key = request.headers.get("Idempotency-Key")
        cache_key = None
        if key is not None and fake.config.idempotency and endpoint != "/messages/schedule":
            if not _IDEMPOTENCY_KEY.fullmatch(key):
                raise ApiError(
                    422,
                    "10015",
                    "Bad Request",
                    "Idempotency-Key must match ^[A-Za-z0-9_:-]{1,255}$.",
                    parameter="Idempotency-Key",
                )
            cache_key = f"POST {endpoint} {key}"
            stored = fake._idempotency.get(cache_key)
            if stored is not None:
                raw, status, answer = stored
                if raw != _RAW.get():
                    raise ApiError(
                        422,
                        "10015",
                        "Bad Request",
                        "This Idempotency-Key was used with a different request body.",
                        parameter="Idempotency-Key",
                    )
                fake.stats.idempotent_replays += 1
                return web.Response(body=answer, status=status, content_type="application/json")
        if endpoint == "/messages/whatsapp":
            message = fake._outbox.send_whatsapp(body)
        else:
            message = fake._outbox.send(endpoint, body)
        fake._accepted(message)
        answer = json.dumps({"data": message.data}).encode()
        if cache_key is not None:
            fake._remember(cache_key, _RAW.get(), 200, answer)
        return web.Response(body=answer, content_type="application/json")

    async def retrieve_message(self, request: web.Request) -> web.Response:
        """``GET /messages/{id}``: outbound or inbound, ``direction`` tells."""
        return _json({"data": self.fake._outbox.get(request.match_info["id"]).data})

    async def cancel_message(self, request: web.Request) -> web.Response:
        """``DELETE /messages/{id}``: the cancelled message, not wrapped in ``data``."""
        return _json(self.fake._cancel(request.match_info["id"]))

    async def group_messages(self, request: web.Request) -> web.Response:
        """``GET /messages/group/{message_id}``: ``{"data": [...]}`` without meta."""
        outbox = self.fake._outbox
        return _json({"data": outbox.group(request.match_info["message_id"])})

    # -- alphanumeric sender ids -------------------------------------------------------------

    async def list_alphanumeric(self, request: web.Request) -> web.Response:
        """``GET /alphanumeric_sender_ids``."""
        return _json(self.fake._account.list_alphanumeric(request.query))

    async def create_alphanumeric(self, request: web.Request) -> web.Response:
        """``POST /alphanumeric_sender_ids``: 201 Created, as the definition documents."""
        account = self.fake._account
        return _json({"data": account.create_alphanumeric(_body())}, 201)

    async def retrieve_alphanumeric(self, request: web.Request) -> web.Response:
        """``GET /alphanumeric_sender_ids/{id}``."""
        account = self.fake._account
        return _json({"data": account.alphanumeric_record(request.match_info["id"])})

    async def delete_alphanumeric(self, request: web.Request) -> web.Response:
        """``DELETE /alphanumeric_sender_ids/{id}``: the deleted record, in ``data``."""
        account = self.fake._account
        return _json({"data": account.delete_alphanumeric(request.match_info["id"])})

    async def list_profile_alphanumeric(self, request: web.Request) -> web.Response:
        """``GET /messaging_profiles/{id}/alphanumeric_sender_ids``."""
        account = self.fake._account
        return _json(account.list_alphanumeric(request.query, request.match_info["id"]))

    # -- hosted numbers, opt-outs ------------------------------------------------------------

    async def list_numbers(self, request: web.Request) -> web.Response:
        """``GET /messaging_hosted_numbers``."""
        return _json(self.fake._account.list_numbers(request.query))

    async def retrieve_number(self, request: web.Request) -> web.Response:
        """``GET /messaging_hosted_numbers/{id}`` (id or phone number)."""
        account = self.fake._account
        return _json({"data": account.render_number(account.number(request.match_info["id"]))})

    async def update_number(self, request: web.Request) -> web.Response:
        """``PATCH /messaging_hosted_numbers/{id}``."""
        account = self.fake._account
        return _json({"data": account.update_number(request.match_info["id"], _body())})

    async def list_opt_outs(self, request: web.Request) -> web.Response:
        """``GET /messaging_optouts``."""
        return _json(self.fake._account.list_opt_outs(request.query))

    async def delete_number(self, request: web.Request) -> web.Response:
        """``DELETE /messaging_hosted_numbers/{id}``: the order that removed it."""
        return _json({"data": self.fake._account.delete_number(request.match_info["id"])})

    async def list_phone_numbers(self, request: web.Request) -> web.Response:
        """``GET /phone_numbers/messaging``."""
        return _json(self.fake._account.list_phone_numbers(request.query))

    # -- short codes, bulk updates -----------------------------------------------------------

    async def list_short_codes(self, request: web.Request) -> web.Response:
        """``GET /short_codes``."""
        return _json(self.fake._account.list_short_codes(request.query))

    async def retrieve_short_code(self, request: web.Request) -> web.Response:
        """``GET /short_codes/{id}``."""
        account = self.fake._account
        record = account.short_code(request.match_info["id"])
        return _json({"data": account.render_short_code(record)})

    async def update_short_code(self, request: web.Request) -> web.Response:
        """``PATCH /short_codes/{id}``."""
        account = self.fake._account
        return _json({"data": account.update_short_code(request.match_info["id"], _body())})

    async def create_bulk_update(self, request: web.Request) -> web.Response:
        """``POST /messaging_numbers_bulk_updates``: answered pending, applied shortly after."""
        order = self.fake._account.create_bulk_update(_body())
        self.fake._schedule_bulk_update(order["order_id"])
        return _json({"data": order})

    async def bulk_update(self, request: web.Request) -> web.Response:
        """``GET /messaging_numbers_bulk_updates/{order_id}``."""
        return _json({"data": self.fake._account.bulk_update(request.match_info["order_id"])})

    # -- messaging profiles ------------------------------------------------------------------

    async def list_profiles(self, request: web.Request) -> web.Response:
        """``GET /messaging_profiles``."""
        return _json(self.fake._account.list_profiles(request.query))

    async def create_profile(self, request: web.Request) -> web.Response:
        """``POST /messaging_profiles``: 200, as the definition documents."""
        return _json({"data": self.fake._account.create_profile(_body())})

    async def retrieve_profile(self, request: web.Request) -> web.Response:
        """``GET /messaging_profiles/{id}``."""
        return _json({"data": self.fake._account.profile(request.match_info["id"])})

    async def update_profile(self, request: web.Request) -> web.Response:
        """``PATCH /messaging_profiles/{id}``."""
        account = self.fake._account
        return _json({"data": account.update_profile(request.match_info["id"], _body())})

    async def delete_profile(self, request: web.Request) -> web.Response:
        """``DELETE /messaging_profiles/{id}``: the deleted profile."""
        return _json({"data": self.fake._account.delete_profile(request.match_info["id"])})

    async def list_profile_numbers(self, request: web.Request) -> web.Response:
        """``GET /messaging_profiles/{id}/phone_numbers``."""
        account = self.fake._account
        return _json(account.list_profile_numbers(request.match_info["id"], request.query))

    async def list_profile_short_codes(self, request: web.Request) -> web.Response:
        """``GET /messaging_profiles/{id}/short_codes``."""
        account = self.fake._account
        return _json(account.list_short_codes(request.query, request.match_info["id"]))

    async def list_profile_metrics(self, request: web.Request) -> web.Response:
        """``GET /messaging_profile_metrics``."""
        return _json(self.fake._account.list_profile_metrics(request.query))

    async def profile_metrics(self, request: web.Request) -> web.Response:
        """``GET /messaging_profiles/{id}/metrics``."""
        account = self.fake._account
        return _json({"data": account.profile_metrics(request.match_info["id"], request.query)})

    async def regenerate_secret(self, request: web.Request) -> web.Response:
        """``POST /messaging_profiles/{id}/actions/regenerate_secret``."""
        account = self.fake._account
        return _json({"data": account.regenerate_secret(request.match_info["id"])})

    async def list_autoresp(self, request: web.Request) -> web.Response:
        """``GET .../autoresp_configs``: ``data`` and ``meta``."""
        account = self.fake._account
        return _json(account.list_autoresp(request.match_info["profile_id"], request.query))

    async def create_autoresp(self, request: web.Request) -> web.Response:
        """``POST .../autoresp_configs``."""
        account = self.fake._account
        profile_id = request.match_info["profile_id"]
        return _json({"data": account.create_autoresp(profile_id, _body())})

    async def retrieve_autoresp(self, request: web.Request) -> web.Response:
        """``GET .../autoresp_configs/{id}``."""
        account = self.fake._account
        info = request.match_info
        return _json({"data": account.autoresp_record(info["profile_id"], info["cfg_id"])})

    async def update_autoresp(self, request: web.Request) -> web.Response:
        """``PUT .../autoresp_configs/{id}``: full replacement."""
        account = self.fake._account
        info = request.match_info
        record = account.update_autoresp(info["profile_id"], info["cfg_id"], _body())
        return _json({"data": record})

    async def delete_autoresp(self, request: web.Request) -> web.Response:
        """``DELETE .../autoresp_configs/{id}``: the JSON string ``"OK"``."""
        info = request.match_info
        self.fake._account.delete_autoresp(info["profile_id"], info["cfg_id"])
        return _json("OK")
