"""``resolve_location``: local paths, ``s3://`` and ``cos://`` URIs and their storage options.

Pure unit tests: nothing here touches the network (``tests/test_cos.py`` drives the ``cos://``
mapping against a real S3 server on loopback). The environment is always passed as
``environ=``, except in the one test that pins that ``os.environ`` is the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cijobs_analytics._location import (
    COS_ENDPOINT,
    ENV_COS_REGION,
    Location,
    parse_storage_option,
    resolve_location,
)
from cijobs_analytics.config import Credentials
from cijobs_analytics.errors import CIJobsError, ConfigError

COS_BUCKET = "examplebucket-1250000000"
COS_URI = f"cos://{COS_BUCKET}/jobs"
SECRET_KEY = "cos-secret-DO-NOT-PRINT"
TOKEN = "tok-DO-NOT-PRINT"
#: A complete ``TENCENTCLOUD_*`` environment for a ``cos://`` location.
COS_ENV = {
    "TENCENTCLOUD_SECRET_ID": "AKIDcosexample",
    "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
    "TENCENTCLOUD_SESSION_TOKEN": TOKEN,
    ENV_COS_REGION: "ap-guangzhou",
}
#: The ``AWS_*`` environment delta-rs reads, one variable per mapped option.
AWS_ENV = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIAexample",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_SESSION_TOKEN": "aws-token",
    "AWS_ALLOW_HTTP": "true",
}


def arrow_options(filesystem: pafs.FileSystem) -> dict[str, Any]:
    """Every option an ``S3FileSystem`` was built with.

    pyarrow exposes only ``region`` as a property; the state it pickles is the full set.
    """
    assert isinstance(filesystem, pafs.S3FileSystem)
    _rebuild, (state,) = filesystem.__reduce__()
    return dict(state)


# -- local directories --------------------------------------------------------------------------


def test_a_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    location = resolve_location("data/ds")
    assert location.is_local
    assert location.uri == str(tmp_path / "data" / "ds")
    assert location.display == location.uri
    assert location.path == tmp_path / "data" / "ds"
    assert location.storage_options == {}
    assert location.delta_options() is None


def test_a_path_object_is_taken_like_its_text(tmp_path: Path) -> None:
    assert resolve_location(tmp_path / "ds").uri == str(tmp_path / "ds")


def test_a_file_uri_is_its_path() -> None:
    location = resolve_location("file:///srv/jobs/ds")
    assert (location.uri, location.is_local) == ("/srv/jobs/ds", True)


@pytest.mark.parametrize("uri", ["file://jobs_dataset/", "file://fileserver/srv/ds"])
def test_a_file_uri_with_a_host_is_refused(uri: str) -> None:
    with pytest.raises(ConfigError):
        resolve_location(uri)


def test_a_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_location("~/ds").uri == str(tmp_path / "ds")


@pytest.mark.parametrize("dataset", ["ds", "file:///srv/ds"])
def test_storage_options_for_a_local_directory_are_refused(dataset: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(dataset, {"region": "eu-west-1", "endpoint": "http://x"})
    message = str(info.value)
    assert "storage options (endpoint, region)" in message
    assert "s3:// and cos:// datasets only" in message
    assert dataset in message


def test_empty_storage_options_are_fine_for_a_local_directory() -> None:
    assert resolve_location("ds", {}).is_local


@pytest.mark.parametrize("dataset", ["", "   "])
def test_an_empty_dataset_is_refused(dataset: str) -> None:
    with pytest.raises(ConfigError, match="non-empty path or URI"):
        resolve_location(dataset)


def test_a_dataset_of_another_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a path or a URI, got int"):
        resolve_location(3)  # type: ignore[arg-type]


def test_a_location_is_returned_as_it_is() -> None:
    location = resolve_location("s3://jobs-archive/ci", environ={})
    assert resolve_location(location, {"region": "ignored"}) is location


def test_a_local_location_has_no_bucket_but_a_path() -> None:
    location = resolve_location("/srv/ds")
    assert location.path == Path("/srv/ds")
    assert location.child("jobs") == "/srv/ds/jobs"
    filesystem, root = location.arrow_filesystem()
    assert isinstance(filesystem, pafs.LocalFileSystem)
    assert root == "/srv/ds"


# -- s3:// ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix", "root"),
    [
        ("s3://jobs-archive/ci", "jobs-archive", "ci", "s3://jobs-archive/ci"),
        (
            "s3://jobs-archive/ci/nightly/",
            "jobs-archive",
            "ci/nightly",
            "s3://jobs-archive/ci/nightly",
        ),
        ("s3://jobs-archive", "jobs-archive", "", "s3://jobs-archive"),
        ("s3://jobs-archive/", "jobs-archive", "", "s3://jobs-archive"),
        ("S3://jobs.archive.v2/ci", "jobs.archive.v2", "ci", "s3://jobs.archive.v2/ci"),
    ],
)
def test_an_s3_uri_gives_bucket_and_prefix(uri: str, bucket: str, prefix: str, root: str) -> None:
    location = resolve_location(uri, environ={})
    assert (location.bucket, location.prefix, location.uri) == (bucket, prefix, root)
    assert location.display == uri
    assert not location.is_local
    assert location.storage_options == {}
    assert location.delta_options() == {}


def test_an_s3_location_is_not_a_local_path() -> None:
    location = resolve_location("s3://jobs-archive/ci", environ={})
    with pytest.raises(ValueError, match="s3://jobs-archive/ci is not a local directory"):
        _ = location.path


@pytest.mark.parametrize(
    ("uri", "root"),
    [
        ("s3://jobs-archive/ci", "s3://jobs-archive/ci/jobs"),
        ("s3://jobs-archive", "s3://jobs-archive/jobs"),
    ],
)
def test_child_joins_one_slash(uri: str, root: str) -> None:
    assert resolve_location(uri, environ={}).child("jobs") == root


@pytest.mark.parametrize(
    "bucket",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "Jobs-Archive",  # upper case
        "-jobs",
        "jobs-",
        "jobs_archive",
        "jobs:9000",
    ],
)
def test_a_malformed_s3_bucket_is_refused(bucket: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(f"s3://{bucket}/ci", environ={})
    assert f"{bucket!r} is not a valid S3 bucket name" in str(info.value)


@pytest.mark.parametrize("scheme", ["s3", "cos"])
def test_credentials_in_the_uri_are_refused_without_repeating_them(scheme: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(f"{scheme}://key:s3cr3t@jobs-1250000000/ci", environ={})
    assert str(info.value) == (
        f"{scheme}://jobs-1250000000/ci: credentials do not go in the URI; set them in the "
        "environment or in storage options"
    )


@pytest.mark.parametrize("bucket", ["jobs..archive", "jobs.-archive", "192.168.1.10"])
def test_a_bucket_name_that_s3_forbids_is_refused(bucket: str) -> None:
    with pytest.raises(ConfigError, match="not a valid S3 bucket name"):
        resolve_location(f"s3://{bucket}/ci", environ={})


def test_an_s3_uri_without_a_bucket_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"s3:///ci: no bucket; write s3://bucket/prefix"):
        resolve_location("s3:///ci", environ={})


@pytest.mark.parametrize(
    "uri",
    [
        "s3://jobs-archive/ci//nightly",
        "s3://jobs-archive/ci/./nightly",
        "s3://jobs-archive/ci/../other",
        "s3://jobs-archive/..",
        "cos://examplebucket-1250000000/a/../b",
    ],
)
def test_a_prefix_with_an_empty_dot_or_dotdot_segment_is_refused(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(uri, environ=COS_ENV)
    assert str(info.value) == f"{uri}: the prefix holds an empty, '.' or '..' segment"


@pytest.mark.parametrize("uri", ["s3://jobs-archive/ci?versionId=3", "s3://jobs-archive/ci#top"])
def test_a_query_or_fragment_is_refused(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(uri, environ={})
    assert str(info.value) == f"{uri}: a dataset URI takes no ?query or #fragment"


def test_the_aws_environment_becomes_options() -> None:
    location = resolve_location("s3://jobs-archive/ci", environ=AWS_ENV)
    assert location.storage_options == {
        "endpoint": "http://127.0.0.1:9000",
        "region": "eu-west-1",
        "access_key_id": "AKIAexample",
        "secret_access_key": "aws-secret",
        "session_token": "aws-token",
        "allow_http": "true",
    }
    assert location.delta_options() == location.storage_options
    assert location.delta_options() is not location.storage_options  # a copy to hand out


def test_empty_and_unrelated_variables_are_ignored() -> None:
    environ = {"AWS_REGION": "", "AWS_PROFILE": "work", "TENCENTCLOUD_SECRET_ID": "AKIDx"}
    assert resolve_location("s3://jobs-archive/ci", environ=environ).storage_options == {}


def test_options_override_the_environment() -> None:
    location = resolve_location(
        "s3://jobs-archive/ci",
        {"region": "us-east-1", "endpoint": "http://127.0.0.1:9999", "proxy_url": "http://p:3128"},
        environ=AWS_ENV,
    )
    assert location.storage_options == {
        "endpoint": "http://127.0.0.1:9999",
        "region": "us-east-1",
        "access_key_id": "AKIAexample",
        "secret_access_key": "aws-secret",
        "session_token": "aws-token",
        "allow_http": "true",
        "proxy_url": "http://p:3128",
    }


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert resolve_location("s3://jobs-archive/ci").storage_options == {"region": "ap-south-1"}


@pytest.mark.parametrize(
    ("key", "option"),
    [
        ("aws_endpoint", "endpoint"),
        ("aws_endpoint_url", "endpoint"),
        ("endpoint_url", "endpoint"),
        ("AWS_ENDPOINT_URL", "endpoint"),
        ("aws_region", "region"),
        ("AWS_REGION", "region"),
        ("aws_default_region", "region"),
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("aws_secret_access_key", "secret_access_key"),
        ("aws_session_token", "session_token"),
        ("aws_token", "session_token"),
        ("token", "session_token"),
        ("AWS_ALLOW_HTTP", "allow_http"),
        ("aws_virtual_hosted_style_request", "virtual_hosted_style_request"),
        ("virtual_hosted_style", "virtual_hosted_style_request"),
        (" Region ", "region"),
        ("proxy_url", "proxy_url"),  # an object_store key this module does not read
    ],
)
def test_an_option_alias_is_stored_under_its_canonical_name(key: str, option: str) -> None:
    location = resolve_location("s3://jobs-archive/ci", {key: "v"}, environ={})
    assert location.storage_options == {option: "v"}


def test_an_alias_overrides_the_environment_like_the_canonical_name() -> None:
    location = resolve_location(
        "s3://jobs-archive/ci", {"AWS_REGION": "sa-east-1"}, environ=AWS_ENV
    )
    assert location.storage_options["region"] == "sa-east-1"


@pytest.mark.parametrize("options", [{"region": 1}, {1: "x"}, {"allow_http": True}])
def test_a_non_string_option_is_refused(options: dict[Any, Any]) -> None:
    with pytest.raises(ConfigError, match="storage options are strings"):
        resolve_location("s3://jobs-archive/ci", options, environ={})


@pytest.mark.parametrize("scheme", ["gs", "http", "https", "az", "abfss"])
def test_an_unsupported_scheme_is_refused_naming_the_supported_ones(scheme: str) -> None:
    uri = f"{scheme}://jobs-archive/ci"
    with pytest.raises(ConfigError) as info:
        resolve_location(uri, environ={})
    assert str(info.value) == (
        f"{uri}: unsupported scheme {scheme}://; a dataset is a local directory, "
        "s3://bucket/prefix or cos://bucket-appid/prefix"
    )
    assert isinstance(info.value, CIJobsError)


# -- cos:// -------------------------------------------------------------------------------------


def test_cos_maps_to_the_virtual_hosted_s3_endpoint_of_the_bucket() -> None:
    location = resolve_location(COS_URI, environ=COS_ENV)
    assert location.uri == f"s3://{COS_BUCKET}/jobs"
    assert location.display == COS_URI
    assert str(location) == COS_URI
    assert (location.bucket, location.prefix) == (COS_BUCKET, "jobs")
    assert location.storage_options == {
        "endpoint": "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com",
        "virtual_hosted_style_request": "true",
        "skip_signature": "false",
        "region": "ap-guangzhou",
        "access_key_id": "AKIDcosexample",
        "secret_access_key": SECRET_KEY,
        "session_token": TOKEN,
    }
    assert (
        COS_ENDPOINT.format(bucket=COS_BUCKET, region="ap-guangzhou")
        == (location.storage_options["endpoint"])
    )


def test_cos_without_a_prefix_is_the_bucket() -> None:
    location = resolve_location(f"cos://{COS_BUCKET}", environ=COS_ENV)
    assert (location.uri, location.prefix) == (f"s3://{COS_BUCKET}", "")


def test_cos_without_a_session_token_sends_none() -> None:
    environ = {k: v for k, v in COS_ENV.items() if k != "TENCENTCLOUD_SESSION_TOKEN"}
    options = resolve_location(COS_URI, environ=environ).storage_options
    assert "session_token" not in options
    assert options["access_key_id"] == "AKIDcosexample"


@pytest.mark.parametrize(
    ("option", "argument", "variable", "chosen"),
    [
        ("ap-beijing", "ap-shanghai", "ap-chengdu", "ap-beijing"),
        (None, "ap-shanghai", "ap-chengdu", "ap-shanghai"),
        (None, None, "ap-chengdu", "ap-chengdu"),
        ("ap-beijing", None, None, "ap-beijing"),
    ],
)
def test_the_cos_region_is_the_option_then_the_argument_then_the_environment(
    option: str | None, argument: str | None, variable: str | None, chosen: str
) -> None:
    environ = {k: v for k, v in COS_ENV.items() if k != ENV_COS_REGION}
    if variable is not None:
        environ[ENV_COS_REGION] = variable
    options = {"region": option} if option is not None else {}
    location = resolve_location(COS_URI, options, region=argument, environ=environ)
    assert location.storage_options["region"] == chosen
    assert location.storage_options["endpoint"] == f"https://{COS_BUCKET}.cos.{chosen}.myqcloud.com"


def test_the_cos_region_option_may_use_an_alias() -> None:
    location = resolve_location(COS_URI, {"AWS_REGION": "ap-beijing"}, environ=COS_ENV)
    assert (
        location.storage_options["endpoint"] == f"https://{COS_BUCKET}.cos.ap-beijing.myqcloud.com"
    )


def test_cos_without_a_region_names_the_option_and_the_variable() -> None:
    environ = {k: v for k, v in COS_ENV.items() if k != ENV_COS_REGION}
    with pytest.raises(ConfigError) as info:
        resolve_location(COS_URI, environ=environ)
    message = str(info.value)
    assert message.startswith(f"{COS_URI}: no COS region")
    assert "--storage-option region=" in message
    assert "TENCENTCLOUD_REGION" in message


@pytest.mark.parametrize("region", ["AP-Guangzhou", "ap_guangzhou", "ap-guangzhou.evil.com", "-ap"])
def test_a_malformed_cos_region_is_refused(region: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_location(COS_URI, {"region": region}, environ=COS_ENV)
    assert str(info.value) == f"{COS_URI}: {region!r} is not a COS region such as ap-guangzhou"


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        (("TENCENTCLOUD_SECRET_ID",), "TENCENTCLOUD_SECRET_ID"),
        (("TENCENTCLOUD_SECRET_KEY",), "TENCENTCLOUD_SECRET_KEY"),
        (
            ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"),
            "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY",
        ),
    ],
)
def test_cos_without_credentials_names_the_variables(missing: tuple[str, ...], named: str) -> None:
    environ = {k: v for k, v in COS_ENV.items() if k not in missing}
    with pytest.raises(ConfigError) as info:
        resolve_location(COS_URI, environ=environ)
    message = str(info.value)
    assert f"set {named} in the environment" in message
    assert SECRET_KEY not in message
    assert TOKEN not in message


def test_the_credentials_argument_wins_over_the_environment() -> None:
    credentials = Credentials("AKIDexport", "export-secret", "export-token")
    options = resolve_location(COS_URI, credentials=credentials, environ=COS_ENV).storage_options
    assert (options["access_key_id"], options["secret_access_key"], options["session_token"]) == (
        "AKIDexport",
        "export-secret",
        "export-token",
    )


def test_the_credentials_argument_needs_no_environment() -> None:
    credentials = Credentials("AKIDexport", "export-secret")
    location = resolve_location(COS_URI, region="ap-beijing", credentials=credentials, environ={})
    assert location.storage_options == {
        "endpoint": f"https://{COS_BUCKET}.cos.ap-beijing.myqcloud.com",
        "virtual_hosted_style_request": "true",
        "skip_signature": "false",
        "region": "ap-beijing",
        "access_key_id": "AKIDexport",
        "secret_access_key": "export-secret",
    }


def test_cos_takes_nothing_from_the_aws_environment() -> None:
    location = resolve_location(COS_URI, environ={**AWS_ENV, **COS_ENV})
    options = location.storage_options
    assert options["endpoint"] == f"https://{COS_BUCKET}.cos.ap-guangzhou.myqcloud.com"
    assert (options["access_key_id"], options["session_token"]) == ("AKIDcosexample", TOKEN)
    assert "allow_http" not in options


def test_user_options_override_the_cos_mapping() -> None:
    location = resolve_location(
        COS_URI,
        {
            "endpoint": f"http://{COS_BUCKET}.cos.ap-guangzhou.myqcloud.com",
            "allow_http": "true",
            "aws_access_key_id": "AKIDother",
            "virtual_hosted_style_request": "false",
        },
        environ=COS_ENV,
    )
    assert location.storage_options == {
        "endpoint": f"http://{COS_BUCKET}.cos.ap-guangzhou.myqcloud.com",
        "virtual_hosted_style_request": "false",
        "region": "ap-guangzhou",
        "skip_signature": "false",
        "access_key_id": "AKIDother",
        "secret_access_key": SECRET_KEY,
        "session_token": TOKEN,
        "allow_http": "true",
    }


def test_cos_keys_in_the_options_need_no_tencentcloud_variables() -> None:
    location = resolve_location(
        COS_URI,
        {"access_key_id": "AKIDopt", "secret_access_key": "opt-secret"},
        environ={ENV_COS_REGION: "ap-guangzhou"},
    )
    assert location.storage_options["access_key_id"] == "AKIDopt"


@pytest.mark.parametrize(
    "bucket", ["examplebucket", "examplebucket-125", "Examplebucket-1250000000", "-1250000000"]
)
def test_a_cos_bucket_without_an_appid_is_refused_with_an_example(bucket: str) -> None:
    uri = f"cos://{bucket}/jobs"
    with pytest.raises(ConfigError) as info:
        resolve_location(uri, environ=COS_ENV)
    assert str(info.value) == (
        f"{uri}: {bucket!r} is not a COS bucket name; COS buckets are named "
        "<name>-<appid>, e.g. cos://examplebucket-1250000000/jobs"
    )


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "environ"),
    [
        (COS_URI, COS_ENV),
        (
            "s3://jobs-archive/ci",
            {**AWS_ENV, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": TOKEN},
        ),
    ],
)
def test_repr_and_str_never_show_the_secret_key_or_token(uri: str, environ: dict[str, str]) -> None:
    location = resolve_location(uri, environ=environ)
    assert location.storage_options["secret_access_key"] == SECRET_KEY  # it is in there...
    for text in (repr(location), str(location), f"{location}", f"{location!r}"):
        assert SECRET_KEY not in text  # ...but never printed
        assert TOKEN not in text
    assert repr(location) == f"Location(uri={location.uri!r}, display={uri!r})"


# -- parse_storage_option -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("region=ap-guangzhou", ("region", "ap-guangzhou")),
        ("proxy_url=http://p:3128/?a=b", ("proxy_url", "http://p:3128/?a=b")),
        ("session_token=abc==", ("session_token", "abc==")),
        (" region =ap-guangzhou", ("region", "ap-guangzhou")),
        ("region= ap-guangzhou ", ("region", " ap-guangzhou ")),
        ("allow_http=", ("allow_http", "")),
    ],
)
def test_parse_storage_option_splits_at_the_first_equals_sign(
    text: str, pair: tuple[str, str]
) -> None:
    assert parse_storage_option(text) == pair


@pytest.mark.parametrize("text", ["region", "", "=ap-guangzhou", "  =x"])
def test_parse_storage_option_refuses_no_key_or_no_equals_sign(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_storage_option(text)
    assert str(info.value) == f"a storage option is KEY=VALUE, got {text!r}"


@given(
    key=st.text(
        st.characters(blacklist_characters="=", blacklist_categories=["Cs"]), min_size=1
    ).filter(str.strip),
    value=st.text(st.characters(blacklist_categories=["Cs"])),
)
def test_parse_storage_option_round_trips(key: str, value: str) -> None:
    assert parse_storage_option(f"{key}={value}") == (key.strip(), value)


# -- arrow_filesystem ---------------------------------------------------------------------------


def test_arrow_filesystem_of_cos_puts_the_bucket_back_for_virtual_addressing() -> None:
    location = resolve_location(COS_URI, {"proxy_url": "http://127.0.0.1:3128"}, environ=COS_ENV)
    filesystem, root = location.arrow_filesystem()
    assert root == f"{COS_BUCKET}/jobs"
    assert filesystem.region == "ap-guangzhou"
    options = arrow_options(filesystem)
    # object_store wants the bucket in the endpoint; pyarrow adds it itself.
    assert options["endpoint_override"] == "cos.ap-guangzhou.myqcloud.com"
    assert options["scheme"] == "https"
    assert options["force_virtual_addressing"] is True
    assert (options["access_key"], options["secret_key"], options["session_token"]) == (
        "AKIDcosexample",
        SECRET_KEY,
        TOKEN,
    )
    assert options["proxy_options"] == {
        "scheme": "http",
        "host": "127.0.0.1",
        "port": 3128,
        "username": "",
        "password": "",
    }


def test_arrow_filesystem_of_a_path_style_endpoint() -> None:
    location = resolve_location("s3://jobs-archive", environ=AWS_ENV)
    filesystem, root = location.arrow_filesystem()
    assert root == "jobs-archive"
    options = arrow_options(filesystem)
    assert (options["endpoint_override"], options["scheme"]) == ("127.0.0.1:9000", "http")
    assert options["force_virtual_addressing"] is False
    assert (options["region"], options["access_key"], options["session_token"]) == (
        "eu-west-1",
        "AKIAexample",
        "aws-token",
    )


def test_arrow_filesystem_keeps_an_endpoint_without_the_bucket() -> None:
    location = resolve_location(
        "s3://jobs-archive/ci",
        {"endpoint": "minio.internal:9000", "virtual_hosted_style_request": "yes"},
        environ={},
    )
    options = arrow_options(location.arrow_filesystem()[0])
    assert (options["endpoint_override"], options["scheme"]) == ("minio.internal:9000", "https")
    assert options["force_virtual_addressing"] is True


def test_arrow_filesystem_without_options_uses_pyarrows_defaults() -> None:
    options = arrow_options(
        resolve_location("s3://jobs-archive/ci", environ={}).arrow_filesystem()[0]
    )
    assert options["endpoint_override"] == ""
    assert options["access_key"] is None  # pyarrow's own credential chain
    assert options["force_virtual_addressing"] is False


def test_arrow_filesystem_turns_a_bad_proxy_into_a_config_error_without_secrets() -> None:
    location = resolve_location(COS_URI, {"proxy_url": "ftp://proxy"}, environ=COS_ENV)
    with pytest.raises(ConfigError) as info:
        location.arrow_filesystem()
    message = str(info.value)
    assert message.startswith(f"cannot configure storage for {COS_URI}: ")
    assert "ftp" in message
    assert SECRET_KEY not in message
    assert TOKEN not in message


def test_arrow_filesystem_turns_a_malformed_endpoint_into_a_config_error() -> None:
    location = resolve_location("s3://jobs-archive/ci", {"endpoint": "http://[::1"}, environ={})
    with pytest.raises(ConfigError, match="cannot configure storage for s3://jobs-archive/ci"):
        location.arrow_filesystem()


def test_the_location_module_reads_no_environment_for_a_local_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    location = resolve_location("ds")
    assert location.storage_options == {}
    assert location.uri == os.path.abspath("ds")


def test_location_is_a_value() -> None:
    one = resolve_location(COS_URI, environ=COS_ENV)
    assert one == resolve_location(COS_URI, environ=COS_ENV)
    assert one != resolve_location(COS_URI, {"region": "ap-beijing"}, environ=COS_ENV)
    assert isinstance(one, Location)
