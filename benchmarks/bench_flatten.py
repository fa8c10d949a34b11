"""How fast parse_pages flattens DescribeMediaJobs pages, against the usual ways (``make bench``).

Generates >= 20,000 realistic jobs in 100-job pages from the 19 sample tag pages in
``sample_data/tags`` (new job ids, shifted times, varied media numbers), then times on the same
bytes:

  (a) lxml's bare parse of every page (the floor: no flattening at all),
  (b) xmltodict + pandas.json_normalize (the usual hand-written approach),
  (c) the official SDK's ``qcloud_cos.cos_comm.xml_to_dict`` + ``format_dict`` + json_normalize,
  (d) ``cijobs_analytics.parse_pages``.

Each is timed as the best of ``--repeat`` runs. Target: (d) at least 4x faster than (b) and at
least 0.2x the speed of (a). Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import platform
import random
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import xmltodict
from lxml import etree
from qcloud_cos.cos_comm import format_dict, xml_to_dict

from cijobs_analytics import parse_pages

ROOT = Path(__file__).resolve().parent.parent
TAGS_DIR = ROOT / "sample_data" / "tags"
PAGE_SIZE = 100
TARGET_VS_XMLTODICT = 4.0
TARGET_VS_BARE_PARSE = 0.2

_TIME = re.compile(rb"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\+0800")
_JOB_ID = re.compile(rb"<JobId>[^<]*</JobId>")
_MEASURE = re.compile(rb"<(Duration|Bitrate|Size|NumFrames)>([0-9.]+)</")


def _templates() -> list[bytes]:
    """Every ``<JobsDetail>`` of the sample tag pages, serialised compactly."""
    jobs = []
    for path in sorted(TAGS_DIR.glob("*.xml")):
        root = etree.fromstring(path.read_bytes(), etree.XMLParser(remove_blank_text=True))
        jobs += [etree.tostring(job) for job in root.iterchildren("JobsDetail")]
    return jobs


def _vary(template: bytes, number: int, rng: random.Random) -> bytes:
    """A new job from a template: its own id, times shifted, media numbers scaled."""
    shift = timedelta(seconds=number * 7)
    scale = rng.uniform(0.5, 2.0)

    def shift_time(match: re.Match[bytes]) -> bytes:
        moved = datetime.fromisoformat(match.group(1).decode()) + shift
        return moved.strftime("%Y-%m-%dT%H:%M:%S+0800").encode()

    def scale_number(match: re.Match[bytes]) -> bytes:
        tag, value = match.group(1), match.group(2)
        if b"." in value:
            scaled = f"{float(value) * scale:.6f}".encode()
        else:
            scaled = str(int(int(value) * scale)).encode()
        return b"<" + tag + b">" + scaled + b"</"

    job_id = "j" + hashlib.md5(f"{number}".encode(), usedforsecurity=False).hexdigest()
    text = _JOB_ID.sub(f"<JobId>{job_id}</JobId>".encode(), template, count=1)
    text = _TIME.sub(shift_time, text)
    return _MEASURE.sub(scale_number, text)


def make_pages(jobs: int, seed: int = 0) -> list[bytes]:
    """``jobs`` generated jobs in pages of 100, each page ending with a NextToken."""
    rng = random.Random(seed)
    templates = _templates()
    pages = []
    for first in range(0, jobs, PAGE_SIZE):
        count = min(PAGE_SIZE, jobs - first)
        body = b"".join(
            _vary(rng.choice(templates), first + offset, rng) for offset in range(count)
        )
        token = f"<NextToken>{first + count}</NextToken>".encode()
        pages.append(b"<Response>" + body + token + b"</Response>")
    return pages


def bare_parse(pages: list[bytes]) -> int:
    """(a) lxml parses every page; nothing is flattened."""
    return sum(len(etree.fromstring(page)) - 1 for page in pages)


def xmltodict_normalize(pages: list[bytes]) -> int:
    """(b) xmltodict to nested dicts, json_normalize to one flat frame."""
    jobs: list[dict[str, object]] = []
    for page in pages:
        details = xmltodict.parse(page)["Response"].get("JobsDetail") or []
        jobs += details if isinstance(details, list) else [details]
    return len(pd.json_normalize(jobs))


def sdk_normalize(pages: list[bytes]) -> int:
    """(c) the official SDK's parser (what ci_list_media_jobs returns), then json_normalize."""
    jobs: list[dict[str, object]] = []
    for page in pages:
        data = xml_to_dict(page)
        format_dict(data, ["JobsDetail"])
        jobs += data.get("JobsDetail") or []
    return len(pd.json_normalize(jobs))


def ours(pages: list[bytes]) -> int:
    """(d) parse_pages: one typed Arrow table in JOBS_SCHEMA."""
    return parse_pages(pages).num_rows


def _best(func: Callable[[list[bytes]], int], pages: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        func(pages)
        best = min(best, time.perf_counter() - started)
    return best


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs to generate (>= 20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per contender; best counts")
    args = parser.parse_args(argv)

    pages = make_pages(args.jobs)
    megabytes = sum(len(page) for page in pages) / 1e6
    print(f"{args.jobs} jobs in {len(pages)} pages, {megabytes:.1f} MB of XML")
    print(f"python {platform.python_version()}, {_cpu()}")
    for func in (bare_parse, xmltodict_normalize, sdk_normalize, ours):
        rows = func(pages[:2])  # warm up, and check every contender sees every job
        assert rows == min(args.jobs, 2 * PAGE_SIZE), (func.__name__, rows)

    timings = {
        "(a) lxml bare parse": _best(bare_parse, pages, args.repeat),
        "(b) xmltodict + json_normalize": _best(xmltodict_normalize, pages, args.repeat),
        "(c) SDK xml_to_dict + json_normalize": _best(sdk_normalize, pages, args.repeat),
        "(d) cijobs_analytics.parse_pages": _best(ours, pages, args.repeat),
    }
    ours_s = timings["(d) cijobs_analytics.parse_pages"]
    for name, seconds in timings.items():
        print(
            f"  {name:<38} {seconds:8.3f} s  {args.jobs / seconds:>10,.0f} jobs/s"
            f"  (d) is {seconds / ours_s:5.2f}x its speed"
        )
    vs_xmltodict = timings["(b) xmltodict + json_normalize"] / ours_s
    vs_bare = timings["(a) lxml bare parse"] / ours_s
    vs_sdk = timings["(c) SDK xml_to_dict + json_normalize"] / ours_s
    print(f"(d) vs (b): {vs_xmltodict:.2f}x faster (target >= {TARGET_VS_XMLTODICT}x)")
    print(f"(d) vs (c): {vs_sdk:.2f}x faster")
    print(f"(d) vs (a): {vs_bare:.2f}x the bare parse's speed (target >= {TARGET_VS_BARE_PARSE}x)")
    met = vs_xmltodict >= TARGET_VS_XMLTODICT and vs_bare >= TARGET_VS_BARE_PARSE
    print("target met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
