"""Telnyx-shaped API errors raised by the fake's state and rendered by its HTTP layer.

Codes and titles (https://developers.telnyx.com/development/api-fundamentals/api-errors and
https://developers.telnyx.com/docs/messaging/messages/error-codes): ``10005`` Resource not
found, ``10007`` Unexpected error, ``10009`` Authentication failed, ``10011`` Too many requests,
``10015`` Bad Request, ``40300`` Blocked due to STOP message (HTTP 409), ``40305`` Invalid
'from' address, ``40318`` Message queue full (HTTP 429).
"""

from __future__ import annotations

from typing import Any

from telnyx_msg.errors import QUEUE_FULL_CODE


class ApiError(Exception):
    """One error response: HTTP ``status`` and a single Telnyx error object."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {title}: {detail}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        """The JSON document Telnyx answers with: ``{"errors": [...]}``."""
        error: dict[str, Any] = {"code": self.code, "title": self.title}
        if self.detail is not None:
            error["detail"] = self.detail
        if self.pointer is not None or self.parameter is not None:
            source: dict[str, str] = {}
            if self.pointer is not None:
                source["pointer"] = self.pointer
            if self.parameter is not None:
                source["parameter"] = self.parameter
            error["source"] = source
        error["meta"] = {"url": f"https://developers.telnyx.com/docs/overview/errors/{self.code}"}
        return {"errors": [error]}


def invalid(detail: str, pointer: str, *, status: int = 422) -> ApiError:
    """A bad body field: 422 ``10015`` pointing at it (RFC 6901 pointer, e.g. ``/to``)."""
    return ApiError(status, "10015", "Bad Request", detail, pointer=pointer)


def bad_parameter(detail: str, parameter: str) -> ApiError:
    """A bad query parameter: 400 ``10015`` naming it."""
    return ApiError(400, "10015", "Bad Request", detail, parameter=parameter)


def invalid_from(detail: str) -> ApiError:
    """A sender Telnyx cannot use: 422 ``40305``."""
    return ApiError(422, "40305", "Invalid 'from' address", detail, pointer="/from")


def not_found(what: str) -> ApiError:
    """An unknown id or path: 404 ``10005``."""
    return ApiError(404, "10005", "Resource not found", f"{what} could not be found.")


def unauthorized() -> ApiError:
    """Missing or wrong Bearer key: 401 ``10009``."""
    return ApiError(
        401,
        "10009",
        "Authentication failed",
        "The required authentication headers were either invalid or not included in the request.",
    )


def too_many_requests() -> ApiError:
    """Account API request limit exceeded: 429 ``10011``."""
    return ApiError(
        429,
        "10011",
        "Too many requests",
        "You have exceeded the maximum number of allowed requests.",
    )


def queue_full(sender: str) -> ApiError:
    """The sender's message queue is full: 429 ``40318``."""
    return ApiError(
        429,
        QUEUE_FULL_CODE,
        "Message queue full",
        f"The message queue for {sender} is full. Wait before resending.",
        pointer="/from",
    )


def opted_out(sender: str, recipient: str) -> ApiError:
    """The recipient sent STOP to this sender: 409 ``40300``."""
    return ApiError(
        409,
        "40300",
        "Blocked due to STOP message",
        f"Messages cannot be sent from {sender} to {recipient} due to an existing block rule.",
        pointer="/to",
    )


def injected(status: int) -> ApiError:
    """A fault-injected error response for ``status``."""
    if status == 429:
        return too_many_requests()
    if status == 401:
        return unauthorized()
    if status == 404:
        return not_found("The requested resource")
    if status >= 500:
        return ApiError(status, "10007", "Unexpected error", "An unexpected error occurred.")
    return ApiError(status, "10015", "Bad Request", "Injected failure.")
