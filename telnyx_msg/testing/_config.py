"""Configuration values for the fake Telnyx server: frozen attrs classes, changed by copying.

Every default here is documented in ``docs/testing.md``; the throughput defaults come from
https://developers.telnyx.com/docs/messaging/messages/rate-limiting (see
Telnyx's rate-limiting page, https://developers.telnyx.com/docs/messaging/messages/rate-limiting).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Literal, TypeAlias

import attrs

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_LONG_CODE",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_PROFILE_ID",
    "DEFAULT_SHORT_CODE",
    "DEFAULT_TOLL_FREE",
    "FAILING_NUMBER",
    "ApiRateLimit",
    "FakeConfig",
    "FaultStep",
    "Faults",
    "SeedNumber",
    "SeedProfile",
    "Throughput",
    "WebhookSettings",
]

# The string after each name is its entry in the API reference (griffe reads those, not
# ``#:`` comments).
DEFAULT_API_KEY = "test-key"
"""The Bearer key a default ``FakeTelnyx()`` accepts."""
DEFAULT_PROFILE_ID = "40017a5e-6c0d-4f5e-9b3a-2f1e0d9c8b7a"
"""Id of the seeded messaging profile every default number belongs to."""
DEFAULT_ORGANIZATION_ID = "b1a4c2d0-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
"""``organization_id`` stamped on every record."""
DEFAULT_LONG_CODE = "+13125550100"
"""The seeded hosted ``long-code`` number, on :data:`DEFAULT_PROFILE_ID`."""
DEFAULT_TOLL_FREE = "+18005550101"
"""The seeded hosted ``toll-free`` number, on :data:`DEFAULT_PROFILE_ID`."""
DEFAULT_SHORT_CODE = "55501"
"""The seeded hosted ``short-code`` number, on :data:`DEFAULT_PROFILE_ID`."""
FAILING_NUMBER = "+13125550666"
"""A recipient that always ends in ``delivery_failed`` (default ``FakeConfig.failing_numbers``)."""

FaultStep: TypeAlias = int | Literal["ok", "drop", "drop_after", "stall"]
"""One scripted fault: an HTTP status to answer with, or ``"ok"`` (answer normally), ``"drop"``
(read the body, then abort the connection without processing), ``"drop_after"`` (process the
request, then abort instead of answering) or ``"stall"`` (process, then hold the answer for
``Faults.stall_seconds``)."""

_KINDS = ("long_code", "toll_free", "short_code", "alphanumeric")
_NUMBER_TYPES = ("long-code", "toll-free", "short-code")
_STEP_WORDS = ("ok", "drop", "drop_after", "stall")


def _frozen_mapping(value: Mapping[str, float]) -> Mapping[str, float]:
    # A private copy, so mutating the caller's dict later cannot change a frozen config.
    return dict(value)


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _probability(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value!r}")


def _check_steps(_inst: object, _attribute: object, value: tuple[FaultStep, ...]) -> None:
    for step in value:
        if isinstance(step, bool) or not (
            (isinstance(step, int) and 400 <= step <= 599) or step in _STEP_WORDS
        ):
            raise ValueError(f"invalid fault step {step!r}: use a 4xx/5xx status or {_STEP_WORDS}")


def _steps(value: Iterable[FaultStep]) -> tuple[FaultStep, ...]:
    return tuple(value)


def _not_a_str(value: Iterable[str]) -> Iterable[str]:
    # A bare str is an Iterable[str] too: ("POST /messages") without its trailing comma would
    # become its characters, and the option would silently match or fail nothing.
    if isinstance(value, str):
        raise TypeError(f"expected a collection of strings, not the str {value!r}: ({value!r},)")
    return value


def _strings(value: Iterable[str]) -> frozenset[str]:
    return frozenset(_not_a_str(value))


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(_not_a_str(value))


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Throughput:
    """Server-side message throughput and queueing, as Telnyx applies it per sender.

    Messages beyond a sender's rate are queued, not refused: the send response reports the
    queueing delay in ``wait_seconds``. When a sender already has ``depth`` messages waiting,
    the next send gets HTTP 429 with error code ``40318``. A sender's depth is ``queue_depth``
    when set, else ``queue_seconds * rate`` (4 hours of traffic, as Telnyx documents), so with
    rate ``r`` and depth ``d`` the first ``d + 1`` back-to-back sends are accepted.

    ``per_kind_mps`` keys: ``long_code``, ``toll_free``, ``short_code``, ``alphanumeric``.
    ``per_sender_mps`` overrides the rate for one ``from`` value. ``account_mps`` adds an
    account-wide lane per message type (``SMS``, ``MMS``) whose depth is always
    ``queue_seconds * rate``. ``wait_scale`` is the fraction of ``wait_seconds`` the fake really
    waits before a message moves to ``sent``: 0 (default) only reports the delay, so tests stay
    fast; 1 is real time.
    """

    per_kind_mps: Mapping[str, float] = attrs.field(
        factory=lambda: {
            "long_code": 0.1,
            "toll_free": 20.0,
            "short_code": 1000.0,
            "alphanumeric": 0.1,
        },
        converter=_frozen_mapping,
    )
    per_sender_mps: Mapping[str, float] = attrs.field(factory=dict, converter=_frozen_mapping)
    account_mps: Mapping[str, float] = attrs.field(
        factory=lambda: {"SMS": 50.0, "MMS": 15.0}, converter=_frozen_mapping
    )
    queue_seconds: float = attrs.field(default=4 * 3600.0, validator=_non_negative)
    queue_depth: int | None = None
    wait_scale: float = attrs.field(default=0.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        for name, rates in (
            ("per_kind_mps", self.per_kind_mps),
            ("per_sender_mps", self.per_sender_mps),
            ("account_mps", self.account_mps),
        ):
            for key, rate in rates.items():
                if rate <= 0:
                    raise ValueError(f"{name}[{key!r}] must be > 0, got {rate!r}")
        missing = [k for k in _KINDS if k not in self.per_kind_mps]
        if missing:
            raise ValueError(f"per_kind_mps lacks {missing}")
        if self.queue_depth is not None and self.queue_depth < 0:
            raise ValueError("queue_depth must be >= 0")


@attrs.frozen(kw_only=True)
class ApiRateLimit:
    """Account API request limit: ``limit`` requests per fixed ``window`` of seconds.

    Request number ``limit + 1`` in a window gets HTTP 429, error code ``10011``. Every
    authenticated response carries ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
    ``x-ratelimit-reset`` (whole seconds until the window resets, rounded up).
    """

    limit: int
    window: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ValueError("ApiRateLimit needs limit >= 1 and window > 0")


@attrs.frozen(kw_only=True)
class Faults:
    """Injected failures for API requests; replace them at runtime with ``fake.configure()``.

    Only requests whose ``"METHOD /path"`` (path without ``/v2``, e.g. ``"POST /messages"``)
    matches one of the ``match`` glob patterns are affected; an empty ``match`` means every
    request. For each affected request, in order:

    1. ``latency`` seconds are added;
    2. the next ``script`` step is consumed, if any is left (see :data:`FaultStep`);
    3. otherwise one random draw picks an injected error (``error_rate``, status chosen from
       ``error_statuses``), a ``"drop"`` (``drop_rate``) or a ``"stall"`` (``stall_rate``).

    Injected errors have Telnyx-shaped bodies (code ``10007`` for 5xx, ``10011`` for 429).
    ``retry_after`` (seconds, or an HTTP date string) adds a ``Retry-After`` header to every 429
    and 503 the fake sends, including real rate-limit and queue-full answers. ``seed`` makes the
    random draws repeatable.
    """

    latency: float = attrs.field(default=0.0, validator=_non_negative)
    script: tuple[FaultStep, ...] = attrs.field(
        default=(), converter=_steps, validator=_check_steps
    )
    error_rate: float = attrs.field(default=0.0, validator=_probability)
    error_statuses: tuple[int, ...] = attrs.field(default=(500, 503), converter=_int_tuple)
    drop_rate: float = attrs.field(default=0.0, validator=_probability)
    stall_rate: float = attrs.field(default=0.0, validator=_probability)
    stall_seconds: float = attrs.field(default=30.0, validator=_non_negative)
    retry_after: float | str | None = None
    match: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.error_rate + self.drop_rate + self.stall_rate > 1.0:
            raise ValueError("error_rate + drop_rate + stall_rate must be <= 1")
        if self.error_rate and not self.error_statuses:
            raise ValueError("error_rate needs at least one status in error_statuses")
        for status in self.error_statuses:
            if not 400 <= status <= 599:
                raise ValueError(f"error status {status} is not 4xx/5xx")
        for pattern in self.match:
            if "/v2/" in pattern or pattern.endswith("/v2"):
                # Matched against the path without /v2: such a pattern would never match.
                raise ValueError(
                    f"match pattern {pattern!r}: leave out /v2 (e.g. 'POST /messages')"
                )

    @property
    def active(self) -> bool:
        """True when any fault could fire (used to skip all fault work on the hot path)."""
        return bool(
            self.latency or self.script or self.error_rate or self.drop_rate or self.stall_rate
        )


@attrs.frozen(kw_only=True)
class WebhookSettings:
    """How the fake delivers webhooks.

    Each URL is tried ``attempts`` times (Telnyx documents up to 3), waiting
    ``retry_delay * 2**n`` seconds between tries; then the failover URL gets the same
    treatment. An attempt fails on a non-2xx answer, a connection error or no answer within
    ``timeout`` seconds (Telnyx allows 2).
    """

    attempts: int = 3
    retry_delay: float = attrs.field(default=0.02, validator=_non_negative)
    timeout: float = attrs.field(default=2.0, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")


@attrs.frozen(kw_only=True)
class SeedProfile:
    """A messaging profile present when the fake starts."""

    id: str = DEFAULT_PROFILE_ID
    name: str = "Default"
    webhook_url: str | None = None
    webhook_failover_url: str | None = None
    v1_secret: str | None = None  # None: a random secret


def _number_id(phone_number: str) -> str:
    # Stable ids, so tests can hard-code them across runs.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"telnyx-msg-fake:{phone_number}"))


@attrs.frozen(kw_only=True)
class SeedNumber:
    """A hosted messaging number present when the fake starts.

    ``type`` is ``long-code``, ``toll-free`` or ``short-code``; it decides the sender's
    throughput. ``messaging_profile_id=None`` leaves the number unassigned.
    """

    phone_number: str
    type: str = "long-code"
    messaging_profile_id: str | None = DEFAULT_PROFILE_ID
    country_code: str = "US"
    tags: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    id: str = attrs.field(
        default=attrs.Factory(lambda self: _number_id(self.phone_number), takes_self=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.type not in _NUMBER_TYPES:
            raise ValueError(f"type must be one of {_NUMBER_TYPES}, got {self.type!r}")


def _profiles(value: Iterable[SeedProfile]) -> tuple[SeedProfile, ...]:
    return tuple(value)


def _numbers(value: Iterable[SeedNumber]) -> tuple[SeedNumber, ...]:
    return tuple(value)


DEFAULT_NUMBERS = (
    SeedNumber(phone_number=DEFAULT_LONG_CODE, type="long-code"),
    SeedNumber(phone_number=DEFAULT_TOLL_FREE, type="toll-free"),
    SeedNumber(phone_number=DEFAULT_SHORT_CODE, type="short-code"),
)


@attrs.frozen(kw_only=True)
class FakeConfig:
    """Everything a :class:`FakeTelnyx` can be told; all fields have test-friendly defaults.

    - ``delivery_delay``: seconds from ``queued`` to ``sent`` and again from ``sent`` to the
      final status (``delivered``, or ``delivery_failed`` for ``failing_numbers``).
    - ``profiles`` / ``numbers``: seeded messaging profiles and hosted numbers. Messages whose
      sender is not a hosted number belong to the first profile.
    - ``strict_senders``: refuse (422, code ``40305``) a ``from`` that is neither a hosted
      number nor a registered alphanumeric sender id; by default any well-formed sender works.
    - ``throughput`` (None: no sender queues), ``api_rate_limit`` (None: unlimited), ``faults``,
      ``webhooks``: see their classes.
    - ``idempotency``: replay the stored answer for a repeated ``Idempotency-Key`` on the send
      endpoints (Telnyx's documented semantics: successful answers only; same key with a
      different body gives 422).
    - ``max_messages``: messages kept for ``GET /messages/{id}`` (oldest evicted first, as Telnyx
      forgets messages after 10 days); also the idempotency cache size.
    - ``request_log_size`` / ``webhook_log_size``: bounds of ``stats.requests`` and
      ``stats.webhook_attempts``.
    - ``sms_part_price`` / ``mms_price``: decimal strings for ``cost.amount`` (per part, per
      recipient).
    """

    delivery_delay: float = attrs.field(default=0.05, validator=_non_negative)
    failing_numbers: frozenset[str] = attrs.field(
        default=frozenset({FAILING_NUMBER}), converter=_strings
    )
    profiles: tuple[SeedProfile, ...] = attrs.field(default=(SeedProfile(),), converter=_profiles)
    numbers: tuple[SeedNumber, ...] = attrs.field(default=DEFAULT_NUMBERS, converter=_numbers)
    strict_senders: bool = False
    throughput: Throughput | None = attrs.field(factory=Throughput)
    api_rate_limit: ApiRateLimit | None = None
    faults: Faults = attrs.field(factory=Faults)
    webhooks: WebhookSettings = attrs.field(factory=WebhookSettings)
    idempotency: bool = True
    max_messages: int = 10_000
    request_log_size: int = 1_000
    webhook_log_size: int = 1_000
    organization_id: str = DEFAULT_ORGANIZATION_ID
    sms_part_price: str = "0.0040"
    mms_price: str = "0.0150"

    def __attrs_post_init__(self) -> None:
        ids = {p.id for p in self.profiles}
        if len(ids) != len(self.profiles):
            raise ValueError("profile ids must be unique")
        for number in self.numbers:
            if number.messaging_profile_id is not None and number.messaging_profile_id not in ids:
                raise ValueError(
                    f"number {number.phone_number} refers to unknown profile "
                    f"{number.messaging_profile_id}"
                )
        if self.max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        if self.request_log_size < 0 or self.webhook_log_size < 0:
            raise ValueError("log sizes must be >= 0")
