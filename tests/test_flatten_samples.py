"""Golden values for every sample page in sample_data/: what each leaf becomes in the table."""

from __future__ import annotations

import gc
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from client_support import client_for, page_all
from lxml import etree

import cijobs_analytics as cj
from cijobs_analytics import flatten
from cijobs_analytics.flatten import parse_job_lookup, parse_page, parse_pages, parse_response
from cijobs_analytics.schema import JOBS_SCHEMA, TAGS

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def _rows(name: str) -> list[dict[str, Any]]:
    table, _ = parse_response((SAMPLES / name).read_bytes())
    assert table.schema == JOBS_SCHEMA
    return table.to_pylist()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the seed document's sample (with its stray </Message>) ------------------------------------


@pytest.fixture(scope="module")
def seed() -> flatten.ParsedPage:
    return parse_page((SAMPLES / "seed-describe-media-jobs.xml").read_bytes())


def test_seed_parses_to_its_two_jobs_and_is_marked_recovered(seed: flatten.ParsedPage):
    assert seed.recovered is True
    assert seed.next_token == "225508"
    assert seed.table.column("job_id").to_pylist() == [
        "j8d121820f5e411ec926ef19d53ba9c6f",
        "j9c0a4726f6ac11ec96aaa9b64ab18d00",
    ]


def test_seed_job_state_is_the_jobs_not_the_digital_watermarks(seed: flatten.ParsedPage):
    """Both jobs' DigitalWatermark/State is Running; the second job's own State is Success."""
    first, second = seed.table.to_pylist()
    assert (first["state"], second["state"]) == ("Running", "Success")
    for row in (first, second):
        extra = dict(row["extra"])
        assert extra["Operation/DigitalWatermark/State"] == "Running"
        assert extra["Operation/DigitalWatermark/Message"] == "123456789ab"
        assert row["code"] == "Success"
        assert row["message"] is None  # the repaired <Message/> is empty


def test_seed_times_are_utc_and_dash_is_null(seed: flatten.ParsedPage):
    first, second = seed.table.to_pylist()
    assert first["creation_time"] == _utc("2022-06-27T07:23:12")
    assert first["start_time"] == _utc("2022-06-27T07:23:13")
    assert first["end_time"] is None
    assert (first["queue_wait_s"], first["processing_s"], first["speed_x"]) == (1.0, None, None)
    assert second["end_time"] == _utc("2022-06-27T07:24:33")
    assert second["processing_s"] == 80.0
    assert second["speed_x"] == pytest.approx(13.654 / 80.0)


def test_seed_operation_columns_and_extra(seed: flatten.ParsedPage):
    first, _ = seed.table.to_pylist()
    assert first["progress"] == 30
    assert first["watermark_template_ids"] == [
        "t1318c5f428d474afba1797f84091cbe22",
        "t1318c5f428d474afba1797f84091cbe23",
        "t1318c5f428d474afba1797f84091cbe24",
    ]
    assert (first["input_bucket"], first["input_object"], first["input_region"]) == (
        "test-123456789",
        "input/demo.mp4",
        "ap-chongqing",
    )
    assert (first["output_bucket"], first["output_object"], first["output_region"]) == (
        "test-123456789",
        "output/out.mp4",
        "ap-chongqing",
    )
    assert first["template_id"] == "t1460606b9752148c4ab182f55163ba7cd"
    assert first["user_data"] == "This is my data."
    assert first["job_level"] == 0
    assert first["streams"] == []
    assert first["output_files"] == []
    assert dict(first["extra"]) == {
        "Operation/RemoveWatermark/Dx": "150",
        "Operation/RemoveWatermark/Dy": "150",
        "Operation/RemoveWatermark/Width": "75",
        "Operation/RemoveWatermark/Height": "75",
        "Operation/DigitalWatermark/Type": "Text",
        "Operation/DigitalWatermark/Message": "123456789ab",
        "Operation/DigitalWatermark/Version": "V1",
        "Operation/DigitalWatermark/IgnoreError": "false",
        "Operation/DigitalWatermark/State": "Running",
    }


def test_seed_second_job_media_info_and_output(seed: flatten.ParsedPage):
    second = seed.table.to_pylist()[1]
    assert second["format_name"] == "mov,mp4,m4a,3gp,3g2,mj2"
    assert second["format_long_name"] == "QuickTime / MOV"
    assert (second["duration_s"], second["bitrate_kbps"]) == (13.654, 834.736)
    assert (second["size_bytes"], second["num_streams"]) == (1424687, 2)
    assert second["video_codec"] == "h264"
    assert second["video_profile"] == "High"
    assert (second["video_width"], second["video_height"], second["video_fps"]) == (544, 960, 25.0)
    assert (second["video_bitrate_kbps"], second["video_duration_s"]) == (763.774, 12.96)
    assert (second["video_num_frames"], second["video_pix_format"]) == (324, "yuv420p")
    assert second["video_rotation"] == 0.0
    assert (
        second["video_color_primaries"],
        second["video_color_range"],
        second["video_color_transfer"],
    ) == ("bt470bg", "tv", "smpte170m")
    assert (second["audio_codec"], second["audio_channels"]) == ("aac", 2)
    assert (second["audio_channel_layout"], second["audio_sample_rate"]) == ("stereo", 44100)
    assert (second["audio_bitrate_kbps"], second["audio_duration_s"]) == (104.047, 13.653311)
    # document order: Audio, the empty <Subtitle/> (no stream), Video
    assert [(s["kind"], s["index"]) for s in second["streams"]] == [("audio", 1), ("video", 0)]
    assert second["streams"][0]["language"] == "und"
    assert second["output_files"] == [
        {
            "bucket": "test-123456789",
            "region": "ap-chongqing",
            "object_name": "output/out.mp4",
            "md5": "3df1f845d2ffd20a525a93ec40014d90",
        }
    ]
    extra = dict(second["extra"])
    assert extra["Operation/MediaInfo/Stream/Video/AvgFps"] == "25.000000"
    assert extra["Operation/MediaInfo/Stream/Video/Level"] == "10"
    assert extra["Operation/MediaInfo/Stream/Audio/SampleFmt"] == "fltp"
    assert extra["Operation/MediaInfo/Format/NumProgram"] == "0"
    assert not any("Subtitle" in key for key in extra)


def test_a_generic_recover_mode_would_lose_the_seed_jobs(seed: flatten.ParsedPage):
    """Why the repair is targeted: libxml2's recover mode keeps one job, without its JobId."""
    body = (SAMPLES / "seed-describe-media-jobs.xml").read_bytes()
    recovered = etree.fromstring(body, etree.XMLParser(recover=True))
    assert [job.findtext("JobId") for job in recovered.iter("JobsDetail")] == [None]
    assert seed.table.num_rows == 2


def test_the_stray_message_repair_is_logged_once_then_at_debug(caplog, monkeypatch):
    """One plain line naming the page's request id; later repairs at DEBUG."""
    monkeypatch.setattr(flatten, "_repair_logged", False)
    body = (SAMPLES / "seed-describe-media-jobs.xml").read_bytes()
    with caplog.at_level(logging.DEBUG, logger="cijobs_analytics.flatten"):
        parse_page(body, request_id="req-1")
        parse_page(body, request_id="req-2")
        parse_page(body)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "repaired a stray </Message> in page req-1"),
        (logging.DEBUG, "repaired a stray </Message> in page req-2"),
        (logging.DEBUG, "repaired a stray </Message> in a page"),
    ]


def test_a_run_of_repaired_pages_logs_one_warning(make_emulator, caplog, monkeypatch):
    """Paging through an emulator that garbles every page: one WARNING in all, a plain line
    naming the first page's request id (no second one from the client, no counter names)."""
    monkeypatch.setattr(flatten, "_repair_logged", False)
    emu = make_emulator(jobs=100, malformed_rate=1.0)
    caplog.set_level(logging.DEBUG, logger="cijobs_analytics")
    with client_for(emu) as client:
        _, pages = page_all(client, "Transcode", size=5)
    assert len(pages) > 2
    assert all(page.recovered for page in pages)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"repaired a stray </Message> in page {pages[0].request_id}"]


# --- the reference's samples -------------------------------------------------------------------


def test_reference_transcode_success():
    (row,) = _rows("ref-9.1-transcode-success.xml")
    assert row["job_id"] == "j3f9a1c2e8b7d11eeb2a15254007d3c01"
    assert row["message"] is None
    assert row["template_name"] == "mp4-720p"
    assert row["creation_time"] == _utc("2024-03-05T02:47:09")
    assert row["processing_s"] == 52.0
    assert (row["video_width"], row["video_height"], row["video_fps"]) == (1280, 720, 25.0)
    assert row["size_bytes"] == 147951223
    assert dict(row["extra"])["Operation/Transcode/Video/Codec"] == "H.264"
    assert dict(row["extra"])["Operation/MediaInfo/Stream/Video/Dar"] == "16:9"
    assert row["output_files"][0]["md5"] == "5f0b6c2a1e9d4c7b8a3f2e1d0c9b8a77"


def test_reference_snapshot_has_one_output_entry_per_object_name():
    (row,) = _rows("ref-9.2-snapshot.xml")
    assert [entry["object_name"] for entry in row["output_files"]] == [
        f"thumbs/lecture-01/snap-{i}.jpg" for i in range(4)
    ]
    assert row["output_files"][3]["md5"] == "3d4e5f60718293a4b5c6d7e8f90a1b2c"
    assert row["user_data"] is None  # <UserData/>
    assert row["template_id"] is None
    assert dict(row["extra"])["Operation/Snapshot/Count"] == "4"


def test_reference_failed_last_page_has_no_next_token():
    table, token = parse_response((SAMPLES / "ref-9.3-failed-last-page.xml").read_bytes())
    (row,) = table.to_pylist()
    assert token is None
    assert (row["state"], row["code"]) == ("Failed", "ResourceNotFound")
    assert row["message"] == "The specified input object does not exist."
    assert row["streams"] == []
    assert row["output_files"] == []
    assert row["extra"] == []


def test_reference_error_body_is_a_parse_error_naming_the_api_code():
    with pytest.raises(cj.ResponseParseError, match=r"API error.*InvalidArgument") as caught:
        parse_response((SAMPLES / "ref-9.4-error.xml").read_bytes())
    assert caught.value.request_id == "NjVlNmQ4YTNfOTBmYTUwNjRfNWQ1NV8xYjg4****"


# --- one page per tag ---------------------------------------------------------------------------

_TAG_PAGES: dict[str, tuple[list[str], str | None]] = {
    "Transcode": (["Success", "Success", "Failed"], "226001"),
    "Animation": (["Success", "Running"], "226050"),
    "Snapshot": (["Success", "Submitted"], "226077"),
    "SmartCover": (["Success"], None),
    "Concat": (["Success"], "226099"),
    "VoiceSeparate": (["Success"], None),
    "VideoMontage": (["Success"], "226140"),
    "SDRtoHDR": (["Success"], None),
    "VideoProcess": (["Success"], "226180"),
    "SuperResolution": (["Success", "Cancel"], "226230"),
    "Segment": (["Success"], None),
    "DigitalWatermark": (["Success", "Success"], "226300"),
    "ExtractDigitalWatermark": (["Success"], None),
    "VideoTag": (["Success"], "226333"),
    "MediaInfo": (["Success"], "226400"),
    "StreamExtract": (["Success"], None),
    "QualityEstimate": (["Success"], "226444"),
    "Tts": (["Success"], None),
    "NoiseReduction": (["Success", "Pause"], "226500"),
}


def test_there_is_a_sample_page_for_every_tag():
    assert sorted(_TAG_PAGES) == sorted(TAGS)
    assert sorted(path.stem for path in (SAMPLES / "tags").glob("*.xml")) == sorted(TAGS)


@pytest.mark.parametrize("tag", sorted(_TAG_PAGES))
def test_tag_page_states_tags_and_token(tag: str):
    states, token = _TAG_PAGES[tag]
    table, next_token = parse_response((SAMPLES / "tags" / f"{tag}.xml").read_bytes())
    assert table.column("state").to_pylist() == states
    assert table.column("tag").to_pylist() == [tag] * len(states)
    assert next_token == token
    assert all(job_id.startswith("j") for job_id in table.column("job_id").to_pylist())
    created = table.column("creation_time").to_pylist()
    assert all(value is not None and value.tzinfo is not None for value in created)


def test_transcode_multi_audio_streams_and_subtitle():
    first = _rows("tags/Transcode.xml")[0]
    assert [(s["kind"], s["index"], s["language"]) for s in first["streams"]] == [
        ("audio", 1, "eng"),
        ("audio", 2, "chi"),
        ("subtitle", 3, "chi"),
        ("video", 0, "und"),
    ]
    assert (first["audio_sample_rate"], first["audio_bitrate_kbps"]) == (48000, 160.012)
    assert first["video_num_frames"] == 54159
    extra = dict(first["extra"])
    assert extra["Operation/MediaInfo/Stream/Audio[1]/CodecTimeBase"] == "1/48000"
    assert extra["Operation/Transcode/Video/Crf"] == ""  # an empty element is kept as ""
    assert first["user_data"] == "course=cs101&term=2026A"
    assert first["job_level"] == 1


def test_transcode_non_ascii_keys_workflow_and_sub_operation_state():
    second = _rows("tags/Transcode.xml")[1]
    assert second["input_object"] == "用户上传/视频 2026-11-02 (最终版).mp4"
    assert second["output_files"][0]["object_name"] == "转码输出/视频 2026-11-02 (最终版)-720p.mp4"
    assert second["workflow_id"] == "w5307ee7a60d6489383c3921c715dd1c5"
    assert second["workflow_name"] == "upload-transcode"
    extra = dict(second["extra"])
    assert extra["Workflow/RunId"] == "ie8f2a9c4b1d611f0b3a1525400d3c0aa"
    assert extra["Operation/DigitalWatermark/State"] == "Failed"
    assert second["state"] == "Success"
    assert len(second["watermark_template_ids"]) == 2


def test_failed_job_message_with_escaped_markup():
    third = _rows("tags/Transcode.xml")[2]
    assert third["state"] == "Failed"
    assert third["code"] == "InvalidInput"
    assert third["message"] == "decode failed: stream #0 <h264> reports width=0 & height=0"
    assert third["input_object"] == "broken/clip & trailer <v2>.mp4"
    assert third["processing_s"] == 1.0
    assert third["extra"] == []
    assert third["streams"] == []


def test_snapshot_prefix_sprite_and_submitted_job():
    done, queued = _rows("tags/Snapshot.xml")
    names = [entry["object_name"] for entry in done["output_files"]]
    assert names == [f"thumbs/launch/snap-{i}.jpg" for i in range(5)]
    assert all(entry["md5"] and len(entry["md5"]) == 32 for entry in done["output_files"])
    extra = dict(done["extra"])
    assert extra["Operation/MediaResult/OutputFile/SpriteOutputFile/ObjectName"] == "sprite-0.jpg"
    assert extra["Operation/Output/SpriteObject"] == "thumbs/launch/sprite-${Number}.jpg"
    assert extra["Operation/Snapshot/SpriteSnapshotConfig/Columns"] == "5"
    assert (queued["start_time"], queued["end_time"], queued["queue_wait_s"]) == (None, None, None)
    assert queued["job_level"] == 2


def test_segment_and_stream_extract_have_many_outputs():
    (segment,) = _rows("tags/Segment.xml")
    assert len(segment["output_files"]) == 5
    assert segment["output_files"][0]["object_name"] == "live/replay-0917/index.m3u8"
    assert segment["format_name"] == "hls"
    (extract,) = _rows("tags/StreamExtract.xml")
    assert [entry["object_name"] for entry in extract["output_files"]] == [
        "split/interview-video.mp4",
        "split/interview-audio.m4a",
    ]
    assert dict(extract["extra"])["Operation/Output/StreamExtract[1]/Object"] == (
        "split/interview-audio.m4a"
    )
    assert extract["output_object"] is None


def test_super_resolution_rational_avg_fps_and_transcode_template():
    done, cancelled = _rows("tags/SuperResolution.xml")
    assert done["video_fps"] == 24.0  # no Fps: AvgFps 24/1
    assert done["streams"][0]["fps"] == 24.0
    extra = dict(done["extra"])
    assert extra["Operation/MediaInfo/Stream/Video/AvgFps"] == "24/1"
    assert extra["Operation/TranscodeTemplateId"] == "t1a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
    assert cancelled["state"] == "Cancel"
    assert cancelled["start_time"] is None


def test_media_info_six_streams_and_large_size():
    (row,) = _rows("tags/MediaInfo.xml")
    assert [s["kind"] for s in row["streams"]] == [
        "video",
        "audio",
        "audio",
        "audio",
        "subtitle",
        "subtitle",
    ]
    assert row["size_bytes"] == 16668040192  # beyond int32
    assert (row["audio_channels"], row["audio_channel_layout"]) == (6, "5.1")
    assert row["num_streams"] == 6
    assert row["video_codec"] == "hevc"


def test_video_montage_rational_avg_fps_stays_in_extra_when_fps_given():
    (row,) = _rows("tags/VideoMontage.xml")
    assert row["video_fps"] == pytest.approx(29.97003)
    assert dict(row["extra"])["Operation/MediaInfo/Stream/Video/AvgFps"] == "30000/1001"


def test_nested_result_blocks_keep_their_paths():
    (tagging,) = _rows("tags/VideoTag.xml")
    extra = dict(tagging["extra"])
    assert extra["Operation/VideoTagResult/StreamData/Data/Tags[1]/Tag"] == "outdoor"
    assert extra["Operation/VideoTagResult/StreamData/Data/Labels/Second"] == "滑板"
    assert extra["Operation/VideoTagResult/StreamData/SubErrMsg"] == ""
    (quality,) = _rows("tags/QualityEstimate.xml")
    extra = dict(quality["extra"])
    assert extra["Operation/QualityEstimate/Score"] == "73.5"
    assert extra["Operation/QualityEstimate/VqaPlusResult/DetailedResult[1]/Type"] == "LowLighting"


def test_tts_without_input_object_and_voice_separate_outputs():
    (tts,) = _rows("tags/Tts.xml")
    assert tts["input_object"] is None  # <Object/>
    assert dict(tts["extra"])["Operation/TtsConfig/Input"] == "欢迎使用数据万象 & 祝您愉快"
    (voice,) = _rows("tags/VoiceSeparate.xml")
    assert len(voice["output_files"]) == 2
    assert dict(voice["extra"])["Operation/Output/AuObject"] == "karaoke/song-42-bgm.mp3"


def test_audio_only_job_has_no_video_columns():
    done, paused = _rows("tags/NoiseReduction.xml")
    assert done["video_codec"] is None
    assert done["video_fps"] is None
    assert (done["audio_codec"], done["audio_duration_s"]) == ("mp3", 2655.12)
    assert paused["queue_id"] == "p9d3e5f7a1b2c44d6e8f0a1b2c3d4e5f6"


def test_digital_watermark_sub_state_failed_in_a_success_job():
    _, second = _rows("tags/DigitalWatermark.xml")
    assert second["state"] == "Success"
    assert dict(second["extra"])["Operation/DigitalWatermark/State"] == "Failed"


# --- the other entry points ---------------------------------------------------------------------


def test_parse_pages_concatenates_every_sample_page_with_request_context():
    paths = sorted((SAMPLES / "tags").glob("*.xml"))
    fetched = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    table = parse_pages(
        [path.read_bytes() for path in paths],
        bucket="examplebucket-1250000000",
        region="ap-guangzhou",
        fetched_at=fetched,
    )
    expected = sum(len(_TAG_PAGES[path.stem][0]) for path in paths)
    assert table.num_rows == expected == 26
    assert table.schema == JOBS_SCHEMA
    assert set(table.column("bucket").to_pylist()) == {"examplebucket-1250000000"}
    assert set(table.column("fetched_at").to_pylist()) == {fetched}
    assert table.column("not_found_at").null_count == expected
    # the same rows as page by page
    single = pa.concat_tables(parse_response(path.read_bytes())[0] for path in paths)
    assert table.column("extra").to_pylist() == single.column("extra").to_pylist()
    assert table.column("streams").to_pylist() == single.column("streams").to_pylist()


def test_parse_pages_of_nothing_is_an_empty_table():
    table = parse_pages([])
    assert table.num_rows == 0
    assert table.schema == JOBS_SCHEMA


def test_parse_job_lookup_returns_jobs_and_unknown_ids():
    body = (
        b"<Response><JobsDetail><JobId>j1</JobId><State>Success</State></JobsDetail>"
        b"<NonExistJobIds>j404a, j404b</NonExistJobIds></Response>"
    )
    table, missing = parse_job_lookup(body, bucket="b-1250000000")
    assert table.column("job_id").to_pylist() == ["j1"]
    assert table.column("bucket").to_pylist() == ["b-1250000000"]
    assert missing == ["j404a", "j404b"]


def test_parse_response_is_exported_at_top_level():
    assert cj.parse_response is parse_response
    assert cj.parse_pages is parse_pages


def test_parse_pages_leaves_the_garbage_collector_as_it_found_it():
    """The collector is paused while flattening, and resumed after, errors included."""
    page = (SAMPLES / "tags" / "Concat.xml").read_bytes()
    assert gc.isenabled()
    assert parse_pages([page]).num_rows == 1
    assert gc.isenabled()
    with pytest.raises(cj.ResponseParseError):
        parse_pages([page, b"<Response>"])
    assert gc.isenabled()
    gc.disable()
    try:
        parse_pages([page])
        assert not gc.isenabled()
    finally:
        gc.enable()


_TAG_GOLDEN: dict[str, dict[str, Any]] = {
    "Animation": {
        "output_files": [
            {
                "bucket": "examplebucket-1250000000",
                "region": "ap-guangzhou",
                "object_name": "clips/cat-jump.gif",
                "md5": "d38252762d3d4fd229faae637fd13f4e",
            }
        ],
        "extra:Operation/Animation/TimeInterval/Duration": "4.5",
        "processing_s": 7.0,
    },
    "SmartCover": {
        "output_files.object_name": [f"covers/match-{i}.jpg" for i in range(3)],
        "extra:Operation/SmartCover/DeleteDuplicates": "true",
    },
    "Concat": {
        "extra:Operation/ConcatTemplate/ConcatFragment[1]/Mode": "End",
        "video_fps": 25.0,
        "audio_codec": "mp3",
        "duration_s": 1260.48,
        "speed_x": 1260.48 / 71.0,
    },
    "SDRtoHDR": {
        "video_codec": "hevc",
        "video_profile": "Main 10",
        "video_width": 3840,
        "extra:Operation/SDRtoHDR/HdrMode": "HDR10",
    },
    "VideoProcess": {
        "audio_channels": 1,
        "audio_channel_layout": "mono",
        "extra:Operation/VideoProcess/MsSharpen/SharpenLevel": "5",
    },
    "ExtractDigitalWatermark": {
        "user_data": "case=LK-2026-311",
        "job_level": 2,
        "output_files": [],
        "extra:Operation/ExtractDigitalWatermark/Version": "V1",
    },
}


@pytest.mark.parametrize("tag", sorted(_TAG_GOLDEN))
def test_tag_page_golden_values(tag: str):
    row = _rows(f"tags/{tag}.xml")[0]
    extra = dict(row["extra"])
    for key, expected in _TAG_GOLDEN[tag].items():
        if key.startswith("extra:"):
            assert extra[key.removeprefix("extra:")] == expected, key
        elif key == "output_files.object_name":
            assert [entry["object_name"] for entry in row["output_files"]] == expected
        elif isinstance(expected, float):
            assert row[key] == pytest.approx(expected), key
        else:
            assert row[key] == expected, key
