"""Walking paged API lists: by offset (or page number), or by a next token / next link.

A connector describes one call (``fetch``) and these helpers walk the list to
its end, so the stop rules live in one place: a short page ends an offset walk;
a token walk ends when no next token comes back, when a token comes back twice
(some APIs repeat the last one) or, when the page size is given, on a short page
(some APIs keep handing out tokens past the end).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["offset_pages", "token_pages"]

T = TypeVar("T")


def offset_pages(fetch: Callable[[int], Sequence[T]], page_size: int, *, start: int = 0) -> Iterator[list[T]]:
    """Rows of ``fetch(offset)`` page by page until a short page; empty pages are not yielded.

    APIs numbering pages instead of rows use ``offset // page_size`` as the page number.
    """
    offset = start
    while True:
        rows = list(fetch(offset))
        if rows:
            yield rows
        if len(rows) < max(1, page_size):
            return
        offset += len(rows)


def token_pages(
    fetch: Callable[[str | None], tuple[Sequence[T], str | None]],
    *,
    start: str | None = None,
    page_size: int = 0,
) -> Iterator[tuple[list[T], str | None]]:
    """Each answer of ``fetch(token)`` (rows and the next token or link, None at the end), first one from ``start``.

    Every answer is yielded, empty or not, with the token that follows it:
    connectors whose cursor remembers where an unfinished walk stopped need it.
    """
    token = start
    followed: set[str] = set()
    while True:
        rows, following = fetch(token)
        page = list(rows)
        yield page, following
        if not following or following in followed or (page_size > 0 and len(page) < page_size):
            return
        followed.add(following)
        token = following
