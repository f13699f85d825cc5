"""``MockTransport``: answer the client's requests in-process, with no server (httpx-style)."""

from __future__ import annotations

import inspect
import json as jsonlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from attrs import field, frozen
from multidict import CIMultiDict, CIMultiDictProxy

from telnyx_msg._config import DEFAULT_MAX_RESPONSE_SIZE, Timeout
from telnyx_msg._wire import HttpResponse, TransportError

__all__ = ["MockRequest", "MockResponse", "MockTransport", "MockTransportError"]


@frozen
class MockRequest:
    """One request as the client would send it: ``method``, full ``url``, ``path`` (without
    the query), decoded ``query``, ``headers`` and the raw ``body``; ``json()`` decodes it."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The URL's path, e.g. ``/v2/messages``."""
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        """The decoded query string (``{"page[size]": "5"}``)."""
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    def json(self) -> Any:
        """The decoded JSON body (None without one)."""
        return jsonlib.loads(self.body) if self.body else None


def _check_headers(
    _instance: object,
    _attribute: object,
    headers: Mapping[str, str] | tuple[tuple[str, str], ...],
) -> None:
    # A non-str name or value (``{"Retry-After": 1}``) is refused here, naming the header, not
    # deep inside the client's response handling. A mapping or (name, value) pairs, as the
    # multidict built from them (and httpx's Response) take.
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"MockResponse headers must map str to str; {name!r} is "
                f"{type(value).__name__} {value!r} (write it as a string)"
            )


def _pairs_once(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> Mapping[str, str] | tuple[tuple[str, str], ...]:
    # A one-pass iterable of pairs (``zip``, a generator) is read once here: the check below
    # would otherwise use it up, and the response would reach the client without headers.
    return headers if isinstance(headers, Mapping) else tuple(headers)


@frozen
class MockResponse:
    """What a handler answers: ``status``, a ``json`` document (or raw ``body``), ``headers``
    (names and values ``str``)."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: Mapping[str, str] | tuple[tuple[str, str], ...] = field(
        factory=dict, converter=_pairs_once, validator=_check_headers
    )


class MockTransportError(Exception):
    """Raise from a handler to simulate no response: ``reached`` says whether the request got to
    the server (a timeout or a dropped connection after writing) or not (refused)."""

    def __init__(
        self, message: str = "simulated failure", *, reached: bool = False, timeout: bool = False
    ) -> None:
        super().__init__(message)
        self.reached = reached
        self.timeout = timeout


Handler = Callable[[MockRequest], "MockResponse | Awaitable[MockResponse]"]


class MockTransport:
    """A transport whose ``handler(request) -> MockResponse`` (sync or async) answers every
    request: ``AsyncClient(transport=MockTransport(handler))``. Validation, rate limits,
    retries, parsing and errors run exactly as with the network. No timeout fires (as with
    httpx's ``MockTransport``: a slow handler is just slow); a handler simulates one by raising
    ``MockTransportError(timeout=True, reached=...)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[MockRequest] = []  # every request, in order

    @property
    def pool_size(self) -> int:
        """No pool: any number of requests at once."""
        return 1 << 30

    @property
    def max_response_size(self) -> int:
        """The default response size cap; the client applies its own ``max_response_size``
        to the handler's answers."""
        return DEFAULT_MAX_RESPONSE_SIZE

    @property
    def closed(self) -> bool:
        """Never: it holds nothing to close, so it can serve one client after another (as
        httpx's does); a closed client refuses calls itself."""
        return False

    def other_loop(self) -> bool:
        """Never bound to a loop."""
        return False

    def grow_pool(self, size: int) -> int:
        """No pool to grow."""
        return self.pool_size

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeout,
    ) -> HttpResponse:
        """Ask the handler; turn a :class:`MockTransportError` into a transport failure."""
        request = MockRequest(method, url, CIMultiDictProxy(CIMultiDict(headers)), body or b"")
        self.requests.append(request)
        try:
            answer = self.handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
        except MockTransportError as exc:
            raise TransportError(str(exc), reached=exc.reached, timeout=exc.timeout) from exc
        if not isinstance(answer, MockResponse):
            raise TypeError(
                f"the MockTransport handler must return a MockResponse, got {type(answer).__name__}"
            )
        payload = answer.body if answer.json is None else jsonlib.dumps(answer.json).encode()
        return HttpResponse(answer.status, CIMultiDictProxy(CIMultiDict(answer.headers)), payload)

    async def aclose(self) -> None:
        """Nothing to release (the client's ``aclose`` calls it)."""
