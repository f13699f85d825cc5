"""Page iterators: lazy, one request per page (the blocking facade wraps these).

Every in-scope list is page-number paginated (docs/wire.md §2). The next page is the server's
``meta.page_number + 1``, falling back to the requested number + 1 when ``meta`` is missing (the
official SDK re-requests page 2 forever in that case). Iteration stops on an empty page, when
``page_number >= total_pages``, or when a page repeats the previous one (a server ignoring
``page[number]``), so it always ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from telnyx_msg.models import Page

T = TypeVar("T")

#: Fetches page N (or the caller's first page for None): the typed page and its raw ``data``.
PageFetcher = Callable[[int | None], Awaitable[tuple[Page[T], list[Any]]]]


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
