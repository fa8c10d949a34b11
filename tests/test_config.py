"""Credentials: secrets stay out of repr/str/errors; from_env names what is missing."""

from __future__ import annotations

import logging
import pickle

import pytest

from cijobs_analytics.config import (
    ENV_SECRET_ID,
    ENV_SECRET_KEY,
    ENV_SESSION_TOKEN,
    Credentials,
)
from cijobs_analytics.errors import ConfigError

SECRET = "sEcReT-KeY-0123456789"
TOKEN = "ToKeN-abcdef/+="


def test_repr_and_str_hide_secret_and_token() -> None:
    """repr and str show the key id, never the secret or the token."""
    creds = Credentials("AKIDexample", SECRET, TOKEN)
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds])):
        assert "AKIDexample" in text
        assert SECRET not in text
        assert TOKEN not in text
    assert (
        repr(creds)
        == "Credentials(secret_id='AKIDexample', secret_key=<redacted>, token=<redacted>)"
    )


def test_repr_without_token_says_none() -> None:
    """Permanent credentials show token=None."""
    assert repr(Credentials("AKIDexample", SECRET)).endswith("token=None)")


def test_secret_not_in_log_records(caplog: pytest.LogCaptureFixture) -> None:
    """Logging the object (at any level) never writes the secret or the token."""
    creds = Credentials("AKIDexample", SECRET, TOKEN)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("cijobs_analytics.test").debug("credentials %s / %r", creds, creds)
    assert "AKIDexample" in caplog.text
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text


def test_values_still_reachable_for_signing() -> None:
    """The fields keep the values the signer needs, and equality compares them."""
    creds = Credentials("AKIDexample", SECRET, TOKEN)
    assert (creds.secret_id, creds.secret_key, creds.token) == ("AKIDexample", SECRET, TOKEN)
    assert creds == Credentials("AKIDexample", SECRET, TOKEN)
    assert creds != Credentials("AKIDexample", SECRET + "x", TOKEN)
    assert pickle.loads(pickle.dumps(creds)) == creds


def test_frozen() -> None:
    """Credentials cannot be changed after creation."""
    creds = Credentials("AKIDexample", SECRET)
    with pytest.raises(AttributeError):
        creds.secret_key = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", SECRET), "secret_id"),
        (("  ", SECRET), "secret_id"),
        (("AKIDexample", ""), "secret_key"),
        ((None, SECRET), "secret_id"),
        (("AKIDexample", 123), "secret_key"),
    ],
)
def test_empty_or_wrong_type_refused(args: tuple[object, object], field: str) -> None:
    """An empty or non-string id/secret raises ConfigError naming the field."""
    with pytest.raises(ConfigError, match=f"Credentials.{field} must be a non-empty string"):
        Credentials(*args)  # type: ignore[arg-type]


def test_bad_secret_error_does_not_echo_value() -> None:
    """The error for a bad secret never repeats the value given."""
    with pytest.raises(ConfigError) as info:
        Credentials("", SECRET)
    assert SECRET not in str(info.value)


def test_non_string_token_refused() -> None:
    """A token that is not a string raises ConfigError."""
    with pytest.raises(ConfigError, match="token must be a string or None"):
        Credentials("AKIDexample", SECRET, 42)  # type: ignore[arg-type]


def test_from_env_reads_all_three() -> None:
    """from_env reads id, secret and session token from the TENCENTCLOUD_* variables."""
    env = {ENV_SECRET_ID: "AKIDenv", ENV_SECRET_KEY: SECRET, ENV_SESSION_TOKEN: TOKEN}
    assert Credentials.from_env(env) == Credentials("AKIDenv", SECRET, TOKEN)


def test_from_env_token_optional_and_empty_is_none() -> None:
    """Without (or with an empty) session token the credentials are permanent."""
    env = {ENV_SECRET_ID: "AKIDenv", ENV_SECRET_KEY: SECRET}
    assert Credentials.from_env(env).token is None
    assert Credentials.from_env({**env, ENV_SESSION_TOKEN: ""}).token is None


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, from_env reads the process environment."""
    monkeypatch.setenv(ENV_SECRET_ID, "AKIDos")
    monkeypatch.setenv(ENV_SECRET_KEY, SECRET)
    monkeypatch.delenv(ENV_SESSION_TOKEN, raising=False)
    assert Credentials.from_env() == Credentials("AKIDos", SECRET)


@pytest.mark.parametrize(
    ("env", "named", "not_named"),
    [
        ({ENV_SECRET_KEY: SECRET}, [ENV_SECRET_ID], [ENV_SECRET_KEY]),
        ({ENV_SECRET_ID: "AKIDenv"}, [ENV_SECRET_KEY], [ENV_SECRET_ID]),
        ({ENV_SECRET_ID: "AKIDenv", ENV_SECRET_KEY: ""}, [ENV_SECRET_KEY], [ENV_SECRET_ID]),
        ({}, [ENV_SECRET_ID, ENV_SECRET_KEY], []),
    ],
)
def test_from_env_missing_variable_named(
    env: dict[str, str], named: list[str], not_named: list[str]
) -> None:
    """A missing or empty required variable gives a ConfigError that names it (and only it)."""
    with pytest.raises(ConfigError) as info:
        Credentials.from_env(env)
    message = str(info.value)
    for name in named:
        assert f"set {name}" in message or f"and {name} in" in message
    for name in not_named:
        assert f"set {name}" not in message
    assert SECRET not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("field", ["secret_id", "secret_key", "token"])
@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("{v}\n", "starts or ends with whitespace"),
        ("{v}\r\n", "starts or ends with whitespace"),
        (" {v}", "starts or ends with whitespace"),
        ("{v}\t", "starts or ends with whitespace"),
        ("{v}\nX-Injected: 1", "holds whitespace or a control character"),
        ("{v} {v}", "holds whitespace or a control character"),
        ("{v}\x00", "holds whitespace or a control character"),
        ("{v}\x7fz", "holds whitespace or a control character"),
        ("{v}\u2028z", "holds whitespace or a control character"),
    ],
)
def test_whitespace_or_control_character_refused_without_echo(
    field: str, bad: str, says: str
) -> None:
    """A credential that cannot go into a header is refused; the message names the field and
    its variable, says what to fix, and holds no part of any value (not stripped silently)."""
    good = {"secret_id": "AKIDexample", "secret_key": SECRET, "token": TOKEN}
    values = {**good, field: bad.format(v=good[field])}
    with pytest.raises(ConfigError) as info:
        Credentials(**values)
    message = str(info.value)
    env = {"secret_id": ENV_SECRET_ID, "secret_key": ENV_SECRET_KEY, "token": ENV_SESSION_TOKEN}
    assert message.startswith(f"Credentials.{field} (from {env[field]}) {says}")
    for value in (*good.values(), values[field], repr(values[field])[1:-1]):
        assert value not in message
    if "starts or ends" in says:
        assert "strip it" in message


def test_from_env_token_with_trailing_newline_refused() -> None:
    """The Kubernetes secret-from-file case: a token ending in a newline is refused by name."""
    env = {ENV_SECRET_ID: "AKIDenv", ENV_SECRET_KEY: SECRET, ENV_SESSION_TOKEN: TOKEN + "\n"}
    with pytest.raises(ConfigError, match=f"Credentials.token \\(from {ENV_SESSION_TOKEN}\\)"):
        Credentials.from_env(env)


def test_inner_printable_characters_accepted() -> None:
    """Base64 and URL-safe token characters are not mistaken for bad ones."""
    creds = Credentials("AKIDexample", SECRET, "a+b/c=d-e_f.g~h%i")
    assert creds.token == "a+b/c=d-e_f.g~h%i"
