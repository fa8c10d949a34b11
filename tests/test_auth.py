"""The q-sign signer: the reference's test vectors, step by step, and the official SDK as oracle."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from qcloud_cos import CosConfig
from qcloud_cos import cos_auth as sdk_auth
from strategies import SignCase, sign_cases

from cijobs_analytics import auth
from cijobs_analytics.config import Credentials
from cijobs_analytics.errors import ConfigError

# --- vector 0: the official COS documentation example ------------------------------------------

V0_KEY = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
V0_KEY_TIME = "1557989753;1557996953"
V0_PATH = "/exampleobject(腾讯云)"
V0_PARAMS = [
    ("response-content-type", "application/octet-stream"),
    ("response-cache-control", "max-age=600"),
]
V0_HEADERS = [
    ("Date", "Thu, 16 May 2019 06:55:53 GMT"),
    ("Host", "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"),
]

# --- vectors 1 and 2: DescribeMediaJobs -------------------------------------------------------

V1_ID = "AKIDEXAMPLE0000000000000000000000000"
V1_KEY = "EXAMPLESECRETKEY00000000000000000"
V1_HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
V1_NOW = 1_700_000_000
V1_KEY_TIME = "1699999940;1700010000"
V1_QUERY = (
    "tag=Transcode&orderByTime=Desc&states=Success%2CFailed&size=100&nextToken="
    "&queueId=p2242ab62c7c94486915508540933a2c6"
    "&startCreationTime=2023-11-14T00%3A00%3A00%2B0800"
    "&endCreationTime=2023-11-15T00%3A00%3A00%2B0800"
)
V1_PARAMS = [
    ("tag", "Transcode"),
    ("orderByTime", "Desc"),
    ("states", "Success,Failed"),
    ("size", "100"),
    ("nextToken", ""),
    ("queueId", "p2242ab62c7c94486915508540933a2c6"),
    ("startCreationTime", "2023-11-14T00:00:00+0800"),
    ("endCreationTime", "2023-11-15T00:00:00+0800"),
]
V1_HTTP_STRING = (
    "get\n/jobs\n"
    "endcreationtime=2023-11-15T00%3A00%3A00%2B0800&nexttoken=&orderbytime=Desc"
    "&queueid=p2242ab62c7c94486915508540933a2c6&size=100"
    "&startcreationtime=2023-11-14T00%3A00%3A00%2B0800&states=Success%2CFailed&tag=Transcode\n"
    f"host={V1_HOST}\n"
)
V1_AUTHORIZATION = (
    f"q-sign-algorithm=sha1&q-ak={V1_ID}&q-sign-time={V1_KEY_TIME}&q-key-time={V1_KEY_TIME}"
    "&q-header-list=host"
    "&q-url-param-list=endcreationtime;nexttoken;orderbytime;queueid;size;startcreationtime;"
    "states;tag&q-signature=2cdeaf79638621ef05149e77bff0d5703f8b9a91"
)
V2_TOKEN = "EXAMPLETOKEN/abc+def="


def _prepare(
    url: str, auth_: requests.auth.AuthBase, headers: dict[str, str] | None = None
) -> requests.PreparedRequest:
    return requests.Request("GET", url, headers=headers or {}, auth=auth_).prepare()


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - the algorithm under test


def _fields(header: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in header.split("&"))


def test_vector0_sign_key() -> None:
    """Vector 0: SignKey of the COS documentation example."""
    assert auth.sign_key(V0_KEY, V0_KEY_TIME) == "937914bf490e9e8c189836aad2052e4feeb35eaf"


def test_vector0_http_string_with_date_header_and_non_ascii_path() -> None:
    """Vector 0: the non-ASCII path stays unencoded; the Date header is signed when chosen."""
    text = auth.http_string("GET", V0_PATH, V0_PARAMS, V0_HEADERS)
    assert text == (
        "get\n/exampleobject(腾讯云)\n"
        "response-cache-control=max-age%3D600&response-content-type=application%2Foctet-stream\n"
        "date=Thu%2C%2016%20May%202019%2006%3A55%3A53%20GMT"
        "&host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com\n"
    )
    assert _sha1(text) == "54ecfe22f59d3514fdc764b87a32d8133ea611e6"


def test_vector0_string_to_sign_and_signature() -> None:
    """Vector 0: StringToSign carries the SHA1 of HttpString; the signature is the doc's."""
    text = auth.http_string("GET", V0_PATH, V0_PARAMS, V0_HEADERS)
    to_sign = auth.string_to_sign(V0_KEY_TIME, text)
    assert to_sign == f"sha1\n{V0_KEY_TIME}\n54ecfe22f59d3514fdc764b87a32d8133ea611e6\n"
    key = auth.sign_key(V0_KEY, V0_KEY_TIME)
    assert auth.signature(key, to_sign) == "01681b8c9d798a678e43b685a9f1bba0f6c0e012"


def test_vector0_authorization_lists_signed_names() -> None:
    """Vector 0: the Authorization header lists the signed header and parameter names."""
    header = auth.authorization(
        "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q",
        V0_KEY,
        method="GET",
        path=V0_PATH,
        params=V0_PARAMS,
        headers=V0_HEADERS,
        key_time_value=V0_KEY_TIME,
    )
    assert header == (
        "q-sign-algorithm=sha1&q-ak=AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
        f"&q-sign-time={V0_KEY_TIME}&q-key-time={V0_KEY_TIME}&q-header-list=date;host"
        "&q-url-param-list=response-cache-control;response-content-type"
        "&q-signature=01681b8c9d798a678e43b685a9f1bba0f6c0e012"
    )


def test_vector1_key_time_matches_sdk_window() -> None:
    """Vector 1: a window of 60 s back and 10000 s ahead of the frozen clock."""
    assert auth.key_time(V1_NOW, 10_000) == V1_KEY_TIME


def test_vector1_intermediate_values() -> None:
    """Vector 1: SignKey, HttpString, SHA1, StringToSign and Signature, one by one."""
    key = auth.sign_key(V1_KEY, V1_KEY_TIME)
    assert key == "54ba145132a72f0a9c6c4e83e4fd4b48a387998c"
    text = auth.http_string("GET", "/jobs", V1_PARAMS, [("Host", V1_HOST)])
    assert text == V1_HTTP_STRING
    assert _sha1(text) == "cbca3f8f4b2f7f40a9fee5f783b5137a07673991"
    to_sign = auth.string_to_sign(V1_KEY_TIME, text)
    assert to_sign == f"sha1\n{V1_KEY_TIME}\ncbca3f8f4b2f7f40a9fee5f783b5137a07673991\n"
    assert auth.signature(key, to_sign) == "2cdeaf79638621ef05149e77bff0d5703f8b9a91"


def test_vector1_through_requests() -> None:
    """Vector 1: QSignAuth on the SDK's wire URL gives the reference Authorization."""
    signer = auth.QSignAuth(Credentials(V1_ID, V1_KEY), expire=10_000, clock=lambda: V1_NOW)
    req = _prepare(f"https://{V1_HOST}/jobs?{V1_QUERY}", signer)
    assert req.headers["Authorization"] == V1_AUTHORIZATION
    assert auth.TOKEN_HEADER not in req.headers


def test_vector2_token_header_is_sent_and_signed() -> None:
    """Vector 2: the session token goes in x-ci-security-token and into the signature."""
    http_headers = auth.canonical_pairs([("Host", V1_HOST), (auth.TOKEN_HEADER, V2_TOKEN)])
    assert "&".join(f"{k}={v}" for k, v in http_headers) == (
        f"host={V1_HOST}&x-ci-security-token=EXAMPLETOKEN%2Fabc%2Bdef%3D"
    )
    text = auth.http_string(
        "GET", "/jobs", V1_PARAMS, [("Host", V1_HOST), (auth.TOKEN_HEADER, V2_TOKEN)]
    )
    assert _sha1(text) == "4a469981da84ced75d02342ef57f569aaff8a464"

    signer = auth.QSignAuth(
        Credentials(V1_ID, V1_KEY, V2_TOKEN), expire=10_000, clock=lambda: V1_NOW
    )
    req = _prepare(f"https://{V1_HOST}/jobs?{V1_QUERY}", signer)
    assert req.headers[auth.TOKEN_HEADER] == V2_TOKEN
    fields = _fields(req.headers["Authorization"])
    assert fields["q-header-list"] == "host;x-ci-security-token"
    assert fields["q-signature"] == "5448ad17268845838f6bdce854fd299e6d5d3f58"


def test_url_encode_table() -> None:
    """UrlEncode keeps only A-Za-z0-9-_.~; space is %20, '/' is %2F, hex is uppercase."""
    assert auth.url_encode("aZ09-_.~") == "aZ09-_.~"
    assert auth.url_encode(" +,:/=&?") == "%20%2B%2C%3A%2F%3D%26%3F"
    assert auth.url_encode("腾") == "%E8%85%BE"
    assert auth.url_encode("") == ""


def test_repeated_parameter_signs_each_value_once_listed() -> None:
    """A parameter sent twice is signed as two sorted pairs and listed once."""
    header = auth.authorization(
        "AKIDx",
        "k",
        method="GET",
        path="/jobs",
        params=[("b", "2"), ("a", "z"), ("b", "1")],
        headers=[("host", "h")],
        key_time_value="1;2",
    )
    assert _fields(header)["q-url-param-list"] == "a;b"
    text = auth.http_string("GET", "/jobs", [("b", "2"), ("a", "z"), ("b", "1")], [])
    assert text == "get\n/jobs\na=z&b=1&b=2\n\n"


def test_form_encoded_space_and_plus_are_signed_as_decoded() -> None:
    """A '+' on the wire is a space to the server, '%2B' is a plus; each is signed as such."""
    signer = auth.QSignAuth(Credentials("AKIDx", "k"), clock=lambda: V1_NOW)
    req = _prepare(f"https://{V1_HOST}/jobs?a=x+y&b=x%2By&c=x%20y&d", signer)
    expected = auth.authorization(
        "AKIDx",
        "k",
        method="GET",
        path="/jobs",
        params=[("a", "x y"), ("b", "x+y"), ("c", "x y"), ("d", "")],
        headers=[("host", V1_HOST)],
        key_time_value=auth.key_time(V1_NOW),
    )
    assert req.headers["Authorization"] == expected


def test_host_signed_as_sent_with_port() -> None:
    """Without sign_host the Host that goes on the wire, port included, is signed."""
    signer = auth.QSignAuth(Credentials("AKIDx", "k"), clock=lambda: V1_NOW)
    req = _prepare("http://127.0.0.1:8089/jobs?tag=Transcode", signer)
    expected = auth.authorization(
        "AKIDx",
        "k",
        method="GET",
        path="/jobs",
        params=[("tag", "Transcode")],
        headers=[("host", "127.0.0.1:8089")],
        key_time_value=auth.key_time(V1_NOW),
    )
    assert req.headers["Authorization"] == expected
    default_port = _prepare("https://Example.COM:443/jobs", signer)
    assert default_port.headers["Authorization"] == auth.authorization(
        "AKIDx",
        "k",
        method="GET",
        path="/jobs",
        params=[],
        headers=[("host", "example.com")],
        key_time_value=auth.key_time(V1_NOW),
    )


def test_sign_host_is_sent_and_signed() -> None:
    """sign_host puts the CI host in the Host header of a request to another address."""
    signer = auth.QSignAuth(
        Credentials(V1_ID, V1_KEY), expire=10_000, clock=lambda: V1_NOW, sign_host=V1_HOST
    )
    req = _prepare(f"http://127.0.0.1:8089/jobs?{V1_QUERY}", signer)
    assert req.headers["Host"] == V1_HOST
    assert req.headers["Authorization"] == V1_AUTHORIZATION


def test_content_type_and_x_headers_signed_others_not() -> None:
    """Content-Type and x-ci-*/x-cos-* are signed; User-Agent and Accept are not."""
    signer = auth.QSignAuth(Credentials("AKIDx", "k"), clock=lambda: V1_NOW)
    headers = {
        "Content-Type": "application/xml",
        "X-Cos-Sdk-Retry": "true",
        "x-ci-extra": "a b",
        "User-Agent": "ua",
        "Accept": "*/*",
    }
    req = _prepare(f"https://{V1_HOST}/jobs", signer, headers)
    assert _fields(req.headers["Authorization"])["q-header-list"] == (
        "content-type;host;x-ci-extra;x-cos-sdk-retry"
    )


def test_each_call_signs_with_current_clock() -> None:
    """The window follows the clock at signing time, not at construction."""
    now = [1_000_000.9]
    signer = auth.QSignAuth(Credentials("AKIDx", "k"), expire=30, clock=lambda: now[0])
    first = _fields(_prepare(f"https://{V1_HOST}/jobs", signer).headers["Authorization"])
    now[0] += 100
    second = _fields(_prepare(f"https://{V1_HOST}/jobs", signer).headers["Authorization"])
    assert first["q-key-time"] == "999940;1000030"
    assert second["q-key-time"] == "1000040;1000130"
    assert first["q-signature"] != second["q-signature"]


def test_repr_holds_no_secret() -> None:
    """The signer's repr names the key id only."""
    signer = auth.QSignAuth(Credentials("AKIDx", "topsecret", "tok3n"))
    assert "topsecret" not in repr(signer)
    assert "tok3n" not in repr(signer)
    assert "AKIDx" in repr(signer)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expire": 0}, "expire must be a positive"),
        ({"expire": True}, "expire must be a positive"),
        ({"expire": 1.5}, "expire must be a positive"),
        ({"sign_host": " "}, "sign_host must be"),
    ],
)
def test_bad_settings_refused(kwargs: dict[str, object], match: str) -> None:
    """Invalid expire or sign_host values raise ConfigError."""
    with pytest.raises(ConfigError, match=match):
        auth.QSignAuth(Credentials("AKIDx", "k"), **kwargs)  # type: ignore[arg-type]


def test_non_credentials_refused() -> None:
    """A tuple or a dict in place of Credentials raises ConfigError naming the type."""
    with pytest.raises(ConfigError, match="tuple"):
        auth.QSignAuth(("AKIDx", "k"))  # type: ignore[arg-type]


# --- the official SDK as an independent oracle ------------------------------------------------


def _sdk_authorization(case: SignCase, url: str, headers: dict[str, str]) -> str:
    conf = CosConfig(
        Region="ap-guangzhou", SecretId=case.secret_id, SecretKey=case.secret_key, Scheme="https"
    )
    signer = sdk_auth.CosS3Auth(conf, case.path, params=case.params, expire=10_000)
    # Freeze only the oracle's clock: its module sees a `time` whose time() is the case's now.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sdk_auth, "time", SimpleNamespace(time=lambda: case.now))
        req = requests.Request("GET", url, headers=headers, params=case.params, auth=signer)
        return str(req.prepare().headers["Authorization"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sign_cases)
def test_matches_official_sdk(case: SignCase) -> None:
    """For generated paths, parameters and headers our signature equals CosS3Auth's."""
    url = f"https://{case.host}{case.path}"
    headers = dict(case.headers)
    if case.explicit_host:
        headers["Host"] = case.host
    sdk_headers = dict(headers)
    if case.token:
        # The SDK's client adds the token header before its auth runs; ours adds it itself.
        sdk_headers[auth.TOKEN_HEADER] = case.token
    expected = _sdk_authorization(case, url, sdk_headers)

    ours = auth.QSignAuth(
        Credentials(case.secret_id, case.secret_key, case.token),
        expire=10_000,
        clock=lambda: case.now,
    )
    req = requests.Request("GET", url, headers=headers, params=case.params, auth=ours).prepare()
    assert req.headers["Authorization"] == expected
