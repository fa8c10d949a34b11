"""Server-side verification of the q-sign (HMAC-SHA1) request signature.

Written from the reference's "server-side recipe" (§6.1) and deliberately independent of the
client's signer (``auth.py``): a bug in one cannot hide in the other. Verification rebuilds the
string to sign from what the request actually carried — the parameters named in
``q-url-param-list`` and the headers named in ``q-header-list`` — and compares signatures in
constant time. Parameters and headers that are not listed are not covered and are ignored.

The Host a client signs differs between SDK configurations (reference §7.2): the Python SDK in
Domain mode signs the host *without* its port while sending ``Host: 127.0.0.1:8089``, the Go SDK
signs the Host header verbatim. Both forms are accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from ..config import Credentials

__all__ = ["AUTH_FIELDS", "CLOCK_SKEW_S", "SignatureError", "verify_request"]

#: Seconds a key time may be off: client clocks drift (the Python SDK back-dates by 60 s).
CLOCK_SKEW_S = 300

#: The fields of an Authorization value (also accepted as query parameters).
AUTH_FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)

_TOKEN_HEADERS = ("x-ci-security-token", "x-cos-security-token")


class SignatureError(Exception):
    """Why a request's signature was refused; ``code`` is the CI error code (all HTTP 401).

    Attributes:
        code: ``MissingAuthorization``, ``InvalidAuthorization``, ``SecretidNotExist``,
            ``SignatureExpired`` or ``AccessDenied``.
        message: the ``<Message>`` for the error body; never holds a secret.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _pairs(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {_encode(name).lower(): _encode(value) for name, value in items}


def _parse_authorization(
    header: str | None, query: Sequence[tuple[str, str]]
) -> tuple[dict[str, str], bool]:
    """The q-* fields, from the Authorization header or else the query; and whether the
    query carried them (then they are not part of the signed parameters)."""
    if header is not None and header.strip():
        fields: dict[str, str] = {}
        for part in header.strip().split("&"):
            name, sep, value = part.partition("=")
            if not sep or name in fields:
                raise SignatureError(
                    "InvalidAuthorization", "the Authorization header is malformed"
                )
            fields[name] = value
        return fields, False
    in_query = {name: value for name, value in query if name in AUTH_FIELDS}
    if in_query:
        return in_query, True
    raise SignatureError("MissingAuthorization", "the request carries no Authorization")


def _parse_window(text: str, name: str) -> tuple[int, int]:
    start_text, sep, end_text = text.partition(";")
    if not (sep and start_text.isdigit() and end_text.isdigit()):
        raise SignatureError("InvalidAuthorization", f"{name} must be '<start>;<end>' in seconds")
    start, end = int(start_text), int(end_text)
    if start > end:
        raise SignatureError("InvalidAuthorization", f"{name} starts after it ends")
    return start, end


def _split_list(text: str, name: str) -> list[str]:
    items = text.split(";") if text else []
    if items != sorted(items) or any(item != item.lower() or not item for item in items):
        raise SignatureError("InvalidAuthorization", f"{name} must be sorted lowercase names")
    return items


def _host_variants(host: str) -> list[str]:
    """The Host header as sent and without its port (SDK configuration C signs the latter)."""
    variants = [host]
    if not host.startswith("[") and host.count(":") == 1:
        variants.append(host.rsplit(":", 1)[0])
    return variants


def _signature(secret_key: str, key_time: str, sign_time: str, http_string: str) -> str:
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    digest = hashlib.sha1(http_string.encode(), usedforsecurity=False).hexdigest()  # q-sign
    string_to_sign = f"sha1\n{sign_time}\n{digest}\n"
    return hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()


def verify_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    keys: Mapping[str, Credentials],
    now: float,
) -> Credentials:
    """Check a request's q-sign signature.

    Args:
        method: the HTTP method.
        path: the decoded URI path (``/jobs``), signed as is.
        query: the decoded query parameters in the order received.
        headers: the request headers, names lowercase.
        keys: the credentials the server knows, by secret id.
        now: the server's clock, Unix seconds.

    Returns:
        the credentials that signed the request.

    Raises:
        SignatureError: the signature is missing, malformed, expired, by an unknown key, or
            does not match (code ``AccessDenied``); or a temporary key's token is missing or
            wrong.
    """
    fields, auth_in_query = _parse_authorization(headers.get("authorization"), query)
    missing = [name for name in AUTH_FIELDS if name not in fields]
    if missing:
        raise SignatureError("InvalidAuthorization", f"the signature lacks {', '.join(missing)}")
    if fields["q-sign-algorithm"].lower() != "sha1":
        raise SignatureError("InvalidAuthorization", "q-sign-algorithm must be sha1")
    windows = [_parse_window(fields[name], name) for name in ("q-key-time", "q-sign-time")]
    header_names = _split_list(fields["q-header-list"], "q-header-list")
    param_names = _split_list(fields["q-url-param-list"], "q-url-param-list")
    credentials = keys.get(fields["q-ak"])
    if credentials is None:
        raise SignatureError("SecretidNotExist", "the SecretId in q-ak does not exist")
    for start, end in windows:
        if not start - CLOCK_SKEW_S <= now <= end + CLOCK_SKEW_S:
            raise SignatureError(
                "SignatureExpired", "the signature is outside its q-key-time/q-sign-time window"
            )
    signed_query = [(n, v) for n, v in query if not (auth_in_query and n in AUTH_FIELDS)]
    params = _pairs(signed_query)
    if any(name not in params for name in param_names):
        raise SignatureError("AccessDenied", "q-url-param-list names a parameter not sent")
    if any(name not in headers for name in header_names):
        raise SignatureError("AccessDenied", "q-header-list names a header not sent")
    param_string = "&".join(f"{name}={params[name]}" for name in param_names)
    hosts = _host_variants(headers.get("host", "")) if "host" in header_names else [""]
    expected = fields["q-signature"].lower()
    matched = False
    for host in hosts:
        signed_headers = {n: (host if n == "host" else headers[n]) for n in header_names}
        header_string = "&".join(f"{_encode(n)}={_encode(signed_headers[n])}" for n in header_names)
        http_string = f"{method.lower()}\n{path}\n{param_string}\n{header_string}\n"
        actual = _signature(
            credentials.secret_key, fields["q-key-time"], fields["q-sign-time"], http_string
        )
        # Every candidate is compared, so timing does not tell which Host form matched.
        matched |= hmac.compare_digest(actual, expected)
    if not matched:
        raise SignatureError(
            "AccessDenied", "the signature does not match; check the SecretKey and the signing"
        )
    if credentials.token is not None:
        sent = next((headers[n] for n in _TOKEN_HEADERS if n in header_names), None)
        if sent is None or not hmac.compare_digest(sent.encode(), credentials.token.encode()):
            raise SignatureError(
                "AccessDenied", "temporary credentials need their signed x-ci-security-token"
            )
    return credentials
