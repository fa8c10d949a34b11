"""The Arrow schemas of the job table and of its stream and output views. No I/O.

``JOBS_SCHEMA`` has one row per job; ``docs/schema.md`` documents every column and a test keeps
the two in step. ``STREAMS_SCHEMA`` and ``OUTPUTS_SCHEMA`` describe the ``streams`` and
``outputs`` views: the ``streams`` and ``output_files`` list columns unnested, with ``job_id``.

Times are ``timestamp[us, tz=UTC]``; seconds, kbps and fps are float64; sizes, counts and
dimensions are integers; a null means the service sent ``-``, an empty element, or nothing.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "JOBS_SCHEMA",
    "OPEN_STATES",
    "OUTPUTS_SCHEMA",
    "OUTPUT_FILE_TYPE",
    "SCHEMA_VERSION",
    "STATES",
    "STREAMS_SCHEMA",
    "STREAM_TYPE",
    "TAGS",
]

#: Bumped whenever a column is added, removed or retyped; stored in the Parquet metadata.
SCHEMA_VERSION = 1

#: The 19 job types DescribeMediaJobs documents; other tags pass through unchanged.
TAGS: tuple[str, ...] = (
    "Transcode",
    "Animation",
    "Snapshot",
    "SmartCover",
    "Concat",
    "VoiceSeparate",
    "VideoMontage",
    "SDRtoHDR",
    "VideoProcess",
    "SuperResolution",
    "Segment",
    "DigitalWatermark",
    "ExtractDigitalWatermark",
    "VideoTag",
    "MediaInfo",
    "StreamExtract",
    "QualityEstimate",
    "Tts",
    "NoiseReduction",
)

#: Job states the service knows; ``All`` is a filter value only.
STATES: tuple[str, ...] = ("Submitted", "Running", "Success", "Failed", "Pause", "Cancel")

#: States after which a job can still change.
OPEN_STATES: tuple[str, ...] = ("Submitted", "Running", "Pause")

_TS = pa.timestamp("us", tz="UTC")

STREAM_TYPE = pa.struct(
    [
        pa.field("kind", pa.string()),  # video | audio | subtitle
        pa.field("index", pa.int32()),
        pa.field("codec_name", pa.string()),
        pa.field("codec_long_name", pa.string()),
        pa.field("profile", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("fps", pa.float64()),
        pa.field("bitrate_kbps", pa.float64()),
        pa.field("duration_s", pa.float64()),
        pa.field("num_frames", pa.int64()),
        pa.field("pix_format", pa.string()),
        pa.field("channels", pa.int32()),
        pa.field("channel_layout", pa.string()),
        pa.field("sample_rate", pa.int32()),
        pa.field("language", pa.string()),
    ]
)

OUTPUT_FILE_TYPE = pa.struct(
    [
        pa.field("bucket", pa.string()),
        pa.field("region", pa.string()),
        pa.field("object_name", pa.string()),
        pa.field("md5", pa.string()),
    ]
)

JOBS_SCHEMA = pa.schema(
    [
        # request context
        pa.field("bucket", pa.string()),
        pa.field("region", pa.string()),
        pa.field("fetched_at", _TS),
        # set by an export when the service no longer knows a job that was still open
        pa.field("not_found_at", _TS),
        # identity & state
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("tag", pa.string()),
        pa.field("sub_tag", pa.string()),
        pa.field("state", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("progress", pa.int32()),
        pa.field("queue_id", pa.string()),
        pa.field("queue_type", pa.string()),
        pa.field("job_level", pa.int32()),
        # times
        pa.field("creation_time", _TS),
        pa.field("start_time", _TS),
        pa.field("end_time", _TS),
        # derived
        pa.field("queue_wait_s", pa.float64()),
        pa.field("processing_s", pa.float64()),
        pa.field("speed_x", pa.float64()),
        # input
        pa.field("input_bucket", pa.string()),
        pa.field("input_object", pa.string()),
        pa.field("input_region", pa.string()),
        # operation
        pa.field("template_id", pa.string()),
        pa.field("template_name", pa.string()),
        pa.field("watermark_template_ids", pa.list_(pa.string())),
        pa.field("user_data", pa.string()),
        pa.field("workflow_id", pa.string()),
        pa.field("workflow_name", pa.string()),
        # requested output
        pa.field("output_bucket", pa.string()),
        pa.field("output_object", pa.string()),
        pa.field("output_region", pa.string()),
        # format (media info)
        pa.field("format_name", pa.string()),
        pa.field("format_long_name", pa.string()),
        pa.field("duration_s", pa.float64()),
        pa.field("bitrate_kbps", pa.float64()),
        pa.field("size_bytes", pa.int64()),
        pa.field("num_streams", pa.int32()),
        # first video stream
        pa.field("video_codec", pa.string()),
        pa.field("video_profile", pa.string()),
        pa.field("video_width", pa.int32()),
        pa.field("video_height", pa.int32()),
        pa.field("video_fps", pa.float64()),
        pa.field("video_bitrate_kbps", pa.float64()),
        pa.field("video_duration_s", pa.float64()),
        pa.field("video_num_frames", pa.int64()),
        pa.field("video_pix_format", pa.string()),
        pa.field("video_rotation", pa.float64()),
        pa.field("video_color_primaries", pa.string()),
        pa.field("video_color_range", pa.string()),
        pa.field("video_color_transfer", pa.string()),
        # first audio stream
        pa.field("audio_codec", pa.string()),
        pa.field("audio_channels", pa.int32()),
        pa.field("audio_channel_layout", pa.string()),
        pa.field("audio_sample_rate", pa.int32()),
        pa.field("audio_bitrate_kbps", pa.float64()),
        pa.field("audio_duration_s", pa.float64()),
        # all streams, actual outputs, the rest
        pa.field("streams", pa.list_(STREAM_TYPE)),
        pa.field("output_files", pa.list_(OUTPUT_FILE_TYPE)),
        pa.field("extra", pa.map_(pa.string(), pa.string())),
    ],
    metadata={"cijobs_analytics.schema_version": str(SCHEMA_VERSION)},
)

STREAMS_SCHEMA = pa.schema(
    [pa.field("job_id", pa.string(), nullable=False), *STREAM_TYPE],
    metadata={"cijobs_analytics.schema_version": str(SCHEMA_VERSION)},
)

OUTPUTS_SCHEMA = pa.schema(
    [pa.field("job_id", pa.string(), nullable=False), *OUTPUT_FILE_TYPE],
    metadata={"cijobs_analytics.schema_version": str(SCHEMA_VERSION)},
)
