"""Turn collected raw job rows into a table in ``JOBS_SCHEMA`` (the second half of flatten).

Every column is converted in one vectorised Arrow cast. Only when a column holds a text the
cast refuses does it fall back to lenient per-value parsing: ``24/1`` fps is 24.0, an integral
``544.0`` is 544, surrounding blanks are ignored. A text that still does not parse is not lost:
the column gets a null and the raw text goes to ``extra`` under the leaf's path. ``-`` and empty
elements are null in every typed column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ._jobmap import AVG_FPS, STREAM_FIELDS, Slot
from ._jobrows import JobRows
from .schema import JOBS_SCHEMA, STREAM_TYPE

__all__ = ["build_table"]

_TS = pa.timestamp("us", tz="UTC")
_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float": pa.float64(),
    "fps": pa.float64(),
    "time": _TS,
}
_INT_RANGE = {"int32": 2**31, "int64": 2**63}
_NULL_TEXTS = pa.array(["", "-"], pa.string())
_STREAM_TAGS = {
    "index": "Index",
    "codec_name": "CodecName",
    "codec_long_name": "CodecLongName",
    "profile": "Profile",
    "width": "Width",
    "height": "Height",
    "fps": "Fps",
    "bitrate_kbps": "Bitrate",
    "duration_s": "Duration",
    "num_frames": "NumFrames",
    "pix_format": "PixFormat",
    "channels": "Channel",
    "channel_layout": "ChannelLayout",
    "sample_rate": "SampleRate",
    "language": "Language",
}

OnBad = Callable[[int, str], None]


def _strings(values: Sequence[str | None]) -> pa.Array:
    """Texts as a string array, with ``-`` and empty texts made null."""
    array = pa.array(values, pa.string())
    if array.null_count == len(array):
        return array
    return pc.if_else(pc.is_in(array, value_set=_NULL_TEXTS), pa.scalar(None, pa.string()), array)


def _lenient(text: str, kind: str) -> Any:
    """Parse one text the cast refused; ``None`` when it is not a value of ``kind``."""
    text = text.strip()
    if text in ("", "-"):
        return None
    try:
        if kind == "time":
            parsed = datetime.fromisoformat(text)
            # a time without offset is ambiguous; guessing a zone would shift it silently
            return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
        if kind in _INT_RANGE:
            try:
                number = int(text)
            except ValueError:
                real = float(text)
                if not real.is_integer():
                    return None
                number = int(real)
            limit = _INT_RANGE[kind]
            return number if -limit <= number < limit else None
        if "/" in text:
            # rational frame rates such as AvgFps 24/1 or 30000/1001
            numerator, _, denominator = text.partition("/")
            divisor = float(denominator)
            return float(numerator) / divisor if divisor else None
        return float(text)
    except (ValueError, OverflowError):
        return None


def convert(values: Sequence[str | None], kind: str, on_bad: OnBad) -> pa.Array:
    """Convert raw texts to ``kind``'s Arrow type; ``on_bad(i, text)`` gets what will not parse.

    Args:
        values: the raw texts of one column (``None`` where the element was absent).
        kind: ``str``, ``int32``, ``int64``, ``float``, ``fps`` or ``time``.
        on_bad: called with the position and raw text of each value that does not parse.

    Returns:
        The typed array, null where the text was absent, empty, ``-`` or unparseable.
    """
    strings = _strings(values)
    if kind == "str":
        return strings
    arrow_type = _TYPES[kind]
    try:
        return strings.cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed: list[Any] = []
    for position, text in enumerate(strings.to_pylist()):
        value = None if text is None else _lenient(text, kind)
        if value is None and text is not None:
            on_bad(position, text)
        parsed.append(value)
    return pa.array(parsed, arrow_type)


def _offsets(counts: Sequence[int]) -> pa.Array:
    offsets = [0]
    total = 0
    for count in counts:
        total += count
        offsets.append(total)
    return pa.array(offsets, pa.int32())


def _seconds_between(later: pa.Array, earlier: pa.Array) -> pa.Array:
    """``later - earlier`` in float seconds; null when either side is null."""
    micros = pc.cast(pc.subtract(later, earlier), pa.int64())
    return pc.divide(pc.cast(micros, pa.float64()), 1_000_000.0)


def _constant(value: Any, count: int, arrow_type: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(count, arrow_type)
    return pa.array([value] * count, arrow_type)


def _stream_columns(rows: JobRows) -> dict[str, pa.Array]:
    """The stream struct fields as typed arrays over every stream of every job."""
    width = len(STREAM_FIELDS)  # the 15 fields after kind, then AvgFps
    columns = list(zip(*rows.streams, strict=True)) if rows.streams else [()] * width
    arrays: dict[str, pa.Array] = {"kind": pa.array(rows.stream_kinds, pa.string())}
    for (name, kind), values in zip(STREAM_FIELDS[1:], columns, strict=False):

        def on_bad(position: int, text: str, name: str = name) -> None:
            path = f"{rows.stream_paths[position]}/{_STREAM_TAGS[name]}"
            rows.add_late(rows.stream_rows[position], path, text)

        arrays[name] = convert(values, kind, on_bad)
    # AvgFps is in extra verbatim already; it only fills an fps the stream did not give
    avg_fps = convert(columns[AVG_FPS], "fps", lambda position, text: None)
    arrays["fps"] = pc.coalesce(arrays["fps"], avg_fps)
    return arrays


def _extra(rows: JobRows) -> pa.Array:
    """The ``extra`` map column: collected pairs, then any added late, per job."""
    keys, values, counts = rows.keys, rows.values, rows.extra_counts
    if rows.late:
        merged_keys: list[str] = []
        merged_values: list[str | None] = []
        merged_counts: list[int] = []
        start = 0
        for job, count in enumerate(counts):
            late = rows.late.get(job, [])
            merged_keys += keys[start : start + count] + [key for key, _ in late]
            merged_values += values[start : start + count] + [value for _, value in late]
            merged_counts.append(count + len(late))
            start += count
        keys, values, counts = merged_keys, merged_values, merged_counts
    return pa.MapArray.from_arrays(
        _offsets(counts),
        pa.array(keys, pa.string()),
        # an empty element is an empty string in extra: it was there, with no text
        pa.array(values, pa.string()).fill_null(""),
        type=pa.map_(pa.string(), pa.string()),
    )


def _first(child: pa.Array, indices: Sequence[int | None]) -> pa.Array:
    """The element of ``child`` each job's first stream of a kind points at (null: none)."""
    return child.take(pa.array(indices, pa.int64()))


def build_table(
    rows: JobRows,
    *,
    bucket: str | None = None,
    region: str | None = None,
    fetched_at: datetime | None = None,
) -> pa.Table:
    """Build the ``JOBS_SCHEMA`` table of every job in ``rows``.

    Args:
        rows: the collected jobs.
        bucket: the bucket the pages were requested from (the ``bucket`` column).
        region: its region (the ``region`` column).
        fetched_at: when the pages were fetched, an aware datetime (the ``fetched_at`` column).

    Returns:
        One row per job, in collection order.
    """
    count = len(rows)
    columns: dict[str, pa.Array] = {}
    raw = list(zip(*rows.rows, strict=True)) if count else [()] * Slot.COUNT
    video_slots = (
        Slot.VIDEO_ROTATION,
        Slot.VIDEO_COLOR_PRIMARIES,
        Slot.VIDEO_COLOR_RANGE,
        Slot.VIDEO_COLOR_TRANSFER,
    )
    for slot, (name, kind, path) in enumerate(Slot.SPEC):

        def on_bad(
            position: int, text: str, path: str = path, video: bool = slot in video_slots
        ) -> None:
            # the first video stream's leaves sit under that stream's own path
            key = f"{rows.first_video_paths[position]}/{path}" if video else path
            rows.add_late(position, key, text)

        columns[name] = convert(raw[slot], kind, on_bad)

    streams = _stream_columns(rows)
    struct = pa.StructArray.from_arrays(list(streams.values()), fields=list(STREAM_TYPE))
    columns["streams"] = pa.ListArray.from_arrays(_offsets(rows.stream_counts), struct)
    video, audio = rows.first_video, rows.first_audio
    for column, field in (
        ("video_codec", "codec_name"),
        ("video_profile", "profile"),
        ("video_width", "width"),
        ("video_height", "height"),
        ("video_fps", "fps"),
        ("video_bitrate_kbps", "bitrate_kbps"),
        ("video_duration_s", "duration_s"),
        ("video_num_frames", "num_frames"),
        ("video_pix_format", "pix_format"),
    ):
        columns[column] = _first(streams[field], video)
    for column, field in (
        ("audio_codec", "codec_name"),
        ("audio_channels", "channels"),
        ("audio_channel_layout", "channel_layout"),
        ("audio_sample_rate", "sample_rate"),
        ("audio_bitrate_kbps", "bitrate_kbps"),
        ("audio_duration_s", "duration_s"),
    ):
        columns[column] = _first(streams[field], audio)

    watermark_values = [value for ids in rows.watermarks if ids for value in ids]
    columns["watermark_template_ids"] = pa.ListArray.from_arrays(
        _offsets([len(ids) if ids else 0 for ids in rows.watermarks]),
        _strings(watermark_values),
    )
    output_columns = list(zip(*rows.outputs, strict=True)) if rows.outputs else [()] * 4
    columns["output_files"] = pa.ListArray.from_arrays(
        _offsets(rows.output_counts),
        pa.StructArray.from_arrays(
            [_strings(values) for values in output_columns],
            names=["bucket", "region", "object_name", "md5"],
        ),
    )

    creation, start, end = columns["creation_time"], columns["start_time"], columns["end_time"]
    columns["queue_wait_s"] = _seconds_between(start, creation)
    processing = _seconds_between(end, start)
    columns["processing_s"] = processing
    divisor = pc.if_else(pc.equal(processing, 0.0), pa.scalar(None, pa.float64()), processing)
    columns["speed_x"] = pc.divide(columns["duration_s"], divisor)

    # extra last: the conversions above add the texts that did not parse
    columns["extra"] = _extra(rows)
    columns["bucket"] = _constant(bucket, count, pa.string())
    columns["region"] = _constant(region, count, pa.string())
    columns["fetched_at"] = _constant(fetched_at, count, _TS)
    columns["not_found_at"] = pa.nulls(count, _TS)
    return pa.Table.from_arrays([columns[field.name] for field in JOBS_SCHEMA], schema=JOBS_SCHEMA)
