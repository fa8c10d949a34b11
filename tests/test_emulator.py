"""The emulator behaves like the reference says the CI ``GET /jobs`` endpoint does.

Requests are signed by a small signer written here from reference §6.1 (not the package's
``auth.py``) and responses are read with lxml directly, so these tests pin the emulator alone.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner
from lxml import etree

from cijobs_analytics.cli import cli
from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import EmulatedJob, Emulator
from cijobs_analytics.errors import ConfigError
from cijobs_analytics.schema import OPEN_STATES, STATES, TAGS

Params = Sequence[tuple[str, str]]
MakeEmulator = Callable[..., Emulator]
CHINA = timezone(timedelta(hours=8))


# -- a signer of our own (reference §6.1) ----------------------------------------------------------


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def sign(
    creds: Credentials,
    method: str,
    path: str,
    params: Params,
    headers: dict[str, str],
    key_time: str | None = None,
) -> str:
    """The Authorization value for a request, signing every parameter and header given."""
    if key_time is None:
        now = int(time.time())
        key_time = f"{now - 60};{now + 3600}"
    pairs = sorted((_enc(k).lower(), _enc(v)) for k, v in params)
    hdrs = sorted((_enc(k).lower(), _enc(v)) for k, v in headers.items())
    http_string = "\n".join(
        [
            method.lower(),
            path,
            "&".join(f"{k}={v}" for k, v in pairs),
            "&".join(f"{k}={v}" for k, v in hdrs),
            "",
        ]
    )
    sign_key = hmac.new(creds.secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    digest = hashlib.sha1(http_string.encode(), usedforsecurity=False).hexdigest()  # q-sign
    to_sign = f"sha1\n{key_time}\n{digest}\n"
    signature = hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()
    return (
        f"q-sign-algorithm=sha1&q-ak={creds.secret_id}&q-sign-time={key_time}"
        f"&q-key-time={key_time}&q-header-list={';'.join(k for k, _ in hdrs)}"
        f"&q-url-param-list={';'.join(k for k, _ in pairs)}&q-signature={signature}"
    )


def call(
    emu: Emulator,
    params: Params = (),
    *,
    path: str = "/jobs",
    creds: Credentials | None = None,
    host: str | None = None,
    signed_params: Params | None = None,
    extra_headers: dict[str, str] | None = None,
    key_time: str | None = None,
    authorization: str | None = None,
) -> requests.Response:
    """GET ``path`` on the emulator, signed with ``creds`` (default: the emulator's)."""
    host = host or emu.host_header
    signed_headers = {"host": host, **(extra_headers or {})}
    auth = authorization
    if auth is None:
        auth = sign(
            creds or emu.credentials,
            "GET",
            path,
            params if signed_params is None else signed_params,
            signed_headers,
            key_time,
        )
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params)
    headers = {**signed_headers, "Host": host}
    if auth:
        headers["Authorization"] = auth
    url = f"{emu.url}{quote(path, safe='/,')}" + (f"?{query}" if query else "")
    return requests.get(url, headers=headers, timeout=10)


def page_ids(body: bytes) -> tuple[list[str], str]:
    root = etree.fromstring(body)
    assert root.tag == "Response"
    return [e.text or "" for e in root.findall("JobsDetail/JobId")], root.findtext(
        "NextToken"
    ) or ""


def list_all(emu: Emulator, tag: str, **filters: str) -> list[str]:
    """Page through one tag; the job ids in the order served."""
    ids: list[str] = []
    token = ""
    for _ in range(1000):
        params = [("tag", tag), ("size", filters.pop("size", "100")), *filters.items()]
        resp = call(emu, [*params, ("nextToken", token)])
        assert resp.status_code == 200, resp.text
        page, token = page_ids(resp.content)
        ids += page
        if not token:
            return ids
    raise AssertionError("pagination did not end")


def error_code(resp: requests.Response) -> str:
    return etree.fromstring(resp.content).findtext("Code") or ""


def wire(dt: datetime) -> str:
    """A time as the service wants it: ``2026-11-01T08:00:00+0800``."""
    return dt.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M:%S+0800")


# -- pagination and filters ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["Asc", "Desc"])
def test_paging_every_tag_returns_exactly_the_truth(emulator: Emulator, order: str) -> None:
    """Every tag paged to the end, 100 at a time, gives each job once, in creation order."""
    served: list[str] = []
    for tag in TAGS:
        ids = list_all(emulator, tag, orderByTime=order)
        expected = [job.job_id for job in emulator.truth(tags=[tag])]
        assert ids == (expected if order == "Asc" else expected[::-1])
        served += ids
    assert sorted(served) == sorted(job.job_id for job in emulator.truth())


def test_small_pages_and_queue_filter(emulator: Emulator) -> None:
    """size=7 pages through one queue's Transcode jobs; without queueId all queues are served."""
    queue = emulator.queue_ids[1]
    ids = list_all(emulator, "Transcode", queueId=queue, size="7", orderByTime="Asc")
    assert ids == [j.job_id for j in emulator.truth(tags=["Transcode"], queue_ids=[queue])]
    assert len({j.queue_id for j in emulator.truth(tags=["Transcode"])}) == 3


def test_default_page_is_ten_newest_first(emulator: Emulator) -> None:
    """Without size/order the service answers 10 jobs, newest first."""
    ids, token = page_ids(call(emulator, [("tag", "Transcode")]).content)
    assert ids == [j.job_id for j in emulator.truth(tags=["Transcode"])][::-1][:10]
    assert token


def _boundary_second(emu: Emulator) -> datetime:
    """A creation second on an exact hour that several Transcode jobs share... or at least one."""
    jobs = emu.truth(tags=["Transcode"])
    on_hour = [
        j.creation_time for j in jobs if j.creation_time.minute == 0 == j.creation_time.second
    ]
    assert on_hour, "the generator puts jobs on exact hours"
    return on_hour[len(on_hour) // 2]


def test_time_bounds_are_exclusive_by_default(emulator: Emulator) -> None:
    """Jobs created exactly at startCreationTime or endCreationTime are not returned."""
    second = _boundary_second(emulator)
    on_it = {
        j.job_id for j in emulator.truth(second, second + timedelta(seconds=1), tags=["Transcode"])
    }
    after = list_all(emulator, "Transcode", startCreationTime=wire(second))
    before = list_all(emulator, "Transcode", endCreationTime=wire(second))
    assert on_it
    assert not on_it & set(after)
    assert not on_it & set(before)
    truth_after = emulator.truth(second + timedelta(seconds=1), tags=["Transcode"])
    assert sorted(after) == sorted(j.job_id for j in truth_after)
    assert len(after) + len(before) + len(on_it) == len(emulator.truth(tags=["Transcode"]))


def test_time_bounds_inclusive_with_the_switch(make_emulator: MakeEmulator) -> None:
    """inclusive_bounds=True returns the jobs on both boundary seconds."""
    emu = make_emulator(jobs=600, days=2.0, seed=11, inclusive_bounds=True)
    second = _boundary_second(emu)
    on_it = {j.job_id for j in emu.truth(second, second + timedelta(seconds=1), tags=["Transcode"])}
    window = list_all(
        emu, "Transcode", startCreationTime=wire(second), endCreationTime=wire(second)
    )
    assert set(window) == on_it
    assert on_it


def test_offset_with_colon_is_accepted(emulator: Emulator) -> None:
    """A bound written with +08:00 means the same as +0800."""
    second = _boundary_second(emulator)
    colon = wire(second)[:-2] + ":00"
    assert list_all(emulator, "Transcode", startCreationTime=colon) == list_all(
        emulator, "Transcode", startCreationTime=wire(second)
    )


def test_states_filter(emulator: Emulator) -> None:
    """states=Failed,Cancel returns exactly the failed and cancelled jobs."""
    ids = list_all(emulator, "Transcode", states="Failed,Cancel", orderByTime="Asc")
    expected = [j.job_id for j in emulator.truth(tags=["Transcode"], states=["Failed", "Cancel"])]
    assert ids == expected
    assert expected
    assert list_all(emulator, "Transcode", states="All,Failed") == list_all(emulator, "Transcode")


def test_input_object_and_workflow_filters(emulator: Emulator) -> None:
    """inputObject matches exactly; workflowId selects that workflow's jobs."""
    job = next(j for j in emulator.truth(tags=["Transcode"]) if j.workflow_id)
    same_input = [
        j.job_id for j in emulator.truth(tags=["Transcode"]) if j.input_object == job.input_object
    ]
    assert sorted(list_all(emulator, "Transcode", inputObject=job.input_object)) == sorted(
        same_input
    )
    assert list_all(emulator, "Transcode", workflowId=job.workflow_id or "") == [job.job_id]


def test_queue_type_and_unknown_tag(emulator: Emulator) -> None:
    """Emulated queues are Transcoding queues; an unknown tag is an empty list, not an error."""
    assert list_all(emulator, "Snapshot", queueType="Transcoding") == list_all(emulator, "Snapshot")
    assert list_all(emulator, "Snapshot", queueType="Speeching") == []
    assert list_all(emulator, "Snapshot", queueType="Speeching", queueId=emulator.queue_ids[0])
    assert list_all(emulator, "PicProcess") == []


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ([("size", "10")], "tag is required"),
        ([("tag", "Transcode"), ("size", "0")], "between 1 and 100"),
        ([("tag", "Transcode"), ("size", "101")], "between 1 and 100"),
        ([("tag", "Transcode"), ("size", "ten")], "between 1 and 100"),
        ([("tag", "Transcode"), ("states", "Done")], "states"),
        ([("tag", "Transcode"), ("orderByTime", "desc")], "orderByTime"),
        ([("tag", "Transcode"), ("startCreationTime", "2026-11-01")], "startCreationTime"),
        ([("tag", "Transcode"), ("endCreationTime", "2026-11-01T00:00:00 0800")], "%2B"),
        ([("tag", "Transcode"), ("queueType", "Nope")], "queueType"),
        ([("tag", "Transcode"), ("nextToken", "garbage!")], "nextToken"),
    ],
)
def test_bad_parameters_are_invalid_argument(
    emulator: Emulator, params: Params, needle: str
) -> None:
    """Refused parameters give 400 InvalidArgument with a message naming the problem."""
    resp = call(emulator, params)
    assert resp.status_code == 400
    assert error_code(resp) == "InvalidArgument"
    assert needle in (etree.fromstring(resp.content).findtext("Message") or "")


def test_size_limits_accepted(emulator: Emulator) -> None:
    """size 1 and 100 are valid; unknown parameters are ignored; empty nextToken is page one."""
    one = call(emulator, [("tag", "Snapshot"), ("size", "1"), ("nextToken", ""), ("foo", "bar")])
    hundred = call(emulator, [("tag", "Transcode"), ("size", "100")])
    assert len(page_ids(one.content)[0]) == 1
    assert len(page_ids(hundred.content)[0]) == 100


def test_token_replayed_with_other_filters_is_refused(emulator: Emulator) -> None:
    """A NextToken belongs to its filters; size may change between pages."""
    _, token = page_ids(call(emulator, [("tag", "Transcode"), ("orderByTime", "Asc")]).content)
    other = call(emulator, [("tag", "Transcode"), ("orderByTime", "Desc"), ("nextToken", token)])
    assert other.status_code == 400
    assert "nextToken" in other.text
    bigger = call(
        emulator,
        [("tag", "Transcode"), ("orderByTime", "Asc"), ("size", "5"), ("nextToken", token)],
    )
    expected = [j.job_id for j in emulator.truth(tags=["Transcode"])][10:15]
    assert page_ids(bigger.content)[0] == expected


def test_last_page_has_empty_token(emulator: Emulator) -> None:
    """A page that ends on the last matching job carries an empty NextToken."""
    count = len(emulator.truth(tags=["Tts"]))
    resp = call(emulator, [("tag", "Tts"), ("size", str(count))])
    ids, token = page_ids(resp.content)
    assert len(ids) == count
    assert token == ""
    assert b"<NextToken></NextToken>" in resp.content


# -- jobs changing while a listing runs ------------------------------------------------------------


def test_tokens_stay_correct_while_jobs_are_created(make_emulator: MakeEmulator) -> None:
    """Desc paging started before advance() sees every old job once and none of the new ones;
    Asc paging without an end bound also sees the new jobs at its tail."""
    emu = make_emulator(jobs=400, days=1.0, seed=5)
    before = {j.job_id for j in emu.truth(tags=["Transcode"])}
    for order in ("Desc", "Asc"):
        seen: list[str] = []
        token = ""
        created: list[str] = []
        for page in range(100):
            resp = call(
                emu,
                [("tag", "Transcode"), ("size", "9"), ("orderByTime", order), ("nextToken", token)],
            )
            ids, token = page_ids(resp.content)
            seen += ids
            if page == 1:
                created = emu.advance(finish=1.0, new_jobs=60).created
            if not token:
                break
        assert len(seen) == len(set(seen))
        new_transcode = {j.job_id for j in emu.truth(tags=["Transcode"])} - before
        assert new_transcode <= set(created)
        if order == "Desc":
            assert set(seen) == before
        else:
            assert set(seen) == before | new_transcode
        before = {j.job_id for j in emu.truth(tags=["Transcode"])}


def test_advance_finishes_open_jobs_and_creates_new_ones(make_emulator: MakeEmulator) -> None:
    """advance() ends open jobs now with a final state and adds Submitted jobs stamped now."""
    emu = make_emulator(jobs=300, seed=2)
    open_before = [j for j in emu.truth() if j.state in OPEN_STATES]
    assert open_before, "the newest generated jobs are open"
    assert (
        min(j.creation_time for j in open_before)
        >= emu.truth()[len(emu.truth()) // 2].creation_time
    )
    half = emu.advance(finish=0.5)
    assert len(half.finished) == round(0.5 * len(open_before))
    assert not half.created
    t0 = datetime.now(UTC).replace(microsecond=0)
    result = emu.advance(finish=1.0, new_jobs=4)
    t1 = datetime.now(UTC)
    by_id = {j.job_id: j for j in emu.truth()}
    for job_id in half.finished + result.finished:
        job = by_id[job_id]
        assert job.state in ("Success", "Failed", "Cancel")
        assert job.end_time is not None
        assert job.end_time >= job.creation_time
    assert not [j for j in emu.truth() if j.state in OPEN_STATES and j.job_id not in result.created]
    for job_id in result.created:
        job = by_id[job_id]
        assert job.state == "Submitted"
        assert job.start_time is None
        assert t0 <= job.creation_time <= t1
    served = call(emu, [("tag", by_id[result.created[0]].tag), ("size", "100")])
    assert result.created[0].encode() in served.content
    with pytest.raises(ConfigError):
        emu.advance(finish=1.5)
    with pytest.raises(ConfigError):
        emu.advance(new_jobs=-1)


def test_served_xml_follows_state_changes(make_emulator: MakeEmulator) -> None:
    """A finished job is served with its new state and end time, no longer with ``-``."""
    emu = make_emulator(jobs=300, seed=3)
    job = next(j for j in reversed(emu.truth()) if j.state in OPEN_STATES)
    assert b"<EndTime>-</EndTime>" in job.xml_bytes
    emu.advance(finish=1.0)
    detail = etree.fromstring(call(emu, [], path=f"/jobs/{job.job_id}").content).find("JobsDetail")
    assert detail is not None
    new = {j.job_id: j for j in emu.truth()}[job.job_id]
    assert detail.findtext("State") == new.state != job.state
    assert detail.findtext("EndTime") not in (None, "-")


# -- GET /jobs/<ids> -------------------------------------------------------------------------------


def test_lookup_by_ids_lists_unknown_ones(emulator: Emulator) -> None:
    """Known ids come back as JobsDetail, unknown ones in NonExistJobIds."""
    jobs = emulator.truth()[:3]
    ids = [j.job_id for j in jobs] + ["jdeadbeef"]
    resp = call(emulator, [], path="/jobs/" + ",".join(ids))
    root = etree.fromstring(resp.content)
    assert [e.text for e in root.findall("JobsDetail/JobId")] == ids[:3]
    assert [e.text for e in root.findall("NonExistJobIds")] == ["jdeadbeef"]


def test_lookup_of_more_than_ten_ids_is_refused(emulator: Emulator) -> None:
    ids = [j.job_id for j in emulator.truth()[:11]]
    resp = call(emulator, [], path="/jobs/" + ",".join(ids))
    assert resp.status_code == 400
    assert error_code(resp) == "InvalidArgument"
    assert call(emulator, [], path="/nothing").status_code == 404


# -- signatures ------------------------------------------------------------------------------------


def test_missing_authorization(emulator: Emulator) -> None:
    resp = call(emulator, [("tag", "Transcode")], authorization="")
    assert (resp.status_code, error_code(resp)) == (401, "MissingAuthorization")


@pytest.mark.parametrize(
    "authorization",
    [
        "q-sign-algorithm=sha1&q-ak=AKID",
        "Bearer abc",
        "q-sign-algorithm=md5&q-ak=a&q-sign-time=1;2&q-key-time=1;2&q-header-list=host&q-url-param-list=&q-signature=x",
        "q-sign-algorithm=sha1&q-ak=a&q-sign-time=x&q-key-time=1;2&q-header-list=host&q-url-param-list=&q-signature=x",
    ],
)
def test_malformed_authorization(emulator: Emulator, authorization: str) -> None:
    resp = call(emulator, [("tag", "Transcode")], authorization=authorization)
    assert (resp.status_code, error_code(resp)) == (401, "InvalidAuthorization")


def test_unknown_secret_id(emulator: Emulator) -> None:
    stranger = Credentials("AKIDnobody", emulator.credentials.secret_key)
    resp = call(emulator, [("tag", "Transcode")], creds=stranger)
    assert (resp.status_code, error_code(resp)) == (401, "SecretidNotExist")


def test_expired_key_time(emulator: Emulator) -> None:
    now = int(time.time())
    resp = call(emulator, [("tag", "Transcode")], key_time=f"{now - 7200};{now - 3600}")
    assert (resp.status_code, error_code(resp)) == (401, "SignatureExpired")
    future = call(emulator, [("tag", "Transcode")], key_time=f"{now + 3600};{now + 7200}")
    assert error_code(future) == "SignatureExpired"


def test_wrong_key_and_tampered_request_are_denied(emulator: Emulator) -> None:
    wrong = Credentials(emulator.credentials.secret_id, "not-the-key")
    resp = call(emulator, [("tag", "Transcode")], creds=wrong)
    assert (resp.status_code, error_code(resp)) == (401, "AccessDenied")
    tampered = call(
        emulator,
        [("tag", "Transcode"), ("size", "20")],
        signed_params=[("tag", "Transcode"), ("size", "10")],
    )
    assert (tampered.status_code, error_code(tampered)) == (401, "AccessDenied")
    other_host = call(
        emulator,
        [("tag", "Transcode")],
        host="other-1250000000.ci.ap-guangzhou.myqcloud.com",
        authorization=sign(
            emulator.credentials,
            "GET",
            "/jobs",
            [("tag", "Transcode")],
            {"host": emulator.host_header},
        ),
    )
    assert error_code(other_host) == "AccessDenied"


def test_signature_in_the_query_string(emulator: Emulator) -> None:
    """The q-* fields may travel as query parameters instead of the Authorization header."""
    params = [("tag", "Snapshot"), ("size", "3")]
    auth = sign(emulator.credentials, "GET", "/jobs", params, {"host": emulator.host_header})
    fields = [tuple(part.split("=", 1)) for part in auth.split("&")]
    resp = call(emulator, [*params, *fields], authorization="")
    assert resp.status_code == 200
    assert len(page_ids(resp.content)[0]) == 3


def test_other_methods_are_refused(emulator: Emulator) -> None:
    resp = requests.post(f"{emulator.url}/jobs", data=b"<x/>", timeout=5)
    assert (resp.status_code, error_code(resp)) == (405, "MethodNotAllowed")
    assert resp.headers["x-ci-trace-id"]


def test_unsigned_parameters_are_ignored(emulator: Emulator) -> None:
    """A parameter outside q-url-param-list is not covered by the signature (and ignored)."""
    resp = call(
        emulator,
        [("tag", "Transcode"), ("response-cache-control", "no-cache")],
        signed_params=[("tag", "Transcode")],
    )
    assert resp.status_code == 200


def test_host_signed_with_or_without_port(make_emulator: MakeEmulator) -> None:
    """Domain-style clients (§7.2 C) send Host 127.0.0.1:port but may sign it without the port;
    only an emulator told to serve any Host answers them, since that Host names no bucket."""
    loose = make_emulator(jobs=20, pin_bucket=False)
    served = make_emulator(jobs=20)
    for emu in (loose, served):
        host = f"127.0.0.1:{emu.port}"
        statuses = []
        for signed_host in (host, "127.0.0.1"):
            auth = sign(
                emu.credentials, "GET", "/jobs", [("tag", "Transcode")], {"host": signed_host}
            )
            resp = call(emu, [("tag", "Transcode")], host=host, authorization=auth)
            statuses.append((resp.status_code, error_code(resp) if resp.status_code != 200 else ""))
        expected = (200, "") if emu is loose else (400, "InvalidHost")
        assert statuses == [expected, expected]


def test_temporary_credentials_need_their_token(make_emulator: MakeEmulator) -> None:
    """With a session token the signed x-ci-security-token (or x-cos-) header must match."""
    creds = Credentials("AKIDtemp", "temp-secret", token="TOKEN/abc+def=")
    emu = make_emulator(jobs=50, credentials=creds)
    params = [("tag", "Transcode")]
    assert (
        call(emu, params, extra_headers={"x-ci-security-token": creds.token or ""}).status_code
        == 200
    )
    assert (
        call(emu, params, extra_headers={"x-cos-security-token": creds.token or ""}).status_code
        == 200
    )
    assert error_code(call(emu, params)) == "AccessDenied"
    assert (
        error_code(call(emu, params, extra_headers={"x-ci-security-token": "forged"}))
        == "AccessDenied"
    )


@pytest.mark.parametrize(
    "host",
    [
        "other-1250000000.ci.ap-guangzhou.myqcloud.com",  # a typo in the bucket
        "examplebucket-1250000000.ci.ap-beijing.myqcloud.com",  # the wrong region
        "examplebucket-1250000000.ci.ap-guangzhou.example.com",  # not a CI host at all
    ],
)
def test_another_bucket_or_region_is_invalid_host(make_emulator: MakeEmulator, host: str) -> None:
    """Only the emulator's own bucket and region are served; any other Host, signed for it,
    is answered 400 InvalidHost with the usual <Error> body (§5.1), naming what is served."""
    emu = make_emulator(jobs=20)
    resp = call(emu, [("tag", "Transcode")], host=host)
    root = etree.fromstring(resp.content)
    assert (resp.status_code, root.findtext("Code")) == (400, "InvalidHost")
    assert [child.tag for child in root] == ["Code", "Message", "RequestId", "TraceId"]
    message = root.findtext("Message") or ""
    assert host in message
    assert message.endswith(
        "this emulator serves bucket examplebucket-1250000000 in region ap-guangzhou only"
    )
    assert emu.stats().by_code == {"InvalidHost": 1}
    assert call(emu, [("tag", "Transcode")], host=host.upper()).status_code == 400


def test_the_served_host_is_matched_case_insensitively(make_emulator: MakeEmulator) -> None:
    """Host names are case-insensitive; the SDK's COS-style Host in IP mode (§7.2 A) is served."""
    emu = make_emulator(jobs=20)
    for host in (emu.host_header.upper(), f"{emu.bucket}.cos.{emu.region}.myqcloud.com:80"):
        assert call(emu, [("tag", "Transcode")], host=host).status_code == 200
    loose = make_emulator(jobs=20, pin_bucket=False)
    host = "other-1250000000.ci.ap-beijing.myqcloud.com"
    assert call(loose, [("tag", "Transcode")], host=host).status_code == 200


def test_response_headers(emulator: Emulator) -> None:
    """Server tencent-ci and x-ci-request-id always; x-ci-trace-id and an <Error> on errors."""
    ok = call(emulator, [("tag", "Transcode")])
    bad = call(emulator, [("tag", "Transcode"), ("size", "0")])
    for resp in (ok, bad):
        assert resp.headers["Server"] == "tencent-ci"
        assert resp.headers["Content-Type"] == "application/xml"
        assert resp.headers["x-ci-request-id"]
        assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert "x-ci-trace-id" not in ok.headers
    root = etree.fromstring(bad.content)
    assert [child.tag for child in root] == ["Code", "Message", "RequestId", "TraceId"]
    assert root.findtext("RequestId") == bad.headers["x-ci-request-id"]
    assert root.findtext("TraceId") == bad.headers["x-ci-trace-id"]


# -- faults ----------------------------------------------------------------------------------------


def test_qps_limit_answers_slowdown(make_emulator: MakeEmulator) -> None:
    """Beyond the token bucket (burst 1, one token per 2 s) requests get 503 SlowDown."""
    emu = make_emulator(jobs=20, qps=0.5)
    responses = [call(emu, [("tag", "Transcode")]) for _ in range(6)]
    codes = [r.status_code for r in responses]
    assert codes[0] == 200
    assert codes.count(503) >= 4
    assert {error_code(r) for r in responses if r.status_code == 503} == {"SlowDown"}
    assert emu.stats().by_code["SlowDown"] == codes.count(503)
    emu.set_faults(qps=None)
    assert call(emu, [("tag", "Transcode")]).status_code == 200


def test_fail_rate_answers_internal_error(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(jobs=20, fail_rate=1.0)
    resp = call(emu, [("tag", "Transcode")])
    assert (resp.status_code, error_code(resp)) == (500, "InternalError")
    emu.set_faults(fail_rate=0.0)
    assert call(emu, [("tag", "Transcode")]).status_code == 200
    assert emu.stats().by_status == {500: 1, 200: 1}


def test_drop_closes_the_connection_mid_body(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(jobs=200, drop_rate=1.0)
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    path = "/jobs?tag=Transcode&size=50"
    conn.request(
        "GET",
        path,
        headers={
            "Host": emu.host_header,
            "Authorization": sign(
                emu.credentials,
                "GET",
                "/jobs",
                [("tag", "Transcode"), ("size", "50")],
                {"host": emu.host_header},
            ),
        },
    )
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    assert emu.stats().faults == {"drop": 1}


def test_truncate_sends_a_short_consistent_body(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(jobs=200, truncate_rate=1.0)
    resp = call(emu, [("tag", "Transcode"), ("size", "50")])
    assert resp.status_code == 200
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(resp.content)
    emu.set_faults(truncate_rate=0.0)
    full = call(emu, [("tag", "Transcode"), ("size", "50")]).content
    assert full.startswith(resp.content)
    assert len(resp.content) < len(full)


def test_malformed_body_has_the_seed_stray_message(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(jobs=200, malformed_rate=1.0)
    params = [("tag", "Transcode"), ("size", "20"), ("states", "Success,Running,Submitted")]
    resp = call(emu, params)
    assert b"<Code>Success</Code></Message><JobId>" in resp.content
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(resp.content)
    emu.set_faults(malformed_rate=0.0)
    clean = call(emu, params).content
    assert resp.content.replace(b"</Code></Message>", b"</Code><Message/>") == clean
    assert emu.stats().faults == {"malformed": 1}


def test_latency_does_not_serialise_connections(make_emulator: MakeEmulator) -> None:
    """Eight concurrent requests with 300 ms latency finish in far less than 8 x 300 ms."""
    emu = make_emulator(jobs=50, latency_ms=300)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(call(emu, [("tag", "Snapshot")]).status_code)
        )
        for _ in range(8)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert statuses == [200] * 8
    assert 0.3 <= elapsed < 2.0  # one after another would take 2.4 s


def test_a_client_hanging_up_is_routine(
    make_emulator: MakeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that goes away before its answer leaves no error and the server keeps serving."""
    caplog.set_level(logging.DEBUG, logger="cijobs_analytics.emulator")
    emu = make_emulator(jobs=50, latency_ms=200)
    auth = sign(emu.credentials, "GET", "/jobs", [("tag", "Transcode")], {"host": emu.host_header})
    with socket.create_connection(("127.0.0.1", emu.port)) as sock:
        request = f"GET /jobs?tag=Transcode HTTP/1.1\r\nHost: {emu.host_header}\r\n"
        sock.sendall(f"{request}Authorization: {auth}\r\n\r\n".encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.3)
    assert call(emu, [("tag", "Transcode")]).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("went away" in r.getMessage() for r in caplog.records)


def test_invalid_fault_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="fail_rate"):
        Emulator(jobs=1, fail_rate=1.5)
    with pytest.raises(ConfigError, match="qps"):
        Emulator(jobs=1, qps=0)
    emu = Emulator(jobs=1)
    with pytest.raises(ConfigError, match="drop_rate"):
        emu.set_faults(drop_rate=-0.1)
    with pytest.raises(ConfigError, match="not running"):
        _ = emu.url


# -- generated data --------------------------------------------------------------------------------


def test_same_seed_same_jobs_and_xml() -> None:
    end = datetime(2026, 3, 1, tzinfo=UTC)
    a = Emulator(jobs=300, days=3, seed=9, end=end).truth()
    b = Emulator(jobs=300, days=3, seed=9, end=end).truth()
    c = Emulator(jobs=300, days=3, seed=10, end=end).truth()
    assert a == b
    assert [j.to_xml() for j in a] == [j.to_xml() for j in b]
    assert [j.job_id for j in a] != [j.job_id for j in c]


def test_generated_history_is_realistic(emulator: Emulator) -> None:
    jobs = emulator.truth()
    assert len(jobs) == 600
    assert {j.tag for j in jobs} == set(TAGS)
    assert emulator.history_start == emulator.end - timedelta(days=2)
    assert all(emulator.history_start <= j.creation_time < emulator.end for j in jobs)
    seconds = [j.creation_time for j in jobs]
    assert len(seconds) - len(set(seconds)) >= 20, "bursts share a second"
    assert sum(1 for s in seconds if s.minute == 0 == s.second) >= 5, "hourly schedules"
    states = {j.state for j in jobs}
    assert {"Success", "Failed"} <= states
    assert states & set(OPEN_STATES)
    assert states <= set(STATES)
    failed = [j for j in jobs if j.state == "Failed"]
    assert len({j.code for j in failed}) >= 3
    assert all(j.message for j in failed)
    for job in jobs:
        if job.state in ("Submitted",):
            assert job.start_time is None
            assert job.end_time is None
        if job.state == "Running":
            assert job.start_time is not None
            assert job.end_time is None
        if job.start_time and job.end_time:
            assert job.creation_time <= job.start_time <= job.end_time <= emulator.end


def test_distributions_follow_a_busy_bucket() -> None:
    """A daily cycle in China time, Transcode then Snapshot most common, waits of seconds to
    minutes, media of 5 s to 2 h."""
    jobs = Emulator(jobs=6000, days=7, seed=4, end=datetime(2026, 5, 1, tzinfo=UTC)).truth()
    by_hour = Counter(j.creation_time.astimezone(CHINA).hour for j in jobs)
    assert by_hour[16] > 2 * by_hour[4]
    assert [tag for tag, _ in Counter(j.tag for j in jobs).most_common(2)] == [
        "Transcode",
        "Snapshot",
    ]
    waits = [(j.start_time - j.creation_time).total_seconds() for j in jobs if j.start_time]
    assert min(waits) >= 0
    assert max(waits) <= 900
    assert sorted(waits)[len(waits) // 2] < 60
    durations = [j.media_duration_s for j in jobs]
    assert min(durations) >= 5
    assert max(durations) <= 7200


@pytest.mark.slow
def test_generating_200k_jobs_takes_seconds() -> None:
    started = time.monotonic()
    emu = Emulator(jobs=200_000, days=30, seed=1, end=datetime(2026, 5, 1, tzinfo=UTC))
    assert time.monotonic() - started < 30  # ~3 s on an idle 2-core machine
    assert len(emu.truth()) == 200_000


def _details(jobs: list[EmulatedJob]) -> list[etree._Element]:
    return [etree.fromstring(j.xml_bytes) for j in jobs]


def test_rendered_jobs_cover_the_documented_shapes(emulator: Emulator) -> None:
    details = _details(emulator.truth())
    assert all(d.tag == "JobsDetail" for d in details)
    assert any(len(d.findall("Operation/MediaInfo/Stream/Video")) == 2 for d in details)
    assert any(len(d.findall("Operation/MediaInfo/Stream/Audio")) >= 2 for d in details)
    assert any(d.find("Operation/MediaInfo/Stream/Subtitle/Index") is not None for d in details)
    assert any(d.findtext("Operation/MediaInfo/Stream/Video/AvgFps") == "24/1" for d in details)
    assert any(len(d.findall("Operation/WatermarkTemplateId")) >= 2 for d in details)
    assert any(d.findtext("Operation/DigitalWatermark/State") for d in details)
    assert any(len(d.findall("Operation/MediaResult/OutputFile/ObjectName")) > 2 for d in details)
    assert any(
        d.find("Workflow/WorkflowId") is not None and d.find("Input/CosHeaders") is not None
        for d in details
    )
    assert any(d.findtext("StartTime") == "-" for d in details)
    assert any("&" in (d.findtext("Message") or "") for d in details) or any(
        "&" in (d.findtext("Input/Object") or "") for d in details
    )
    assert any(not (d.findtext("Input/Object") or "").isascii() for d in details)
    assert all((d.findtext("CreationTime") or "").endswith("+0800") for d in details)
    by_tag = {d.findtext("Tag"): d for d in details if d.findtext("State") == "Success"}
    assert by_tag["Snapshot"].find("Operation/Snapshot/Mode") is not None
    assert by_tag["QualityEstimate"].findtext("Operation/QualityEstimate/Score")
    assert by_tag["VideoTag"].find("Operation/VideoTagResult/StreamData/Data/Tags") is not None
    assert len(by_tag["VoiceSeparate"].findall("Operation/MediaResult/OutputFile/ObjectName")) >= 2


def test_stop_closes_keep_alive_connections(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(jobs=20)
    with requests.Session() as session:
        url = f"{emu.url}/jobs?tag=Transcode"
        auth = sign(
            emu.credentials, "GET", "/jobs", [("tag", "Transcode")], {"host": emu.host_header}
        )
        assert session.get(
            url, headers={"Host": emu.host_header, "Authorization": auth}, timeout=5
        ).ok
        emu.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(url, headers={"Host": emu.host_header, "Authorization": auth}, timeout=5)
    assert not emu.running


# -- the command line ----------------------------------------------------------------------------


def test_emulate_command_serves_with_demo_credentials() -> None:
    """`cijobs emulate` without credentials prints demo exports that the server accepts, lets
    jobs arrive with --advance-every, serves only the bucket and region it names, and stops
    cleanly on Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    cmd = [sys.executable, "-m", "cijobs_analytics", "emulate", "--port", "0", "--jobs", "120"]
    cmd += ["--advance-every", "0.2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
        url = re.search(r"at (http://127\.0\.0\.1:\d+)", lines[0])
        exports = dict(re.findall(r"export (TENCENTCLOUD_\w+)=(\S+)", "".join(lines)))
        assert url
        assert set(exports) == {"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"}
        assert "cijobs fetch --endpoint" in "".join(lines)
        creds = Credentials(exports["TENCENTCLOUD_SECRET_ID"], exports["TENCENTCLOUD_SECRET_KEY"])
        host = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"

        def count_jobs() -> int:
            total = 0
            for tag in TAGS:
                params = [("tag", tag), ("size", "100")]
                auth = sign(creds, "GET", "/jobs", params, {"host": host})
                resp = requests.get(
                    f"{url.group(1)}/jobs?tag={tag}&size=100",
                    headers={"Host": host, "Authorization": auth},
                    timeout=10,
                )
                assert resp.status_code == 200
                total += len(page_ids(resp.content)[0])
            return total

        first = count_jobs()
        time.sleep(1.0)
        assert 120 <= first < count_jobs()
        # Without --bucket it serves the default bucket, named in its banner, and no other.
        assert "bucket examplebucket-1250000000" in lines[0]
        for other in (
            "other-1250000000.ci.ap-guangzhou.myqcloud.com",
            "examplebucket-1250000000.ci.ap-beijing.myqcloud.com",
        ):
            auth = sign(creds, "GET", "/jobs", [("tag", "Transcode")], {"host": other})
            resp = requests.get(
                f"{url.group(1)}/jobs?tag=Transcode",
                headers={"Host": other, "Authorization": auth},
                timeout=10,
            )
            assert (resp.status_code, error_code(resp)) == (400, "InvalidHost")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert exports["TENCENTCLOUD_SECRET_KEY"] not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fail-rate", "2"], "--fail-rate"),
        (["--drop-rate", "-0.5"], "--drop-rate"),
        (["--qps", "0"], "--qps"),
        (["--port", "70000"], "--port"),
        (["--days", "0"], "--days"),
    ],
)
def test_emulate_command_rejects_bad_values(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(cli, ["emulate", *args])
    assert result.exit_code == 2
    assert needle in result.output


def test_environ_selects_the_emulators_key_for_child_processes() -> None:
    """`cijobs` subprocesses read the key from the environment; environ() sets exactly that."""
    base = {"PATH": "/bin", "TENCENTCLOUD_SESSION_TOKEN": "stale-token"}
    with Emulator(jobs=10, days=1.0, seed=1) as plain:
        env = plain.environ(base)
        assert env == {
            "PATH": "/bin",
            "TENCENTCLOUD_SECRET_ID": plain.credentials.secret_id,
            "TENCENTCLOUD_SECRET_KEY": plain.credentials.secret_key,
        }
        assert base["TENCENTCLOUD_SESSION_TOKEN"] == "stale-token"  # a copy, not changed
    temporary = Credentials("AKIDtemporary", "temporary-key", "session-token")
    with Emulator(jobs=10, days=1.0, seed=1, credentials=temporary) as emu:
        assert emu.environ({})["TENCENTCLOUD_SESSION_TOKEN"] == "session-token"
