"""Turning failed HTTP exchanges into the package's errors: the one boundary for requests.

* :func:`transport_error` maps a ``requests`` exception (timeout, refused or reset connection,
  incomplete read, TLS failure, a host name that does not resolve) to a
  :class:`~cijobs_analytics.errors.TransportError` whose message names the host and the
  innermost cause, not urllib3's pool and object reprs; for a CI host name that does not exist
  it names the region, the likely typo.
* :func:`api_error` maps an error answer to the :class:`~cijobs_analytics.errors.APIError`
  subclass its status and ``<Code>`` call for, reading the ``<Error>`` body with a parser that
  resolves no entity and loads nothing; any other body (a proxy's HTML page, plain text) gives
  its text content, whitespace collapsed and cut short, as the message.
* :func:`short_body_error` catches a body shorter than its ``Content-Length``.
* :func:`send_error` maps what ``http.client`` raises past ``requests`` (a ``ValueError`` for a
  header value it refuses, an ``HTTPException``): those quote the offending header, so their
  text is scrubbed and every quoted literal in it is dropped.

Text that came from the service is scrubbed of every secret the request carried (the secret
key, the session token, the ``Authorization`` header and its signature) before it is kept: a
server or proxy that echoes a request must not put a credential into an exception.
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
from collections.abc import Iterable, Mapping
from typing import TypeVar

import requests
from lxml import etree

from .errors import (
    APIError,
    AuthError,
    ConfigError,
    InvalidArgumentError,
    ServerError,
    ThrottledError,
    TransportError,
)

__all__ = [
    "ERROR_HEAD_CHARS",
    "api_error",
    "request_secrets",
    "retry_after",
    "scrub",
    "send_error",
    "short_body_error",
    "transport_error",
]

logger = logging.getLogger("cijobs_analytics.client")

_E = TypeVar("_E", bound=BaseException)

#: How much of the text of a body that is not an ``<Error>`` document is kept as the message.
ERROR_HEAD_CHARS = 200
#: Elements of a proxy's page whose text is code, not words for a person.
_CODE_TAGS = ("script", "style")
_REDACTED = "<redacted>"
#: A quoted literal (``'...'``, ``"..."``, ``b'...'``) in an exception's text: how Python's
#: errors quote the value they refuse, a header value with its credential included.
_QUOTED = re.compile(r"""(?<!\w)b?(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
#: The CI host a client without an endpoint connects to; the region is a label of it.
_CI_HOST = re.compile(r"[^.:]+\.ci\.(?P<region>[^.:]+)\.myqcloud\.com(?::\d+)?", re.IGNORECASE)
#: getaddrinfo's "no such name" answers (EAI_NODATA is glibc's, absent elsewhere); any other
#: failure (EAI_AGAIN: the resolver did not answer) may pass.
_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``<redacted>``.

    Args:
        text: text that came from the service.
        secrets: values that must not survive (``None`` and empty ones are skipped).

    Returns:
        The scrubbed text.
    """
    for secret in secrets:
        if secret:
            # The secret as given and as an error's repr would quote it (a newline as ``\\n``).
            for form in (secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]):
                text = text.replace(form, _REDACTED)
    return text


def request_secrets(authorization: str, secret_key: str, token: str | None) -> list[str | None]:
    """The secrets one request carried: key, token, the Authorization header and its signature."""
    return [authorization, authorization.rpartition("q-signature=")[2], secret_key, token]


def transport_error(
    exc: requests.RequestException, netloc: str, timeout: tuple[float, float]
) -> TransportError:
    """The :class:`TransportError` for a failed ``requests`` call.

    Args:
        exc: what ``requests`` raised.
        netloc: the host (and port) the request went to, for the message.
        timeout: the (connect, read) timeouts in seconds, for the message.

    Returns:
        A transient error, except for a TLS failure (a certificate that does not verify will
        not verify on a second try either) and a host name that does not exist (neither will
        it on a second try; a CI host's message names the region, the label a typo puts
        there).
    """
    unresolved = _innermost(exc, socket.gaierror)
    if unresolved is not None:
        return _resolution_error(unresolved, netloc)
    if isinstance(exc, requests.exceptions.SSLError):
        error = TransportError(f"TLS with {netloc} failed: {_reason(exc)}")
        error.transient = False
        return error
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransportError(f"connecting to {netloc} timed out after {timeout[0]:g}s")
    if isinstance(exc, requests.exceptions.Timeout):
        return TransportError(f"timed out after {timeout[1]:g}s waiting for {netloc} to answer")
    # ConnectionError (refused, reset, dropped), ChunkedEncodingError (incomplete read),
    # ContentDecodingError and the rest are all the network's doing.
    return TransportError(f"{type(exc).__name__} with {netloc}: {_reason(exc)}")


def _resolution_error(exc: socket.gaierror, netloc: str) -> TransportError:
    """The :class:`TransportError` for a host name that did not resolve."""
    ci_host = _CI_HOST.fullmatch(netloc)
    missing = exc.errno in _NO_SUCH_NAME
    if ci_host is not None and missing:
        hint = (
            f"check the region (--region {ci_host['region']}): the host is "
            "<bucket>.ci.<region>.myqcloud.com, which exists only for a region CI serves"
        )
    elif ci_host is not None:
        hint = "check the network's DNS, and the region (--region) if this persists"
    else:
        hint = "check the endpoint (--endpoint)"
    error = TransportError(f"cannot resolve {netloc} ({exc.strerror or exc}); {hint}")
    error.transient = not missing
    return error


def send_error(
    exc: ValueError | http.client.HTTPException, netloc: str, secrets: Iterable[str | None]
) -> ConfigError | TransportError:
    """The package's error for a ``ValueError`` or ``HTTPException`` raised while sending.

    ``http.client`` raises ``ValueError('Invalid header value ...')`` for a header holding a
    newline or another control character, quoting the whole value: the session token or the
    signed ``Authorization`` header. The text kept is scrubbed of ``secrets`` and of every
    quoted literal, so no part of a header value survives.

    Args:
        exc: what escaped ``requests`` while sending.
        netloc: the host (and port) the request went to, for the message.
        secrets: the credentials to scrub (the secret key, the token; the id is not secret).

    Returns:
        A :class:`ConfigError` (not transient: the same header fails again) for a refused
        header value or another ``ValueError``; a :class:`TransportError` for an
        ``HTTPException``.
    """
    detail = _QUOTED.sub(_REDACTED, scrub(str(exc) or type(exc).__name__, secrets))
    detail = " ".join(detail.split())  # one line: the CLI prints it as one
    if isinstance(exc, ValueError):
        return ConfigError(
            f"a request to {netloc} could not be sent: {detail} (a credential, or the "
            "User-Agent, holds a newline or another character HTTP headers refuse)"
        )
    return TransportError(f"{type(exc).__name__} with {netloc}: {detail}")


def short_body_error(headers: Mapping[str, str], body: bytes) -> TransportError | None:
    """A :class:`TransportError` when the body and its ``Content-Length`` disagree, else None.

    urllib3 already refuses most short reads; this covers the rest. A compressed body is not
    compared: its ``Content-Length`` counts the bytes before decoding.
    """
    declared = headers.get("Content-Length")
    encoding = headers.get("Content-Encoding", "identity").lower()
    if declared is None or encoding != "identity" or not declared.isdigit():
        return None
    if len(body) == int(declared):
        return None
    return TransportError(f"incomplete body: {len(body)} of {declared} bytes arrived")


def api_error(
    status: int, body: bytes, request_id: str | None, secrets: Iterable[str | None]
) -> APIError:
    """The :class:`APIError` subclass for an error answer.

    ``SlowDown``, 429 and 503 are :class:`ThrottledError`; 401/403 :class:`AuthError`; 400
    :class:`InvalidArgumentError`; other 5xx :class:`ServerError`; anything else (other 4xx,
    redirects) a plain :class:`APIError`. A body that is not an ``<Error>`` document (a
    proxy's HTML page, plain text) gets the code ``HTTP<status>`` and, as the message, its
    text content (markup, scripts and styles left out), whitespace collapsed, scrubbed, and
    cut to :data:`ERROR_HEAD_CHARS` characters.

    Args:
        status: the HTTP status.
        body: the answer's body.
        request_id: the ``x-ci-request-id`` header, if any (else the body's ``RequestId``).
        secrets: what to scrub from the code and the message (see :func:`request_secrets`).

    Returns:
        The error to raise; its text holds no secret.
    """
    secrets = list(secrets)
    fields = _read_error_body(body)
    if fields is None:  # not an <Error> document: a proxy's page or plain text
        code, message, body_request_id, trace_id = "", _body_head(body, secrets), None, None
    else:
        code, message, body_request_id, trace_id = fields
    code = scrub(code, secrets) or f"HTTP{status}"
    message = scrub(message, secrets)
    if trace_id:
        logger.debug("error %s [request id %s, trace id %s]", code, request_id, trace_id)
    kind: type[APIError]
    if code == "SlowDown" or status in (429, 503):
        kind = ThrottledError
    elif status in (401, 403):
        kind = AuthError
    elif status == 400:
        kind = InvalidArgumentError
    elif status >= 500:
        kind = ServerError
    else:
        kind = APIError
    return kind(code, status, message, request_id or body_request_id)


def retry_after(value: str | None) -> float | None:
    """Seconds from a numeric ``Retry-After`` header; None when absent or an HTTP date."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def _read_error_body(body: bytes) -> tuple[str, str, str | None, str | None] | None:
    """Code, Message, RequestId and TraceId of an ``<Error>`` body ("" / None when absent).

    None when the body is not an ``<Error>`` document.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None or root.tag != "Error":
        return None

    def text(name: str) -> str:
        return (root.findtext(name) or "").strip()

    return text("Code"), text("Message"), text("RequestId") or None, text("TraceId") or None


def _body_head(body: bytes, secrets: list[str | None]) -> str:
    """The start of the text of a body that is not an ``<Error>`` document, scrubbed.

    Markup (a proxy's ``<html>`` 502 page, an XML document of another kind) gives its text
    content; anything else is read as UTF-8 text. The whole text is scrubbed before it is cut,
    so no prefix of a secret survives the cut.
    """
    text = body.decode("utf-8", "replace")
    if body.lstrip().startswith(b"<"):
        text = _markup_text(body)
    text = scrub(" ".join(scrub(text, secrets).split()), secrets)
    return text[:ERROR_HEAD_CHARS].strip()


def _markup_text(body: bytes) -> str:
    """The text content of an HTML or XML page, without scripts, styles and comments.

    The HTML parser recovers from any markup, loads nothing and resolves no external entity.
    """
    parser = etree.HTMLParser(
        no_network=True, remove_comments=True, remove_pis=True, huge_tree=False
    )
    try:
        root = etree.fromstring(body, parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return ""
    if root is None:
        return ""
    for element in root.iter(*_CODE_TAGS):
        element.text = None  # its tail is the page's text again
    # lxml yields str for a parsed document; the stubs also allow bytes.
    return " ".join(piece for piece in root.itertext() if isinstance(piece, str))


def _innermost(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first ``kind`` among the errors ``exc`` wraps (itself included), or None."""
    current: BaseException | None = exc
    for _ in range(8):  # as in _reason: a few layers, and a guard against a cycle
        if current is None or isinstance(current, kind):
            return current
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            first = current.args[0] if current.args else None
            inner = first if isinstance(first, BaseException) else current.__cause__
        current = inner
    return None


def _reason(exc: BaseException) -> str:
    """What went wrong, from the innermost of the errors requests and urllib3 wrap in each other.

    Their outer messages repeat the pool, the URL and object reprs; the innermost error says
    "[Errno 111] Connection refused" or "IncompleteRead(...)".
    """
    current = exc
    for _ in range(8):  # a few layers at most; the bound also guards against a cycle
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            first = current.args[0] if current.args else None
            inner = first if isinstance(first, BaseException) else current.__cause__
        if inner is None:
            break
        current = inner
    if current.args and isinstance(current.args[0], str) and not isinstance(current, OSError):
        return current.args[0]
    return str(current) or type(current).__name__
