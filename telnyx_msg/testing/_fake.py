"""``FakeTelnyx``: the embedded fake server's lifecycle, timers, webhooks and test helpers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import fnmatch
import functools
import inspect
import json
import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import attrs
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from telnyx_msg.testing._app import Api
from telnyx_msg.testing._config import DEFAULT_API_KEY, FakeConfig, FaultStep
from telnyx_msg.testing._limits import RequestWindow
from telnyx_msg.testing._messages import Message, Outbox
from telnyx_msg.testing._records import Stats
from telnyx_msg.testing._sms import iso, utcnow
from telnyx_msg.testing._state import Account
from telnyx_msg.testing._webhooks import Dispatcher, Event, Signer

if TYPE_CHECKING:
    from telnyx_msg import AsyncClient

# Fields that shape the seeded state or the logs; they cannot change once the fake exists.
_FIXED_FIELDS = frozenset(
    {
        "profiles",
        "numbers",
        "max_messages",
        "request_log_size",
        "webhook_log_size",
        "organization_id",
    }
)
# A scheduled message further away than this gets no timer: it stays "scheduled" (and
# cancellable) for the fake's whole life.
_MAX_TIMER = 86_400.0

P = ParamSpec("P")
R = TypeVar("R")


def _at_home(
    method: Callable[Concatenate[FakeTelnyx, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[FakeTelnyx, P], Coroutine[Any, Any, R]]:
    """Run a coroutine method on the fake's own loop, whichever loop awaits it.

    A fake served in a thread (``serve_in_thread``, the pytest fixtures) is awaited from the
    test's loop; its state and timers belong to its own loop.
    """

    async def hop(self: FakeTelnyx, /, *args: P.args, **kwargs: P.kwargs) -> R:
        home = self._home_elsewhere()
        if home is None:
            return await method(self, *args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(method(self, *args, **kwargs), home)
        return await asyncio.wrap_future(future)

    functools.update_wrapper(hop, method)
    return hop


class FakeTelnyx:
    """An in-memory Telnyx Messaging API on 127.0.0.1, for tests and demos.

    ::

        async with FakeTelnyx() as fake:
            async with fake.client() as client:
                await client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="Hi")

    ``api_key`` is the only Bearer key accepted (default :data:`DEFAULT_API_KEY`). ``port=0``
    picks a free port. ``signing_key`` (32-byte Ed25519 seed or private key; default: a fresh
    one) signs webhooks; its public half is :attr:`public_key`. Counters are on :attr:`stats`.
    ``access_log``: a logger that gets one line per request (``"POST /v2/messages" 200 0.004s``).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        config: FakeConfig | None = None,
        signing_key: bytes | Ed25519PrivateKey | None = None,
        access_log: logging.Logger | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self._config = config if config is not None else FakeConfig()
        self._signer = Signer(signing_key)
        self._clock = time.monotonic
        self._auth_header = f"Bearer {api_key}"
        self.stats = Stats(
            request_log_size=self._config.request_log_size,
            webhook_log_size=self._config.webhook_log_size,
        )
        self._account = Account(self._config, wall=utcnow)
        self._outbox = Outbox(self._config, self._account, clock=self._clock, wall=utcnow)
        self._dispatcher = Dispatcher(self._signer, self.stats, lambda: self._config.webhooks)
        self._window = (
            RequestWindow(self._config.api_rate_limit) if (self._config.api_rate_limit) else None
        )
        self._random = random.Random(self._config.faults.seed)
        self._script_position = 0
        self._idempotency: OrderedDict[str, tuple[bytes, int, bytes]] = OrderedDict()
        self._progressing: set[Message] = set()
        self._releases: set[Message] = set()
        self._bulk_timers: dict[str, asyncio.TimerHandle] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._state = "new"
        self._home: asyncio.AbstractEventLoop | None = None
        self._home_thread: int | None = None
        self._access_log = access_log

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving (binds the port). A fake starts once; create a new one to restart."""
        if self._state != "new":
            raise RuntimeError("a FakeTelnyx can only be started once")
        self._state = "starting"
        self._home = asyncio.get_running_loop()
        self._home_thread = threading.get_ident()
        self._closing = asyncio.Event()
        await self._dispatcher.start()
        # shutdown_timeout only matters for handlers still running at close(); ours return
        # promptly once ``_closing`` is set.
        runner = web.AppRunner(
            Api(self).application(),
            access_log=self._access_log,
            access_log_format='"%r" %s %Tfs',
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await self.close()
            raise
        self._port = int(runner.addresses[0][1])
        self._state = "running"

    @_at_home
    async def close(self) -> None:
        """Stop serving; cancel every timer and webhook delivery; close the webhook session.

        Idempotent. Leaves no task, timer, connection or session behind. Awaitable from any
        loop: a fake served in a thread (``telnyx_fake``) closes on its own loop.
        """
        if self._state in ("new", "closed"):
            self._state = "closed"
            return
        self._state = "closed"
        if self._closing is not None:
            self._closing.set()
        for message in (*self._progressing, *self._releases):
            if message.timer is not None:
                message.timer.cancel()
                message.timer = None
        self._progressing.clear()
        self._releases.clear()
        for timer in self._bulk_timers.values():
            timer.cancel()
        self._bulk_timers.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Handlers of connections the client dropped are unknown to aiohttp's shutdown; they
        # wake up on ``_closing`` and finish at once.
        pending = [t for t in self._handlers if not t.done()]
        if pending:
            _done, stuck = await asyncio.wait(pending, timeout=1.0)
            for task in stuck:
                task.cancel()
        await self._dispatcher.close()

    async def __aenter__(self) -> FakeTelnyx:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses and keys ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the fake server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The API base URL to give a client, e.g. ``http://127.0.0.1:54321/v2``.

        A fake listening on every interface (``""``, ``0.0.0.0``, ``::``) is reached on the
        loopback address; an IPv6 address is bracketed, as URLs need."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v2"

    @property
    def public_key(self) -> str:
        """Base64 of the raw 32-byte Ed25519 public key that verifies this fake's webhooks."""
        return self._signer.public_key_b64

    def sign_webhook(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The ``telnyx-timestamp`` and ``telnyx-signature-ed25519`` headers this fake would
        send with ``body`` (``timestamp``: Unix seconds, default now).

        For posting your own deliveries to a receiver under test, e.g. with Flask's or
        Django's test client; no need to start the fake.
        """
        return self._signer.headers(body, timestamp)

    def client(self, **kwargs: Any) -> AsyncClient:
        """A ``telnyx_msg.AsyncClient`` wired to this fake (key, base URL, webhook key).

        Extra keyword arguments go to ``AsyncClient``. The caller closes the client
        (``async with fake.client() as client:``).
        """
        # Imported on use: the fake itself needs nothing from the client side.
        from telnyx_msg import AsyncClient

        return AsyncClient(
            api_key=self.api_key,
            base_url=self.base_url,
            webhook_public_key=self.public_key,
            **kwargs,
        )

    # -- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> FakeConfig:
        """The current configuration (frozen; change it with :meth:`configure`)."""
        return self._config

    def configure(self, **changes: Any) -> FakeConfig:
        """Change configuration at runtime, e.g. ``fake.configure(faults=Faults(script=[503]))``.

        Replacing ``faults`` restarts its script and random stream; replacing
        ``api_rate_limit`` or ``throughput`` starts with empty windows/queues. Seeds
        (``profiles``, ``numbers``), ``max_messages`` and the log sizes are fixed.
        """
        fixed = _FIXED_FIELDS.intersection(changes)
        if fixed:
            raise ValueError(f"cannot change {sorted(fixed)} after construction")
        return self._home_call(lambda: self._configure(changes))

    def _configure(self, changes: dict[str, Any]) -> FakeConfig:
        old = self._config
        new = attrs.evolve(old, **changes)
        self._config = self._account.config = self._outbox.config = new
        if "faults" in changes:
            self._script_position = 0
            self._random = random.Random(new.faults.seed)
        if "api_rate_limit" in changes:
            self._window = RequestWindow(new.api_rate_limit) if new.api_rate_limit else None
        if "throughput" in changes:
            self._outbox.set_throughput(new.throughput)
        return new

    @property
    def default_profile_id(self) -> str | None:
        """Id of the first seeded messaging profile."""
        return self._account.default_profile_id

    def set_webhook_url(
        self, url: str | None, failover_url: str | None = None, *, profile_id: str | None = None
    ) -> None:
        """Point a profile's webhooks (default: the first profile) at ``url``.

        Applies to messages sent afterwards; a message keeps the URLs it was sent with.
        """

        def change() -> None:
            record = self._account.profile(profile_id or self.default_profile_id or "")
            record["webhook_url"] = url
            record["webhook_failover_url"] = failover_url

        self._home_call(change)

    # -- inspection --------------------------------------------------------------------------

    def message(self, message_id: str) -> dict[str, Any]:
        """A copy of a stored message's JSON (``KeyError`` if unknown or evicted)."""
        return self._home_call(lambda: copy.deepcopy(self._outbox.messages[message_id].data))

    def messages(self) -> list[dict[str, Any]]:
        """Copies of every stored message's JSON, oldest first (at most ``max_messages``).

        Count what really went out, e.g. that no recipient got a message twice.
        """
        return self._home_call(
            lambda: [copy.deepcopy(m.data) for m in self._outbox.messages.values()]
        )

    def opt_outs(self) -> list[dict[str, Any]]:
        """Copies of the current opt-out records."""
        return self._home_call(lambda: [dict(r) for r in self._account.opt_outs.values()])

    def run(self, awaitable: Awaitable[R], timeout: float | None = 60.0) -> R:
        """Run one of the fake's coroutines to completion from synchronous code.

        After ``timeout`` seconds it is cancelled and :class:`TimeoutError` raised.

        For a fake served in a thread (``serve_in_thread``, the ``telnyx_fake`` fixture):
        ``fake.run(fake.settle())``, ``fake.run(fake.inject_inbound(...))``.
        """
        home = self._home_elsewhere()
        if home is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # not "never awaited" on top of the error below
            if self._home is not None and not self._home.is_running():
                raise RuntimeError(
                    "fake.run(): the fake's event loop has stopped (its serve_in_thread "
                    "block or telnyx_fake fixture has ended)"
                )
            raise RuntimeError(
                "fake.run() is for synchronous code while the fake serves in "
                "another thread; in async code, await the coroutine"
            )

        async def wrapper() -> R:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(wrapper(), home)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before 3.11
            future.cancel()  # (it would run on, e.g. go on delivering webhooks)
            raise TimeoutError(f"fake.run(): not done within {timeout} s") from None

    def _home_elsewhere(self) -> asyncio.AbstractEventLoop | None:
        """The fake's loop if the caller runs elsewhere (another loop or thread), else None."""
        home = self._home
        if home is None or home.is_closed() or not home.is_running():
            return None
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is home or (current is None and threading.get_ident() == self._home_thread):
            return None
        return home

    def _home_call(self, read: Callable[[], R]) -> R:
        # State changes on the fake's loop; another thread reads it there, not mid-change.
        home = self._home_elsewhere()
        if home is None:
            return read()

        async def on_home() -> R:
            return read()

        return asyncio.run_coroutine_threadsafe(on_home(), home).result(30)

    @_at_home
    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until no message is between statuses, no webhook delivery is running and
        every bulk update order is applied.

        Scheduled messages waiting for ``send_at`` do not count. Raises ``TimeoutError``.
        """
        deadline = self._clock() + timeout
        while self._progressing or self._dispatcher.pending or self._bulk_timers:
            if self._clock() >= deadline:
                raise TimeoutError("the fake did not settle in time")
            await asyncio.sleep(0.005)

    # -- injection ---------------------------------------------------------------------------

    @_at_home
    async def inject_inbound(
        self,
        *,
        from_: str,
        to: str,
        text: str = "",
        media_urls: Iterable[str] = (),
        subject: str | None = None,
        messaging_profile_id: str | None = None,
    ) -> dict[str, Any]:
        """Simulate a handset texting one of the account's numbers.

        Stores a retrievable inbound message, applies STOP/START keywords to the opt-outs,
        delivers ``message.received`` to the profile's webhook URLs (awaiting the delivery,
        retries and failover included) and returns a copy of the message JSON.
        """
        message = self._outbox.receive(
            sender=from_,
            to=to,
            text=text,
            media_urls=list(media_urls),
            subject=subject,
            profile_id=messaging_profile_id,
        )
        event = self._event(message, "message.received")
        if event is not None:
            await self._dispatcher.deliver(event)
        return copy.deepcopy(message.data)

    @_at_home
    async def inject_link_click(
        self, *, message_id: str, url: str, to: str | None = None
    ) -> dict[str, Any]:
        """Simulate a recipient clicking a shortened link of an outbound message.

        Delivers the link-click webhook (``data.record_type == "link_clicked"``, no
        ``event_type``/``payload``/``id``) to the message's webhook URLs and returns its
        ``data``. ``to`` defaults to the first recipient, without ``+``, as Telnyx writes it.
        """
        message = self._outbox.messages.get(message_id)
        if message is None:
            raise KeyError(f"unknown message {message_id!r}")
        recipient = to or str(message.data["to"][0]["phone_number"]).lstrip("+")
        data = {
            "record_type": "link_clicked",
            "url": url,
            "to": recipient,
            "message_id": message_id,
            "time_clicked": iso(utcnow()),
        }
        targets = self._targets(message)
        if targets:
            await self._dispatcher.deliver(
                Event(None, "message.link_click", targets, json.dumps(data), with_meta=False)
            )
        return data

    # -- used by the HTTP layer --------------------------------------------------------------

    async def _fault(self, method: str, path: str) -> FaultStep | None:
        """Apply latency and pick this request's fault, if any (``Faults`` docs)."""
        faults = self._config.faults
        if not faults.active:
            return None
        if faults.match and not any(
            fnmatch.fnmatchcase(f"{method} {path}", pattern) for pattern in faults.match
        ):
            return None
        if faults.latency:
            await self._pause(faults.latency)
        step: FaultStep | None = None
        if self._script_position < len(faults.script):
            step = faults.script[self._script_position]
            self._script_position += 1
        else:
            draw = self._random.random()
            if draw < faults.error_rate:
                step = self._random.choice(faults.error_statuses)
            elif draw < faults.error_rate + faults.drop_rate:
                step = "drop"
            elif draw < faults.error_rate + faults.drop_rate + faults.stall_rate:
                step = "stall"
        if step == "ok":
            return None
        if step is not None:
            self.stats.faults += 1
        return step

    async def _pause(self, seconds: float) -> bool:
        """Sleep, but wake up when the fake closes; False if it is closing."""
        closing = self._closing
        if closing is None or closing.is_set():
            return False
        try:
            await asyncio.wait_for(closing.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    def _remember(self, key: str, raw: bytes, status: int, answer: bytes) -> None:
        self._idempotency[key] = (raw, status, answer)
        if len(self._idempotency) > self._config.max_messages:
            self._idempotency.popitem(last=False)

    def _accepted(self, message: Message) -> None:
        """A send endpoint stored ``message``: start its timers."""
        self.stats.messages_sent += 1
        if message.data.get("type") == "WHATSAPP":
            return  # accepted and stored only; WhatsApp delivery is not simulated
        if message.send_at is not None:
            delay = (message.send_at - utcnow()).total_seconds()
            if delay <= _MAX_TIMER:
                self._releases.add(message)
                message.timer = asyncio.get_running_loop().call_later(
                    max(0.0, delay), self._release, message
                )
            return
        self._start(message, float(message.data["wait_seconds"]))

    def _start(self, message: Message, wait: float) -> None:
        throughput = self._config.throughput
        scale = throughput.wait_scale if throughput is not None else 0.0
        self._later(message, self._config.delivery_delay + wait * scale, self._sent)

    def _schedule_bulk_update(self, order_id: str) -> None:
        """Apply a bulk update order ``delivery_delay`` seconds from now (or on its next read)."""

        def apply() -> None:
            self._bulk_timers.pop(order_id, None)
            self._account.process_bulk_update(order_id)

        loop = asyncio.get_running_loop()
        self._bulk_timers[order_id] = loop.call_later(self._config.delivery_delay, apply)

    def _later(self, message: Message, delay: float, callback: Any) -> None:
        self._progressing.add(message)
        message.timer = asyncio.get_running_loop().call_later(delay, callback, message)

    def _release(self, message: Message) -> None:
        self._releases.discard(message)
        message.timer = None
        self._start(message, self._outbox.release(message))

    def _sent(self, message: Message) -> None:
        self._progressing.discard(message)
        self._outbox.mark_sent(message)
        self._emit(message, "message.sent")
        self._later(message, self._config.delivery_delay, self._finalized)

    def _finalized(self, message: Message) -> None:
        self._progressing.discard(message)
        message.timer = None
        self._outbox.finalize(message)
        self._emit(message, "message.finalized")

    def _cancel(self, message_id: str) -> dict[str, Any]:
        message, body = self._outbox.cancel(message_id)
        if message.timer is not None:
            message.timer.cancel()
            message.timer = None
        self._releases.discard(message)
        return body

    @staticmethod
    def _targets(message: Message) -> tuple[str, ...]:
        if message.targets is not None:
            return message.targets
        data = message.data
        return tuple(u for u in (data.get("webhook_url"), data.get("webhook_failover_url")) if u)

    def _event(self, message: Message, event_type: str) -> Event | None:
        targets = self._targets(message)
        if not targets:
            return None
        event_id = str(uuid.uuid4())
        data = {
            "event_type": event_type,
            "id": event_id,
            "occurred_at": iso(utcnow()),
            "payload": message.data,
            "record_type": "event",
        }
        return Event(event_id, event_type, targets, json.dumps(data))

    def _emit(self, message: Message, event_type: str) -> None:
        event = self._event(message, event_type)
        if event is not None:
            self._dispatcher.submit(event)
