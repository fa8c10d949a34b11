"""The ``cos://`` mapping end to end, against moto's S3 server behind a virtual-host proxy.

``<bucket>.cos.<region>.myqcloud.com`` does not resolve here and an ``https://`` endpoint would
be tunnelled, so the storage options override only the scheme (``http://`` and
``allow_http``) and send every client through :class:`VirtualHostProxy`: a loopback forward
proxy that records what each request looked like on the wire (its Host and signature) and
serves it from moto path-style. Everything else — the endpoint's host, virtual-hosted
addressing, the region and the credentials — is the mapping ``resolve_location`` makes, and
the three clients (delta-rs, obstore for the lock, pyarrow's S3 filesystem for reads) each
go through it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import obstore
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from s3_server import S3Server, VirtualHostProxy

import cijobs_analytics as cj
from cijobs_analytics._location import Location, resolve_location
from cijobs_analytics.client import CIClient
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.errors import ConfigError
from cijobs_analytics.query import read_rows

REGION = "ap-guangzhou"
SECRET_ID = "AKIDcosexample"
SECRET_KEY = "cos-secret-key-example"
TOKEN = "tok-cos-session-example"
#: The temporary COS key of the environment, as ``Credentials.from_env`` reads it.
COS_ENV = {
    "TENCENTCLOUD_SECRET_ID": SECRET_ID,
    "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
    "TENCENTCLOUD_SESSION_TOKEN": TOKEN,
    "TENCENTCLOUD_REGION": REGION,
}
#: The variables object_store reads on its own; a developer's shell may hold any of them.
AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ALLOW_HTTP",
    "AWS_SKIP_SIGNATURE",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
)
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), ")


@dataclass(frozen=True)
class Cos:
    """A COS bucket as the tests reach it: its name, virtual host and the proxy's options."""

    bucket: str
    proxy: VirtualHostProxy
    s3: S3Server

    @property
    def host(self) -> str:
        return f"{self.bucket}.cos.{REGION}.myqcloud.com"

    @property
    def storage_options(self) -> dict[str, str]:
        """Only the scheme changes (and the proxy): the host is the mapping's own."""
        return {
            "endpoint": f"http://{self.host}",
            "allow_http": "true",
            "proxy_url": self.proxy.url,
        }

    def uri(self, prefix: str) -> str:
        return f"cos://{self.bucket}/{prefix}"

    def keys(self, prefix: str) -> set[str]:
        """The keys under ``prefix`` as moto holds them, listed path-style without the proxy."""
        direct = resolve_location(f"s3://{self.bucket}", self.s3.storage_options, environ={})
        listing = obstore.list(direct.object_store(), prefix=prefix)
        return {meta["path"] for batch in listing for meta in batch}


def signed_as(request: VirtualHostProxy.Request) -> tuple[str, list[str]]:
    """The credential scope and the signed header names of a SigV4 ``Authorization``."""
    assert request.authorization is not None, f"{request} is not signed"
    match = _CREDENTIAL.match(request.authorization)
    assert match, f"{request} is not signed with SigV4"
    return match.group(1), match.group(2).split(";")


def scope(secret_id: str, request: VirtualHostProxy.Request) -> str:
    """The credential scope a request signed by ``secret_id`` for COS in REGION carries."""
    return f"{secret_id}/{request.headers['x-amz-date'][:8]}/{REGION}/s3/aws4_request"


def is_pyarrow(request: VirtualHostProxy.Request) -> bool:
    """Whether the AWS C++ SDK under pyarrow sent it (object_store sends no SDK headers)."""
    return "amz-sdk-invocation-id" in request.headers


@pytest.fixture
def cos(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cos]:
    """A fresh ``<name>-<appid>`` bucket on moto, the proxy in front, the COS environment set.

    The ``AWS_*`` variables are removed: object_store reads them on its own (see the xfail
    test at the end), and a developer's shell must not change what these tests see.
    """
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in COS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = s3_server.create_bucket(f"jobs{uuid.uuid4().hex[:10]}-1250000000")
    with VirtualHostProxy(s3_server.endpoint) as proxy:
        yield Cos(bucket, proxy, s3_server)


def test_export_connect_and_status_go_to_the_virtual_host_with_the_mapped_keys(
    cos: Cos, make_emulator: Callable[..., Emulator]
) -> None:
    emu = make_emulator(jobs=150, days=1.0, seed=3, end=None)
    client = CIClient(emu.bucket, emu.region, emu.credentials, endpoint=emu.url)
    assert emu.region == REGION
    assert emu.credentials.token is None
    uri = cos.uri("jobs-ds")

    result = cj.export(client, uri, since="2d", progress=False, storage_options=cos.storage_options)
    assert result.jobs_new == 150
    exported = cos.proxy.requests
    assert exported
    # Virtual-hosted: every request names the bucket in its Host, none in its path.
    assert {r.host for r in exported} == {cos.host}
    assert {r.method for r in exported} <= {"GET", "HEAD", "PUT", "POST", "DELETE"}
    assert all(not r.path.startswith(f"/{cos.bucket}") for r in exported)
    # An export signs with its API client's key, for the client's region; that key has no
    # token, so the environment's session token must not ride along.
    for request in exported:
        credential, _signed = signed_as(request)
        assert credential == scope(emu.credentials.secret_id, request)
        assert request.security_token is None
    # The lock object: created with If-None-Match (and probed once more), read back on
    # release, then removed; obstore removes with a multi-object delete (POST ?delete).
    lock = [r for r in exported if r.path == "/jobs-ds/_lock"]
    assert [(r.method, r.headers.get("if-none-match")) for r in lock] == [
        ("PUT", "*"),
        ("PUT", "*"),
        ("GET", None),
    ]
    before_lock = exported[: exported.index(lock[0])]
    assert {r.method for r in before_lock} <= {"GET", "HEAD"}  # nothing written unlocked
    removal = exported[-1]
    assert (removal.method, urlsplit(removal.url).query) == ("POST", "delete")
    assert exported[-2] is lock[-1]
    keys = cos.keys("jobs-ds")
    assert "jobs-ds/_lock" not in keys
    assert any(k.startswith("jobs-ds/jobs/_delta_log/") for k in keys)
    assert any(k.startswith("jobs-ds/jobs/") and k.endswith(".parquet") for k in keys)

    # Reading signs with the environment's temporary key (TENCENTCLOUD_*) and its region.
    cos.proxy.clear()
    with cj.connect(uri, storage_options=cos.storage_options) as con:
        rows = read_rows(con, "SELECT job_id FROM jobs")
    assert sorted(job_id for (job_id,) in rows) == sorted(j.job_id for j in emu.truth())
    read = cos.proxy.requests
    assert {r.host for r in read} == {cos.host}
    parquet = [r for r in read if is_pyarrow(r) and r.path.endswith(".parquet")]
    assert parquet, "pyarrow read no Parquet file through the proxy"
    assert {r.method for r in parquet} <= {"GET", "HEAD"}
    assert all(r.path.startswith("/jobs-ds/jobs/") for r in parquet)  # no bucket in the path
    for request in read:
        credential, signed = signed_as(request)
        assert credential == scope(SECRET_ID, request)
        assert request.security_token == TOKEN
        assert "x-amz-security-token" in signed

    cos.proxy.clear()
    status = cj.read_status(uri, storage_options=cos.storage_options)
    assert (status.jobs, status.runs, status.version) == (150, 1, result.version)
    assert status.running is None
    assert status.last_run is not None
    assert status.last_run["status"] == "ok"
    assert status.dataset == uri
    assert {r.host for r in cos.proxy.requests} == {cos.host}
    assert {r.security_token for r in cos.proxy.requests} == {TOKEN}


def test_a_session_token_from_the_environment_signs_every_client(cos: Cos) -> None:
    location = resolve_location(cos.uri("x"), cos.storage_options, environ=COS_ENV)
    assert location.storage_options["endpoint"] == f"http://{cos.host}"  # the scheme only
    assert location.storage_options["virtual_hosted_style_request"] == "true"
    table = pa.table({"job_id": ["a", "b", "c"], "n": [1, 2, 3]})

    write_deltalake(location.child("t"), table, storage_options=location.delta_options())
    back = DeltaTable(location.child("t"), storage_options=location.delta_options())
    assert back.to_pyarrow_table().sort_by("job_id") == table
    delta = cos.proxy.requests
    assert {r.method for r in delta} >= {"GET", "PUT"}

    cos.proxy.clear()
    obstore.put(location.object_store(), "probe", b"{}", mode="create")
    assert [(r.method, r.path) for r in cos.proxy.requests] == [("PUT", "/x/probe")]
    lock = cos.proxy.requests

    cos.proxy.clear()
    filesystem, root = location.arrow_filesystem()
    files = back.file_uris()
    assert len(files) == 1
    assert files[0].startswith(f"s3://{cos.bucket}/x/t/")
    read = pq.read_table(files[0].removeprefix("s3://"), filesystem=filesystem)
    assert read.sort_by("job_id") == table
    assert root == f"{cos.bucket}/x"
    arrow = cos.proxy.requests
    assert arrow
    assert all(is_pyarrow(r) for r in arrow)

    for request in (*delta, *lock, *arrow):
        assert request.host == cos.host
        assert request.url.startswith(f"http://{cos.host}/")
        credential, signed = signed_as(request)
        assert credential == scope(SECRET_ID, request)
        assert request.security_token == TOKEN
        assert "x-amz-security-token" in signed
        assert SECRET_KEY not in str(request.headers)
    assert cos.keys("x") >= {"x/probe", "x/t/_delta_log/00000000000000000000.json"}


def test_an_aws_session_token_in_the_environment_is_refused_for_cos(
    cos: Cos, monkeypatch: pytest.MonkeyPatch
) -> None:
    """object_store reads AWS_* variables for what the options leave unset: an AWS token would
    be sent to COS beside a Tencent Cloud key that has none, so it is refused, naming it."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "aws-sts-token-of-another-cloud")
    environ = {k: v for k, v in COS_ENV.items() if k != "TENCENTCLOUD_SESSION_TOKEN"}
    with pytest.raises(ConfigError, match="AWS_SESSION_TOKEN is set"):
        resolve_location(cos.uri("x"), cos.storage_options, environ=environ)
    # A Tencent Cloud token of its own is sent instead, never the AWS one.
    location: Location = resolve_location(cos.uri("x"), cos.storage_options, environ=COS_ENV)
    obstore.put(location.object_store(), "_lock", b"{}", mode="create")
    write_deltalake(
        location.child("t"), pa.table({"n": [1]}), storage_options=location.delta_options()
    )
    assert cos.proxy.requests
    assert {r.security_token for r in cos.proxy.requests} == {TOKEN}
