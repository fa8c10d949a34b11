"""The q-sign (HMAC-SHA1) request signature of COS and CI, as a ``requests`` auth.

The algorithm, step by step (the API reference, section 6)::

    KeyTime        = "<start>;<end>"                       epoch seconds
    SignKey        = hex(HMAC-SHA1(SecretKey, KeyTime))
    HttpString     = lower(method) \\n path \\n HttpParameters \\n HttpHeaders \\n
    StringToSign   = "sha1" \\n KeyTime \\n hex(SHA1(HttpString)) \\n
    Signature      = hex(HMAC-SHA1(SignKey, StringToSign))
    Authorization  = q-sign-algorithm=sha1&q-ak=...&q-sign-time=...&q-key-time=...
                     &q-header-list=...&q-url-param-list=...&q-signature=...

``HttpParameters`` and ``HttpHeaders`` are ``name=value`` pairs joined with ``&``: each name
percent-encoded and lower-cased, each value percent-encoded, sorted by name. Each step is a
pure function here, so tests can check every intermediate value of the reference vectors;
:class:`QSignAuth` applies them to a prepared request.

What gets signed is what is sent: the query parameters decoded from the prepared URL, the
``Host`` header as it goes on the wire, every ``x-ci-*`` / ``x-cos-*`` header (the session token
among them) and ``Content-Type`` when set. Nothing here logs: the signing inputs include the
session token and the output is a bearer credential for its whole validity window.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from requests import PreparedRequest
from requests.auth import AuthBase

from .config import Credentials
from .errors import ConfigError

__all__ = [
    "CLOCK_SKEW_S",
    "DEFAULT_EXPIRE_S",
    "TOKEN_HEADER",
    "QSignAuth",
    "authorization",
    "canonical_pairs",
    "http_string",
    "key_time",
    "sign_key",
    "signature",
    "signed_headers",
    "string_to_sign",
    "url_encode",
]

#: The header that carries the session token of temporary credentials on CI hosts.
TOKEN_HEADER = "x-ci-security-token"  # noqa: S105 - a header name, not a secret

#: How far the validity window starts before "now", so a server whose clock runs behind ours
#: still accepts the signature (the official Python SDK uses the same 60 s).
CLOCK_SKEW_S = 60

#: Default signature lifetime. Every attempt is signed afresh, so this only needs to cover one
#: request in flight; a short window limits what a leaked header is worth.
DEFAULT_EXPIRE_S = 900

# Characters that stay literal in UrlEncode; everything else, "/" and space included, is %XX.
_UNRESERVED = "-_.~"

# Headers signed besides the x-ci-* / x-cos-* families: the Host the server checks, and
# Content-Type, which the official demos set (and so sign) even on GET.
_SIGNED_HEADERS = frozenset({"host", "content-type"})
_SIGNED_PREFIXES = ("x-ci-", "x-cos-")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_encode(text: str) -> str:
    """Percent-encode ``text`` as q-sign wants it: UTF-8, all but ``A-Za-z0-9-_.~``, uppercase hex.

    Args:
        text: a parameter or header name or value, decoded.

    Returns:
        The encoded text; a space becomes ``%20`` (never ``+``) and ``/`` becomes ``%2F``.
    """
    return quote(text.encode("utf-8"), safe=_UNRESERVED)


def key_time(now: float, expire: int = DEFAULT_EXPIRE_S, skew: int = CLOCK_SKEW_S) -> str:
    """The ``KeyTime`` validity window ``"<start>;<end>"`` in epoch seconds.

    Args:
        now: the current time in epoch seconds (fractions are dropped).
        expire: seconds after ``now`` the signature stays valid.
        skew: seconds before ``now`` the window starts.

    Returns:
        ``f"{now - skew};{now + expire}"``, e.g. ``"1699999940;1700010000"``.
    """
    start = int(now)
    return f"{start - skew};{start + expire}"


def sign_key(secret_key: str, key_time_value: str) -> str:
    """``SignKey``: hex HMAC-SHA1 of the KeyTime under the secret key.

    Args:
        secret_key: the API key secret.
        key_time_value: the KeyTime string, ``"<start>;<end>"``.

    Returns:
        40 lowercase hex digits.
    """
    return hmac.new(
        secret_key.encode("utf-8"), key_time_value.encode("utf-8"), hashlib.sha1
    ).hexdigest()


def canonical_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Encode and sort ``(name, value)`` pairs as HttpParameters / HttpHeaders want them.

    Args:
        pairs: decoded names and values; a repeated name yields one pair per value.

    Returns:
        ``(lower(url_encode(name)), url_encode(value))`` pairs sorted by name, then value.
    """
    return sorted((url_encode(name).lower(), url_encode(value)) for name, value in pairs)


def _join_pairs(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in pairs)


def _join_names(pairs: list[tuple[str, str]]) -> str:
    # A name repeated in the pairs is listed once, like a server rebuilding from the list does.
    return ";".join(dict.fromkeys(name for name, _ in pairs))


def http_string(
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
) -> str:
    """``HttpString``: method, path, canonical parameters and headers, each line ``\\n``-ended.

    Args:
        method: the HTTP method, any case.
        path: the decoded URI path (``/jobs``), not percent-encoded.
        params: the decoded query parameters to sign.
        headers: the headers to sign, with the values sent.

    Returns:
        ``lower(method)\\npath\\nHttpParameters\\nHttpHeaders\\n``.
    """
    return (
        f"{method.lower()}\n{path}\n"
        f"{_join_pairs(canonical_pairs(params))}\n{_join_pairs(canonical_pairs(headers))}\n"
    )


def string_to_sign(key_time_value: str, http_string_value: str) -> str:
    """``StringToSign``: ``sha1\\n<KeyTime>\\n<hex SHA1 of HttpString>\\n``.

    Args:
        key_time_value: the KeyTime string.
        http_string_value: the HttpString.

    Returns:
        The three-line string the signature is computed over.
    """
    digest = hashlib.sha1(http_string_value.encode("utf-8")).hexdigest()  # noqa: S324 - q-sign mandates SHA1
    return f"sha1\n{key_time_value}\n{digest}\n"


def signature(sign_key_value: str, string_to_sign_value: str) -> str:
    """``Signature``: hex HMAC-SHA1 of StringToSign, keyed by the SignKey's hex text.

    Args:
        sign_key_value: the SignKey as 40 hex digits (its ASCII bytes are the key).
        string_to_sign_value: the StringToSign.

    Returns:
        40 lowercase hex digits.
    """
    return hmac.new(
        sign_key_value.encode("ascii"), string_to_sign_value.encode("utf-8"), hashlib.sha1
    ).hexdigest()


def authorization(
    secret_id: str,
    secret_key: str,
    *,
    method: str,
    path: str,
    params: Iterable[tuple[str, str]],
    headers: Iterable[tuple[str, str]],
    key_time_value: str,
) -> str:
    """The complete ``Authorization`` header value for one request.

    Args:
        secret_id: the key id, sent in clear as ``q-ak``.
        secret_key: the key secret.
        method: the HTTP method.
        path: the decoded URI path.
        params: the decoded query parameters, all of which are signed.
        headers: the headers to sign, with the values sent.
        key_time_value: the KeyTime window (see :func:`key_time`).

    Returns:
        ``q-sign-algorithm=sha1&q-ak=...&q-signature=...`` with no spaces.
    """
    params = list(params)
    headers = list(headers)
    text = http_string(method, path, params, headers)
    sig = signature(sign_key(secret_key, key_time_value), string_to_sign(key_time_value, text))
    return (
        f"q-sign-algorithm=sha1&q-ak={secret_id}"
        f"&q-sign-time={key_time_value}&q-key-time={key_time_value}"
        f"&q-header-list={_join_names(canonical_pairs(headers))}"
        f"&q-url-param-list={_join_names(canonical_pairs(params))}"
        f"&q-signature={sig}"
    )


def signed_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Pick the headers q-sign covers: ``host``, ``content-type``, ``x-ci-*`` and ``x-cos-*``.

    Args:
        headers: the request headers.

    Returns:
        ``(name, value)`` pairs of the headers to sign, names as given.
    """
    return [
        (name, value)
        for name, value in headers.items()
        if name.lower() in _SIGNED_HEADERS or name.lower().startswith(_SIGNED_PREFIXES)
    ]


def _wire_host(url: str) -> str:
    """The ``Host`` header http.client sends for ``url``: host, plus the port if not default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal goes back in brackets
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class QSignAuth(AuthBase):
    """Sign requests with the COS/CI q-sign HMAC-SHA1 algorithm.

    Each call signs afresh with a window from ``clock() - 60`` to ``clock() + expire``. With
    temporary credentials the session token is sent (and signed) as ``x-ci-security-token``.

    Args:
        credentials: the key id, secret and optional session token.
        expire: seconds the signature stays valid after it is made.
        clock: returns the current epoch time; tests freeze it.
        sign_host: the ``Host`` to send and sign, for a request that connects somewhere else
            (an emulator, a private endpoint) but must look addressed to the CI host. ``None``
            signs the host of the URL, as sent.

    Raises:
        ConfigError: ``expire`` is not a positive number of seconds, or ``sign_host`` is empty.

    Example:
        >>> import requests
        >>> auth = QSignAuth(Credentials("AKIDexample", "secret"), clock=lambda: 1700000000)
        >>> req = requests.Request("GET", "https://b-1250000000.ci.ap-guangzhou.myqcloud.com/jobs",
        ...                        params={"tag": "Transcode"}, auth=auth).prepare()
        >>> req.headers["Authorization"].split("&")[2]
        'q-sign-time=1699999940;1700000900'
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        expire: int = DEFAULT_EXPIRE_S,
        clock: Callable[[], float] = time.time,
        sign_host: str | None = None,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ConfigError(
                f"credentials must be a Credentials, got {type(credentials).__name__}"
            )
        if isinstance(expire, bool) or not isinstance(expire, int) or expire <= 0:
            raise ConfigError(f"expire must be a positive number of seconds, got {expire!r}")
        if sign_host is not None and (not isinstance(sign_host, str) or not sign_host.strip()):
            raise ConfigError("sign_host must be a non-empty host name or None")
        self._credentials = credentials
        self._expire = expire
        self._clock = clock
        self._sign_host = sign_host

    def __repr__(self) -> str:
        return f"QSignAuth(secret_id={self._credentials.secret_id!r}, expire={self._expire})"

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        """Add the ``Authorization`` header (and the token header) to a prepared request."""
        url = r.url or ""
        if self._credentials.token:
            r.headers[TOKEN_HEADER] = self._credentials.token
        if self._sign_host is not None:
            r.headers["Host"] = self._sign_host
        headers = signed_headers(r.headers)
        if not any(name.lower() == "host" for name, _ in headers):
            headers.append(("host", _wire_host(url)))
        parts = urlsplit(url)
        # Form decoding (+ is a space) is how servers read the query, so that is what to sign.
        params = parse_qsl(parts.query, keep_blank_values=True)
        path = unquote(parts.path) or "/"
        r.headers["Authorization"] = authorization(
            self._credentials.secret_id,
            self._credentials.secret_key,
            method=r.method or "GET",
            path=path,
            params=params,
            headers=headers,
            key_time_value=key_time(self._clock(), self._expire),
        )
        return r
