"""Every exception ``telnyx_msg`` raises.

::

    TelnyxError
    ├── ConfigurationError            bad settings (missing key, bad base_url); a ValueError
    ├── ValidationError               bad arguments caught before any I/O; a ValueError
    ├── APIConnectionError            no HTTP response; .outcome_unknown: may it have been sent?
    │   ├── APITimeoutError
    │   └── ClientClosedError         the client was closed before the request was written
    ├── APIStatusError                .status .errors .request_id .body .outcome_unknown
    │   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
    │   ├── NotFoundError 404, ConflictError 409, UnprocessableEntityError 422,
    │   ├── RateLimitError 429        .retry_after (seconds or None), .code ("10011" or "40318")
    │   │   └── QueueFullError        429 with error code 40318 (the sender's queue is full)
    │   └── InternalServerError 5xx
    ├── APIResponseValidationError    a 2xx whose body is unreadable or not the
    │                                 documented shape; .status .request_id .body
    ├── RedisUnavailableError         a Redis the SDK relies on failed or did not answer in time
    │   ├── RateLimiterUnavailableError   the shared rate limiter's; nothing was sent
    │   ├── WebhookQueueUnavailableError  the webhook queue's; nothing was lost
    │   └── DeliveryTrackerUnavailableError  the delivery tracker's
    └── WebhookVerificationError      everything webhook verification raises is one of these:
        ├── InvalidSignatureError
        ├── TimestampError
        ├── MissingHeaderError
        ├── WebhookPayloadError
        └── DuplicateWebhookError

The API key never appears in any message or attribute here: errors are built from the response,
the method and the path only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "DeliveryTrackerUnavailableError",
    "DuplicateWebhookError",
    "ErrorDetail",
    "InternalServerError",
    "InvalidSignatureError",
    "MissingHeaderError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "RateLimiterUnavailableError",
    "RedisUnavailableError",
    "TelnyxError",
    "TimestampError",
    "UnprocessableEntityError",
    "ValidationError",
    "WebhookPayloadError",
    "WebhookQueueUnavailableError",
    "WebhookVerificationError",
]


class TelnyxError(Exception):
    """Base class of every error raised by ``telnyx_msg``."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its message and attributes: Exception's own pickling calls __init__
        # with the message alone, which the errors with fields cannot take.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[TelnyxError], args: tuple[Any, ...], state: dict[str, Any]) -> TelnyxError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigurationError(TelnyxError, ValueError):
    """The client or verifier was configured wrongly (missing API key, bad base URL, bad key)."""


class ValidationError(TelnyxError, ValueError):
    """An argument was rejected before any I/O; ``field`` names it (wire name, e.g. ``from``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class APIConnectionError(TelnyxError):
    """No HTTP response was received.

    ``outcome_unknown`` is True when the request may have reached Telnyx (the connection broke or
    timed out after the request was sent, in this attempt or an earlier one of the same call).
    Such a send is never retried without an idempotency key, because retrying could deliver the
    message twice.
    """

    def __init__(
        self, message: str, *, method: str = "", path: str = "", outcome_unknown: bool = False
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.outcome_unknown = outcome_unknown


class APITimeoutError(APIConnectionError):
    """The request timed out (connect or total timeout)."""


class ClientClosedError(APIConnectionError):
    """The client was closed before this request was written (``outcome_unknown`` is False,
    unless an earlier attempt of the same call may have reached Telnyx).

    Raised for calls made after ``aclose()``/``close()`` and for calls that were still waiting
    (for a rate-limit token, a retry's backoff or a connection) when the client was closed. A
    closed client never opens a new connection; create a new client.
    """


class APIResponseValidationError(TelnyxError):
    """A 2xx answer whose body is unreadable or not the documented shape.

    When the body is Telnyx's envelope (a JSON object with a ``data`` object; for the answers
    Telnyx sends without one, such as ``messages.cancel_scheduled``'s, an object naming its
    ``id`` or holding a ``data`` list) whose fields could not all be read, the request was
    **accepted** (``accepted`` True, ``outcome_unknown`` False): a send was taken by Telnyx, so
    do not resend it; look the message up (``messages.retrieve``, delivery webhooks) if you need
    it. Any other 2xx body (not JSON, an HTML page, empty, larger than ``max_response_size``,
    JSON without that envelope) may not be Telnyx's answer at all (a proxy, a captive portal, a
    wrong ``base_url``), so whether the request was accepted is unknown: ``accepted`` False,
    ``outcome_unknown`` True (resend only with the same idempotency key). ``status``,
    ``headers``, ``request_id``, ``body`` (raw text, possibly cut short), ``method``, ``path``
    and ``field`` (the missing or malformed field, when known) describe what arrived;
    ``resource_id`` is the ``data.id`` the body carried, when it could be read (for a send, the
    accepted message's id: the link to its webhooks and ``messages.retrieve``).
    """

    accepted = True
    outcome_unknown = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        body: str | None = None,
        method: str = "",
        path: str = "",
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        resource_id: str | None = None,
        accepted: bool = True,
    ) -> None:
        self.status = status
        self.accepted = accepted
        self.outcome_unknown = not accepted
        self.resource_id = resource_id
        self.headers: Mapping[str, str] = {} if headers is None else headers
        self.request_id = request_id
        self.body = body
        self.method = method
        self.path = path
        self.field = field
        where = f"{method} {path} answered {status}: " if method else ""
        rid = f" (request_id={request_id})" if request_id else ""
        outcome = (
            "the request was accepted"
            if accepted
            else "not Telnyx's answer shape, so the request may or may not have been accepted "
            "(a proxy or a wrong base_url answers like this)"
        )
        super().__init__(f"{where}{message}; {outcome}{rid}")

    @property
    def status_code(self) -> int:
        """Alias of ``status`` (the official SDK's name)."""
        return self.status


class RedisUnavailableError(TelnyxError):
    """Redis did not answer in time or refused a command (down, frozen, out of memory)."""


class WebhookQueueUnavailableError(RedisUnavailableError):
    """The webhook queue's Redis could not store or hand out an event; nothing was lost.

    A receiver answers Telnyx 503 (Telnyx retries the delivery); a worker backs off and retries.
    """


class DeliveryTrackerUnavailableError(RedisUnavailableError):
    """The delivery tracker's Redis could not record or look up a final status."""


class RateLimiterUnavailableError(RedisUnavailableError):
    """The rate limiter could not be consulted (its Redis failed or did not answer in time).

    This attempt was not sent: a request waits for the limiter before it is written. When it
    was a retry, an earlier attempt may have reached Telnyx (a lost connection, a 500): then
    ``outcome_unknown`` is True. ``send_many`` stops pulling its input (the sends already on
    the wire finish), then raises this error rather than report the rest of its input
    ``not_sent``. The original Redis exception is the ``__cause__``.
    """

    outcome_unknown: bool = False


@attrs.frozen
class ErrorDetail:
    """One entry of Telnyx's ``{"errors": [...]}`` body."""

    code: str | None = None
    title: str | None = None
    detail: str | None = None
    source: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, obj: Any) -> ErrorDetail:
        """Build from one decoded error object, tolerating odd types (codes sent as numbers)."""
        if not isinstance(obj, Mapping):
            return cls(detail=str(obj))
        code = obj.get("code")
        source = obj.get("source")
        meta = obj.get("meta")
        return cls(
            code=None if code is None else str(code),
            title=_opt_str(obj.get("title")),
            detail=_opt_str(obj.get("detail", obj.get("description"))),
            source=source if isinstance(source, Mapping) else None,
            meta=meta if isinstance(meta, Mapping) else None,
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class APIStatusError(TelnyxError):
    """Telnyx answered with an error status (4xx/5xx), or something on the way answered a
    redirect (3xx: the client does not follow redirects, see ``hint``).

    ``errors`` holds Telnyx's error objects, ``code`` the first one's code, ``request_id`` the
    response's request id header when present, ``headers`` all its headers (case-insensitive),
    and ``body`` the decoded body (or raw text). ``outcome_unknown`` is True when the call may
    have taken effect anyway: a 5xx other than 503 and 511 (or a 303) to anything but a GET,
    also after retries with an idempotency key (an earlier attempt may have been accepted;
    resending with the same key within 24 h is safe).
    """

    def __init__(
        self,
        status: int,
        *,
        errors: Sequence[ErrorDetail] = (),
        request_id: str | None = None,
        body: Any = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        outcome_unknown: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = {} if headers is None else headers
        self.errors = list(errors)
        self.request_id = request_id
        self.body = body
        self.method = method
        self.path = path
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        super().__init__(self._describe())

    @property
    def status_code(self) -> int:
        """Alias of ``status`` (the official SDK's name)."""
        return self.status

    @property
    def code(self) -> str | None:
        """The first Telnyx error code (e.g. ``"10011"``), if any."""
        return self.errors[0].code if self.errors else None

    @property
    def title(self) -> str | None:
        """The first Telnyx error title, if any."""
        return self.errors[0].title if self.errors else None

    @property
    def hint(self) -> str | None:
        """One line on the likely cause and fix, for the errors users hit most."""
        specific = HINTS.get(self.code or "") if self.code != "10015" else None
        if specific:  # written for this code: better than naming the field it points at
            return specific
        if (
            self.outcome_unknown
            and 400 <= self.status < 500
            and self.status not in (401, 403, 408, 429)
        ):
            # A retry's refusal after an attempt whose answer was lost: that attempt may have
            # done the work (a delete, a cancel), which is what this retry now runs into.
            return (
                "an earlier attempt of this call may have succeeded (its answer was lost), and "
                "this refusal may be the retry meeting its result: check the resource's state "
                "(retrieve it) before acting on this error."
            )
        source = self.errors[0].source if self.errors else None
        if source and (self.code == "10015" or self.status in (400, 422)):
            # Name what this error points at: a body field (pointer) or a query parameter.
            for key, what in (("pointer", "field"), ("parameter", "parameter")):
                if source.get(key):
                    return f"the {what} {source[key]} was rejected (errors[0].source.{key})."
        if self.status == 404 and self.method == "GET" and self.path.startswith("/messages/"):
            return (
                "no message with that id: check it, and note that Telnyx keeps message "
                "records for a limited time, so an old message can be gone."
            )
        if 300 <= self.status < 400:
            return (
                "Telnyx's API does not redirect: something in between (an http:// base_url, "
                "a proxy) answered it, and the request was not followed. Check base_url."
            )
        return HINTS.get(self.code or "") or _STATUS_HINTS.get(self.status)

    def _describe(self) -> str:
        parts = [str(self.status)]
        if self.errors:
            first = self.errors[0]
            if first.code:
                parts.append(f"[{first.code}]")
            text = first.title or ""
            if first.detail and first.detail != first.title:
                text = f"{text}: {first.detail}" if text else first.detail
            if text:
                parts.append(text)
            if len(self.errors) > 1:
                parts.append(f"(+{len(self.errors) - 1} more)")
        elif isinstance(self.body, str) and self.body:
            parts.append(_summary(self.body))
        if self.method:
            parts.append(f"on {self.method} {self.path}")
        if self.retry_after is not None:
            parts.append(f"(retry after {self.retry_after:g} s)")
        if self.outcome_unknown:
            parts.append("(outcome unknown: the request may have been accepted)")
        if self.request_id:
            parts.append(f"(request_id={self.request_id})")
        text = " ".join(parts)
        hint = self.hint
        return f"{text}\n  hint: {hint}" if hint else text


_HTML_TAG = re.compile(r"<[^>]*>")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def _summary(text: str) -> str:
    """A text error body on one line: an HTML page (a load balancer's or CDN's) by its title,
    any text with its whitespace and line breaks collapsed, at most 200 characters."""
    title = _HTML_TITLE.search(text[:65536])
    if title is not None and title.group(1).strip():
        text = html.unescape(title.group(1))
    elif text.lstrip().startswith("<"):  # a page without a title: its text, not its markup
        text = html.unescape(_HTML_TAG.sub(" ", text[:65536]))
    return " ".join(text.split())[:200]


class BadRequestError(APIStatusError):
    """HTTP 400."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403."""


class NotFoundError(APIStatusError):
    """HTTP 404."""


class ConflictError(APIStatusError):
    """HTTP 409."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: Telnyx rejected a field; see ``errors[i].source``."""


class RateLimitError(APIStatusError):
    """HTTP 429. ``retry_after`` is the server's wait hint in seconds (or None)."""


class QueueFullError(RateLimitError):
    """HTTP 429 with code 40318: the sender's queue is full; wait for it to drain."""


class InternalServerError(APIStatusError):
    """HTTP 5xx."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

#: Telnyx's error code for "the sender's message queue is full" (HTTP 429). The one home of this
#: fact: the retry policy, both rate limiters and the fake server compare against it.
QUEUE_FULL_CODE = "40318"

#: Likely cause and fix for the Telnyx error codes users hit most (codes from Telnyx's docs as
#: collected in docs/wire.md §1.7 and Telnyx's error pages, https://developers.telnyx.com/api/errors).
HINTS: dict[str, str] = {
    "10011": "too many API requests; the client retries these up to max_retries times when "
    "Telnyx's Retry-After is at most Backoff.max_wait. Lower concurrency or "
    "RateLimits(account_mps=...), or raise max_retries.",
    QUEUE_FULL_CODE: "this sender's queue is full (Telnyx queues 4 h of its rate). Slow this "
    "sender down or spread the traffic over more senders; see "
    "telnyx_msg.plan_bulk.",
    "40300": "the recipient replied STOP to this sender. Do not resend; "
    "send_many(skip_optouts=True) skips opted-out recipients.",
    "40305": "invalid 'from' address: the number must be on your account, assigned to the "
    "messaging profile, and (US long codes) registered for 10DLC.",
    "10015": "a field or parameter was rejected; errors[0].source names it.",
    "40014": "the message expired in the sender's queue (over 4 h of backlog); split the run "
    "or use more senders (telnyx_msg.plan_bulk warns before sending).",
}
_STATUS_HINTS: dict[int, str] = {
    401: "check the API key (api_key= or TELNYX_API_KEY); keys can be revoked in Mission Control.",
    403: "the key lacks permission for this resource, or (US long codes) the number has no "
    "approved 10DLC campaign.",
}


def status_error_class(status: int, code: str | None) -> type[APIStatusError]:
    """The exception class for an HTTP error status and first Telnyx error code."""
    if status == 429 and code == QUEUE_FULL_CODE:
        return QueueFullError
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


class WebhookVerificationError(TelnyxError):
    """A webhook could not be verified or parsed; the subclass says which check failed."""


class InvalidSignatureError(WebhookVerificationError):
    """The signature does not verify, or is not valid base64 of 64 bytes."""


class TimestampError(WebhookVerificationError):
    """The timestamp is malformed, too old or too far in the future."""


class MissingHeaderError(WebhookVerificationError):
    """A required header is absent or repeated."""


class WebhookPayloadError(WebhookVerificationError):
    """The signature is valid but the body is not a webhook JSON document."""


class DuplicateWebhookError(WebhookVerificationError):
    """The event id was already seen (replay store enabled); answer 2xx and skip it."""

    def __init__(self, message: str, *, event_id: str = "") -> None:
        super().__init__(message)
        self.event_id = event_id


def printable(value: object) -> str:
    """``str(value)`` with control characters escaped, for an output or log line showing
    someone else's text (a signed webhook body): an id holding a newline or a terminal escape
    must not forge a second line or rewrite a terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
