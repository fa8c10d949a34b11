"""Walk parsed ``<JobsDetail>`` elements into raw per-job rows (the first half of flatten).

Each job becomes one row of raw texts in fixed slots, plus its streams, output files,
watermark template ids and ``extra`` pairs. Nothing is converted here: :mod:`._jobtable`
turns the collected texts into typed Arrow columns in one vectorised step per column. Fields
are addressed by their full path under ``JobsDetail`` (never "the first ``State`` anywhere":
``Operation/DigitalWatermark`` has its own ``State``).

Speed comes from shapes. A job's shape is its elements' tags and child counts in document
order, which fixes the tree. Jobs of one tag nearly always share a few shapes, so the mapping
of a shape (which element fills which slot, which go to ``extra`` under which key) is worked
out once by :class:`_Planner`, the careful, readable walk, and kept as a :class:`_Plan` of
positions. Every further job of that shape costs a handful of C-level calls: list its
elements, take their texts, pick them out with ``operator.itemgetter``.

Keys of ``extra`` are the path under ``JobsDetail`` joined by ``/``; an element that occurs
more than once among its siblings gets ``[i]`` (0-based) on every occurrence, e.g.
``Operation/MediaInfo/Stream/Audio[1]/SampleFmt``. Values are the element text verbatim, ``""``
for an empty element.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from lxml import etree

from ._jobmap import (
    AVG_FPS,
    FIRST_VIDEO,
    FORMAT,
    INPUT,
    OPERATION,
    OUTPUT,
    STREAM,
    STREAM_FIELDS,
    STREAM_KINDS,
    TOP,
    WORKFLOW,
    Slot,
)

__all__ = ["JobRows"]

Element = etree._Element

# map(attrgetter) fetches the tags of a job's elements several times faster than a loop
_TAG_OF = attrgetter("tag")

#: The position of "no such element": the ``None`` appended after a job's texts.
ABSENT = -1


def _getter(positions: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``itemgetter`` that always returns a tuple, even for zero or one position."""
    if not positions:
        return lambda texts: ()
    if len(positions) == 1:
        only = positions[0]
        return lambda texts: (texts[only],)
    return itemgetter(*positions)


@dataclass
class _OutputFilePlan:
    """Positions of one ``OutputFile``: matching md5s to names depends on the texts."""

    bucket: int
    region: int
    object_prefix: int
    names: list[int]
    # per plain Md5Info: (ObjectName position, Md5 position, its extra keys and positions)
    md5_infos: list[tuple[int, int, list[str], list[int]]]


@dataclass
class _Plan:
    """How to turn the texts of one job shape into a row: all positions, no decisions."""

    row: list[int] = field(default_factory=lambda: [ABSENT] * Slot.COUNT)
    extra_keys: list[str] = field(default_factory=list)
    extra_positions: list[int] = field(default_factory=list)
    # childless stream elements: only a non-blank text is kept, under this key
    optional_extra: list[tuple[str, int]] = field(default_factory=list)
    watermarks: list[int] | None = None
    stream_kinds: list[str] = field(default_factory=list)
    stream_prefixes: list[str] = field(default_factory=list)
    stream_positions: list[list[int]] = field(default_factory=list)
    first_video: int | None = None
    first_audio: int | None = None
    first_video_path: str = ""
    output_files: list[_OutputFilePlan] = field(default_factory=list)

    def compile(self) -> None:
        """Prepare the getters that :meth:`apply` uses."""
        self.row_of = _getter(self.row)
        self.extra_of = _getter(self.extra_positions)
        self.watermarks_of = None if self.watermarks is None else _getter(self.watermarks)
        self.streams_of = [_getter(positions) for positions in self.stream_positions]

    def apply(self, rows: JobRows, texts: list[str | None]) -> None:
        """Add the job whose element texts are ``texts`` (plus a final ``None``) to ``rows``."""
        job = len(rows.rows)
        rows.rows.append(self.row_of(texts))
        keys, values = rows.keys, rows.values
        start = len(keys)
        keys += self.extra_keys
        values += self.extra_of(texts)
        for key, position in self.optional_extra:
            text = texts[position]
            if text is not None and text.strip():
                keys.append(key)
                values.append(text)
        outputs = 0
        for output_file in self.output_files:
            outputs += _apply_output_file(rows, output_file, texts)
        rows.extra_counts.append(len(keys) - start)
        rows.output_counts.append(outputs)
        watermarks_of = self.watermarks_of
        rows.watermarks.append(None if watermarks_of is None else watermarks_of(texts))
        base = len(rows.streams)
        if self.streams_of:
            rows.streams += [stream_of(texts) for stream_of in self.streams_of]
            rows.stream_kinds += self.stream_kinds
            rows.stream_paths += self.stream_prefixes
            rows.stream_rows += [job] * len(self.streams_of)
        rows.stream_counts.append(len(self.streams_of))
        rows.first_video.append(None if self.first_video is None else base + self.first_video)
        rows.first_audio.append(None if self.first_audio is None else base + self.first_audio)
        rows.first_video_paths.append(self.first_video_path)


def _apply_output_file(rows: JobRows, plan: _OutputFilePlan, texts: list[str | None]) -> int:
    """One entry per ObjectName (ObjectPrefix + name, md5 matched by name); returns how many."""
    start = texts[plan.object_prefix] or ""
    bucket, region = texts[plan.bucket], texts[plan.region]
    by_name: dict[str, int] = {}
    for index, (name_at, _, _, _) in enumerate(plan.md5_infos):
        by_name.setdefault(texts[name_at] or "", index)
    used: set[int] = set()
    for name_at in plan.names:
        name = texts[name_at] or ""
        number: int | None = by_name.get(name)
        if number is None:
            number = by_name.get(start + name)
        md5 = None
        if number is not None:
            md5 = texts[plan.md5_infos[number][1]]
            used.add(number)
        rows.outputs.append((bucket, region, (start + name) or None, md5))
    for number, (_, _, keys, positions) in enumerate(plan.md5_infos):
        if number not in used:
            # an md5 no ObjectName claims is kept as it came
            rows.keys += keys
            rows.values += [texts[position] for position in positions]
    return len(plan.names)


def _children(element: Element) -> list[Element]:
    """The element children of ``element``, in document order.

    Entity references, comments and processing instructions are nodes too, but their tag is a
    function, not a name: they hold no field and must never name an ``extra`` key.
    """
    return [child for child in element if isinstance(child.tag, str)]


def _nested(element: Element) -> bool:
    """Whether ``element`` has element children (else it is a leaf, whatever else it holds)."""
    return any(isinstance(child.tag, str) for child in element)


class _Planner:
    """Work out the :class:`_Plan` of one job by walking it element by element.

    Every leaf is given exactly one destination: a row slot, a stream field, a watermark id,
    an output file part, or an ``extra`` key. Mapped leaves are first occurrences of a known
    tag with no children; anything else (repeats, unknown tags, nested surprises) is walked
    into ``extra`` under its path.
    """

    def __init__(self, job: Element, elements: list[Element]) -> None:
        self.at = {element: position for position, element in enumerate(elements)}
        self.plan = _Plan()
        self.job(job)
        self.plan.compile()

    def to_extra(self, key: str, element: Element) -> None:
        self.plan.extra_keys.append(key)
        self.plan.extra_positions.append(self.at[element])

    def walk(self, path: str, element: Element) -> None:
        """Every leaf under ``element`` (whose own path is ``path``) goes to ``extra``."""
        children = _children(element)
        if not children:
            self.to_extra(path, element)
            return
        tags = [child.tag for child in children]
        seen: dict[str, int] = {}
        for child, tag in zip(children, tags, strict=True):
            if tags.count(tag) > 1:
                index = seen.get(tag, 0)
                seen[tag] = index + 1
                self.walk(f"{path}/{tag}[{index}]", child)
            else:
                self.walk(f"{path}/{tag}", child)

    def rest(self, prefix: str, parent: Element, rest: list[Element]) -> None:
        """Walk the unmapped children ``rest`` of ``parent``; ``prefix`` is its path + ``/``."""
        tags = [child.tag for child in _children(parent)]
        for child in rest:
            tag = child.tag
            if tags.count(tag) > 1:
                index = sum(1 for other in child.itersiblings(preceding=True) if other.tag == tag)
                self.walk(f"{prefix}{tag}[{index}]", child)
            else:
                self.walk(f"{prefix}{tag}", child)

    def fill(
        self, prefix: str, element: Element, mapping: dict[str, int], target: list[int]
    ) -> None:
        """First childless occurrences of tags in ``mapping`` fill ``target``; rest: extra."""
        rest: list[Element] = []
        filled: set[int] = set()
        for child in _children(element):
            slot = mapping.get(child.tag)
            if slot is not None and slot not in filled and not _nested(child):
                filled.add(slot)
                target[slot] = self.at[child]
            else:
                rest.append(child)
        self.rest(prefix, element, rest)

    def job(self, job: Element) -> None:
        row = self.plan.row
        rest: list[Element] = []
        workflows: list[Element] = []
        filled: set[int] = set()
        done: set[str] = set()
        for child in _children(job):
            tag = child.tag
            slot = TOP.get(tag)
            if slot is not None and slot not in filled and not _nested(child):
                filled.add(slot)
                row[slot] = self.at[child]
            elif tag == "Input" and tag not in done:
                done.add(tag)
                self.fill("Input/", child, INPUT, row)
            elif tag == "Operation" and tag not in done:
                done.add(tag)
                self.operation(child)
            elif tag == "Workflow":
                workflows.append(child)
            else:
                rest.append(child)
        if len(workflows) == 1:
            self.fill("Workflow/", workflows[0], WORKFLOW, row)
        elif workflows:
            # several: the first fills the columns, and every leaf of all is kept in extra
            for child in _children(workflows[0]):
                slot = WORKFLOW.get(child.tag)
                if slot is not None and row[slot] == ABSENT and not _nested(child):
                    row[slot] = self.at[child]
            for index, workflow in enumerate(workflows):
                self.walk(f"Workflow[{index}]", workflow)
        self.rest("", job, rest)

    def operation(self, operation: Element) -> None:
        row = self.plan.row
        rest: list[Element] = []
        filled: set[int] = set()
        done: set[str] = set()
        for child in _children(operation):
            tag = child.tag
            slot = OPERATION.get(tag)
            if slot is not None and slot not in filled and not _nested(child):
                filled.add(slot)
                row[slot] = self.at[child]
            elif tag == "WatermarkTemplateId" and not _nested(child):
                if self.plan.watermarks is None:
                    self.plan.watermarks = []
                self.plan.watermarks.append(self.at[child])
            elif tag in ("Output", "MediaInfo", "MediaResult") and tag not in done:
                done.add(tag)
                if tag == "Output":
                    self.fill("Operation/Output/", child, OUTPUT, row)
                elif tag == "MediaInfo":
                    self.media_info(child)
                else:
                    self.media_result(child)
            else:
                rest.append(child)
        self.rest("Operation/", operation, rest)

    def media_info(self, media_info: Element) -> None:
        rest: list[Element] = []
        done: set[str] = set()
        for child in _children(media_info):
            tag = child.tag
            if tag == "Format" and tag not in done:
                done.add(tag)
                self.fill("Operation/MediaInfo/Format/", child, FORMAT, self.plan.row)
            elif tag == "Stream" and tag not in done:
                done.add(tag)
                self.streams(child)
            else:
                rest.append(child)
        self.rest("Operation/MediaInfo/", media_info, rest)

    def streams(self, block: Element) -> None:
        """Video, Audio and Subtitle children, in document order, one record each."""
        children = _children(block)
        tags = [child.tag for child in children]
        seen: dict[str, int] = {}
        for child, tag in zip(children, tags, strict=True):
            name = tag
            if tags.count(tag) > 1:
                index = seen.get(tag, 0)
                seen[tag] = index + 1
                name = f"{tag}[{index}]"
            path = "Operation/MediaInfo/Stream/" + name
            kind = STREAM_KINDS.get(tag)
            if kind is None:
                self.walk(path, child)
            elif _nested(child):
                self.stream(kind, path, child)
            else:
                # an empty <Subtitle/> is "no stream"; a text in its place is still kept
                self.plan.optional_extra.append((path, self.at[child]))

    def stream(self, kind: str, path: str, element: Element) -> None:
        plan = self.plan
        record = [ABSENT] * len(STREAM_FIELDS)
        first_video = kind == "video" and plan.first_video is None
        if first_video:
            plan.first_video = len(plan.stream_kinds)
            plan.first_video_path = path
        elif kind == "audio" and plan.first_audio is None:
            plan.first_audio = len(plan.stream_kinds)
        rest: list[Element] = []
        filled: set[int] = set()
        for child in _children(element):
            tag = child.tag
            leaf = not _nested(child)
            field_ = STREAM.get(tag)
            slot = FIRST_VIDEO.get(tag) if first_video else None
            if field_ is not None and field_ not in filled and leaf:
                filled.add(field_)
                record[field_ - 1] = self.at[child]
            elif slot is not None and slot not in filled and leaf:
                filled.add(slot)
                plan.row[slot] = self.at[child]
            else:
                if tag == "AvgFps" and record[AVG_FPS] == ABSENT and leaf:
                    # AvgFps stays in extra verbatim; it only stands in for a missing Fps
                    record[AVG_FPS] = self.at[child]
                rest.append(child)
        self.rest(path + "/", element, rest)
        plan.stream_kinds.append(kind)
        plan.stream_prefixes.append(path)
        plan.stream_positions.append(record)

    def media_result(self, media_result: Element) -> None:
        children = _children(media_result)
        files = sum(1 for child in children if child.tag == "OutputFile")
        index = 0
        rest: list[Element] = []
        for child in children:
            if child.tag != "OutputFile":
                rest.append(child)
                continue
            name = f"OutputFile[{index}]" if files > 1 else "OutputFile"
            index += 1
            if _nested(child):
                self.output_file(f"Operation/MediaResult/{name}/", child)
            else:
                self.walk(f"Operation/MediaResult/{name}", child)
        self.rest("Operation/MediaResult/", media_result, rest)

    def output_file(self, prefix: str, output_file: Element) -> None:
        parts = {"Bucket": ABSENT, "Region": ABSENT, "ObjectPrefix": ABSENT}
        names: list[int] = []
        md5_infos: list[tuple[int, int, list[str], list[int]]] = []
        rest: list[Element] = []
        children = _children(output_file)
        tags = [child.tag for child in children]
        md5_index = 0
        for child, tag in zip(children, tags, strict=True):
            if tag == "ObjectName" and not _nested(child):
                names.append(self.at[child])
            elif tag in parts and parts[tag] == ABSENT and not _nested(child):
                parts[tag] = self.at[child]
            elif tag == "Md5Info" and self._plain_md5_info(child):
                name = f"Md5Info[{md5_index}]" if tags.count("Md5Info") > 1 else "Md5Info"
                md5_index += 1
                by_tag = {leaf.tag: self.at[leaf] for leaf in _children(child)}
                keys = [f"{prefix}{name}/{leaf.tag}" for leaf in _children(child)]
                positions = [self.at[leaf] for leaf in _children(child)]
                md5_infos.append((by_tag["ObjectName"], by_tag["Md5"], keys, positions))
            else:
                if tag == "Md5Info":
                    md5_index += 1
                rest.append(child)
        if not names:
            # no entry carries bucket, region or prefix: keep them as they came
            rest += [child for child in children if self.at[child] in parts.values()]
            parts = dict.fromkeys(parts, ABSENT)
        self.rest(prefix, output_file, rest)
        self.plan.output_files.append(
            _OutputFilePlan(
                parts["Bucket"], parts["Region"], parts["ObjectPrefix"], names, md5_infos
            )
        )

    @staticmethod
    def _plain_md5_info(info: Element) -> bool:
        """An Md5Info of exactly one ObjectName and one Md5 leaf."""
        tags = sorted(child.tag for child in _children(info))
        return tags == ["Md5", "ObjectName"] and not any(map(_nested, info))


# Plans by job shape, least recently used first. Real histories hold a few hundred shapes
# (stream, output and watermark counts vary); the bound keeps a long export's memory flat.
_PLANS: OrderedDict[tuple[tuple[Any, ...], tuple[int, ...]], _Plan] = OrderedDict()
_PLANS_MAX = 1024
_PLANS_LOCK = threading.Lock()


class JobRows:
    """Raw rows of many jobs, filled page by page, converted once by :mod:`._jobtable`.

    Texts are kept as lxml gives them: ``None`` for an empty element.

    Attributes:
        rows: one tuple of ``Slot.COUNT`` raw texts (or ``None``) per job.
        keys: the ``extra`` keys of every job, flattened; ``extra_counts`` says whose.
        values: the ``extra`` values, in step with ``keys``.
        extra_counts: how many ``extra`` pairs each job has.
        late: ``extra`` pairs added after collection (texts a column would not take), by job.
        watermarks: the ``WatermarkTemplateId`` texts of each job (``None`` when absent).
        streams: every stream record of every job (15 field texts, then AvgFps), flattened.
        stream_kinds: ``video``/``audio``/``subtitle`` per stream record.
        stream_paths: the path of each stream record's element.
        stream_rows: the job each stream record belongs to.
        stream_counts: how many stream records each job has.
        first_video: per job, the index in ``streams`` of its first video stream, or ``None``.
        first_audio: the same for the first audio stream.
        first_video_paths: per job, the path of its first video stream (``""`` when none).
        outputs: every (bucket, region, object_name, md5) of every job, flattened.
        output_counts: how many output entries each job has.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str | None, ...]] = []
        self.keys: list[str] = []
        self.values: list[str | None] = []
        self.extra_counts: list[int] = []
        self.late: dict[int, list[tuple[str, str]]] = {}
        self.watermarks: list[tuple[str | None, ...] | None] = []
        self.streams: list[tuple[str | None, ...]] = []
        self.stream_kinds: list[str] = []
        self.stream_paths: list[str] = []
        self.stream_rows: list[int] = []
        self.stream_counts: list[int] = []
        self.first_video: list[int | None] = []
        self.first_audio: list[int | None] = []
        self.first_video_paths: list[str] = []
        self.outputs: list[tuple[str | None, str | None, str | None, str | None]] = []
        self.output_counts: list[int] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add_late(self, job: int, key: str, value: str) -> None:
        """Add an ``extra`` pair to job number ``job`` after its collection."""
        self.late.setdefault(job, []).append((key, value))

    def add_job(self, job: Element) -> None:
        """Collect one ``<JobsDetail>`` element."""
        elements = list(job.iter())
        shape = (tuple(map(_TAG_OF, elements)), tuple(map(len, elements)))
        with _PLANS_LOCK:  # fetch workers parse pages on several threads at once
            plan = _PLANS.get(shape)
            if plan is not None:
                _PLANS.move_to_end(shape)
        if plan is None:
            plan = _Planner(job, elements).plan
            with _PLANS_LOCK:
                if len(_PLANS) >= _PLANS_MAX:
                    _PLANS.popitem(last=False)
                _PLANS[shape] = plan
        texts = [element.text for element in elements]
        texts.append(None)  # what ABSENT points at
        plan.apply(self, texts)
