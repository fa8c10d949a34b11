"""Credentials and the environment variables they are read from.

This is the one module that reads the environment, and only when asked
(:meth:`Credentials.from_env`). The variables:

``TENCENTCLOUD_SECRET_ID``
    the API key id (``AKID...``); required.
``TENCENTCLOUD_SECRET_KEY``
    the API key secret; required.
``TENCENTCLOUD_SESSION_TOKEN``
    the session token of temporary (STS) credentials; optional.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

__all__ = ["ENV_SECRET_ID", "ENV_SECRET_KEY", "ENV_SESSION_TOKEN", "Credentials"]

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"  # noqa: S105 - a variable name, not a secret
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"  # noqa: S105 - a variable name
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"  # noqa: S105 - a variable name


#: The variable each field is read from, named in error messages as the place to fix.
_ENV_OF = {"secret_id": ENV_SECRET_ID, "secret_key": ENV_SECRET_KEY, "token": ENV_SESSION_TOKEN}


def _check_characters(name: str, value: str | None) -> None:
    """Refuse a credential holding whitespace or a control character, without quoting it.

    Such a value cannot go into an HTTP header: ``http.client`` would refuse it with an error
    that quotes the whole header, secret included. Surrounding whitespace is usually a newline
    from a secret file or a CRLF env file; it is refused, not stripped, because silently
    altering a secret hides where it was stored wrong.
    """
    if not value:
        return
    where = f"Credentials.{name} (from {_ENV_OF[name]})"
    if value != value.strip():
        raise ConfigError(
            f"{where} starts or ends with whitespace (a newline from a secret file or a CRLF "
            "env file?); strip it where the value is stored"
        )
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise ConfigError(
            f"{where} holds whitespace or a control character, which no credential has; "
            "check how the value was stored"
        )


@dataclass(frozen=True)
class Credentials:
    """A Tencent Cloud API key, optionally temporary.

    The secret key and the token never appear in ``repr`` or ``str``.

    Args:
        secret_id: the key id, sent in clear as ``q-ak``.
        secret_key: the key secret, used only to sign.
        token: the session token of temporary credentials, sent as ``x-ci-security-token``.

    Raises:
        ConfigError: the id or secret is empty or not a string, or a value holds whitespace
            or a control character; the message names the field, never the value.

    Example:
        >>> Credentials("AKIDexample", "s3cr3t")
        Credentials(secret_id='AKIDexample', secret_key=<redacted>, token=None)
    """

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("secret_id", "secret_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"Credentials.{name} must be a non-empty string (from {_ENV_OF[name]})"
                )
        if self.token is not None and not isinstance(self.token, str):
            raise ConfigError("Credentials.token must be a string or None")
        for name in ("secret_id", "secret_key", "token"):
            _check_characters(name, getattr(self, name))

    def __repr__(self) -> str:
        token = "<redacted>" if self.token else "None"
        return f"Credentials(secret_id={self.secret_id!r}, secret_key=<redacted>, token={token})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read credentials from ``TENCENTCLOUD_*`` environment variables.

        Args:
            environ: the mapping to read instead of ``os.environ`` (for tests).

        Raises:
            ConfigError: a required variable is unset or empty, or a value holds whitespace
                or a control character; the message names the variable, never the value.
        """
        env = os.environ if environ is None else environ
        missing = [name for name in (ENV_SECRET_ID, ENV_SECRET_KEY) if not env.get(name)]
        if missing:
            raise ConfigError(
                f"missing credentials: set {' and '.join(missing)} in the environment "
                f"(and {ENV_SESSION_TOKEN} for temporary credentials)"
            )
        return cls(env[ENV_SECRET_ID], env[ENV_SECRET_KEY], env.get(ENV_SESSION_TOKEN) or None)
