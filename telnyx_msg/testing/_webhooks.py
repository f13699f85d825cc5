"""Webhook signing and delivery, exactly as Telnyx does it (docs/wire.md §10).

Signature: ``telnyx-signature-ed25519`` = base64(Ed25519 signature over
``f"{timestamp}|".encode() + raw_body``), ``telnyx-timestamp`` = Unix seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telnyx_msg.testing._config import WebhookSettings
from telnyx_msg.testing._records import Stats, WebhookAttempt

_log = logging.getLogger("telnyx_msg.testing")

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"


class Signer:
    """Holds the account's Ed25519 key and signs webhook bodies."""

    def __init__(self, key: bytes | Ed25519PrivateKey | None = None) -> None:
        if key is None:
            self.private_key = Ed25519PrivateKey.generate()
        elif isinstance(key, Ed25519PrivateKey):
            self.private_key = key
        elif isinstance(key, bytes) and len(key) == 32:
            self.private_key = Ed25519PrivateKey.from_private_bytes(key)
        else:
            raise ValueError("signing_key must be a 32-byte Ed25519 seed or an Ed25519PrivateKey")
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_b64 = base64.b64encode(raw).decode("ascii")

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The two signature headers for ``body`` (timestamp defaults to now)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(stamp.encode("ascii") + b"|" + body)
        return {
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
        }


@attrs.frozen
class Event:
    """One webhook event ready to send: its ``data`` object is serialized once, at creation,
    so later state changes cannot leak into it."""

    event_id: str | None
    event_type: str
    targets: tuple[str, ...]
    data_json: str
    with_meta: bool = True

    def body(self, attempt: int, url: str) -> bytes:
        """The raw body for one attempt (``meta`` names the attempt and the URL)."""
        if not self.with_meta:
            return f'{{"data":{self.data_json}}}'.encode()
        meta = json.dumps({"attempt": attempt, "delivered_to": url})
        return f'{{"data":{self.data_json},"meta":{meta}}}'.encode()


#: Connections the fake opens to webhook receivers at once.
CONNECTIONS = 100


# Names reserved for documentation (RFC 2606): samples copied from docs use them, and the
# fake must not send the message's text and numbers to whoever answers for them.
_RESERVED = ("example.com", "example.net", "example.org", "example", "invalid")


def _documentation_host(url: str) -> str | None:
    """The host of ``url`` when it is a documentation name (``example.com``, ``*.invalid``)."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:  # not a URL (an unclosed "["): the POST fails as such, as it did
        return None
    if any(host == name or host.endswith("." + name) for name in _RESERVED):
        return host
    return None


class Dispatcher:
    """Delivers events with retries and failover on its own ``aiohttp.ClientSession``."""

    def __init__(
        self, signer: Signer, stats: Stats, settings: Callable[[], WebhookSettings]
    ) -> None:
        self.signer = signer
        self.stats = stats
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        # Deliveries beyond the connection limit wait here, outside the receiver's timeout.
        self._slots = asyncio.Semaphore(CONNECTIONS)  # made again by each start (its loop's)

    @property
    def pending(self) -> int:
        """Events whose delivery has not finished."""
        return len(self._tasks)

    async def start(self) -> None:
        """Open the delivery session (inside the running loop)."""
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": "telnyx-msg-fake-webhooks"},
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
        )
        self._slots = asyncio.Semaphore(CONNECTIONS)

    def submit(self, event: Event) -> asyncio.Task[bool]:
        """Deliver ``event`` in the background; the task is cancelled by :meth:`close`."""
        task = asyncio.get_running_loop().create_task(self.deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("webhook delivery crashed", exc_info=task.exception())

    async def deliver(self, event: Event) -> bool:
        """Try each target URL ``attempts`` times; True once a receiver answered 2xx.

        ``meta.attempt`` counts attempts across all URLs of the event, starting at 1. A URL on a
        documentation name (``example.com``, ``*.invalid``) is never contacted: it counts as one
        failed attempt, recorded with the reason, and the next URL (the failover) is tried.
        """
        session = self._session
        if session is None:
            raise RuntimeError("the fake server is not running")
        settings = self._settings()
        number = 0
        for url in event.targets:
            reserved = _documentation_host(url)
            if reserved:
                number += 1
                why = f"not sent: {reserved} is reserved for documentation (RFC 2606)"
                self.stats.record_attempt(
                    WebhookAttempt(event.event_id, event.event_type, url, number, None, why)
                )
                continue
            for retry in range(settings.attempts):
                if retry:
                    await asyncio.sleep(settings.retry_delay * 2 ** (retry - 1))
                number += 1
                status: int | None = None
                error: str | None = None
                async with self._slots:  # signed once it has a connection: a fresh timestamp
                    body = event.body(number, url)
                    headers = {"Content-Type": "application/json", **self.signer.headers(body)}
                    try:
                        async with session.post(
                            url,
                            data=body,
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(total=settings.timeout),
                        ) as response:
                            status = response.status
                            await response.read()
                    except asyncio.TimeoutError:
                        error = "timeout"
                    except (aiohttp.ClientError, OSError) as exc:
                        error = f"{type(exc).__name__}: {exc}"
                attempt = WebhookAttempt(
                    event.event_id, event.event_type, url, number, status, error
                )
                self.stats.record_attempt(attempt)
                if attempt.ok:
                    self.stats.webhooks_delivered += 1
                    return True
        if event.targets:
            self.stats.webhooks_failed += 1
        return False

    async def close(self) -> None:
        """Cancel deliveries still running, then close the session."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
