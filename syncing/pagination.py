"""How to ask an upstream for the next page, per pagination style of the catalog.

cursor       the answer's `next_field` goes back as query `param`; ends when it is empty.
page         query `param` counts pages from `start`; ends on a short or empty page.
offset       query `param` counts records from 0; ends on a short or empty page.
link_header  follow the RFC 8288 `Link: <url>; rel="next"` header; ends without one.
next_url     follow the URL (absolute or relative) in the answer's `next_field`; ends when it is empty.
none         one request.

Without `page_size_param` the upstream picks the page size, so page and offset end only on an empty page.
"""

from dataclasses import dataclass, replace
from urllib.parse import urljoin

from requests.utils import parse_header_links

from syncing.spec import Pagination


class PaginationError(Exception):
    """The answer does not say how to go on (e.g. a cursor that does not move)."""


@dataclass(frozen=True)
class PageRequest:
    """One page to fetch: query pairs added to the model's path, or an absolute URL the upstream gave us."""

    query: tuple = ()
    url: str | None = None
    number: int = 0  # page or offset counter of the page/offset styles


def dig(value, dotted: str):
    """`value["a"]["b"]` for "a.b"; the value itself for ""; None when a step is missing."""
    if not dotted:
        return value
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _size_query(pagination: Pagination) -> tuple:
    return ((pagination.page_size_param, str(pagination.page_size)),) if pagination.page_size_param else ()


def first_page(pagination: Pagination, query=()) -> PageRequest:
    """The first request; `query` (e.g. the modified-since filter) is kept on every later page we build."""
    query = tuple(query) + _size_query(pagination)
    if pagination.style == "page":
        return PageRequest(query + ((pagination.param, str(pagination.start)),), number=pagination.start)
    if pagination.style == "offset":
        return PageRequest(query + ((pagination.param, "0"),), number=0)
    return PageRequest(query)


def _with_param(query: tuple, name: str, value: str) -> tuple:
    return tuple(pair for pair in query if pair[0] != name) + ((name, value),)


def _ended(pagination: Pagination, records: list | None) -> bool:
    """A short or empty page ends page/offset pagination. `None`: the page could not be read; assume it was full."""
    if records is None:
        return False
    if not records:
        return True
    return bool(pagination.page_size_param) and len(records) < pagination.page_size


def next_page(pagination: Pagination, current: PageRequest, *, url: str, headers: list, body,
              records: list | None) -> PageRequest | None:
    """The request after `current` (fetched from `url`), or None at the end."""
    style = pagination.style
    if style == "none":
        return None
    if style in ("page", "offset"):
        if _ended(pagination, records):
            return None
        number = current.number + (1 if style == "page" else (len(records) if records else pagination.page_size))
        return replace(current, query=_with_param(current.query, pagination.param, str(number)), number=number)
    if style == "cursor":
        cursor = dig(body, pagination.next_field)
        if cursor in (None, "", False):
            return None
        if not isinstance(cursor, (str, int, float)):
            raise PaginationError(f"The cursor in {pagination.next_field!r} is not a string.")
        if dict(current.query).get(pagination.param) == str(cursor):
            raise PaginationError("The upstream answered the same cursor again.")
        return replace(current, query=_with_param(current.query, pagination.param, str(cursor)))
    if style == "link_header":
        target = next_link(headers)
    else:
        target = dig(body, pagination.next_field)
        if target not in (None, "") and not isinstance(target, str):
            raise PaginationError(f"The next URL in {pagination.next_field!r} is not a string.")
    if not target:
        return None
    absolute = urljoin(url, target)
    if absolute == url:
        raise PaginationError("The upstream's next page is the page it just answered.")
    return PageRequest(url=absolute)


def next_link(headers: list) -> str | None:
    """The rel="next" target of the Link headers (several headers or one comma-joined value)."""
    for name, value in headers:
        if name.lower() != "link":
            continue
        for link in parse_header_links(value):
            if "next" in link.get("rel", "").lower().split():
                return link.get("url") or None
    return None
