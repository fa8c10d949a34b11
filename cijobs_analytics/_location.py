"""Where a dataset lives: a local directory, ``s3://bucket/prefix`` or ``cos://bucket-appid/prefix``.

:func:`resolve_location` turns what a user passes as ``dataset`` (and ``storage_options``) into
a :class:`Location`: the URI of each table inside the dataset, and the one set of storage
options that every client of the store gets, so the Delta tables (delta-rs), the lock object
(obstore, the same Rust ``object_store`` underneath) and the readers (pyarrow's S3 filesystem)
all talk to the same place with the same credentials.

``s3://`` is configured the way delta-rs configures it: the environment variables
``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN`` and ``AWS_ALLOW_HTTP``, then ``storage_options`` on top (any
``object_store`` S3 key, e.g. ``virtual_hosted_style_request`` or ``proxy_url``).

``cos://<bucket-appid>/prefix`` is Tencent COS through its S3-compatible endpoint
``https://<bucket-appid>.cos.<region>.myqcloud.com`` (virtual-hosted addressing), signed with
the ``TENCENTCLOUD_*`` credentials the API client uses. The region is, in order: the
``region`` storage option, the ``region`` argument (an export passes its ``--region``), the
``TENCENTCLOUD_REGION`` environment variable.

This module and :class:`Credentials.from_env <cijobs_analytics.config.Credentials>` are the
places that read the environment, and only for a bucket location.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .config import Credentials
from .errors import ConfigError

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from obstore.store import S3Store

__all__ = [
    "COS_ENDPOINT",
    "ENV_COS_REGION",
    "Location",
    "parse_storage_option",
    "resolve_location",
]

#: The COS S3-compatible endpoint of a bucket, virtual-hosted style.
COS_ENDPOINT = "https://{bucket}.cos.{region}.myqcloud.com"
#: Where a ``cos://`` location finds its region when neither an option nor an export gives one.
ENV_COS_REGION = "TENCENTCLOUD_REGION"

#: The environment variables delta-rs reads for S3, and the option each becomes.
_AWS_ENV = {
    "AWS_ENDPOINT_URL": "endpoint",
    "AWS_REGION": "region",
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
    "AWS_ALLOW_HTTP": "allow_http",
}
#: Spellings ``object_store`` accepts for the options this module reads itself.
_ALIASES = {
    "aws_endpoint": "endpoint",
    "aws_endpoint_url": "endpoint",
    "endpoint_url": "endpoint",
    "aws_region": "region",
    "aws_default_region": "region",
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "aws_token": "session_token",
    "token": "session_token",
    "aws_allow_http": "allow_http",
    "aws_virtual_hosted_style_request": "virtual_hosted_style_request",
    "virtual_hosted_style": "virtual_hosted_style_request",
}
#: Options that configure the HTTP client rather than S3 (obstore takes them apart).
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "timeout",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "user_agent",
    }
)
_COS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]*-\d{5,}$")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
#: What S3's naming rules forbid beyond the characters: ``..``, ``.-``, ``-.``, an IPv4 address.
_BAD_S3_BUCKET = re.compile(r"\.\.|\.-|-\.|^\d+\.\d+\.\d+\.\d+$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Location:
    """A dataset's place: its root URI and the storage options every client gets.

    Attributes:
        uri: the root: an absolute local path, or ``s3://bucket/prefix`` (a ``cos://`` location
            is stored as the S3 URI of its bucket).
        display: how messages name the dataset (what the user typed, made absolute if local).
        storage_options: object_store options (empty for a local directory); never printed.
    """

    uri: str
    display: str
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_local(self) -> bool:
        """Whether the dataset is a directory on this machine."""
        return "://" not in self.uri

    @property
    def path(self) -> Path:
        """The local directory (only for a local dataset)."""
        if not self.is_local:
            raise ValueError(f"{self.display} is not a local directory")
        return Path(self.uri)

    @property
    def bucket(self) -> str:
        """The bucket of an object-store location."""
        return urlsplit(self.uri).netloc

    @property
    def prefix(self) -> str:
        """The key prefix of an object-store location, without slashes at either end."""
        return urlsplit(self.uri).path.strip("/")

    def child(self, name: str) -> str:
        """The URI (or local path) of ``name`` inside the dataset."""
        return f"{self.uri.rstrip('/')}/{name}"

    def delta_options(self) -> dict[str, str] | None:
        """The ``storage_options`` to hand delta-rs (None for a local directory)."""
        return dict(self.storage_options) if not self.is_local else None

    def object_store(self) -> S3Store:
        """An obstore client rooted at the dataset's prefix (object-store locations only)."""
        from obstore.store import S3Store

        config = {k: v for k, v in self.storage_options.items() if k not in _CLIENT_KEYS}
        client = {k: v for k, v in self.storage_options.items() if k in _CLIENT_KEYS}
        try:
            return S3Store(
                self.bucket,
                prefix=self.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options=client,  # type: ignore[arg-type]
            )
        except Exception as exc:  # obstore raises its own types for bad keys and values
            raise ConfigError(f"cannot configure storage for {self.display}: {exc}") from exc

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the root path in it, for reading the Parquet files."""
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem(), self.uri
        options = self.storage_options
        kwargs: dict[str, Any] = {}
        endpoint = options.get("endpoint")
        virtual = _truthy(options.get("virtual_hosted_style_request"))
        if endpoint:
            try:
                parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
                host = parts.netloc
            except ValueError as exc:
                raise ConfigError(f"cannot configure storage for {self.display}: {exc}") from exc
            if virtual and host.startswith(f"{self.bucket}."):
                # object_store wants the bucket in a virtual-hosted endpoint, pyarrow adds it.
                host = host[len(self.bucket) + 1 :]
            kwargs["endpoint_override"] = host
            kwargs["scheme"] = parts.scheme or "https"
        if virtual:
            kwargs["force_virtual_addressing"] = True
        for key, arg in (
            ("access_key_id", "access_key"),
            ("secret_access_key", "secret_key"),
            ("session_token", "session_token"),
            ("region", "region"),
        ):
            if options.get(key):
                kwargs[arg] = options[key]
        if options.get("proxy_url"):
            kwargs["proxy_options"] = options["proxy_url"]
        try:
            return pafs.S3FileSystem(**kwargs), f"{self.bucket}/{self.prefix}".rstrip("/")
        except Exception as exc:  # pyarrow raises ArrowInvalid for bad endpoints
            raise ConfigError(f"cannot configure storage for {self.display}: {exc}") from exc

    def __str__(self) -> str:
        return self.display


def resolve_location(
    dataset: str | os.PathLike[str] | Location,
    storage_options: Mapping[str, str] | None = None,
    *,
    region: str | None = None,
    credentials: Credentials | None = None,
    environ: Mapping[str, str] | None = None,
) -> Location:
    """Resolve a dataset argument into a :class:`Location`.

    Args:
        dataset: a local path, ``file:///path``, ``s3://bucket/prefix`` or
            ``cos://bucket-appid/prefix``; a :class:`Location` is returned as it is.
        storage_options: object_store options on top of the environment (bucket locations
            only), e.g. ``{"endpoint": "http://127.0.0.1:9000", "allow_http": "true"}``.
        region: the COS region when no ``region`` option is given (an export's ``--region``).
        credentials: the COS credentials (default: ``Credentials.from_env()``).
        environ: the environment to read instead of ``os.environ`` (for tests).

    Raises:
        ConfigError: an unknown scheme, a malformed bucket or region, options for a local
            directory, or a ``cos://`` location without a region or credentials.

    Example:
        >>> resolve_location("s3://jobs-archive/ci", {"region": "eu-west-1"}).uri
        's3://jobs-archive/ci'
    """
    if isinstance(dataset, Location):
        return dataset
    if not isinstance(dataset, str | os.PathLike):
        raise ConfigError(f"dataset must be a path or a URI, got {type(dataset).__name__}")
    text = os.fspath(dataset)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("dataset must be a non-empty path or URI")
    options = _normalise(storage_options or {})
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme in ("", "file"):
        if scheme == "file" and urlsplit(text).netloc not in ("", "localhost"):
            raise ConfigError(
                f"{text}: a file:// URI names no host (file:///absolute/path); for a relative "
                "path drop the file://"
            )
        if options:
            raise ConfigError(
                f"storage options ({', '.join(sorted(options))}) apply to s3:// and cos:// "
                f"datasets only, not to the directory {text}"
            )
        local = urlsplit(text).path if scheme == "file" else text
        try:
            path = Path(local).expanduser().absolute()
        except RuntimeError as exc:  # ~user of no such user, or no home directory
            raise ConfigError(f"{text}: {exc}") from exc
        return Location(str(path), str(path))
    env = os.environ if environ is None else environ
    bucket, prefix = _bucket_and_prefix(text, scheme)
    if scheme == "s3":
        if not _S3_BUCKET.match(bucket) or _BAD_S3_BUCKET.search(bucket):
            raise ConfigError(f"{text}: {bucket!r} is not a valid S3 bucket name")
        merged = {opt: env[var] for var, opt in _AWS_ENV.items() if env.get(var)}
        merged.update(options)
        return Location(_s3_uri(bucket, prefix), text, merged)
    if scheme == "cos":
        return _cos_location(text, bucket, prefix, options, region, credentials, env)
    raise ConfigError(
        f"{text}: unsupported scheme {scheme}://; a dataset is a local directory, "
        "s3://bucket/prefix or cos://bucket-appid/prefix"
    )


def parse_storage_option(text: str) -> tuple[str, str]:
    """Split one ``KEY=VALUE`` of ``--storage-option``.

    Raises:
        ConfigError: no ``=``, or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"a storage option is KEY=VALUE, got {text!r}")
    return key.strip(), value


def _cos_location(
    text: str,
    bucket: str,
    prefix: str,
    options: dict[str, str],
    region: str | None,
    credentials: Credentials | None,
    env: Mapping[str, str],
) -> Location:
    if not _COS_BUCKET.match(bucket):
        raise ConfigError(
            f"{text}: {bucket!r} is not a COS bucket name; COS buckets are named "
            "<name>-<appid>, e.g. cos://examplebucket-1250000000/jobs"
        )
    chosen = options.pop("region", None) or region or env.get(ENV_COS_REGION)
    if not chosen:
        raise ConfigError(
            f"{text}: no COS region; pass --storage-option region=ap-guangzhou (or "
            f"storage_options={{'region': ...}}), or set {ENV_COS_REGION}"
        )
    if not _REGION.match(chosen):
        raise ConfigError(f"{text}: {chosen!r} is not a COS region such as ap-guangzhou")
    mapped = {
        "endpoint": COS_ENDPOINT.format(bucket=bucket, region=chosen),
        "virtual_hosted_style_request": "true",
        "region": chosen,
        # object_store also reads AWS_* variables for what the options leave unset: never
        # let one make COS requests unsigned.
        "skip_signature": "false",
    }
    if not {"access_key_id", "secret_access_key"} <= options.keys():
        creds = credentials if credentials is not None else Credentials.from_env(env)
        mapped.update(access_key_id=creds.secret_id, secret_access_key=creds.secret_key)
        if creds.token:
            mapped["session_token"] = creds.token
    mapped.update(options)
    if "session_token" not in mapped and os.environ.get("AWS_SESSION_TOKEN"):
        raise ConfigError(
            f"{text}: AWS_SESSION_TOKEN is set, and the storage clients would send it to COS "
            "with a TENCENTCLOUD key that has no token; unset it for cos:// datasets (or set "
            "TENCENTCLOUD_SESSION_TOKEN for temporary Tencent Cloud keys)"
        )
    return Location(_s3_uri(bucket, prefix), text, mapped)


def _bucket_and_prefix(text: str, scheme: str) -> tuple[str, str]:
    parts = urlsplit(text)
    if parts.query or parts.fragment:
        raise ConfigError(f"{text}: a dataset URI takes no ?query or #fragment")
    bucket = parts.netloc
    if "@" in bucket:
        raise ConfigError(
            f"{scheme}://{bucket.rsplit('@', 1)[1]}{parts.path}: credentials do not go in the "
            "URI; set them in the environment or in storage options"
        )
    if not bucket:
        raise ConfigError(f"{text}: no bucket; write {scheme}://bucket/prefix")
    prefix = parts.path.strip("/")
    if any(piece in ("", ".", "..") for piece in prefix.split("/")) and prefix:
        raise ConfigError(f"{text}: the prefix holds an empty, '.' or '..' segment")
    return bucket, prefix


def _s3_uri(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _normalise(options: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(f"storage options are strings, got {key!r}: {type(value).__name__}")
        name = key.strip().lower()
        out[_ALIASES.get(name, name)] = value
    return out


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE
