"""The exception tree: one root, structured fields, transient markers, picklable."""

from __future__ import annotations

import pickle

import pytest

import cijobs_analytics.errors as errors
from cijobs_analytics.errors import (
    APIError,
    AuthError,
    CIJobsError,
    ConfigError,
    QueryError,
    ResponseParseError,
    ServerError,
    ThrottledError,
    TransportError,
)


def test_every_public_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), CIJobsError), name


def test_the_docstring_draws_every_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, name


@pytest.mark.parametrize(
    ("cls", "transient"),
    [
        (AuthError, False),
        (errors.InvalidArgumentError, False),
        (ThrottledError, True),
        (ServerError, True),
        (TransportError, True),
        (ResponseParseError, True),
        (ConfigError, False),
        (errors.StoreError, False),
    ],
)
def test_transient_markers(cls: type[CIJobsError], transient: bool) -> None:
    assert cls.transient is transient


def test_api_error_message_is_built_from_its_fields() -> None:
    exc = ThrottledError("SlowDown", 503, "too many requests", "req-1")
    assert (exc.code, exc.status, exc.error_message, exc.request_id) == (
        "SlowDown",
        503,
        "too many requests",
        "req-1",
    )
    assert str(exc) == "SlowDown (HTTP 503): too many requests [request id req-1]"
    assert isinstance(exc, APIError)


def test_parse_error_shows_the_head_of_the_body_only() -> None:
    body = b"<html>" + b"x" * 1000
    exc = ResponseParseError("not XML", body, request_id="r-9")
    assert exc.head == body[:120]
    assert "r-9" in str(exc)
    assert "<html>" in str(exc)
    assert "x" * 200 not in str(exc)
    assert str(ResponseParseError("empty body", b"")) == "empty body; body is empty"
    assert str(ResponseParseError("paging never ends", None, "r-1")) == (
        "paging never ends [request id r-1]"
    )


@pytest.mark.parametrize(
    "exc",
    [
        AuthError("SignatureExpired", 401, "expired", "r1"),
        ResponseParseError("truncated", b"<Response>", "r2"),
        ConfigError("bad"),
    ],
)
def test_errors_survive_pickling(exc: CIJobsError) -> None:
    """Worker processes and pools hand errors back across process boundaries."""
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert str(clone) == str(exc)


def test_builtin_mixins() -> None:
    assert issubclass(ConfigError, ValueError)
    assert issubclass(QueryError, ValueError)
    assert issubclass(TransportError, OSError)
