"""Where each leaf of a ``<JobsDetail>`` goes: the row slots and the wire names that fill them.

A job's typed columns are collected as raw texts in fixed slots (``Slot``), one per column
that comes straight from the wire; ``Slot.SPEC`` gives each slot's column, its conversion and
its path under ``JobsDetail``. The tables below map the tag of a child, within one known
container, to its slot (or, for streams, to its field in the stream record). Anything not
named here goes to ``extra``.
"""

from __future__ import annotations

__all__ = [
    "AVG_FPS",
    "FIRST_VIDEO",
    "FORMAT",
    "INPUT",
    "OPERATION",
    "OUTPUT",
    "STREAM",
    "STREAM_FIELDS",
    "STREAM_KINDS",
    "TOP",
    "WORKFLOW",
    "Slot",
]


class Slot:
    """Indexes of the raw per-job slots; ``SPEC`` describes each."""

    (
        JOB_ID,
        TAG,
        SUB_TAG,
        STATE,
        CODE,
        MESSAGE,
        PROGRESS,
        QUEUE_ID,
        QUEUE_TYPE,
        JOB_LEVEL,
        CREATION_TIME,
        START_TIME,
        END_TIME,
        INPUT_BUCKET,
        INPUT_OBJECT,
        INPUT_REGION,
        TEMPLATE_ID,
        TEMPLATE_NAME,
        USER_DATA,
        WORKFLOW_ID,
        WORKFLOW_NAME,
        OUTPUT_BUCKET,
        OUTPUT_OBJECT,
        OUTPUT_REGION,
        FORMAT_NAME,
        FORMAT_LONG_NAME,
        DURATION_S,
        BITRATE_KBPS,
        SIZE_BYTES,
        NUM_STREAMS,
        VIDEO_ROTATION,
        VIDEO_COLOR_PRIMARIES,
        VIDEO_COLOR_RANGE,
        VIDEO_COLOR_TRANSFER,
    ) = range(34)
    COUNT = 34

    #: (column, kind, path under JobsDetail) per slot; kind is the conversion to apply.
    SPEC: tuple[tuple[str, str, str], ...] = (
        ("job_id", "str", "JobId"),
        ("tag", "str", "Tag"),
        ("sub_tag", "str", "SubTag"),
        ("state", "str", "State"),
        ("code", "str", "Code"),
        ("message", "str", "Message"),
        ("progress", "int32", "Progress"),
        ("queue_id", "str", "QueueId"),
        ("queue_type", "str", "QueueType"),
        ("job_level", "int32", "Operation/JobLevel"),
        ("creation_time", "time", "CreationTime"),
        ("start_time", "time", "StartTime"),
        ("end_time", "time", "EndTime"),
        ("input_bucket", "str", "Input/BucketId"),
        ("input_object", "str", "Input/Object"),
        ("input_region", "str", "Input/Region"),
        ("template_id", "str", "Operation/TemplateId"),
        ("template_name", "str", "Operation/TemplateName"),
        ("user_data", "str", "Operation/UserData"),
        ("workflow_id", "str", "Workflow/WorkflowId"),
        ("workflow_name", "str", "Workflow/WorkflowName"),
        ("output_bucket", "str", "Operation/Output/Bucket"),
        ("output_object", "str", "Operation/Output/Object"),
        ("output_region", "str", "Operation/Output/Region"),
        ("format_name", "str", "Operation/MediaInfo/Format/FormatName"),
        ("format_long_name", "str", "Operation/MediaInfo/Format/FormatLongName"),
        ("duration_s", "float", "Operation/MediaInfo/Format/Duration"),
        ("bitrate_kbps", "float", "Operation/MediaInfo/Format/Bitrate"),
        ("size_bytes", "int64", "Operation/MediaInfo/Format/Size"),
        ("num_streams", "int32", "Operation/MediaInfo/Format/NumStream"),
        # the path of these four is the first video stream's; the table fills in the index
        ("video_rotation", "float", "Rotation"),
        ("video_color_primaries", "str", "ColorPrimaries"),
        ("video_color_range", "str", "ColorRange"),
        ("video_color_transfer", "str", "ColorTransfer"),
    )


TOP = {
    "JobId": Slot.JOB_ID,
    "Tag": Slot.TAG,
    "SubTag": Slot.SUB_TAG,
    "State": Slot.STATE,
    "Code": Slot.CODE,
    "Message": Slot.MESSAGE,
    "Progress": Slot.PROGRESS,
    "QueueId": Slot.QUEUE_ID,
    "QueueType": Slot.QUEUE_TYPE,
    "CreationTime": Slot.CREATION_TIME,
    "StartTime": Slot.START_TIME,
    "EndTime": Slot.END_TIME,
}
INPUT = {"BucketId": Slot.INPUT_BUCKET, "Object": Slot.INPUT_OBJECT, "Region": Slot.INPUT_REGION}
OPERATION = {
    "TemplateId": Slot.TEMPLATE_ID,
    "TemplateName": Slot.TEMPLATE_NAME,
    "UserData": Slot.USER_DATA,
    "JobLevel": Slot.JOB_LEVEL,
}
OUTPUT = {"Bucket": Slot.OUTPUT_BUCKET, "Object": Slot.OUTPUT_OBJECT, "Region": Slot.OUTPUT_REGION}
FORMAT = {
    "FormatName": Slot.FORMAT_NAME,
    "FormatLongName": Slot.FORMAT_LONG_NAME,
    "Duration": Slot.DURATION_S,
    "Bitrate": Slot.BITRATE_KBPS,
    "Size": Slot.SIZE_BYTES,
    "NumStream": Slot.NUM_STREAMS,
}
WORKFLOW = {"WorkflowId": Slot.WORKFLOW_ID, "WorkflowName": Slot.WORKFLOW_NAME}
FIRST_VIDEO = {
    "Rotation": Slot.VIDEO_ROTATION,
    "ColorPrimaries": Slot.VIDEO_COLOR_PRIMARIES,
    "ColorRange": Slot.VIDEO_COLOR_RANGE,
    "ColorTransfer": Slot.VIDEO_COLOR_TRANSFER,
}

#: (struct field, kind) of a stream record, in STREAM_TYPE order; position 0 is ``kind``.
STREAM_FIELDS: tuple[tuple[str, str], ...] = (
    ("kind", "str"),
    ("index", "int32"),
    ("codec_name", "str"),
    ("codec_long_name", "str"),
    ("profile", "str"),
    ("width", "int32"),
    ("height", "int32"),
    ("fps", "fps"),
    ("bitrate_kbps", "float"),
    ("duration_s", "float"),
    ("num_frames", "int64"),
    ("pix_format", "str"),
    ("channels", "int32"),
    ("channel_layout", "str"),
    ("sample_rate", "int32"),
    ("language", "str"),
)
STREAM = {
    "Index": 1,
    "CodecName": 2,
    "CodecLongName": 3,
    "Profile": 4,
    "Width": 5,
    "Height": 6,
    "Fps": 7,
    "Bitrate": 8,
    "Duration": 9,
    "NumFrames": 10,
    "PixFormat": 11,
    "Channel": 12,
    "ChannelLayout": 13,
    "SampleRate": 14,
    "Language": 15,
}
#: A stream record holds the 15 fields after ``kind`` and then the AvgFps text.
AVG_FPS = len(STREAM_FIELDS) - 1
STREAM_KINDS = {"Video": "video", "Audio": "audio", "Subtitle": "subtitle"}
