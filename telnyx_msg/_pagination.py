"""Page iterators: lazy, one request per page. ``AsyncPager`` is the core's; ``SyncPager`` is
its blocking form, driving it through the facade's portal.

Every in-scope list is page-number paginated (docs/wire.md §2). The next page is the server's
``meta.page_number + 1``, falling back to the requested number + 1 when ``meta`` is missing (the
official SDK re-requests page 2 forever in that case). Iteration stops on an empty page, when
``page_number >= total_pages``, or when a page repeats the previous one (a server ignoring
``page[number]``), so it always ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from telnyx_msg.errors import ClientClosedError

if TYPE_CHECKING:
    from telnyx_msg.models import Page

T = TypeVar("T")
R = TypeVar("R")

#: Fetches page N (or the caller's first page for None): the typed page and its raw ``data``.
PageFetcher = Callable[[int | None], Awaitable[tuple["Page[T]", list[Any]]]]


def next_page_number(page: Page[Any], raw: list[Any], previous_raw: list[Any] | None) -> int | None:
    """The page number to fetch after ``page``, or None when the listing is complete."""
    if not raw or raw == previous_raw:
        return None
    meta = page.meta
    current = page.page_number
    if meta is not None and meta.page_number is not None:
        current = meta.page_number
    if meta is not None and meta.total_pages is not None and current >= meta.total_pages:
        return None
    return current + 1


class AsyncPager(Generic[T]):
    """An async iterator over every item of a list, fetching pages as needed.

    ``async for item in pager`` walks all items; ``pager.pages()`` yields :class:`Page` objects;
    ``await pager.first_page()`` fetches only the first. Nothing is requested until iterated.
    """

    def __init__(self, fetch: PageFetcher[T]) -> None:
        self._fetch = fetch

    async def first_page(self) -> Page[T]:
        """Fetch the first page only."""
        page, _ = await self._fetch(None)
        return page

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield each page in order (skipping a final empty page, stopping on a repeat)."""
        number: int | None = None
        previous: list[Any] | None = None
        while True:
            page, raw = await self._fetch(number)
            if raw == previous:
                return
            if page.items:
                yield page
            number = next_page_number(page, raw, previous)
            if number is None:
                return
            previous = raw

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item


class Portal(Protocol):
    """Runs a coroutine function on the blocking client's loop thread and waits for it."""

    def call(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R: ...


class SyncPager(Generic[T]):
    """A plain iterator over every item of a list (the blocking form of ``AsyncPager``)."""

    def __init__(self, pager: AsyncPager[T], portal: Portal) -> None:
        self._pager = pager
        self._portal = portal

    def first_page(self) -> Page[T]:
        """Fetch the first page only."""
        return self._portal.call(self._pager.first_page)

    def pages(self) -> Iterator[Page[T]]:
        """Yield each page in order, one request per page."""
        return _iterate(self._portal, self._pager.pages())

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items


def _iterate(portal: Portal, agen: AsyncIterator[Any]) -> Iterator[Any]:
    async def step() -> tuple[bool, Any]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, value = portal.call(step)
            if not more:
                return
            yield value
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError, ClientClosedError):  # closed first
                portal.call(aclose)
