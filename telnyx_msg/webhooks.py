"""Verify and parse Telnyx webhooks (sans-I/O), with optional replay protection.

Telnyx signs every delivery with Ed25519 (docs/wire.md §10.2): ``telnyx-signature-ed25519`` is the
base64 of a 64-byte signature over ``telnyx-timestamp + b"|" + raw body``, and the timestamp
(Unix seconds) must be within ``tolerance`` seconds of now, in either direction::

    verifier = WebhookVerifier(public_key_b64, replay_store=MemoryReplayStore())
    event = verifier.unwrap(raw_body, headers)          # or: await verifier.aunwrap(...)

Checks run in this order, and each failure raises a ``WebhookVerificationError`` subclass
naming the check: headers (``MissingHeaderError``) -> timestamp format and window
(``TimestampError``) -> signature decoding and verification (``InvalidSignatureError``) ->
UTF-8 + JSON + event shape (``WebhookPayloadError``) -> replay (``DuplicateWebhookError``).
No other exception escapes for any body bytes or header values. Errors raised by a replay store
itself (e.g. Redis being down) propagate unchanged: they are outages, not forgeries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeAlias, cast, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from telnyx_msg._config import positive_int, positive_seconds
from telnyx_msg._convert import structure_event
from telnyx_msg._redis_common import LoopClients, make_client
from telnyx_msg.errors import (
    ConfigurationError,
    DuplicateWebhookError,
    InvalidSignatureError,
    MissingHeaderError,
    TimestampError,
    WebhookPayloadError,
)
from telnyx_msg.models import Message, WebhookEvent

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AsyncReplayStore",
    "MemoryReplayStore",
    "RawBody",
    "RedisReplayStore",
    "SyncReplayStore",
    "WebhookHeaders",
    "WebhookVerifier",
    "headers_from_environ",
]

SIGNATURE_HEADER = "telnyx-signature-ed25519"
"""The header holding the base64 Ed25519 signature of ``timestamp|body``."""
TIMESTAMP_HEADER = "telnyx-timestamp"
"""The header holding the delivery's Unix timestamp (seconds), part of what is signed."""
DEFAULT_TOLERANCE = 300
"""Seconds a delivery's timestamp may differ from the clock (either way) and still verify."""

RawBody: TypeAlias = bytes | bytearray | memoryview | str


class _MultiValueHeaders(Protocol):
    """A header object read by ``getlist`` (Werkzeug's, which Flask's ``request.headers`` is)."""

    def getlist(self, key: str) -> list[str]: ...


WebhookHeaders: TypeAlias = "Mapping[str, str] | Mapping[bytes, bytes] | _MultiValueHeaders"
"""What ``unwrap`` reads the headers from: any ``Mapping[str, str]`` (a dict, aiohttp's,
Starlette's or Django's ``request.headers``), Flask's ``request.headers`` (read by its
``getlist``), or an ASGI scope's as a dict (``dict(scope["headers"])``: bytes). Names match
case-insensitively; a name given twice is refused."""

_SIGNATURE_B64_LEN = 88  # base64 of 64 bytes, with "==" padding
_MAX_TIMESTAMP_DIGITS = 12


# --- replay stores ----------------------------------------------------------------------------


@runtime_checkable
class AsyncReplayStore(Protocol):
    """Remembers event ids for ``ttl`` seconds; what ``aunwrap`` and the receivers need.

    ``amark_if_new`` must be atomic (check and mark in one step); ``aseen`` + ``amark`` are the
    two phases receivers use so an event is marked only after its handler succeeded.
    """

    async def aseen(self, event_id: str) -> bool:
        """True if ``event_id`` was marked and has not expired."""
        ...

    async def amark(self, event_id: str, ttl: float) -> None:
        """Remember ``event_id`` for ``ttl`` seconds."""
        ...

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        """Atomically remember ``event_id``; False if it was already remembered."""
        ...


@runtime_checkable
class SyncReplayStore(AsyncReplayStore, Protocol):
    """A store that also works without an event loop (usable by ``WebhookVerifier.unwrap``)."""

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was marked and has not expired."""
        ...

    def mark(self, event_id: str, ttl: float) -> None:
        """Remember ``event_id`` for ``ttl`` seconds."""
        ...

    def mark_if_new(self, event_id: str, ttl: float) -> bool:
        """Atomically remember ``event_id``; False if it was already remembered."""
        ...


class MemoryReplayStore:
    """In-process replay store: event id -> expiry, bounded to ``max_size`` ids.

    ``ttl`` (seconds) overrides how long ids are remembered; ``None`` uses what the verifier
    asks for (``2 * tolerance + 1``: long enough that a captured delivery cannot be replayed
    while its timestamp is still accepted). When full, the oldest id is evicted first (FIFO,
    O(1)); a replay of an evicted id inside its window would then be accepted, so size
    ``max_size`` above the number of events you receive per ``ttl``. Thread-safe; the async
    methods are thin wrappers for use with ``aunwrap`` and the receivers.
    """

    def __init__(
        self,
        max_size: int = 100_000,
        ttl: float | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.max_size = positive_int("max_size", max_size)
        self.ttl = None if ttl is None else positive_seconds("ttl", ttl)
        self._clock = clock or time.monotonic
        # Insertion order == expiry order when every entry has the same ttl, which lets
        # expired entries be dropped from the front without scanning.
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was marked and has not expired."""
        with self._lock:
            return self._live(event_id, self._clock())

    def mark(self, event_id: str, ttl: float) -> None:
        """Remember ``event_id`` for ``ttl`` seconds (the store's own ``ttl`` wins if set)."""
        with self._lock:
            now = self._clock()
            self._expiry.pop(event_id, None)
            self._insert(event_id, now, ttl)

    def mark_if_new(self, event_id: str, ttl: float) -> bool:
        """Atomically remember ``event_id``; False if it was already remembered."""
        with self._lock:
            now = self._clock()
            if self._live(event_id, now):
                return False
            self._insert(event_id, now, ttl)
            return True

    async def aseen(self, event_id: str) -> bool:
        """Async form of :meth:`seen`."""
        return self.seen(event_id)

    async def amark(self, event_id: str, ttl: float) -> None:
        """Async form of :meth:`mark`."""
        self.mark(event_id, ttl)

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        """Async form of :meth:`mark_if_new`."""
        return self.mark_if_new(event_id, ttl)

    def _live(self, event_id: str, now: float) -> bool:
        expiry = self._expiry.get(event_id)
        if expiry is None:
            return False
        if expiry <= now:
            del self._expiry[event_id]
            return False
        return True

    def _insert(self, event_id: str, now: float, ttl: float) -> None:
        expiry_map = self._expiry
        while expiry_map:
            oldest_id, oldest_expiry = next(iter(expiry_map.items()))
            if oldest_expiry > now and len(expiry_map) < self.max_size:
                break
            del expiry_map[oldest_id]
        expiry_map[event_id] = now + (self.ttl if self.ttl is not None else ttl)


class RedisReplayStore:
    """Replay store shared by processes through Redis (``SET key 1 NX EX ttl``).

    Needs the ``redis`` extra (``pip install 'telnyx_msg[redis]'``); redis-py is imported only
    when this class is built without a ``client``. Built from a ``url``, it works with both
    ``unwrap`` (Flask, Django, any blocking app: a ``redis.Redis`` client) and ``aunwrap`` or
    the receivers (a ``redis.asyncio`` client); neither connects before its first use, and the
    blocking one is thread-safe and reconnects in a forked worker (gunicorn ``--preload``).
    Given a ``client``, it works with what that client is: a ``redis.asyncio`` one with
    ``aunwrap`` and the receivers, a blocking ``redis.Redis`` with ``unwrap``. Built from a
    ``url``, it serves any number of event loops (``asyncio.run`` per delivery, a Django async
    view under WSGI, a test client per test): each loop gets its own asyncio client, closed
    when that loop shuts down. ``close()`` closes the blocking client it created, ``aclose()``
    both (never a borrowed ``client``). ``ttl`` overrides the verifier's ttl, as for
    :class:`MemoryReplayStore`.

    Every Redis round trip is bounded by ``timeout`` seconds (default 1; also the socket and
    connect timeouts of the clients built from ``url``): Telnyx waits only about 2 s for a
    webhook answer, so a frozen Redis raises in time for the app to answer 5xx (Telnyx then
    delivers again later). Redis errors propagate unchanged. A round trip that timed out may
    still run when a stalled Redis wakes: an atomic ``unwrap`` (``mark_seen=True``) can then
    have marked the id, and the redelivery is refused as a duplicate; with Redis, mark after
    processing (``mark_seen=False``, then ``mark_seen(event)``), whose first step only reads.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        key_prefix: str = "telnyx_msg:wh:",
        client: Any = None,
        ttl: float | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.ttl = None if ttl is None else positive_seconds("ttl", ttl)
        self.timeout = positive_seconds("timeout", timeout)
        self.key_prefix = key_prefix
        self._owns_client = client is None
        self._sync_client: Any = None
        self._clients: LoopClients | None = None  # per event loop, when built from a url
        if client is not None and _is_blocking_redis(client):
            self._sync_client, client = client, None
        elif client is None:

            def make() -> Any:
                return make_client(url, None, owner="RedisReplayStore", socket_timeout=timeout)

            self._clients = LoopClients(make(), make)
            self._sync_client = make_client(
                url, None, owner="RedisReplayStore", socket_timeout=self.timeout, blocking=True
            )
        self._client: Any = client  # a client= passed in: used as it is, by its one loop

    def _asyncio(self) -> Any:
        if self._clients is not None:
            return self._clients.get()
        if self._client is None:
            raise ConfigurationError(
                "this RedisReplayStore was given a blocking redis.Redis client, so it works "
                "with unwrap only: build it from a URL to use it with aunwrap and the receivers"
            )
        return self._client

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"replay store: Redis did not answer within {self.timeout:g} s"
            ) from None

    def _key(self, event_id: str) -> str:
        return self.key_prefix + event_id

    def _seconds(self, ttl: float) -> int:
        # EX takes whole seconds >= 1; rounding up never shortens the protection.
        return max(1, math.ceil(self.ttl if self.ttl is not None else ttl))

    async def aseen(self, event_id: str) -> bool:
        """True if ``event_id`` is stored."""
        return bool(await self._bounded(self._asyncio().exists(self._key(event_id))))

    async def amark(self, event_id: str, ttl: float) -> None:
        """Store ``event_id`` for ``ttl`` seconds."""
        await self._bounded(self._asyncio().set(self._key(event_id), b"1", ex=self._seconds(ttl)))

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        """Atomically store ``event_id`` unless present; False if it was already stored."""
        created = await self._bounded(
            self._asyncio().set(self._key(event_id), b"1", nx=True, ex=self._seconds(ttl))
        )
        return bool(created)

    def _blocking(self) -> Any:
        if self._sync_client is None:
            raise ConfigurationError(
                "this RedisReplayStore was given an asyncio client, so it is async only: use "
                "`await verifier.aunwrap(...)`, or build it from a URL to use it with unwrap"
            )
        return self._sync_client

    def seen(self, event_id: str) -> bool:
        """Blocking form of :meth:`aseen`."""
        return bool(self._blocking().exists(self._key(event_id)))

    def mark(self, event_id: str, ttl: float) -> None:
        """Blocking form of :meth:`amark`."""
        self._blocking().set(self._key(event_id), b"1", ex=self._seconds(ttl))

    def mark_if_new(self, event_id: str, ttl: float) -> bool:
        """Blocking form of :meth:`amark_if_new`."""
        created = self._blocking().set(self._key(event_id), b"1", nx=True, ex=self._seconds(ttl))
        return bool(created)

    def close(self) -> None:
        """Close the blocking Redis client if this store created it."""
        if self._owns_client:
            self._sync_client.close()

    async def aclose(self) -> None:
        """Close the Redis clients this store created."""
        if self._owns_client:
            self.close()
        if self._clients is not None:
            await self._clients.aclose()


def _is_blocking_redis(client: Any) -> bool:
    """Whether ``client`` is redis-py's blocking client (not its ``redis.asyncio`` one)."""
    redis = sys.modules.get("redis")  # such a client exists only once redis is imported
    blocking = tuple(getattr(redis, name, None) for name in ("Redis", "RedisCluster"))
    return isinstance(client, tuple(t for t in blocking if isinstance(t, type)))


# --- headers ----------------------------------------------------------------------------------


def headers_from_environ(environ: Mapping[str, Any]) -> dict[str, str]:
    """HTTP headers of a WSGI environ (or Django's ``request.META``) as a lower-case dict.

    ``HTTP_TELNYX_SIGNATURE_ED25519`` becomes ``telnyx-signature-ed25519``; ``CONTENT_TYPE``
    and ``CONTENT_LENGTH`` are included too. Non-string values are skipped.
    """
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            headers[key.replace("_", "-").lower()] = value
    return headers


def _as_text(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, bytearray)):
        return [bytes(value).decode("latin-1")]  # HTTP header bytes are opaque octets
    if isinstance(value, (list, tuple)):  # multi-value maps (e.g. AWS multiValueHeaders)
        out: list[str] = []
        for item in value:
            out.extend(_as_text(item, name))
        return out
    raise MissingHeaderError(f"{name} header has a non-text value ({type(value).__name__})")


def _is_environ(headers: Any) -> bool:
    """Whether ``headers`` is a WSGI environ (Django's ``request.META``) rather than headers."""
    try:
        return "HTTP_TELNYX_SIGNATURE_ED25519" in headers
    except Exception:  # not a container: not an environ either
        return False


def _header_values(headers: WebhookHeaders) -> tuple[list[str], list[str]]:
    """All values of the signature and timestamp headers, matched case-insensitively."""
    multi = getattr(headers, "getall", None)  # multidict (aiohttp)
    if multi is not None:
        return (
            _as_text(multi(SIGNATURE_HEADER, []), SIGNATURE_HEADER),
            _as_text(multi(TIMESTAMP_HEADER, []), TIMESTAMP_HEADER),
        )
    multi = getattr(headers, "getlist", None)  # Starlette / Werkzeug
    if multi is not None:
        return (
            _as_text(multi(SIGNATURE_HEADER), SIGNATURE_HEADER),
            _as_text(multi(TIMESTAMP_HEADER), TIMESTAMP_HEADER),
        )
    signatures: list[str] = []
    timestamps: list[str] = []
    # One pass over a plain mapping: two keys differing only in case count as a repeat.
    for key, value in cast("Mapping[Any, Any]", headers).items():
        if isinstance(key, bytes):  # dict(scope["headers"]) in an ASGI app
            key = key.decode("latin-1")
        if not isinstance(key, str) or len(key) not in (16, 24) or not key.isascii():
            continue
        lowered = key.lower()
        if lowered == SIGNATURE_HEADER:
            signatures.extend(_as_text(value, SIGNATURE_HEADER))
        elif lowered == TIMESTAMP_HEADER:
            timestamps.extend(_as_text(value, TIMESTAMP_HEADER))
    return signatures, timestamps


def _single(values: list[str], name: str) -> str:
    if len(values) == 1:
        # Neither header can hold a comma (base64, digits): one is how WSGI servers (gunicorn,
        # the CGI convention) pass a repeated header, so report it as ASGI servers do.
        if "," in values[0]:
            raise MissingHeaderError(
                f"header {name} is repeated (its copies were joined with commas)"
            )
        return values[0]
    if not values:
        raise MissingHeaderError(f"missing required header {name}")
    raise MissingHeaderError(f"header {name} is repeated ({len(values)} values)")


# --- verifier ---------------------------------------------------------------------------------


_P = 2**255 - 19
_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
#: y of the 8 points of order dividing 8: identity, order 2, 4 (y = 0) and 8 (libsodium's list).
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y8, _P - _Y8})


def _refuse_small_order(raw: bytes) -> None:
    """Refuse a key whose point has small order: with one, R = identity and S = 0 verify any
    message (OpenSSL checks neither at load nor at verify). y >= p is reduced as OpenSSL does."""
    y = int.from_bytes(raw, "little") & (2**255 - 1)
    if y % _P in _SMALL_ORDER_Y:
        raise ConfigurationError(
            "webhook public key is a point of small order, not a real Ed25519 key: with it "
            "one constant signature, made without any private key, verifies every body"
        )


def _load_public_key(public_key: str | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(public_key, Ed25519PublicKey):
        key = public_key
    elif isinstance(public_key, str) and "-----BEGIN" in public_key:
        key = _load_pem(public_key)
    elif isinstance(public_key, (bytes, bytearray)) and b"-----BEGIN" in public_key:
        key = _load_pem(public_key.decode("ascii", "replace"))  # a .pem file's bytes
    else:
        key = _load_raw_key(public_key)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    _refuse_small_order(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    return key


#: Base64 text (and the white space around it) given as bytes.
_BASE64_TEXT = re.compile(rb"\s*[A-Za-z0-9+/]+={0,2}\s*")

#: DER SubjectPublicKeyInfo of an Ed25519 key, before its 32 key bytes (RFC 8410).
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _load_raw_key(public_key: str | bytes) -> Ed25519PublicKey:
    if isinstance(public_key, str):
        text = public_key.strip()  # tolerate a trailing newline from env files / secrets
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(f"webhook public key is not valid base64: {exc}") from None
        if base64.b64encode(raw).decode("ascii") != text:
            raise ConfigurationError("webhook public key is not canonical base64")
    elif isinstance(public_key, (bytes, bytearray, memoryview)):
        raw = bytes(public_key)
        der = len(raw) == len(_SPKI_PREFIX) + 32 and raw.startswith(_SPKI_PREFIX)
        if len(raw) != 32 and not der and _BASE64_TEXT.fullmatch(raw):
            # The base64 text as bytes (os.environb, a key file read in binary mode).
            return _load_raw_key(raw.decode("ascii"))
    else:
        raise ConfigurationError(
            "webhook public key must be base64 str or 32 raw bytes, "
            f"not {type(public_key).__name__}"
        )
    if len(raw) == len(_SPKI_PREFIX) + 32 and raw.startswith(_SPKI_PREFIX):
        raw = raw[len(_SPKI_PREFIX) :]  # the DER inside a PEM block, pasted without its lines
    if len(raw) != 32:
        raise ConfigurationError(f"webhook public key must be 32 bytes, got {len(raw)}")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ConfigurationError(f"webhook public key is not an Ed25519 key: {exc}") from None


def _load_pem(text: str) -> Ed25519PublicKey:
    """A PEM ``PUBLIC KEY`` block (what ``openssl pkey -pubout`` writes) holding an Ed25519 key."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ConfigurationError(
            f"webhook public key is not a valid PEM public key: {exc}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(
            f"webhook public key must be an Ed25519 key, got {type(key).__name__}"
        )
    return key


class WebhookVerifier:
    """Verifies Telnyx webhook signatures and turns deliveries into :class:`WebhookEvent`.

    ``public_key``: the account's public key (Mission Control -> Keys & Credentials), base64 of
    32 raw bytes (str, or that text as bytes), the raw bytes, or a PEM ``PUBLIC KEY`` block
    (str or bytes, or the base64 between its lines); a bad key raises ``ConfigurationError``
    here. ``tolerance``:
    accepted ``|now - timestamp|`` in seconds. ``clock``: returns Unix seconds (default
    ``time.time``). ``replay_store``: remembers event ids for :attr:`replay_ttl` seconds and
    rejects repeats with ``DuplicateWebhookError``; off when ``None``. Events without an id
    (link clicks) are never deduplicated.
    """

    __slots__ = ("_clock", "_key", "_store", "_sync_store", "replay_ttl", "tolerance")

    def __init__(
        self,
        public_key: str | bytes | Ed25519PublicKey,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] | None = None,
        replay_store: AsyncReplayStore | None = None,
    ) -> None:
        self._key = _load_public_key(public_key)
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, (int, float))
            or not math.isfinite(tolerance)
            or tolerance < 0
        ):
            raise ConfigurationError(
                f"tolerance must be a number of seconds >= 0, got {tolerance!r}"
            )
        self.tolerance = tolerance
        """Seconds a delivery's timestamp may differ from the clock, either way."""
        self.replay_ttl: float = 2 * tolerance + 1
        """Seconds an event id is remembered: a delivery first seen at ``t`` can still pass the
        timestamp check until ``t + 2 * tolerance``; one second more absorbs rounding."""
        store_ttl = getattr(replay_store, "ttl", None)  # MemoryReplayStore, RedisReplayStore
        if isinstance(store_ttl, (int, float)) and store_ttl < self.replay_ttl:
            raise ConfigurationError(
                f"the replay store's ttl={store_ttl:g} s is shorter than the "
                f"{self.replay_ttl:g} s a signed delivery stays replayable (2 * tolerance + 1): "
                "a captured delivery would be accepted again once its id expired; raise the "
                "ttl or leave it unset"
            )
        self._clock = clock or time.time
        self._store = replay_store
        self._sync_store = replay_store if isinstance(replay_store, SyncReplayStore) else None

    @property
    def replay_store(self) -> AsyncReplayStore | None:
        """The replay store given at construction, if any."""
        return self._store

    def verify(self, raw_body: RawBody, headers: WebhookHeaders) -> None:
        """Check headers, timestamp window and signature; raise on the first failure."""
        self._verified_bytes(raw_body, headers)

    def unwrap(
        self, raw_body: RawBody, headers: WebhookHeaders, *, mark_seen: bool = True
    ) -> WebhookEvent:
        """Verify and parse a delivery; no I/O.

        With a replay store, a seen event id raises ``DuplicateWebhookError``; the id is
        marked seen now unless ``mark_seen=False`` (then call :meth:`mark_seen` once the event
        was handled). Needs a store with blocking methods (``MemoryReplayStore``, a
        ``RedisReplayStore`` built from a URL): with an async-only store this raises
        ``ConfigurationError``; use :meth:`aunwrap`.
        """
        if self._store is not None and self._sync_store is None:
            raise ConfigurationError(
                f"{type(self._store).__name__} is async-only: use `await verifier.aunwrap(...)`"
            )
        event = self._parse(self._verified_bytes(raw_body, headers))
        store = self._sync_store
        if store is not None and event.id is not None:
            if mark_seen:
                if not store.mark_if_new(event.id, self.replay_ttl):
                    raise _duplicate(event.id)
            elif store.seen(event.id):
                raise _duplicate(event.id)
        return event

    async def aunwrap(
        self, raw_body: RawBody, headers: WebhookHeaders, *, mark_seen: bool = True
    ) -> WebhookEvent:
        """Like :meth:`unwrap`, awaiting the replay store (works with any store)."""
        event = self._parse(self._verified_bytes(raw_body, headers))
        store = self._store
        if store is not None and event.id is not None:
            if mark_seen:
                if not await store.amark_if_new(event.id, self.replay_ttl):
                    raise _duplicate(event.id)
            elif await store.aseen(event.id):
                raise _duplicate(event.id)
        return event

    def mark_seen(self, event: WebhookEvent) -> None:
        """Record ``event`` as handled in a sync store (second phase of ``mark_seen=False``)."""
        if self._store is None or event.id is None:
            return
        if self._sync_store is None:
            raise ConfigurationError(
                f"{type(self._store).__name__} is async-only: use `await verifier.amark_seen(...)`"
            )
        self._sync_store.mark(event.id, self.replay_ttl)

    async def amark_seen(self, event: WebhookEvent) -> None:
        """Record ``event`` as handled in the replay store (any store)."""
        if self._store is not None and event.id is not None:
            await self._store.amark(event.id, self.replay_ttl)

    # -- internals ------------------------------------------------------------------------------

    def _event(self, raw_body: RawBody, headers: WebhookHeaders) -> WebhookEvent:
        """Verify and parse a delivery without asking the replay store (a receiver asks it
        with :meth:`_aseen` once the delivery holds the event id)."""
        return self._parse(self._verified_bytes(raw_body, headers))

    async def _aseen(self, event_id: str) -> bool:
        """Whether the replay store (if any) has ``event_id`` marked seen."""
        return self._store is not None and await self._store.aseen(event_id)

    def _verified_bytes(self, raw_body: RawBody, headers: WebhookHeaders) -> bytes:
        """Run every check up to the signature; return the body as bytes."""
        sig, timestamp = self._check_headers(headers)
        body = _body_bytes(raw_body)
        try:
            self._key.verify(sig, timestamp.encode("ascii") + b"|" + body)
        except InvalidSignature:
            raise InvalidSignatureError(
                "signature does not match the body and timestamp (wrong public key, "
                "or the body was altered/re-serialised?)"
            ) from None
        return body

    def _check_headers(self, headers: WebhookHeaders) -> tuple[bytes, str]:
        """The checks that need no body: both headers once each, the timestamp in the window,
        a well-formed signature. Returns the signature's bytes and the timestamp."""
        try:
            signatures, timestamps = _header_values(headers)
        except MissingHeaderError:
            raise
        except Exception as exc:  # a broken user mapping must not leak foreign errors
            raise MissingHeaderError(f"could not read headers: {exc!r}") from None
        if not signatures and _is_environ(headers):
            raise MissingHeaderError(
                f"missing required header {SIGNATURE_HEADER}: these look like WSGI environ "
                "keys (HTTP_TELNYX_...); pass the request's headers instead (Django: "
                "request.headers, not request.META)"
            )
        signature = _single(signatures, SIGNATURE_HEADER)
        timestamp = _single(timestamps, TIMESTAMP_HEADER)

        # ASCII digits only: int() would accept " 1", "1_0", "+1" and non-ASCII digits.
        if not (
            0 < len(timestamp) <= _MAX_TIMESTAMP_DIGITS
            and timestamp.isascii()
            and timestamp.isdigit()
        ):
            raise TimestampError(
                f"{TIMESTAMP_HEADER} must be 1-{_MAX_TIMESTAMP_DIGITS} ASCII digits, "
                f"got {timestamp[:40]!r}"
            )
        skew = self._clock() - int(timestamp)
        if not -self.tolerance <= skew <= self.tolerance:  # written so that NaN fails closed
            direction = "too old" if skew > 0 else "in the future"
            when = "ago" if skew > 0 else "ahead"
            raise TimestampError(
                f"{TIMESTAMP_HEADER} is {direction}: {_beyond(abs(skew), self.tolerance)} s "
                f"{when} (tolerance {self.tolerance:g} s)"
            )

        if len(signature) != _SIGNATURE_B64_LEN or not signature.isascii():
            raise InvalidSignatureError(
                f"{SIGNATURE_HEADER} must be base64 of 64 bytes ({_SIGNATURE_B64_LEN} chars)"
            )
        try:
            sig = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSignatureError(f"{SIGNATURE_HEADER} is not valid base64") from None
        # Reject non-canonical encodings (unused low bits set), so each signature has exactly
        # one accepted spelling.
        if len(sig) != 64 or base64.b64encode(sig) != signature.encode("ascii"):
            raise InvalidSignatureError(f"{SIGNATURE_HEADER} is not canonical base64 of 64 bytes")
        return sig, timestamp

    @staticmethod
    def _parse(body: bytes) -> WebhookEvent:
        # JSON must be UTF-8 (RFC 8259 §8.1); json.loads(bytes) would also guess UTF-16/32.
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookPayloadError(f"body is not UTF-8 (byte {exc.start})") from None
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise WebhookPayloadError(f"body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise WebhookPayloadError(f"body is JSON {type(document).__name__}, not an object")
        try:
            event = structure_event(document)
        except (
            TypeError,
            ValueError,
            LookupError,
            AttributeError,
            ArithmeticError,
            RecursionError,
        ) as exc:
            raise WebhookPayloadError(f"body is not a Telnyx webhook event: {exc}") from None
        _refuse_unencodable_ids(event)
        return event


def _refuse_unencodable_ids(event: WebhookEvent) -> None:
    """Refuse ids holding a lone surrogate (JSON ``"\\ud800"``): they become Redis keys and
    stream fields (replay store, queue, delivery trackers), which must be UTF-8, so such an event
    would fail there on every redelivery instead of once here."""
    message_id = event.payload.id if isinstance(event.payload, Message) else None
    event_type = event.event_type if isinstance(event.event_type, str) else None
    for what, value in (
        ("event id", event.id),
        ("event type", event_type),
        ("message id", message_id),
    ):
        if value is None or value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WebhookPayloadError(
                f"{what} {value!r} is not encodable as UTF-8 (it holds a lone surrogate)"
            ) from None


def _body_bytes(raw_body: RawBody) -> bytes:
    if type(raw_body) is bytes:
        return raw_body
    if isinstance(raw_body, (bytearray, memoryview)):
        return bytes(raw_body)  # the only copy
    if isinstance(raw_body, str):
        try:
            return raw_body.encode("utf-8")
        except UnicodeEncodeError:
            pass
        try:  # a body decoded with errors="surrogateescape" maps back to its exact bytes
            return raw_body.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise InvalidSignatureError(
                "str body holds lone surrogates and cannot be the signed bytes; pass raw bytes"
            ) from None
    if isinstance(raw_body, bytes):  # bytes subclasses
        return bytes(raw_body)
    raise TypeError(
        f"raw_body must be bytes, bytearray, memoryview or str, not {type(raw_body).__name__}"
    )


def _beyond(seconds: float, tolerance: float) -> str:
    """``seconds`` to one decimal, or as many more as it takes not to read as within
    ``tolerance`` ("300 s ago (tolerance 300 s)" for 300.4 s read as a pass)."""
    for decimals in range(1, 10):
        text = f"{seconds:.{decimals}f}".rstrip("0").rstrip(".")
        if float(text) > tolerance:
            return text
    return repr(float(seconds))


def _duplicate(event_id: str) -> DuplicateWebhookError:
    return DuplicateWebhookError(
        f"webhook event {event_id!r} was already received", event_id=event_id
    )
