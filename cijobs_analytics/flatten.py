"""DescribeMediaJobs XML pages to Arrow tables in ``JOBS_SCHEMA``. Pure functions, no I/O.

Parsing is strict and safe: no entity is ever resolved, no DTD is loaded, nothing is fetched
from the network, huge-tree mode stays off, and a body with a ``<!DOCTYPE`` is refused outright
(an API response has no use for one; refusing a UTF-8 one before parsing also stops
entity-expansion bombs before the parser sees them, and a DOCTYPE in any other encoding is
refused once parsed, its entities still unresolved). Any body that is not a ``<Response>``
page raises :class:`~cijobs_analytics.errors.ResponseParseError` with the first bytes of the
body: empty, truncated or not XML, an HTML error page, another root, or an ``<Error>`` body
from the API.

One kind of damage is repaired, because the service's own documentation shows it: a stray
``</Message>`` right after ``<Code>...</Code>`` with no opening tag (the seed sample). It is
replaced by ``<Message/>``, the page is parsed strictly again and marked ``recovered``. The
first repair in a process is logged at WARNING, in one line naming the page's request id; the
rest at DEBUG, since a service that sent it would send it on every page (the client's
``stats.recovered_pages`` counts them all). Nothing else is "recovered": a generic recover mode
silently drops jobs.

How each leaf maps to a column, and the ``extra`` key format, are documented in
``docs/schema.md``.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from lxml import etree

from ._jobmap import Slot
from ._jobrows import JobRows
from ._jobtable import build_table
from ._times import to_utc
from .errors import ResponseParseError

__all__ = ["ParsedPage", "parse_job_lookup", "parse_page", "parse_pages", "parse_response"]

logger = logging.getLogger(__name__)

# The seed sample's slip: `<Code>Success</Code></Message>` with no opening <Message>.
_STRAY_MESSAGE = re.compile(rb"</Code>\s*(</Message>)")
_OPEN_MESSAGE = re.compile(rb"<Message[\s/>]")
_TAG_MISMATCH = etree.ErrorTypes.ERR_TAG_NAME_MISMATCH
# Every attribute (and namespace declaration) has `="` or `='`; texts rarely do. Scanning the
# bytes for it is far cheaper than asking the tree, and the service sends no attributes.
_MAYBE_ATTRIBUTE = re.compile(rb"=\s*[\"']")

_NO_JOB_ID = frozenset({None, "", "-"})

_local = threading.local()
_pause_lock = threading.Lock()
_paused_depth = 0
_resume_collector = False
_repair_logged = False
_repair_lock = threading.Lock()


@dataclass(frozen=True)
class ParsedPage:
    """One parsed DescribeMediaJobs page.

    Attributes:
        table: the jobs of the page, in ``JOBS_SCHEMA``.
        next_token: the ``NextToken`` to ask for the next page; ``None`` when empty or absent.
        recovered: the body needed the stray ``</Message>`` repair to parse.
    """

    table: pa.Table
    next_token: str | None
    recovered: bool


def _parser() -> etree.XMLParser:
    """A safe parser for this thread (lxml parsers must not be shared between threads)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def _log_repair(request_id: str | None) -> None:
    global _repair_logged
    with _repair_lock:
        first, _repair_logged = not _repair_logged, True
    level = logging.WARNING if first else logging.DEBUG
    if request_id:
        logger.log(level, "repaired a stray </Message> in page %s", request_id)
    else:
        logger.log(level, "repaired a stray </Message> in a page")


def _repair_stray_message(body: bytes) -> bytes | None:
    """The body with each stray ``</Message>`` after ``</Code>`` made ``<Message/>``, or None.

    A ``</Message>`` counts as stray only when its job has no ``<Message`` opening before it.
    """
    pieces: list[bytes] = []
    position = 0
    for match in _STRAY_MESSAGE.finditer(body):
        job_start = body.rfind(b"<JobsDetail>", 0, match.start())
        if job_start < 0 or _OPEN_MESSAGE.search(body, job_start, match.start()):
            continue
        pieces += [body[position : match.start(1)], b"<Message/>"]
        position = match.end(1)
    if not pieces:
        return None
    pieces.append(body[position:])
    return b"".join(pieces)


def _load(body: bytes, request_id: str | None, root_tag: str) -> tuple[etree._Element, bool]:
    """Parse ``body`` strictly into its root element; returns (root, recovered).

    Raises:
        ResponseParseError: the body is not a well-formed ``<Response>`` document.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ResponseParseError(f"a response body must be bytes, got {type(body).__name__}")
    body = bytes(body)
    if not body.strip():
        raise ResponseParseError("the response body is empty", body, request_id)
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ResponseParseError(
            "the response body declares a DOCTYPE or entities; refused unparsed", body, request_id
        )
    recovered = False
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        mismatch = getattr(exc, "code", None) == _TAG_MISMATCH
        repaired = _repair_stray_message(body) if mismatch else None
        if repaired is None:
            raise ResponseParseError(
                f"the response is not well-formed XML ({exc})", body, request_id
            ) from exc
        try:
            root = etree.fromstring(repaired, _parser())
        except etree.XMLSyntaxError as again:
            raise ResponseParseError(
                f"the response is not well-formed XML ({again})", body, request_id
            ) from again
        recovered = True
        _log_repair(request_id)
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # The byte search above misses a DOCTYPE in UTF-16 or UTF-32; the parsed tree does not.
        raise ResponseParseError(
            "the response body declares a DOCTYPE or entities; refused", body, request_id
        )
    if root.tag == "Error":
        code = root.findtext("Code") or "?"
        message = root.findtext("Message") or ""
        raise ResponseParseError(
            f"the body is an API error, not a page: Code={code}"
            + (f", Message={message!r}" if message else ""),
            body,
            request_id or root.findtext("RequestId"),
        )
    if root.tag != root_tag:
        raise ResponseParseError(
            f"the response root is <{root.tag}>, expected <{root_tag}>", body, request_id
        )
    return root, recovered


def _collect(
    rows: JobRows, root: etree._Element, body: bytes, request_id: str | None
) -> tuple[str | None, list[str]]:
    """Add every job under ``root`` to ``rows``; returns (next token, NonExistJobIds)."""
    next_token: str | None = None
    missing: list[str] = []
    start = len(rows)
    for child in root:
        tag = child.tag
        if tag == "JobsDetail":
            rows.add_job(child)
        elif tag == "NextToken" and next_token is None:
            next_token = (child.text or "").strip() or None
        elif tag == "NonExistJobIds":
            missing += [
                job_id.strip() for job_id in (child.text or "").split(",") if job_id.strip()
            ]
    job_ids = [row[Slot.JOB_ID] for row in rows.rows[start:]]
    if not _NO_JOB_ID.isdisjoint(job_ids):
        # exactly the texts the job_id column would make null
        number = next(n for n, job_id in enumerate(job_ids, 1) if job_id in _NO_JOB_ID)
        raise ResponseParseError(f"job {number} of the page has no JobId", body, request_id)
    if _MAYBE_ATTRIBUTE.search(body):
        _collect_attributes(rows, root, start)
    return next_token, missing


def _collect_attributes(rows: JobRows, root: etree._Element, start: int) -> None:
    """Attributes (the service sends none) go to ``extra`` as ``path/@name``."""
    for position, job in enumerate(root.iterchildren("JobsDetail"), start):
        for element in job.iter():
            if not element.attrib or not isinstance(element.tag, str):
                continue
            parts: list[str] = []
            node = element
            while node is not job:
                parent = node.getparent()
                assert parent is not None  # node is below job
                tag = str(node.tag)
                same = [sibling for sibling in parent if sibling.tag == node.tag]
                parts.append(f"{tag}[{same.index(node)}]" if len(same) > 1 else tag)
                node = parent
            path = "/".join(reversed(parts))
            for raw_name, value in element.attrib.items():
                name = str(raw_name)
                key = f"{path}/@{name}" if path else f"@{name}"
                rows.add_late(position, key, str(value))


def _fetched(fetched_at: datetime | None) -> datetime | None:
    return None if fetched_at is None else to_utc(fetched_at, name="fetched_at")


def parse_page(
    xml: bytes,
    *,
    bucket: str | None = None,
    region: str | None = None,
    fetched_at: datetime | None = None,
    request_id: str | None = None,
) -> ParsedPage:
    """Parse one DescribeMediaJobs response body into a :class:`ParsedPage`.

    Args:
        xml: the response body, as bytes.
        bucket: fills the ``bucket`` column (``None``: null).
        region: fills the ``region`` column.
        fetched_at: fills the ``fetched_at`` column; an aware datetime.
        request_id: the response's request id, quoted in errors and logs.

    Returns:
        The page's table, next token and whether the stray ``</Message>`` repair was needed.

    Raises:
        ResponseParseError: the body is empty, not well-formed, not a ``<Response>``, an API
            ``<Error>`` body, declares a DOCTYPE, or has a job without a ``JobId``.
        ConfigError: ``fetched_at`` is naive.
    """
    root, recovered = _load(xml, request_id, "Response")
    rows = JobRows()
    next_token, _ = _collect(rows, root, bytes(xml), request_id)
    table = build_table(rows, bucket=bucket, region=region, fetched_at=_fetched(fetched_at))
    return ParsedPage(table=table, next_token=next_token, recovered=recovered)


def parse_response(
    xml: bytes,
    *,
    bucket: str | None = None,
    region: str | None = None,
    fetched_at: datetime | None = None,
) -> tuple[pa.Table, str | None]:
    """Parse one DescribeMediaJobs response page into a table and the next token.

    Args:
        xml: the response body, as bytes.
        bucket: fills the ``bucket`` column (``None``: null).
        region: fills the ``region`` column.
        fetched_at: fills the ``fetched_at`` column; an aware datetime.

    Returns:
        ``(table, next_token)``: the jobs in ``JOBS_SCHEMA`` and the ``NextToken``, ``None``
        when it is empty or absent.

    Raises:
        ResponseParseError: the body is not a DescribeMediaJobs page (see :func:`parse_page`).

    Example:
        >>> table, token = parse_response(
        ...     b"<Response><JobsDetail><JobId>j1</JobId><State>Success</State>"
        ...     b"</JobsDetail><NextToken>42</NextToken></Response>"
        ... )
        >>> table.column("state").to_pylist(), token
        (['Success'], '42')
    """
    page = parse_page(xml, bucket=bucket, region=region, fetched_at=fetched_at)
    return page.table, page.next_token


def parse_job_lookup(
    xml: bytes,
    *,
    bucket: str | None = None,
    region: str | None = None,
    fetched_at: datetime | None = None,
    request_id: str | None = None,
) -> tuple[pa.Table, list[str]]:
    """Parse a DescribeMediaJob body (``GET /jobs/<id>,<id>``): the jobs and the unknown ids.

    Args:
        xml: the response body: ``<Response>`` with ``JobsDetail`` elements and
            ``NonExistJobIds`` (a comma-separated list, possibly repeated).
        bucket: fills the ``bucket`` column.
        region: fills the ``region`` column.
        fetched_at: fills the ``fetched_at`` column; an aware datetime.
        request_id: the response's request id, quoted in errors and logs.

    Returns:
        ``(table, missing)``: the jobs found and the ids the service does not know.

    Raises:
        ResponseParseError: the body is not such a response (see :func:`parse_page`).
    """
    root, _ = _load(xml, request_id, "Response")
    rows = JobRows()
    _, missing = _collect(rows, root, bytes(xml), request_id)
    table = build_table(rows, bucket=bucket, region=region, fetched_at=_fetched(fetched_at))
    return table, missing


def parse_pages(
    pages: Iterable[bytes],
    *,
    bucket: str | None = None,
    region: str | None = None,
    fetched_at: datetime | None = None,
) -> pa.Table:
    """Parse many response pages into one table, converting each column once for all pages.

    Args:
        pages: response bodies, as bytes.
        bucket: fills the ``bucket`` column.
        region: fills the ``region`` column.
        fetched_at: fills the ``fetched_at`` column; an aware datetime.

    Returns:
        The jobs of every page in order, in ``JOBS_SCHEMA`` (no deduplication).

    Raises:
        ResponseParseError: a page is not a DescribeMediaJobs page; its position is in the
            message.
    """
    rows = JobRows()
    with _collector_paused():
        for number, page in enumerate(pages, 1):
            try:
                root, _ = _load(page, None, "Response")
                _collect(rows, root, bytes(page), None)
            except ResponseParseError as exc:
                raise ResponseParseError(f"page {number}: {exc.reason}", exc.head) from exc
            # the tree of each page is dropped here: only the raw rows are kept
        return build_table(rows, bucket=bucket, region=region, fetched_at=_fetched(fetched_at))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many pages are flattened.

    Flattening allocates millions of short-lived objects (lxml element proxies, texts, row
    tuples) and creates no reference cycles, so reference counting frees everything anyway;
    the cyclic collector would only rescan them, which costs about a tenth of the run. The
    collector is paused once however many threads are inside, and resumed (if it was running
    before) when the last one leaves.
    """
    global _paused_depth, _resume_collector
    with _pause_lock:
        if _paused_depth == 0:
            _resume_collector = gc.isenabled()
            gc.disable()
        _paused_depth += 1
    try:
        yield
    finally:
        with _pause_lock:
            _paused_depth -= 1
            if _paused_depth == 0 and _resume_collector:
                gc.enable()
