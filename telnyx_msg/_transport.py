"""The only module that talks to the network: one aiohttp session, errors mapped once.

Failures are classified for the retry policy by whether the request can have reached Telnyx:
a refused connection, a DNS failure or a connect timeout cannot (``reached=False``); a timeout or
a dropped connection after the request was handed to the socket can (``reached=True``).
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from telnyx_msg._config import DEFAULT_POOL_SIZE, Timeout
from telnyx_msg._version import __version__

USER_AGENT = (
    f"telnyx_msg/{__version__} python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
)


_URL_CACHE_SIZE = 256


def fixed_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Headers sent on every request, read-only and in the form aiohttp merges without a copy."""
    return CIMultiDictProxy(CIMultiDict(headers))


class HttpResponse(NamedTuple):
    """A complete response: status, case-insensitive headers and the raw body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class TransportError(Exception):
    """No response. ``reached`` tells whether the request may have reached the server."""

    def __init__(self, message: str, *, reached: bool, timeout: bool) -> None:
        super().__init__(message)
        self.reached = reached
        self.timeout = timeout


class AiohttpTransport:
    """Sends requests through one ``aiohttp.ClientSession``: its own, or one it was given.

    A session it creates is created lazily inside the running loop and closed by ``aclose``;
    a given session is never closed here.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None, *,
                 pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self._session = session
        self._owns_session = session is None
        self._pool_size = pool_size
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    @property
    def pool_size(self) -> int:
        """Maximum simultaneous connections (aiohttp's connector limit)."""
        if self._session is not None and not self._owns_session:
            return self._session.connector.limit if self._session.connector else self._pool_size
        return self._pool_size

    @property
    def closed(self) -> bool:
        """True once an owned session was closed (a given session reports its own state)."""
        return self._session is not None and self._session.closed

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=0,
            ttl_dns_cache=300,
        )
        return aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                     raise_for_status=False)

    def _client_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            cached = aiohttp.ClientTimeout(
                total=None if timeout.total == float("inf") else timeout.total,
                sock_connect=None if timeout.connect == float("inf") else timeout.connect,
            )
            self._timeouts[timeout] = cached
        return cached

    async def send(self, method: str, url: str, headers: Mapping[str, str],
                   body: bytes | None, timeout: Timeout) -> HttpResponse:
        """Send one request and read the whole response, or raise :class:`TransportError`."""
        session = self._session
        if session is None:
            session = self._session = self._new_session()
        target = self._urls.get(url)
        if target is None:
            target = URL(url, encoded=True)
            if len(self._urls) < _URL_CACHE_SIZE:  # send paths repeat; ids mostly do not
                self._urls[url] = target
        try:
            async with session.request(
                method, target, data=body, headers=headers,
                timeout=self._client_timeout(timeout), allow_redirects=False,
            ) as resp:
                payload = await resp.read()
                return HttpResponse(resp.status, resp.headers, payload)
        except aiohttp.ConnectionTimeoutError as exc:
            raise TransportError(f"connect timeout: {exc}", reached=False, timeout=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"cannot connect: {exc}", reached=False, timeout=False) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise TransportError(
                f"timed out after {timeout.total:g} s waiting for the response",
                reached=True, timeout=True,
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"connection lost: {exc or type(exc).__name__}", reached=True, timeout=False
            ) from exc

    async def aclose(self) -> None:
        """Close the session if this transport created it."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
