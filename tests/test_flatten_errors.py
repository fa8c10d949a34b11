"""Bad bodies raise ResponseParseError with the first bytes; odd values are kept, not lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from cijobs_analytics import CIJobsError, ConfigError, ResponseParseError
from cijobs_analytics._jobrows import JobRows
from cijobs_analytics._jobtable import build_table
from cijobs_analytics.flatten import parse_page, parse_pages, parse_response

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
SEED = (SAMPLES / "seed-describe-media-jobs.xml").read_bytes()
TRANSCODE = (SAMPLES / "ref-9.1-transcode-success.xml").read_bytes()


def _one_job(inner: bytes) -> dict[str, object]:
    body = b"<Response><JobsDetail><JobId>j1</JobId>" + inner + b"</JobsDetail></Response>"
    (row,) = parse_response(body)[0].to_pylist()
    return row


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n ", "empty"),
        (SEED[:2000], "not well-formed"),
        (TRANSCODE[: len(TRANSCODE) // 2], "not well-formed"),
        (TRANSCODE[:-12], "not well-formed"),
        (
            b"<html><head><title>502 Bad Gateway</title></head>"
            b"<body><center><h1>502 Bad Gateway</h1></center><hr/><center>nginx</center></body>"
            b"</html>",
            "root is <html>",
        ),
        (b"<!-- html --><html><body><p>Service Unavailable<br></body></html>", "not well-formed"),
        (b'{"Response": {"JobsDetail": []}}', "not well-formed"),
        (b"<ListBucketResult><Name>b</Name></ListBucketResult>", "root is <ListBucketResult>"),
        (b"\x00\x01\x02garbage", "not well-formed"),
    ],
    ids=[
        "zero-bytes",
        "blank",
        "truncated-seed",
        "truncated-half",
        "truncated-end",
        "html-error-page",
        "html-unclosed",
        "json",
        "wrong-root",
        "binary",
    ],
)
def test_bad_bodies_raise_with_the_first_bytes(body: bytes, reason: str):
    with pytest.raises(ResponseParseError, match=reason) as caught:
        parse_response(body)
    error = caught.value
    assert isinstance(error, CIJobsError)
    assert error.transient is True
    assert error.head == body[: ResponseParseError.HEAD_BYTES]
    if body.strip():
        assert repr(body[:20])[2:-1] in str(error)


def test_an_error_body_says_it_is_an_api_error_and_shows_its_code():
    body = (
        b"<?xml version='1.0' encoding='utf-8' ?><Error><Code>SlowDown</Code>"
        b"<Message>too many requests</Message><RequestId>req-9</RequestId></Error>"
    )
    with pytest.raises(ResponseParseError) as caught:
        parse_page(body)
    assert "API error" in str(caught.value)
    assert "Code=SlowDown" in str(caught.value)
    assert caught.value.request_id == "req-9"


def test_request_id_is_quoted_in_the_error():
    with pytest.raises(ResponseParseError, match=r"\[request id abc-123\]"):
        parse_page(b"<Response><JobsDetail>", request_id="abc-123")


def test_a_truncated_seed_is_not_repaired_into_fewer_jobs():
    """The repair is for the stray </Message> only: a seed cut short still fails."""
    cut = SEED[: SEED.index(b"</JobsDetail>") + len(b"</JobsDetail>") + 40]
    with pytest.raises(ResponseParseError, match="not well-formed"):
        parse_page(cut)


def test_other_mismatched_tags_are_not_recovered():
    with pytest.raises(ResponseParseError, match="not well-formed"):
        parse_page(b"<Response><JobsDetail><JobId>j1</JobId><State>Success</Stat></JobsDetail>")
    # a </Message> that is not right after </Code>
    with pytest.raises(ResponseParseError, match="not well-formed"):
        parse_page(b"<Response><JobsDetail><JobId>j1</JobId></Message></JobsDetail></Response>")


def test_no_repair_when_the_job_already_opened_a_message():
    body = (
        b"<Response><JobsDetail><Message><Code>Success</Code></Message><JobId>j1</JobId>"
        b"<Code>X</Code></Message></JobsDetail></Response>"
    )
    with pytest.raises(ResponseParseError, match="not well-formed"):
        parse_page(body)


def test_the_repair_allows_blanks_and_keeps_every_job():
    body = (
        b"<Response>\n<JobsDetail>\n  <Code>Success</Code>\n  </Message>\n  <JobId>j1</JobId>\n"
        b"</JobsDetail>\n<JobsDetail><Code>Success</Code><Message/><JobId>j2</JobId></JobsDetail>"
        b"\n</Response>"
    )
    page = parse_page(body)
    assert page.recovered is True
    assert page.table.column("job_id").to_pylist() == ["j1", "j2"]


def test_a_job_without_job_id_fails_the_page():
    with pytest.raises(ResponseParseError, match="job 2 of the page has no JobId"):
        parse_page(
            b"<Response><JobsDetail><JobId>j1</JobId></JobsDetail>"
            b"<JobsDetail><JobId>-</JobId></JobsDetail></Response>"
        )


def test_parse_pages_names_the_bad_page():
    good = b"<Response><JobsDetail><JobId>j1</JobId></JobsDetail></Response>"
    with pytest.raises(ResponseParseError, match=r"^page 3: .*not well-formed"):
        parse_pages([good, good, b"<Response><JobsDetail>", good])


def test_a_body_must_be_bytes():
    with pytest.raises(ResponseParseError, match="must be bytes"):
        parse_response("<Response/>")  # type: ignore[arg-type]


def test_a_naive_fetched_at_is_refused():
    with pytest.raises(ConfigError, match="naive"):
        parse_response(b"<Response/>", fetched_at=datetime(2026, 11, 1))


# --- entities --------------------------------------------------------------------------------


def test_an_external_entity_is_never_read(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE Response [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        "<Response><JobsDetail><JobId>j1</JobId><Message>&xxe;</Message></JobsDetail>"
        "</Response>"
    ).encode()
    with pytest.raises(ResponseParseError, match="DOCTYPE") as caught:
        parse_response(body)
    assert "TOP-SECRET-CONTENT" not in str(caught.value)


def test_an_entity_expansion_bomb_ends_quickly():
    lol = '<!ENTITY lol0 "lollollollollollollollollollol">'
    lol += "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    body = (
        f"<?xml version='1.0'?><!DOCTYPE Response [{lol}]>"
        "<Response><JobsDetail><JobId>j1</JobId><Message>&lol9;</Message></JobsDetail>"
        "</Response>"
    ).encode()
    started = time.perf_counter()
    with pytest.raises(ResponseParseError, match="DOCTYPE"):
        parse_response(body)
    assert time.perf_counter() - started < 1.0


def test_an_undeclared_entity_is_an_error_not_an_expansion():
    with pytest.raises(ResponseParseError, match="not well-formed"):
        parse_response(b"<Response><JobsDetail><JobId>&nope;</JobId></JobsDetail></Response>")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE Response [<!ENTITY x SYSTEM "file:///etc/hostname">]>',
        '<!DOCTYPE Response [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>',
        "<!DOCTYPE Response>",
        '<!DOCTYPE Response SYSTEM "file:///nonexistent/r.dtd">',
    ],
)
def test_a_doctype_is_refused_in_any_encoding(encoding: str, doctype: str):
    """The refusal looks at the parsed document, so no encoding hides a DOCTYPE from it."""
    label = encoding.upper().replace("-BE", "")
    text = (
        f'<?xml version="1.0" encoding="{label}"?>{doctype}<Response><JobsDetail>'
        "<JobId>j1</JobId><Message>m</Message></JobsDetail></Response>"
    )
    body = text.encode(encoding)
    assert b"<!DOCTYPE" not in body or encoding == "utf-8"
    with pytest.raises(ResponseParseError, match="DOCTYPE") as caught:
        parse_response(body)
    assert caught.value.reason.startswith("the response body declares a DOCTYPE")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_wide_encoding_without_doctype_still_parses(encoding: str):
    text = (
        f'<?xml version="1.0" encoding="{encoding.upper()}"?><Response><JobsDetail>'
        "<JobId>j1</JobId><Message>m</Message></JobsDetail></Response>"
    )
    table, _ = parse_response(text.encode(encoding))
    assert table.column("job_id").to_pylist() == ["j1"]
    assert table.column("message").to_pylist() == ["m"]


def test_entity_comment_and_pi_nodes_never_name_an_extra_key():
    """Nodes that are not elements (their tag is a function) are skipped by the planner."""
    job = etree.Element("JobsDetail")
    etree.SubElement(job, "JobId").text = "j1"
    message = etree.SubElement(job, "Message")
    message.text = "m "
    message.append(etree.Entity("x"))
    job.append(etree.Entity("y"))
    job.append(etree.Comment("c"))
    job.append(etree.ProcessingInstruction("pi", "data"))
    operation = etree.SubElement(job, "Operation")
    operation.append(etree.Entity("z"))
    etree.SubElement(operation, "Unknown").text = "kept"
    rows = JobRows()
    rows.add_job(job)
    table = build_table(rows)
    assert table.column("job_id").to_pylist() == ["j1"]
    assert table.column("message").to_pylist() == ["m "]
    assert table.column("extra").to_pylist() == [[("Operation/Unknown", "kept")]]


# --- odd values are kept ---------------------------------------------------------------------


def test_unparseable_typed_values_are_null_with_the_raw_text_in_extra():
    row = _one_job(
        b"<Progress>abc</Progress><CreationTime>yesterday</CreationTime>"
        b"<StartTime>2026-11-01T08:00:00</StartTime>"
        b"<Operation><JobLevel>high</JobLevel><MediaInfo><Format><Size>1e99</Size></Format>"
        b"<Stream><Video><Width>abc</Width><Height>720</Height><Rotation>left</Rotation></Video>"
        b"<Video><Width>wide</Width></Video></Stream></MediaInfo></Operation>"
    )
    assert row["progress"] is None
    assert row["creation_time"] is None
    assert row["start_time"] is None  # no offset: not guessed
    assert row["job_level"] is None
    assert row["size_bytes"] is None
    assert row["video_width"] is None
    assert row["video_height"] == 720
    assert row["video_rotation"] is None
    assert [stream["width"] for stream in row["streams"]] == [None, None]  # type: ignore[attr-defined]
    assert dict(row["extra"]) == {  # type: ignore[call-overload]
        "Progress": "abc",
        "CreationTime": "yesterday",
        "StartTime": "2026-11-01T08:00:00",
        "Operation/JobLevel": "high",
        "Operation/MediaInfo/Format/Size": "1e99",
        "Operation/MediaInfo/Stream/Video[0]/Rotation": "left",
        "Operation/MediaInfo/Stream/Video[0]/Width": "abc",
        "Operation/MediaInfo/Stream/Video[1]/Width": "wide",
    }


def test_lenient_numbers_and_offsets():
    row = _one_job(
        b"<Progress> 55 </Progress><CreationTime>2026-11-01T08:00:00+08:00</CreationTime>"
        b"<StartTime>2026-11-01T08:00:01+0800</StartTime>"
        b"<Operation><MediaInfo><Format><Size>1024.0</Size><Bitrate>834.736000</Bitrate></Format>"
        b"<Stream><Video><Fps>30000/1001</Fps><Width>1920</Width></Video></Stream>"
        b"</MediaInfo></Operation>"
    )
    assert row["progress"] == 55
    assert row["creation_time"] == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert row["queue_wait_s"] == 1.0
    assert (row["size_bytes"], row["bitrate_kbps"]) == (1024, 834.736)
    assert row["video_fps"] == pytest.approx(29.97003)
    assert row["extra"] == []


def test_dash_and_empty_are_null_in_every_typed_column():
    row = _one_job(b"<State>-</State><Message/><Code></Code><EndTime>-</EndTime>")
    assert (row["state"], row["message"], row["code"], row["end_time"]) == (None,) * 4


def test_repeated_mapped_leaves_keep_the_first_and_index_the_rest():
    row = _one_job(
        b"<State>Success</State><State>Failed</State><Input><Object>a</Object>"
        b"<Object>b</Object></Input>"
    )
    assert row["state"] == "Success"
    assert row["input_object"] == "a"
    assert dict(row["extra"]) == {"State[1]": "Failed", "Input/Object[1]": "b"}  # type: ignore[call-overload]


def test_attributes_go_to_extra_as_path_at_name():
    row = _one_job(b'<Input lang="zh"><Object kind="key">a.mp4</Object></Input>')
    assert row["input_object"] == "a.mp4"
    assert dict(row["extra"]) == {"Input/@lang": "zh", "Input/Object/@kind": "key"}  # type: ignore[call-overload]


def test_several_workflows_keep_all_their_leaves():
    row = _one_job(
        b"<Workflow><WorkflowId>w1</WorkflowId><Name>n1</Name></Workflow>"
        b"<Workflow><WorkflowId>w2</WorkflowId><Name>n2</Name></Workflow>"
    )
    assert row["workflow_id"] == "w1"
    assert dict(row["extra"]) == {  # type: ignore[call-overload]
        "Workflow[0]/WorkflowId": "w1",
        "Workflow[0]/Name": "n1",
        "Workflow[1]/WorkflowId": "w2",
        "Workflow[1]/Name": "n2",
    }


def test_unclaimed_md5_and_repeated_output_files_are_kept():
    row = _one_job(
        b"<Operation><MediaResult>"
        b"<OutputFile><Bucket>b</Bucket><ObjectName>x.mp4</ObjectName>"
        b"<Md5Info><Md5>m-other</Md5><ObjectName>other.mp4</ObjectName></Md5Info></OutputFile>"
        b"<OutputFile><Region>r</Region><ObjectPrefix>p/</ObjectPrefix><ObjectName>y.mp4"
        b"</ObjectName><Md5Info><Md5>m-y</Md5><ObjectName>y.mp4</ObjectName></Md5Info>"
        b"</OutputFile></MediaResult></Operation>"
    )
    assert row["output_files"] == [
        {"bucket": "b", "region": None, "object_name": "x.mp4", "md5": None},
        {"bucket": None, "region": "r", "object_name": "p/y.mp4", "md5": "m-y"},
    ]
    assert dict(row["extra"]) == {  # type: ignore[call-overload]
        "Operation/MediaResult/OutputFile[0]/Md5Info/Md5": "m-other",
        "Operation/MediaResult/OutputFile[0]/Md5Info/ObjectName": "other.mp4",
    }


def test_a_subtitle_with_text_but_no_children_is_kept_in_extra():
    row = _one_job(
        b"<Operation><MediaInfo><Stream><Subtitle>odd</Subtitle><Subtitle/>"
        b"</Stream></MediaInfo></Operation>"
    )
    assert row["streams"] == []
    assert dict(row["extra"]) == {"Operation/MediaInfo/Stream/Subtitle[0]": "odd"}  # type: ignore[call-overload]
