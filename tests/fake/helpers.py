"""Test helpers for the fake server: a raw aiohttp API caller and a webhook receiver."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from telnyx_msg.testing import FakeTelnyx

_DEFAULT = object()


@attrs.frozen
class Reply:
    """One HTTP answer: status, headers and the decoded JSON body (None if empty)."""

    status: int
    headers: Mapping[str, str]
    body: Any

    @property
    def error_code(self) -> str:
        """The first Telnyx error code of an error body."""
        return str(self.body["errors"][0]["code"])


class Api:
    """Calls the fake with a raw ``aiohttp.ClientSession`` (the SDK client is not used)."""

    def __init__(self, session: aiohttp.ClientSession, fake: FakeTelnyx) -> None:
        self.session = session
        self.fake = fake

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        key: object = _DEFAULT,
        timeout: float | None = None,
    ) -> Reply:
        """Send one request to ``fake.base_url + path``; ``key=None`` sends no Authorization."""
        all_headers = dict(headers or {})
        api_key = self.fake.api_key if key is _DEFAULT else key
        if api_key is not None:
            all_headers["Authorization"] = f"Bearer {api_key}"
        async with self.session.request(
            method,
            self.fake.base_url + path,
            json=json_body,
            data=data,
            params=params,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=timeout) if timeout else aiohttp.ClientTimeout(),
        ) as response:
            raw = await response.read()
            return Reply(response.status, response.headers.copy(), json.loads(raw) if raw else None)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        """``GET``."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        """``POST`` with a JSON body."""
        return await self.request("POST", path, json_body=body, **kwargs)

    async def send(self, **fields: Any) -> Reply:
        """``POST /messages``; ``from_`` becomes ``from``."""
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        return await self.post("/messages", fields)


@asynccontextmanager
async def connect(fake: FakeTelnyx) -> AsyncIterator[Api]:
    """An :class:`Api` with its own session, closed on exit."""
    async with aiohttp.ClientSession() as session:
        yield Api(session, fake)


@attrs.frozen
class Received:
    """One webhook POST as the receiver got it (header names lower-cased)."""

    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The decoded body."""
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on 127.0.0.1 that records deliveries.

    ``statuses[path]`` is a list of statuses to answer with, consumed in order (then 200);
    ``delay`` seconds are waited before answering; while ``gate`` is set to an unset event,
    answers wait for it.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: dict[str, list[int]] = {}
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.arrivals = 0  # requests that reached the handler, answered or not
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on an ephemeral port."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "hook") -> str:
        """The URL of ``path`` on this receiver."""
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.match_info["path"]
        self.arrivals += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.gate is not None:
            await self.gate.wait()
        async with self._changed:
            self.received.append(
                Received(path, {k.lower(): v for k, v in request.headers.items()}, body)
            )
            self._changed.notify_all()
        pending = self.statuses.get(path)
        status = pending.pop(0) if pending else 200
        return web.Response(status=status, text="ok")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``count`` deliveries arrived; return them all."""

        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.received) >= count)

        await asyncio.wait_for(_wait(), timeout)
        return list(self.received)


def verify_signature(public_key_b64: str, delivery: Received) -> None:
    """Check Telnyx's Ed25519 scheme with ``cryptography``; raises ``InvalidSignature``."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
    timestamp = delivery.headers["telnyx-timestamp"]
    signature = base64.b64decode(delivery.headers["telnyx-signature-ed25519"], validate=True)
    key.verify(signature, timestamp.encode() + b"|" + delivery.body)
