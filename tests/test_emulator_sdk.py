"""The official Python SDK, an independent client, sees exactly the emulator's jobs.

``qcloud_cos.CosS3Client.ci_list_media_jobs`` is configured as reference §7.2 configuration B
(``Scheme='http'``, ``IP``/``Port`` of the emulator, ``Endpoint='ci.<region>.myqcloud.com'``), so
it connects to the loopback emulator and signs the CI host. Its signer and XML parsing share no
code with this package.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

import pytest
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

from cijobs_analytics.config import Credentials
from cijobs_analytics.emulator import Emulator
from cijobs_analytics.schema import TAGS

MakeEmulator = Callable[..., Emulator]


def sdk_client(emu: Emulator, creds: Credentials | None = None) -> CosS3Client:
    """An SDK client in configuration B pointed at the emulator, without retries."""
    creds = creds or emu.credentials
    conf = CosConfig(
        Region=emu.region,
        SecretId=creds.secret_id,
        SecretKey=creds.secret_key,
        Token=creds.token,
        Scheme="http",
        IP="127.0.0.1",
        Port=emu.port,
        Endpoint=f"ci.{emu.region}.myqcloud.com",
        Timeout=10,
    )
    return CosS3Client(conf, retry=0)


def sdk_list_all(client: CosS3Client, emu: Emulator, tag: str, **kwargs: Any) -> list[str]:
    """Page through one tag with ci_list_media_jobs; job ids in the order served."""
    ids: list[str] = []
    token = ""
    for _ in range(1000):
        resp = client.ci_list_media_jobs(
            Bucket=emu.bucket, Tag=tag, Size=100, NextToken=token, **kwargs
        )
        ids += [job["JobId"] for job in resp.get("JobsDetail", [])]
        token = resp.get("NextToken") or ""
        if not token:
            return ids
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("order", ["Asc", None])
def test_sdk_pages_every_tag_and_sees_exactly_the_truth(
    emulator: Emulator, order: str | None
) -> None:
    """Asc and the SDK's default (Desc) both return every job of every tag exactly once."""
    client = sdk_client(emulator)
    kwargs = {"OrderByTime": order} if order else {}
    served: list[str] = []
    for tag in TAGS:
        ids = sdk_list_all(client, emulator, tag, **kwargs)
        expected = [job.job_id for job in emulator.truth(tags=[tag])]
        assert ids == (expected if order == "Asc" else expected[::-1])
        served += ids
    assert len(served) == len(set(served))
    assert set(served) == {job.job_id for job in emulator.truth()}


def test_sdk_sees_the_same_fields(emulator: Emulator) -> None:
    """The SDK's parse of a page agrees with the emulator's jobs field by field."""
    client = sdk_client(emulator)
    resp = client.ci_list_media_jobs(
        Bucket=emulator.bucket,
        Tag="Transcode",
        QueueId=emulator.queue_ids[0],
        States="Success,Failed",
        Size=50,
        OrderByTime="Asc",
    )
    truth = emulator.truth(
        tags=["Transcode"], queue_ids=emulator.queue_ids[:1], states=["Success", "Failed"]
    )
    for got, job in zip(resp["JobsDetail"], truth[:50], strict=True):
        assert got["JobId"] == job.job_id
        assert got["State"] == job.state
        assert got["Code"] == job.code
        assert (got["Message"] or "") == job.message
        assert got["Input"]["Object"] == job.input_object
        assert got["QueueId"] == job.queue_id


def test_sdk_time_window(emulator: Emulator) -> None:
    """StartCreationTime/EndCreationTime as the SDK sends them select (start, end)."""
    jobs = emulator.truth(tags=["Snapshot"])
    start, end = jobs[10].creation_time, jobs[-10].creation_time
    client = sdk_client(emulator)
    fmt = "%Y-%m-%dT%H:%M:%S+0800"
    china = timezone(timedelta(hours=8))
    ids = sdk_list_all(
        client,
        emulator,
        "Snapshot",
        OrderByTime="Asc",
        StartCreationTime=start.astimezone(china).strftime(fmt),
        EndCreationTime=end.astimezone(china).strftime(fmt),
    )
    assert ids == [j.job_id for j in jobs if start < j.creation_time < end]


def test_sdk_with_a_wrong_key_gets_401(emulator: Emulator) -> None:
    wrong = Credentials(emulator.credentials.secret_id, "wrong-secret-key")
    with pytest.raises(CosServiceError) as caught:
        sdk_client(emulator, wrong).ci_list_media_jobs(Bucket=emulator.bucket, Tag="Transcode")
    assert caught.value.get_status_code() == 401
    assert b"<Code>AccessDenied</Code>" in caught.value.get_origin_msg().encode()


def test_sdk_with_temporary_credentials(make_emulator: MakeEmulator) -> None:
    """Configuration E: the SDK sends and signs x-ci-security-token; a wrong token is refused."""
    creds = Credentials("AKIDtemporary", "temporary-secret", token="TOKEN123/x+y=")
    emu = make_emulator(jobs=100, credentials=creds)
    ids = sdk_list_all(sdk_client(emu), emu, "Transcode")
    assert sorted(ids) == sorted(j.job_id for j in emu.truth(tags=["Transcode"]))
    forged = Credentials(creds.secret_id, creds.secret_key, token="forged")
    with pytest.raises(CosServiceError) as caught:
        sdk_client(emu, forged).ci_list_media_jobs(Bucket=emu.bucket, Tag="Transcode")
    assert caught.value.get_status_code() == 401
