"""Query-string helpers shared by the list endpoints: page-number pagination and filters."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from telnyx_msg.testing._errors import bad_parameter
from telnyx_msg.testing._sms import parse_datetime

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 250
_INTEGER = re.compile(r"-?[0-9]+")


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):  # int() would also take " 2", "+2", "1_0" and fullwidth digits
        raise bad_parameter(f"'{name}' must be an integer.", name)
    value = int(raw)
    if not low <= value <= high:
        raise bad_parameter(f"'{name}' must be between {low} and {high}.", name)
    return value


def page(
    items: Sequence[T],
    query: Mapping[str, str],
    *,
    default_size: int = DEFAULT_PAGE_SIZE,
    capped: bool = True,
) -> tuple[Sequence[T], dict[str, int]]:
    """Slice ``items`` by ``page[number]``/``page[size]``; return the slice and Telnyx's meta.

    ``total_pages`` is 0 for an empty collection; a page past the end is empty. ``capped``:
    the list's definition caps ``page[size]`` at 250 (the others state no maximum).
    """
    number = _int_param(query, "page[number]", 1, 1, 1_000_000_000)
    high = max(MAX_PAGE_SIZE, default_size) if capped else 1_000_000_000
    size = _int_param(query, "page[size]", default_size, 1, high)
    start = (number - 1) * size
    meta = {
        "page_number": number,
        "page_size": size,
        "total_pages": math.ceil(len(items) / size),
        "total_results": len(items),
    }
    return items[start : start + size], meta


def paged(items: Sequence[Any], query: Mapping[str, str], **kwargs: Any) -> dict[str, Any]:
    """The ``{"data": [...], "meta": {...}}`` document for one page of ``items``."""
    data, meta = page(items, query, **kwargs)
    return {"data": list(data), "meta": meta}


def datetime_param(query: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 query parameter such as ``created_at[gte]``, or None when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    moment = parse_datetime(raw)
    if moment is None:
        raise bad_parameter(f"'{name}' must be an ISO 8601 date-time.", name)
    return moment


def in_range(moment: datetime, low: datetime | None, high: datetime | None) -> bool:
    """True when ``low <= moment <= high`` (a None bound is open)."""
    return (low is None or moment >= low) and (high is None or moment <= high)
