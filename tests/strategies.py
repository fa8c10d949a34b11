"""Hypothesis strategies shared by the test modules.

Each section belongs to the module it feeds; add a section of your own rather than editing
another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from hypothesis import strategies as st

# --- request signing (auth.py) ----------------------------------------------------------------

# Characters that stress q-sign's encoding: the reserved ASCII symbols the COS doc lists, spaces,
# "+" (a space to form decoders), "%" and non-ASCII text of several scripts.
_SIGN_SYMBOLS = " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}-_.~"
_SIGN_NON_ASCII = "腾讯云数据万象éüßøΩЖ🙂"

sign_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(_SIGN_SYMBOLS),
        st.sampled_from(_SIGN_NON_ASCII),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    ),
    max_size=12,
)

# A path segment survives requests' URL preparation unchanged once decoded: no "%", "?" or "#"
# (they would be read as escapes, the query or the fragment) and no "." / ".." (removed as dot
# segments).
_PATH_ALPHABET = st.one_of(
    st.sampled_from("-_.~()!$&'*+,;=:@ "),
    st.sampled_from(_SIGN_NON_ASCII),
    st.characters(codec="ascii", categories=("Lu", "Ll", "Nd")),
)
_path_segment = st.text(alphabet=_PATH_ALPHABET, min_size=1, max_size=10).filter(
    lambda s: s.strip(".") != "" and s.strip() == s
)
sign_paths = st.lists(_path_segment, max_size=3).map(lambda parts: "/" + "/".join(parts))

# Query parameters: names and values from sign_text (values may be empty). Names must differ
# once lower-cased, because q-sign lower-cases them and the SDK keeps them in a dict.
sign_params = st.dictionaries(sign_text.filter(bool), sign_text, max_size=6).filter(
    lambda d: len({k.lower() for k in d}) == len(d)
)

# Header values as requests lets them on the wire: printable ASCII, no leading blank.
_header_value = st.text(
    alphabet=st.characters(codec="ascii", min_codepoint=0x20, max_codepoint=0x7E), max_size=20
).filter(lambda v: not v.startswith(" "))
_header_name_tail = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8
)
_signed_header_name = st.one_of(
    st.builds(
        lambda p, t: p + t,
        st.sampled_from(["x-ci-", "x-cos-", "X-Cos-", "X-CI-"]),
        _header_name_tail,
    ),
    st.sampled_from(["Content-Type", "content-type"]),
)
_unsigned_header_name = st.sampled_from(["User-Agent", "Accept", "X-Request-Tag", "Date"])
sign_headers = st.dictionaries(
    st.one_of(_signed_header_name, _unsigned_header_name), _header_value, max_size=5
).filter(lambda d: len({k.lower() for k in d}) == len(d))

sign_hosts = st.from_regex(
    r"[a-z][a-z0-9-]{0,20}-125[0-9]{7}\.ci\.ap-[a-z]{4,9}\.myqcloud\.com", fullmatch=True
)

# Secrets as CosConfig accepts them: non-empty, no blank at either end.
_secret = st.text(
    # No whitespace nor control character: Credentials refuses them (they break headers).
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
)


@dataclass(frozen=True)
class SignCase:
    """One request to sign: credentials, frozen time, URL parts and headers."""

    secret_id: str
    secret_key: str
    token: str | None
    now: int
    host: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    explicit_host: bool


sign_cases = st.builds(
    SignCase,
    secret_id=st.from_regex(r"AKID[A-Za-z0-9]{8,32}", fullmatch=True),
    secret_key=_secret,
    token=st.none() | st.from_regex(r"[A-Za-z0-9+/=_-]{1,60}", fullmatch=True),
    now=st.integers(min_value=1_000_000, max_value=4_000_000_000),
    host=sign_hosts,
    path=sign_paths,
    params=sign_params,
    headers=sign_headers,
    explicit_host=st.booleans(),
)


# --- job XML (flatten.py) ---------------------------------------------------------------------
#
# `flatten_pages` draws a page of DescribeMediaJobs jobs together with what the parser must make
# of every leaf: the typed columns, the streams, the output files and the exact `extra` map.
# A node is (tag, text) for a leaf or (tag, [children]) for a container; "" is an empty element.

_CHINA = timezone(timedelta(hours=8))
Node = tuple[str, Any]

# Texts that stress the parser: XML specials, quotes, blanks and several scripts. No "\r"
# (XML turns it into "\n") and no other control characters (XML cannot carry them).
_xml_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("<>&\"' /=-_.:;#%+"),
        st.sampled_from("腾讯云数据万象éüßΩЖ🙂"),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    ),
    max_size=12,
)
_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./", min_size=1, max_size=10)
# Unknown element names never collide with mapped ones, and repeat often.
_UNKNOWN_NAMES = ("Alpha", "Beta", "Gamma")
_unknown_name = st.sampled_from(_UNKNOWN_NAMES)


def _unknown_tree(depth: int = 2) -> st.SearchStrategy[Node]:
    if depth == 0:
        return st.tuples(_unknown_name, _xml_text)
    return st.one_of(
        st.tuples(_unknown_name, _xml_text),
        st.tuples(_unknown_name, st.lists(_unknown_tree(depth - 1), min_size=1, max_size=3)),
    )


def _null(text: str) -> str | None:
    return None if text in ("", "-") else text


def _names(nodes: list[Node]) -> list[str]:
    """Each child's name in a path: ``Tag`` or ``Tag[i]`` when the tag repeats among them."""
    tags = [tag for tag, _ in nodes]
    seen: dict[str, int] = {}
    names = []
    for tag in tags:
        if tags.count(tag) > 1:
            names.append(f"{tag}[{seen.get(tag, 0)}]")
            seen[tag] = seen.get(tag, 0) + 1
        else:
            names.append(tag)
    return names


def leaves(path: str, node: Node) -> dict[str, str]:
    """Every leaf under ``node`` (whose path is ``path``) as path -> text."""
    _, body = node
    if isinstance(body, str):
        return {path: body}
    found: dict[str, str] = {}
    for name, child in zip(_names(body), body, strict=True):
        found.update(leaves(f"{path}/{name}", child))
    return found


def render_node(node: Node) -> str:
    """The XML text of a node."""
    tag, body = node
    if isinstance(body, str):
        return f"<{tag}/>" if body == "" else f"<{tag}>{xml_escape(body)}</{tag}>"
    return f"<{tag}>{''.join(render_node(child) for child in body)}</{tag}>"


@dataclass
class JobCase:
    """One generated job: its XML node and what the table row must hold."""

    node: Node
    columns: dict[str, Any]
    extra: dict[str, str]
    streams: list[dict[str, Any]]
    output_files: list[dict[str, Any]]


class _Job:
    """Collects a job's children and expectations while it is drawn."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.columns: dict[str, Any] = {}
        self.extra: dict[str, str] = {}

    def text(self, column: str) -> str:
        text = self.draw(_xml_text)
        self.columns[column] = _null(text)
        return text

    def number(self, column: str, kind: str, path: str) -> str:
        if kind == "int":
            value: Any = self.draw(st.integers(min_value=0, max_value=2**31 - 1))
            text = str(value)
        else:
            text = f"{self.draw(st.floats(min_value=0, max_value=1e7)):.6f}"
            value = float(text)
        if self.draw(st.integers(0, 9)) == 0:
            # not a number: a null column, and the text kept in extra under its path
            text, value = self.draw(st.sampled_from(["abc", "1/0", "x9"])), None
            self.extra[path] = text
        self.columns[column] = value
        return text

    def time(self, column: str) -> str:
        if self.draw(st.integers(0, 5)) == 0:
            self.columns[column] = None
            return "-"
        moment = self.draw(
            st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1))
        ).replace(microsecond=0)
        self.columns[column] = moment.replace(tzinfo=_CHINA).astimezone(UTC)
        offset = self.draw(st.sampled_from(["+0800", "+08:00"]))
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + offset

    def expect_unknown(self, prefix: str, children: list[Node]) -> None:
        """Children with unknown names go to extra, leaf by leaf, under ``prefix``."""
        for name, child in zip(_names(children), children, strict=True):
            if child[0] in _UNKNOWN_NAMES:
                self.extra.update(leaves(prefix + name, child))


def _leaf_block(job: _Job, prefix: str, fields: list[tuple[str, str, str]]) -> list[Node]:
    """Some of ``fields`` (tag, column, kind) and unknown subtrees, in a random order."""
    draw = job.draw
    children: list[Node] = []
    for tag, column, kind in draw(st.lists(st.sampled_from(fields), unique=True)):
        if kind == "str":
            children.append((tag, job.text(column)))
        else:
            children.append((tag, job.number(column, kind, prefix + tag)))
    children += draw(st.lists(_unknown_tree(), max_size=2))
    children = list(draw(st.permutations(children)))
    job.expect_unknown(prefix, children)
    return children


def _streams(job: _Job) -> tuple[Node, list[dict[str, Any]]]:
    draw = job.draw
    kinds = draw(st.lists(st.sampled_from(["Video", "Audio", "Subtitle"]), max_size=4))
    children: list[Node] = []
    expected: list[dict[str, Any]] = []
    for kind in kinds:
        codec = draw(_xml_text)
        index = draw(st.integers(0, 9))
        bitrate = f"{draw(st.floats(min_value=0, max_value=1e5)):.6f}"
        fields: list[Node] = [("CodecName", codec), ("Index", str(index)), ("Bitrate", bitrate)]
        record: dict[str, Any] = {
            "kind": kind.lower(),
            "codec_name": _null(codec),
            "index": index,
            "bitrate_kbps": float(bitrate),
            "fps": None,
        }
        if kind == "Video":
            numerator = draw(st.integers(1, 120_000))
            fields.append(("AvgFps", f"{numerator}/1001"))
            record["fps"] = numerator / 1001
        unknown = draw(
            st.lists(st.tuples(st.sampled_from(["Sar", "Level"]), _xml_text), max_size=2)
        )
        fields = draw(st.permutations(fields + unknown))
        children.append((kind, fields))
        expected.append(record)
    if draw(st.booleans()):
        children.insert(draw(st.integers(0, len(children))), ("Subtitle", ""))
    names = _names(children)
    for name, (_, body) in zip(names, children, strict=True):
        if body == "":
            continue
        for leaf_name, leaf in zip(_names(body), body, strict=True):
            if leaf[0] not in ("CodecName", "Index", "Bitrate"):
                path = f"Operation/MediaInfo/Stream/{name}/{leaf_name}"
                job.extra.update(leaves(path, leaf))
    return ("Stream", children), expected


def _media_result(job: _Job) -> tuple[Node, list[dict[str, Any]]]:
    draw = job.draw
    files: list[Node] = []
    expected: list[dict[str, Any]] = []
    count = draw(st.integers(1, 2))
    for number in range(count):
        bucket, region = draw(_word), draw(_word)
        prefix = draw(st.sampled_from(["", "out/", "媒体/"]))
        names = draw(st.lists(_word, max_size=3, unique=True))
        with_md5 = [name for name in names if draw(st.booleans())]
        md5s = {name: draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)) for name in with_md5}
        children: list[Node] = [("Bucket", bucket), ("Region", region), ("ObjectPrefix", prefix)]
        children += [("ObjectName", name) for name in names]
        children += [("Md5Info", [("Md5", md5s[name]), ("ObjectName", name)]) for name in with_md5]
        files.append(("OutputFile", children))
        path = "Operation/MediaResult/" + (f"OutputFile[{number}]" if count > 1 else "OutputFile")
        if not names:
            for tag, text in children[:3]:
                job.extra[f"{path}/{tag}"] = text
        expected += [
            {
                "bucket": _null(bucket),
                "region": _null(region),
                "object_name": _null(prefix + name),
                "md5": md5s.get(name),
            }
            for name in names
        ]
    return ("MediaResult", files), expected


@st.composite
def flatten_jobs(draw: st.DrawFn, job_id: str) -> JobCase:
    """One job with random known fields, unknown subtrees, streams and outputs."""
    job = _Job(draw)
    job.columns["job_id"] = job_id
    top: list[Node] = [("JobId", job_id)]
    fields = [
        ("State", "state", "str"),
        ("Code", "code", "str"),
        ("Message", "message", "str"),
        ("Tag", "tag", "str"),
        ("QueueId", "queue_id", "str"),
        ("Progress", "progress", "int"),
    ]
    top += _leaf_block(job, "", fields)
    for tag, column in (("CreationTime", "creation_time"), ("StartTime", "start_time")):
        if draw(st.booleans()):
            top.append((tag, job.time(column)))
    fields = [
        ("BucketId", "input_bucket", "str"),
        ("Object", "input_object", "str"),
        ("Region", "input_region", "str"),
    ]
    top.append(("Input", _leaf_block(job, "Input/", fields)))

    fields = [
        ("TemplateId", "template_id", "str"),
        ("UserData", "user_data", "str"),
        ("JobLevel", "job_level", "int"),
    ]
    operation = _leaf_block(job, "Operation/", fields)
    watermarks = draw(st.lists(_xml_text, max_size=3))
    job.columns["watermark_template_ids"] = [_null(text) for text in watermarks]
    operation += [("WatermarkTemplateId", text) for text in watermarks]
    fields = [("Bucket", "output_bucket", "str"), ("Object", "output_object", "str")]
    operation.append(("Output", _leaf_block(job, "Operation/Output/", fields)))
    streams: list[dict[str, Any]] = []
    if draw(st.booleans()):
        fields = [
            ("FormatName", "format_name", "str"),
            ("Duration", "duration_s", "float"),
            ("Size", "size_bytes", "int"),
        ]
        format_node = ("Format", _leaf_block(job, "Operation/MediaInfo/Format/", fields))
        stream_node, streams = _streams(job)
        operation.append(("MediaInfo", [format_node, stream_node]))
    outputs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        result_node, outputs = _media_result(job)
        operation.append(result_node)
    top.append(("Operation", operation))
    return JobCase(("JobsDetail", top), job.columns, job.extra, streams, outputs)


@st.composite
def flatten_pages(draw: st.DrawFn) -> tuple[bytes, list[JobCase], str | None]:
    """A page of 1-3 generated jobs: (body, the jobs, the next token)."""
    count = draw(st.integers(1, 3))
    jobs = [draw(flatten_jobs(job_id=f"j{number:032x}")) for number in range(count)]
    token = draw(st.none() | _word)
    tail = "<NextToken/>" if token is None else f"<NextToken>{token}</NextToken>"
    body = "<Response>" + "".join(render_node(job.node) for job in jobs) + tail + "</Response>"
    return body.encode(), jobs, token
