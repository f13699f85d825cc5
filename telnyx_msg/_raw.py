"""Raw responses: ``client.<resource>.with_raw_response.<method>(...)``.

The raw form runs the very same pipeline as the plain method (validation, rate limits, retries,
errors) and returns a :class:`RawResponse` instead of the parsed result, so a caller can read the
status, headers, request id and retry count of a call that succeeded. Errors still raise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["RawResponse", "RawRunner"]


class RawResponse(Generic[T]):
    """A successful call's HTTP response, before (or besides) parsing.

    ``parse()`` returns what the plain method returns (a model, a list, ``None``, or for a list
    method a page iterator that starts with the page already fetched); it parses on first call
    and caches the result, and raises :class:`~telnyx_msg.APIResponseValidationError` for a body
    that is not the documented shape.
    """

    __slots__ = (
        "_parse",
        "_parsed",
        "body",
        "elapsed",
        "headers",
        "request_id",
        "retries_taken",
        "status",
    )

    def __init__(
        self,
        *,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        request_id: str | None,
        retries_taken: int,
        elapsed: float,
        parse: Callable[[], T],
    ) -> None:
        self.status = status
        """The HTTP status of the final attempt (a success, 2xx)."""
        self.headers = headers
        """The response headers (case-insensitive)."""
        self.body = body
        """The raw response body."""
        self.request_id = request_id
        """Telnyx's request id of the final attempt (``x-request-id``), for support tickets."""
        self.retries_taken = retries_taken
        """How many retries the call needed (0: the first attempt succeeded)."""
        self.elapsed = elapsed
        """Seconds from the call to its response, including rate-limit waits and retries."""
        self._parse = parse
        self._parsed: Any = _UNPARSED

    def parse(self) -> T:
        """The typed result the plain method returns (parsed once, then cached)."""
        if self._parsed is _UNPARSED:
            self._parsed = self._parse()
        result: T = self._parsed
        return result

    def _with_parse(self, parse: Callable[[], Any]) -> RawResponse[Any]:
        """The same response with another parser (the blocking facade wraps page iterators)."""
        return RawResponse(
            status=self.status,
            headers=self.headers,
            body=self.body,
            request_id=self.request_id,
            retries_taken=self.retries_taken,
            elapsed=self.elapsed,
            parse=parse,
        )

    def __repr__(self) -> str:
        return (
            f"<RawResponse status={self.status} request_id={self.request_id!r} "
            f"retries_taken={self.retries_taken} elapsed={self.elapsed:.3f}s>"
        )


_UNPARSED: Any = object()


class RawRunner:
    """The runner behind ``with_raw_response``: binds each method to the client's raw form."""

    def __init__(self, runner: Any) -> None:
        self._client = getattr(runner, "_client", runner)  # raw of raw is still raw

    def _bind(self, endpoint: Any, name: str) -> Callable[..., Any]:
        bound: Callable[..., Any] = self._client._bind_raw(endpoint, name)
        return bound

    def _send_many(self, *_: Any) -> Any:
        raise TypeError(
            "send_many has no raw form; it reports each message's outcome (with "
            "its request id) in the SendOutcome it yields"
        )
