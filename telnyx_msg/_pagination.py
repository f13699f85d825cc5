"""Page iterators: lazy, one request per page. ``AsyncPager`` is the core's; ``SyncPager`` is
its blocking form, driving it through the facade's portal.

Every in-scope list is page-number paginated (docs/wire.md §2). The next page is the number just
requested + 1, whatever ``meta.page_number`` says (see :func:`next_page_number`). Iteration stops
on an empty page, when the page just requested is ``>= meta.total_pages``, or when a page repeats
any earlier one (a server ignoring ``page[number]``, or cycling through the same pages), so it
always ends unless the server keeps inventing new records. A repeat while ``meta.total_pages``
says pages remain, served as the page asked for (``meta.page_number``) or with another
``meta.total_results``, is a listing shifted by new records: that page is skipped and the walk
goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from telnyx_msg.errors import ClientClosedError

if TYPE_CHECKING:
    from telnyx_msg.models import Page

T = TypeVar("T")
R = TypeVar("R")

#: Fetches page N (or the caller's first page for None): the typed page and its raw ``data``.
PageFetcher = Callable[[int | None], Awaitable[tuple["Page[T]", list[Any]]]]


def next_page_number(page: Page[Any], raw: list[Any]) -> int | None:
    """The page number to fetch after ``page``, or None when the listing is complete.

    Counted from ``page.page_number``, the number this client requested, never from the
    server's ``meta.page_number``: an echo that disagrees (0, stuck at 1, going backwards) made
    the iterator re-read pages forever or skip them. So each request asks for a higher number
    than the one before, and ``meta.total_pages`` or an empty page bounds the walk.
    """
    if not raw:
        return None
    total = page.meta.total_pages if page.meta is not None else None
    if total is not None and page.page_number >= total:
        return None
    return page.page_number + 1


def _shifted(page: Page[Any], results_before: int | None) -> bool:
    """Whether ``page``, a repeat of an earlier page that came with ``results_before`` as
    ``meta.total_results``, is a shifted listing to walk on: ``meta.total_pages`` says pages
    remain (which bounds the walk), and the server did serve the page asked for (its
    ``meta.page_number`` says so) or the count changed since. Records added at the front and
    as many removed further on keep the count: a server ignoring ``page[number]`` would say it
    served another page, not the one asked for."""
    meta = page.meta
    if meta.total_pages is None or page.page_number >= meta.total_pages:
        return False
    if meta.page_number == page.page_number:
        return True
    return (
        meta.total_results is not None
        and results_before is not None
        and meta.total_results != results_before
    )


def _fingerprint(raw: list[Any]) -> bytes:
    """A digest of a page's raw data, to spot a page served again (it is decoded JSON)."""
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class AsyncPager(Generic[T]):
    """An async iterable over every item of a list, fetching pages as needed.

    ``async for item in pager`` walks all items (each ``async for`` starts again at the first
    page; ``anext()`` needs ``aiter(pager)`` first, as for a list); ``pager.pages()`` yields
    :class:`Page` objects; ``await pager.first_page()`` fetches only the first. Nothing is
    requested until iterated.
    """

    def __init__(self, fetch: PageFetcher[T]) -> None:
        self._fetch = fetch

    async def first_page(self) -> Page[T]:
        """Fetch the first page only."""
        page, _ = await self._fetch(None)
        return page

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Yield each page in order (skipping a final empty page, stopping on a repeat)."""
        number: int | None = None
        # Digests, not the pages: a long listing must not keep every record alive. Any earlier
        # page counts, not only the previous one: a server serving A, B, A, B... never repeats
        # the page just before, and with no empty page or total_pages it would never end.
        # Each digest maps to the meta.total_results that came with it: a page repeating an
        # earlier one while total_results changed, or served as the page asked for, is a
        # listing that shifted (records added at its front), not a server ignoring
        # page[number]; its records were yielded already, so it is skipped and the walk goes
        # on, still bounded by meta.total_pages (see _shifted).
        # A shift re-serves earlier pages in their order; a run of repeats going back (the
        # same page again: a server ignoring page[number] while echoing it) ends the walk.
        seen: dict[bytes, tuple[int | None, int]] = {}
        after = -1  # which earlier page the page just before repeated (-1: it was new)
        while True:
            page, raw = await self._fetch(number)
            repeat = False
            if raw:
                digest = _fingerprint(raw)
                if digest in seen:
                    results_before, order = seen[digest]
                    if order <= after or not _shifted(page, results_before):
                        return
                    repeat, after = True, order
                else:
                    seen[digest] = page.meta.total_results, len(seen)
                    after = -1
            if page.items and not repeat:
                yield page
            number = next_page_number(page, raw)
            if number is None:
                return

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item


class Portal(Protocol):
    """Runs a coroutine function on the blocking client's loop thread and waits for it."""

    def call(self, fn: Callable[..., Awaitable[R]], *args: Any, inbox: Any = None) -> R: ...


class SyncPager(Generic[T]):
    """A plain iterable over every item of a list (the blocking form of ``AsyncPager``): each
    ``for`` starts again at the first page; ``next()`` needs ``iter(pager)`` first."""

    def __init__(self, pager: AsyncPager[T], portal: Portal) -> None:
        self._pager = pager
        self._portal = portal

    def first_page(self) -> Page[T]:
        """Fetch the first page only."""
        return self._portal.call(self._pager.first_page)

    def pages(self) -> Generator[Page[T], None, None]:
        """Yield each page in order, one request per page."""
        return _iterate(self._portal, self._pager.pages())

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items


def _iterate(
    portal: Portal, agen: AsyncIterator[Any], inbox: Any = None
) -> Generator[Any, None, None]:
    """``agen`` as a plain iterator, each step a portal call (``inbox``: see ``_sync``)."""

    async def step() -> tuple[bool, Any]:
        if getattr(agen, "ag_frame", False) is None:
            # Finished without this loop seeing it end: its event loop closed it as it shut
            # down (the client was closed mid-walk; a raw list's pager steps on after that).
            raise ClientClosedError("this client is closed; create a new one")
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, value = portal.call(step, inbox=inbox)
            if not more:
                return
            yield value
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:

            async def closing() -> BaseException | None:
                # What aclose raises (an on_stop's error) is returned, to be raised below:
                # only the portal's own refusals (the client closed first, a call from the
                # loop thread) are suppressed.
                if getattr(agen, "ag_running", False):
                    return None  # a step the caller stopped waiting for still ends it
                try:
                    await aclose()
                except Exception as exc:
                    return exc
                return None

            error: BaseException | None = None
            with contextlib.suppress(RuntimeError, ClientClosedError):  # closed first
                error = portal.call(closing, inbox=inbox)
            active = sys.exc_info()[1]
            if error is not None and (active is None or isinstance(active, GeneratorExit)):
                raise error
