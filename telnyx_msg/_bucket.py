"""Pieces shared by the in-process and the Redis rate limiters.

Telnyx's documented throughputs, the classification of a ``from`` value into a sender kind,
argument validation, the token bucket and the adaptive (CUBIC) formulas. Nothing here does I/O
or reads a clock: every function takes ``now``.

Sources: https://developers.telnyx.com/docs/messaging/messages/rate-limiting (account and
per-sender rates, queue depth = 4 h x rate) and botocore ``retries/adaptive.py`` (beta 0.7,
CUBIC constant 0.4, fill-rate floor 0.5/s).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from telnyx_msg._validate import E164_RE, SHORT_CODE_RE
from telnyx_msg.errors import ConfigurationError

__all__ = [
    "BETA",
    "CUBIC_C",
    "DECREASE_COOLDOWN",
    "IN_USE_SECONDS",
    "DEFAULT_ACCOUNT_MPS",
    "DEFAULT_KIND_MPS",
    "DEFAULT_QUEUE_FRACTION",
    "DRAIN_FRACTION",
    "KINDS",
    "MAX_RESET_AFTER",
    "MIN_DT",
    "METER_SLOT",
    "METER_SMOOTHING",
    "MIN_RATE",
    "QUEUE_SECONDS",
    "TOKEN_EPS",
    "AccountSpec",
    "LaneSpec",
    "LimitConfig",
    "RateMeter",
    "RequestSpec",
    "TokenBucket",
    "cubic_rate",
    "drain_tokens",
    "reset_pause",
    "resolve_config",
    "sender_kind",
]

# Telnyx keeps a message queued for at most 4 hours; every documented queue depth is 4 h x rate.
QUEUE_SECONDS = 4 * 3600.0

# Per-sender defaults (messages/s). "number_pool" is a lane keyed by messaging profile id: Telnyx
# spreads those sends over the profile's numbers and documents no pool rate, so no default limit.
DEFAULT_KIND_MPS: Mapping[str, float | None] = MappingProxyType(
    {
        "long_code": 0.1,
        "toll_free": 20.0,
        "short_code": 1000.0,
        "alphanumeric": 0.1,
        "number_pool": None,
    }
)
KINDS = tuple(DEFAULT_KIND_MPS)

# Account defaults per message type (SMS 50/s, MMS 15/s). A message type without its own entry
# uses the SMS lane.
DEFAULT_ACCOUNT_MPS: Mapping[str, float] = MappingProxyType({"SMS": 50.0, "MMS": 15.0})

# Share of a sender's server-side queue (4 h x rate) the client lets itself fill before pacing.
DEFAULT_QUEUE_FRACTION = 0.5

# Adaptive account lane (botocore adaptive mode): multiplicative decrease and CUBIC recovery.
BETA = 0.7
CUBIC_C = 0.4
MIN_RATE = 0.5
DECREASE_COOLDOWN = 1.0  # at most one decrease per second (once per round trip, as TCP does)
# An account lane that granted a token this recently is "in use": a first 10011 starts the
# request rate from the highest rate of those lanes (a 429 answers a request of the last
# round trips).
IN_USE_SECONDS = 2.0
METER_SLOT = 0.5  # the measured success rate is an EWMA over 0.5 s slots ...
METER_SMOOTHING = 0.8  # ... weighting the newest slot 0.8 (botocore adaptive mode)
MAX_RESET_AFTER = 300.0  # an x-ratelimit-reset beyond this is treated as this
RESET_SLACK = 0.9  # of an integral x-ratelimit-reset, not waited out (see reset_pause)
DRAIN_FRACTION = 0.01  # a full queue pauses the lane until 1 % of it (144 s of sending) drained

TOKEN_EPS = 1e-6  # a bucket holding >= 1 - TOKEN_EPS tokens can grant (float round-off)
MIN_DT = 1e-6  # the shortest wait a bucket reports, so a virtual clock always moves forward

_DIGITS = re.compile(r"[0-9]{9,15}")
_TOLL_FREE = re.compile(r"\+1(?:800|833|844|855|866|877|888)[0-9]{7}")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def sender_kind(sender: str) -> str:
    """Classify a ``from`` value (or messaging profile id) into the kind that sets its rate.

    - 3 to 8 digits: ``"short_code"``;
    - ``+1`` then 800, 833, 844, 855, 866, 877 or 888 and 7 more digits: ``"toll_free"``;
    - any other E.164 number (``+[1-9]`` and 1 to 14 more digits): ``"long_code"``;
    - a UUID (a messaging profile id, used as the lane of number-pool sends): ``"number_pool"``;
    - anything else (an alphanumeric sender ID such as ``"MyBrand"``): ``"alphanumeric"``.

    9 to 15 bare digits are classified as the E.164 number with a ``+`` in front.
    """
    if SHORT_CODE_RE.fullmatch(sender):
        return "short_code"
    if _DIGITS.fullmatch(sender):
        sender = "+" + sender
    if _TOLL_FREE.fullmatch(sender):
        return "toll_free"
    if E164_RE.fullmatch(sender):
        return "long_code"
    if _UUID.fullmatch(sender):
        return "number_pool"
    return "alphanumeric"


def cubic_rate(wmax: float, elapsed: float) -> float:
    """CUBIC window after a decrease: C*(t - K)^3 + W_max, with K = cbrt(W_max*(1-beta)/C).

    At ``elapsed == 0`` this is ``BETA * wmax``; it reaches ``wmax`` again after K seconds.
    """
    k: float = math.pow(wmax * (1.0 - BETA) / CUBIC_C, 1.0 / 3.0)
    return CUBIC_C * (elapsed - k) ** 3 + wmax


def reset_pause(reset_after: float | None) -> float:
    """Seconds to block every account bucket after a 429 carrying ``x-ratelimit-reset``.

    Shared by the local and the Redis limiter. Whole seconds are rounded up by the server (the
    window resets within the last second before the stated time), so 0.9 s of an integral hint
    is not waited out; a hint beyond ``MAX_RESET_AFTER`` is capped; none, <= 0 or NaN is 0.
    """
    if reset_after is None or not reset_after > 0:  # also drops NaN
        return 0.0
    pause = float(reset_after)
    if pause.is_integer():
        pause -= RESET_SLACK
    return min(pause, MAX_RESET_AFTER)


def drain_tokens(rate: float) -> float:
    """How many messages must drain from a full sender queue before that lane sends again."""
    return max(1.0, DRAIN_FRACTION * QUEUE_SECONDS * rate)


class TokenBucket:
    """A token bucket on a caller-supplied clock; tokens may go negative (a debt or a pause).

    ``stamp`` is the time tokens were last brought up to date; a ``stamp`` in the future means
    the bucket is blocked (it refills only after ``stamp``).
    """

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self.rate!r}, capacity={self.capacity!r}, "
            f"tokens={self.tokens!r}, stamp={self.stamp!r})"
        )

    def refill(self, now: float) -> None:
        """Bring ``tokens`` up to date at ``now``."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def available(self, now: float) -> bool:
        """True when one token can be taken at ``now``."""
        self.refill(now)
        return self.stamp <= now and self.tokens >= 1.0 - TOKEN_EPS

    def ready_at(self, now: float) -> float:
        """The earliest time (``>= now``) at which one token can be taken."""
        if self.available(now):
            return now
        base = max(now, self.stamp)
        return max(now + MIN_DT, base + max(0.0, 1.0 - self.tokens) / self.rate)

    def take(self, now: float) -> None:
        """Take one token (the caller checked :meth:`available`)."""
        self.refill(now)
        self.tokens -= 1.0

    def give_back(self, now: float) -> None:
        """Undo one :meth:`take` (capped at the capacity)."""
        self.refill(now)
        self.tokens = min(self.capacity, self.tokens + 1.0)

    def set_rate(self, now: float, rate: float, capacity: float) -> None:
        """Change the refill rate and the capacity from ``now`` on."""
        self.refill(now)
        self.rate = rate
        self.capacity = capacity
        self.tokens = min(self.tokens, capacity)

    def block(self, now: float, until: float) -> None:
        """Empty the bucket and let it refill only from ``until`` on."""
        self.refill(now)
        self.tokens = min(self.tokens, 0.0)
        self.stamp = max(self.stamp, until)

    def limit_tokens(self, now: float, most: float) -> None:
        """Lower the tokens to at most ``most`` (below 1: next grant in ``(1 - most)/rate`` s)."""
        self.refill(now)
        self.tokens = min(self.tokens, most)


class RateMeter:
    """Events per second: an EWMA over ``METER_SLOT`` slots with weight ``METER_SMOOTHING``.

    The slot in progress is not counted; every empty slot multiplies the rate by 0.2.
    """

    __slots__ = ("_count", "_slot", "rate")

    def __init__(self) -> None:
        self._slot: int | None = None
        self._count = 0
        self.rate = 0.0

    def _roll(self, now: float) -> None:
        slot = math.floor(now / METER_SLOT)
        if self._slot is None:
            self._slot = slot
        elif slot > self._slot:
            keep = 1.0 - METER_SMOOTHING
            self.rate = METER_SMOOTHING * self._count / METER_SLOT + keep * self.rate
            self.rate *= keep ** min(slot - self._slot - 1, 64)
            self._slot = slot
            self._count = 0

    def add(self, now: float) -> None:
        """Count one event at ``now``."""
        self._roll(now)
        self._count += 1

    def measure(self, now: float) -> float:
        """The rate (events/s) measured up to the slot before ``now``'s."""
        self._roll(now)
        return self.rate


@attrs.frozen
class AccountSpec:
    """The configured account lane of one message type: rate and bucket size."""

    rate: float
    burst: float


@attrs.frozen
class RequestSpec:
    """The adaptive request lane every limited message type shares once a 429 ``10011`` came.

    Telnyx's ``10011`` limit counts the account's requests of every message type, so one lane
    learns it (when the SMS and MMS lanes each adapted to the whole success rate, together they
    aimed above it). Its first decrease (and the first after it was dropped) starts from the
    highest rate of the account lanes in use (that granted within ``IN_USE_SECONDS``; else
    ``rate``, the highest account rate), so traffic of one type adapts as its own lane did; its
    bucket size scales as ``max(1, burst x r / rate)`` at rate ``r``; recovered to ``ceiling``
    (the sum of the account rates) it can no longer bind and is dropped, once its block and
    cooldown are over.
    """

    rate: float
    burst: float
    ceiling: float

    @property
    def floor(self) -> float:
        """The lowest rate a decrease sets: ``min(MIN_RATE, rate)``."""
        return min(MIN_RATE, self.rate)

    def capacity_for(self, rate: float) -> float:
        """The bucket size at ``rate``."""
        return max(1.0, self.burst * rate / self.rate)


@attrs.frozen
class LaneSpec:
    """A sender lane's bucket: ``queue_model`` lanes have ``capacity`` = fraction x 4 h x rate."""

    rate: float
    capacity: float
    queue_model: bool


@attrs.frozen
class LimitConfig:
    """Validated limiter settings (built by :func:`resolve_config`)."""

    accounts: Mapping[str, AccountSpec | None]
    kind_mps: Mapping[str, float | None]
    sender_mps: Mapping[str, float | None]
    burst: float | None
    queue_fraction: float
    requests: RequestSpec | None = None  # None: no account lane, nothing adapts

    def account_key(self, message_type: str) -> str:
        """The account lane a message type uses (its own, else the SMS lane)."""
        key = message_type.upper()
        return key if key in self.accounts else "SMS"

    def lane_spec(self, sender: str) -> LaneSpec | None:
        """The sender lane's bucket, or None when that sender has no rate of its own."""
        # A short code's lane is its digits; a rate set for it as written "+55501" (the form a
        # send_short_code caller may use) is that lane's too.
        key = sender
        if key not in self.sender_mps and SHORT_CODE_RE.fullmatch(sender):
            key = "+" + sender
        if key in self.sender_mps:
            rate = self.sender_mps[key]
            if rate is None:
                return None
            return LaneSpec(rate, _burst_for(rate, self.burst), queue_model=False)
        rate = self.kind_mps[sender_kind(sender)]
        if rate is None:
            return None
        return LaneSpec(rate, max(1.0, self.queue_fraction * QUEUE_SECONDS * rate), True)


def _burst_for(rate: float, burst: float | None) -> float:
    return float(burst) if burst is not None else float(max(1, math.ceil(rate)))


def _check_rate(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive number of messages/s, not {value!r}")
    return float(value)


def _check_optional_rate(name: str, value: object) -> float | None:
    return None if value is None else _check_rate(name, value)


def resolve_config(
    account_mps: float | Mapping[str, float | None] | None,
    per_kind_mps: Mapping[str, float | None] | None,
    per_sender_mps: Mapping[str, float | None] | None,
    burst: float | None,
    queue_fraction: float,
) -> LimitConfig:
    """Validate the limiter arguments and merge them over the documented defaults."""
    if burst is not None:
        if (
            isinstance(burst, bool)
            or not isinstance(burst, (int, float))
            or not math.isfinite(burst)
            or burst < 1
        ):
            raise ConfigurationError(f"burst must be a number >= 1 or None, not {burst!r}")
        burst = float(burst)
    if (
        isinstance(queue_fraction, bool)
        or not isinstance(queue_fraction, (int, float))
        or not 0 < queue_fraction <= 1
    ):
        raise ConfigurationError(f"queue_fraction must be in (0, 1], not {queue_fraction!r}")

    rates: dict[str, float | None]
    if account_mps is None:
        rates = dict.fromkeys(DEFAULT_ACCOUNT_MPS)
    elif isinstance(account_mps, Mapping):
        rates = dict(DEFAULT_ACCOUNT_MPS)
        for key, value in account_mps.items():
            kind = str(key).upper()
            if kind not in DEFAULT_ACCOUNT_MPS:
                raise ConfigurationError(
                    f"account_mps: unknown message type {key!r} (known: "
                    f"{', '.join(DEFAULT_ACCOUNT_MPS)})"
                )
            rates[kind] = _check_optional_rate(f"account_mps[{key!r}]", value)
    else:
        sms = _check_rate("account_mps", account_mps)
        rates = {"SMS": sms, "MMS": min(sms, DEFAULT_ACCOUNT_MPS["MMS"])}
    accounts = {
        key: None if rate is None else AccountSpec(rate, _burst_for(rate, burst))
        for key, rate in rates.items()
    }

    kinds = dict(DEFAULT_KIND_MPS)
    for key, value in (per_kind_mps or {}).items():
        if key not in kinds:
            raise ConfigurationError(
                f"per_kind_mps: unknown sender kind {key!r} (known: {', '.join(KINDS)})"
            )
        kinds[key] = _check_optional_rate(f"per_kind_mps[{key!r}]", value)

    senders: dict[str, float | None] = {}
    for key, value in (per_sender_mps or {}).items():
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"per_sender_mps keys must be non-empty strings, not {key!r}")
        senders[key] = _check_optional_rate(f"per_sender_mps[{key!r}]", value)

    limited = [spec for spec in accounts.values() if spec is not None]
    requests = None
    if limited:
        top = max(limited, key=lambda spec: spec.rate)
        requests = RequestSpec(top.rate, top.burst, sum(spec.rate for spec in limited))
    return LimitConfig(
        requests=requests,
        accounts=MappingProxyType(accounts),
        kind_mps=MappingProxyType(kinds),
        sender_mps=MappingProxyType(senders),
        burst=burst,
        queue_fraction=float(queue_fraction),
    )
