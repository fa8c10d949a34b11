"""CIClient arguments are checked before anything is sent, with messages that name the fix."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from client_support import CREDS, MakeEmulator, client_for

from cijobs_analytics import fetch_jobs, iter_jobs
from cijobs_analytics._request_args import check_states
from cijobs_analytics.client import CIClient
from cijobs_analytics.errors import ConfigError

# --- arguments are checked before anything is sent ------------------------------------------------

NAIVE = datetime(2026, 11, 1, 8, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tag": ""}, "tag must be"),
        ({"tag": None}, "tag must be"),
        ({"size": 0}, "size must be an integer from 1 to 100"),
        ({"size": 101}, "size must be"),
        ({"size": True}, "size must be"),
        ({"size": "10"}, "size must be"),
        ({"states": ["Done"]}, "states must be among"),
        ({"states": "Success,Nope"}, "states must be among"),
        ({"states": []}, "states must be among"),
        ({"order": "asc"}, "order must be 'Asc' or 'Desc'"),
        ({"start": NAIVE}, "naive datetime"),
        ({"end": "yesterday"}, "not an ISO 8601 time"),
        (
            {"start": "2026-11-01T10:00:00Z", "end": "2026-11-01T10:00:00Z"},
            "start must be before end",
        ),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "start must be before end"),
        (
            {"start": "2026-11-01T10:00:00.2Z", "end": "2026-11-01T10:00:00.9Z"},
            "start must be before end",
        ),
        ({"queue_id": ""}, "queue_id must be"),
        ({"workflow_id": 5}, "workflow_id must be"),
        ({"input_object": ""}, "input_object must be"),
        ({"next_token": 42}, "next_token must be"),
    ],
)
def test_list_jobs_arguments_refused_before_sending(
    make_emulator: MakeEmulator, kwargs: dict[str, Any], match: str
) -> None:
    """Invalid list_jobs arguments raise ConfigError and send nothing."""
    emu = make_emulator()
    arguments = {"tag": "Transcode", **kwargs}
    with client_for(emu) as client, pytest.raises(ConfigError, match=match):
        client.list_jobs(**arguments)
    assert emu.stats().requests == 0


@pytest.mark.parametrize(
    ("job_ids", "match"),
    [
        ("j1,j2", "not one string"),
        (["j1", "j2,j3"], "no comma"),
        (["j1", ""], "no comma"),
        (["j1/../x"], "no comma"),
        (["j 1"], "no comma"),
        ([None], "no comma"),
    ],
)
def test_get_jobs_arguments_refused_before_sending(
    make_emulator: MakeEmulator, job_ids: Any, match: str
) -> None:
    """Bad job ids raise ConfigError and send nothing."""
    emu = make_emulator()
    with client_for(emu) as client, pytest.raises(ConfigError, match=match):
        client.get_jobs(job_ids)
    assert emu.stats().requests == 0


def test_valid_edge_arguments_accepted(make_emulator: MakeEmulator) -> None:
    """size 1 and 100, states 'All' and a comma string, aware times in any zone are sent."""
    emu = make_emulator()
    with client_for(emu) as client:
        assert client.list_jobs("Transcode", size=1).table.num_rows == 1
        assert client.list_jobs("Transcode", size=100, states="All").table.num_rows == 100
        page = client.list_jobs(
            "Transcode",
            states="Success, Failed",
            start=datetime(2026, 10, 31, 20, 0, tzinfo=timezone(timedelta(hours=8))),
            end="2026-11-01T12:00:00+00:00",
        )
    assert set(page.table.column("state").to_pylist()) <= {"Success", "Failed"}
    assert emu.stats().requests == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("Bad_Bucket", "ap-guangzhou"), {}, "bucket must be lowercase"),
        (("examplebucket-1250000000", "ap guangzhou"), {}, "region must be"),
        (
            ("examplebucket-1250000000", "ap-guangzhou"),
            {"endpoint": "ftp://127.0.0.1"},
            "endpoint must be",
        ),
        (
            ("examplebucket-1250000000", "ap-guangzhou"),
            {"endpoint": "http://h/prefix"},
            "endpoint must be",
        ),
        (
            ("examplebucket-1250000000", "ap-guangzhou"),
            {"endpoint": "http://h:99999"},
            "invalid port",
        ),
        (("examplebucket-1250000000", "ap-guangzhou"), {"timeout": 0}, "timeout must be positive"),
        (("examplebucket-1250000000", "ap-guangzhou"), {"timeout": (1, 2, 3)}, "timeout must be"),
        (("examplebucket-1250000000", "ap-guangzhou"), {"max_retries": -1}, "max_retries"),
        (("examplebucket-1250000000", "ap-guangzhou"), {"backoff": "1"}, "backoff must be"),
        (
            ("examplebucket-1250000000", "ap-guangzhou"),
            {"throttle_timeout": -1},
            "throttle_timeout must be",
        ),
    ],
)
def test_client_settings_refused(args: tuple[str, str], kwargs: dict[str, Any], match: str) -> None:
    """Invalid constructor arguments raise ConfigError naming the fix."""
    with pytest.raises(ConfigError, match=match):
        CIClient(*args, CREDS, **kwargs)


def test_credentials_type_checked() -> None:
    """A (id, key) tuple in place of Credentials is refused."""
    with pytest.raises(ConfigError, match=r"Credentials\.from_env"):
        CIClient("examplebucket-1250000000", "ap-guangzhou", ("AKID", "k"))  # type: ignore[arg-type]


def test_default_url_and_repr() -> None:
    """Without an endpoint the client talks HTTPS to the CI host; repr shows no secret."""
    client = CIClient("examplebucket-1250000000", "ap-guangzhou", CREDS)
    assert client.base_url == "https://examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
    assert client.host == "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
    assert "very-secret" not in repr(client)
    with CIClient(
        "examplebucket-1250000000", "ap-guangzhou", CREDS, "http://127.0.0.1:8089/"
    ) as local:
        assert local.base_url == "http://127.0.0.1:8089"
        assert local.host == client.host
    client.close()


# --- one rule for states, in list_jobs and in the fetch engine --------------------------------


@pytest.mark.parametrize(
    "states",
    [[], [""], ["Success", "  "], [None], ["Done"], "Success,Nope", "Success,,Failed", ["success"]],
)
def test_list_jobs_and_fetch_refuse_states_alike(states: Any) -> None:
    """A bad states argument gets the same ConfigError from list_jobs and from iter_jobs."""
    client = CIClient("examplebucket-1250000000", "ap-guangzhou", CREDS, "http://127.0.0.1:9")
    with pytest.raises(ConfigError) as listed:
        client.list_jobs("Transcode", states=states)
    with pytest.raises(ConfigError) as fetched:
        iter_jobs(client, "2026-11-01", "2026-11-02", states=states)
    assert str(fetched.value) == str(listed.value)
    assert "states must be" in str(listed.value)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (None, None),
        ("All", None),
        (["Failed", "All"], None),
        ("Failed", ["Failed"]),
        ("Success, Failed", ["Success", "Failed"]),
        ([" Failed ", "Success", "Failed"], ["Failed", "Success"]),
        (("Pause", "Cancel"), ["Pause", "Cancel"]),
    ],
)
def test_check_states_returns_the_distinct_names(states: Any, expected: list[str] | None) -> None:
    """Names come back stripped, in first order, once each; None means every state."""
    assert check_states(states) == expected


def test_fetch_accepts_a_comma_separated_states_string(make_emulator: MakeEmulator) -> None:
    """iter_jobs takes the comma string list_jobs takes and filters on both states."""
    emu = make_emulator()
    with client_for(emu) as client:
        table = fetch_jobs(
            client,
            emu.history_start,
            emu.end,
            tags=["Transcode"],
            states="Success, Failed",
            progress=False,
        )
    truth = emu.truth(emu.history_start, emu.end, tags=["Transcode"], states=["Success", "Failed"])
    assert sorted(table.column("job_id").to_pylist()) == sorted(job.job_id for job in truth)
    assert set(table.column("state").to_pylist()) == {"Success", "Failed"}


@pytest.mark.parametrize("workers", [0, -1, 65, True, 8.0, "8"])
def test_worker_counts_outside_the_pool_are_refused_before_any_request(
    workers: Any, tmp_path: Any
) -> None:
    """More workers than the client's connection pool would discard and reopen connections."""
    from cijobs_analytics import export

    client = CIClient("b-1250000000", "ap-guangzhou", CREDS, endpoint="http://127.0.0.1:9")
    start, end = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"
    with pytest.raises(ConfigError, match=r"workers must be an integer from 1 to 64"):
        fetch_jobs(client, start, end, workers=workers, progress=False)
    with pytest.raises(ConfigError, match=r"workers must be an integer from 1 to 64"):
        export(client, tmp_path / "ds", since="1d", workers=workers, progress=False)
    assert client.stats.requests == 0
