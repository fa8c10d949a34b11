"""The ``<JobsDetail>`` XML of an emulated job.

Every detail that is not a field of :class:`~.generate.EmulatedJob` (templates, per-tag
operation blocks, media info, output objects, workflow blocks) is drawn from a random source
seeded with the job's ``variant``, so a job renders identically every time and after a state
change only the state-dependent parts differ. The shapes follow reference §4.2–§4.8 and the
§9 samples: times in ``+0800``, ``-`` for times not reached yet, ``<Message/>`` and
``<Subtitle/>`` as empty elements, repeated ``WatermarkTemplateId``, ``ObjectName`` and
``Md5Info``, float bitrates, ``AvgFps`` sometimes rational (``24/1``). ``MediaInfo`` and
``MediaResult`` appear only once a job succeeded. Text is escaped (object keys hold ``&``,
failure messages ``<``), so every page is well-formed XML.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .generate import EmulatedJob

__all__ = ["escape", "render_job", "wire_time"]

_TZ8 = timedelta(hours=8)

#: Tags whose successful jobs report the MediaInfo of their output (MediaInfo: of the input).
_MEDIA_TAGS = frozenset(
    {
        "Transcode", "Concat", "VideoMontage", "SDRtoHDR", "VideoProcess", "SuperResolution",
        "DigitalWatermark", "MediaInfo", "Animation", "NoiseReduction", "Tts", "Segment",
    }
)  # fmt: skip
_AUDIO_ONLY_TAGS = frozenset({"NoiseReduction", "Tts"})
_NO_RESULT_TAGS = frozenset({"MediaInfo", "VideoTag", "QualityEstimate", "ExtractDigitalWatermark"})

_WORKFLOW_NAMES = ("upload-pipeline", "ugc-审核转码", "nightly & weekly")
_TEMPLATE_NAMES: dict[str, tuple[str, ...]] = {
    "Transcode": ("mp4-720p", "mp4-1080p", "hls-480p", "h265-4k", "audio-aac-128k"),
    "Animation": ("gif-320", "webp-480"),
    "Snapshot": ("snap-4x", "snap-interval-10s", "sprite-10x10"),
    "SmartCover": ("cover-3",),
    "Concat": ("concat-mp4",),
    "VoiceSeparate": ("voice-bgm-split",),
    "VideoMontage": ("montage-30s",),
    "SDRtoHDR": ("hdr10",),
    "VideoProcess": ("enhance-color",),
    "SuperResolution": ("sr-hd",),
    "Segment": ("hls-6s", "mp4-600s"),
    "DigitalWatermark": ("dw-text",),
    "ExtractDigitalWatermark": ("dw-extract",),
    "VideoTag": ("tag-general",),
    "StreamExtract": ("extract-all",),
    "QualityEstimate": ("vqa-default",),
    "Tts": ("tts-female-cn", "tts-male-en"),
    "NoiseReduction": ("denoise-mp3",),
}


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for XML text content."""
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def wire_time(value: datetime | None) -> str:
    """A time as the service writes it (``2024-03-05T10:47:09+0800``), ``-`` for ``None``."""
    if value is None:
        return "-"
    return (value + _TZ8).strftime("%Y-%m-%dT%H:%M:%S+0800")


def _el(name: str, value: object) -> str:
    text = escape(str(value))
    return f"<{name}>{text}</{name}>" if text else f"<{name}/>"


def _template_id(tag: str, name: str) -> str:
    return "t1" + hashlib.md5(f"{tag}/{name}".encode(), usedforsecurity=False).hexdigest()


def _md5(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _stem(job: EmulatedJob) -> str:
    name = job.input_object.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0]


def _video_stream(rng: random.Random, index: int, duration: float, size: tuple[int, int]) -> str:
    width, height = size
    fps = rng.choice((25.0, 25.0, 30.0, 24.0, 29.97, 60.0))
    avg_fps = "24/1" if fps == 24.0 and rng.random() < 0.5 else f"{fps:.6f}"
    codec = rng.choice(("h264", "h264", "h264", "hevc"))
    long_name = (
        "H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10"
        if codec == "h264"
        else "H.265 / HEVC (High Efficiency Video Coding)"
    )
    tag_string, tag_hex = ("avc1", "0x31637661") if codec == "h264" else ("hvc1", "0x31637668")
    primaries, transfer = rng.choice((("bt709", "bt709"), ("bt470bg", "smpte170m")))
    bitrate = rng.uniform(300.0, 4000.0) * (width * height / (1280 * 720)) ** 0.5
    return (
        "<Video>"
        f"<AvgFps>{avg_fps}</AvgFps><Bitrate>{bitrate:.6f}</Bitrate>"
        f"<CodecLongName>{long_name}</CodecLongName><CodecName>{codec}</CodecName>"
        f"<CodecTag>{tag_hex}</CodecTag><CodecTagString>{tag_string}</CodecTagString>"
        "<CodecTimeBase>1/12800</CodecTimeBase>"
        f"<ColorPrimaries>{primaries}</ColorPrimaries><ColorRange>tv</ColorRange>"
        f"<ColorTransfer>{transfer}</ColorTransfer>"
        f"<Dar>{'16:9' if width * 9 == height * 16 else f'{width}:{height}'}</Dar>"
        f"<Duration>{duration:.6f}</Duration><FieldOrder>progressive</FieldOrder>"
        f"<Fps>{fps:.6f}</Fps><HasBFrame>{rng.choice((0, 2))}</HasBFrame>"
        f"<Height>{height}</Height><Index>{index}</Index><Language>und</Language>"
        f"<Level>{rng.choice((30, 31, 40, 41, 51))}</Level>"
        f"<NumFrames>{int(duration * fps)}</NumFrames><PixFormat>yuv420p</PixFormat>"
        f"<Profile>{rng.choice(('High', 'Main', 'Baseline'))}</Profile><RefFrames>1</RefFrames>"
        f"<Rotation>{rng.choice((0, 0, 0, 90, 270)):.6f}</Rotation><Sar>1:1</Sar>"
        "<StartTime>0.000000</StartTime><Timebase>1/12800</Timebase>"
        f"<Width>{width}</Width></Video>"
    )


def _audio_stream(rng: random.Random, index: int, duration: float) -> str:
    channels = rng.choice((2, 2, 2, 1, 6))
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    rate = rng.choice((44100, 48000, 48000, 16000))
    codec, long_name, tag_string, tag_hex = rng.choice(
        (
            ("aac", "AAC (Advanced Audio Coding)", "mp4a", "0x6134706d"),
            ("aac", "AAC (Advanced Audio Coding)", "mp4a", "0x6134706d"),
            ("mp3", "MP3 (MPEG audio layer 3)", "[0][0][0][0]", "0x0000"),
        )
    )
    return (
        "<Audio>"
        f"<Bitrate>{rng.uniform(48.0, 320.0):.6f}</Bitrate><Channel>{channels}</Channel>"
        f"<ChannelLayout>{layout}</ChannelLayout><CodecLongName>{long_name}</CodecLongName>"
        f"<CodecName>{codec}</CodecName><CodecTag>{tag_hex}</CodecTag>"
        f"<CodecTagString>{escape(tag_string)}</CodecTagString>"
        f"<CodecTimeBase>1/{rate}</CodecTimeBase>"
        f"<Duration>{max(0.0, duration - rng.random() * 0.05):.6f}</Duration>"
        f"<Index>{index}</Index><Language>{rng.choice(('und', 'und', 'chi', 'eng'))}</Language>"
        f"<SampleFmt>fltp</SampleFmt><SampleRate>{rate}</SampleRate>"
        f"<StartTime>0.000000</StartTime><Timebase>1/{rate}</Timebase></Audio>"
    )


def _media_info(rng: random.Random, job: EmulatedJob) -> str:
    """A ``<MediaInfo>`` with 1..2 video (none for audio tags), 0..3 audio and rare subtitles."""
    duration = job.media_duration_s
    audio_only = job.tag in _AUDIO_ONLY_TAGS
    videos = 0 if audio_only else (2 if rng.random() < 0.1 else 1)
    audios = 1 if audio_only else rng.choices((0, 1, 2, 3), (8, 75, 12, 5))[0]
    subtitles = 0 if audio_only or rng.random() >= 0.05 else rng.choice((1, 2))
    size = rng.choice(((1280, 720), (1920, 1080), (854, 480), (3840, 2160), (720, 1280)))
    parts: list[str] = []
    index = 0
    for _ in range(videos):
        parts.append(_video_stream(rng, index, duration, size))
        index += 1
    for _ in range(audios):
        parts.append(_audio_stream(rng, index, duration))
        index += 1
    if subtitles:
        for lang in ("chi", "eng")[:subtitles]:
            parts.append(f"<Subtitle><Index>{index}</Index><Language>{lang}</Language></Subtitle>")
            index += 1
    else:
        parts.append("<Subtitle/>")
    bitrate = rng.uniform(64.0, 320.0) if audio_only else rng.uniform(400.0, 9000.0)
    if audio_only:
        format_name, long_name = rng.choice((("mp3", "MP2/3 (MPEG audio layer 2/3)"),))
    else:
        format_name, long_name = "mov,mp4,m4a,3gp,3g2,mj2", "QuickTime / MOV"
    return (
        "<MediaInfo><Format>"
        f"<Bitrate>{bitrate:.6f}</Bitrate><Duration>{duration:.6f}</Duration>"
        f"<FormatLongName>{long_name}</FormatLongName><FormatName>{format_name}</FormatName>"
        f"<NumProgram>0</NumProgram><NumStream>{index}</NumStream>"
        f"<Size>{int(bitrate * duration * 125)}</Size><StartTime>0.000000</StartTime>"
        f"</Format><Stream>{''.join(parts)}</Stream></MediaInfo>"
    )


def _outputs(rng: random.Random, job: EmulatedJob) -> tuple[str, list[str]]:
    """The requested ``<Output>`` object pattern and the object names the job produced."""
    stem, tag = _stem(job), job.tag
    if tag == "Snapshot":
        count = rng.randint(1, 12)
        return f"thumbs/{stem}/snap-${{Number}}.jpg", [
            f"thumbs/{stem}/snap-{i}.jpg" for i in range(count)
        ]
    if tag == "Segment":
        count = max(2, min(200, int(job.media_duration_s / 6.0) + 1))
        names = [f"hls/{stem}/{stem}-{i:05d}.ts" for i in range(count)]
        return f"hls/{stem}/{stem}.m3u8", [f"hls/{stem}/{stem}.m3u8", *names]
    if tag == "VoiceSeparate":
        names = [f"separate/{stem}-vocal.mp3", f"separate/{stem}-bgm.mp3"]
        if rng.random() < 0.4:
            names += [f"separate/{stem}-bass.mp3", f"separate/{stem}-drum.mp3"]
        return f"separate/{stem}-vocal.mp3", names
    if tag == "StreamExtract":
        names = [f"extract/{stem}-{i}.{'mp4' if i == 0 else 'aac'}" for i in range(3)]
        return names[0], names
    if tag == "SmartCover":
        count = rng.randint(1, 5)
        return f"cover/{stem}-${{Number}}.jpg", [f"cover/{stem}-{i}.jpg" for i in range(count)]
    ext = {"Animation": "gif", "Tts": "mp3", "NoiseReduction": "mp3"}.get(tag, "mp4")
    name = f"output/{stem}-{tag.lower()}.{ext}"
    return name, [name]


def _tag_block(rng: random.Random, job: EmulatedJob) -> str:
    """The per-tag children of ``<Operation>`` (reference §4.8)."""
    tag = job.tag
    if tag == "Transcode":
        height = rng.choice((480, 720, 1080))
        return (
            "<Transcode><Container><Format>mp4</Format></Container>"
            f"<Video><Codec>H.264</Codec><Profile>high</Profile>"
            f"<Width>{height * 16 // 9}</Width><Height>{height}</Height><Fps>25</Fps>"
            f"<Bitrate>{height * 2 + 300}</Bitrate><Preset>medium</Preset></Video>"
            "<Audio><Codec>aac</Codec><Samplerate>44100</Samplerate><Bitrate>128</Bitrate>"
            "<Channels>2</Channels></Audio>"
            "<TransConfig><AdjDarMethod>scale</AdjDarMethod><IsCheckReso>false</IsCheckReso>"
            "<DeleteMetadata>false</DeleteMetadata></TransConfig></Transcode>"
        )
    if tag == "Animation":
        return (
            "<Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec>"
            "<Width>320</Width><Fps>15</Fps><AnimateOnlyKeepKeyFrame>false"
            "</AnimateOnlyKeepKeyFrame></Video><TimeInterval><Start>0</Start>"
            f"<Duration>{rng.randint(2, 10)}</Duration></TimeInterval></Animation>"
        )
    if tag == "Snapshot":
        return (
            f"<Snapshot><Mode>{rng.choice(('Interval', 'Average', 'KeyFrame'))}</Mode>"
            f"<Start>0</Start><TimeInterval>{rng.choice((5, 10, 150))}</TimeInterval>"
            "<Count>4</Count><Width>640</Width><Height>360</Height></Snapshot>"
        )
    if tag == "SmartCover":
        return (
            "<SmartCover><Format>jpg</Format><Width>1280</Width><Height>720</Height>"
            "<Count>3</Count><DeleteDuplicates>true</DeleteDuplicates></SmartCover>"
        )
    if tag == "Concat":
        fragments = "".join(
            f"<ConcatFragment><Url>https://{escape(job.bucket)}.cos.{job.region}.myqcloud.com/"
            f"parts/{i}.mp4</Url><Mode>{'Start' if i == 0 else 'End'}</Mode></ConcatFragment>"
            for i in range(rng.randint(2, 3))
        )
        return (
            f"<ConcatTemplate>{fragments}<Audio><Codec>mp3</Codec></Audio>"
            "<Video><Codec>H.264</Codec></Video><Container><Format>mp4</Format></Container>"
            "</ConcatTemplate>"
        )
    if tag == "VoiceSeparate":
        return (
            "<VoiceSeparate><AudioMode>AudioAndBackground</AudioMode><AudioConfig>"
            "<Codec>mp3</Codec><Samplerate>44100</Samplerate><Bitrate>128</Bitrate>"
            "<Channels>2</Channels></AudioConfig></VoiceSeparate>"
        )
    if tag == "VideoMontage":
        return (
            "<VideoMontage><Container><Format>mp4</Format></Container><Video><Codec>H.264"
            "</Codec><Width>1280</Width><Height>720</Height></Video><Audio><Codec>aac</Codec>"
            f"</Audio><Duration>{rng.choice((15, 30, 60))}</Duration></VideoMontage>"
        )
    if tag in ("SDRtoHDR", "VideoProcess", "SuperResolution"):
        transcode_id = _template_id("Transcode", "mp4-1080p")
        body = {
            "SDRtoHDR": f"<HdrMode>{rng.choice(('HLG', 'HDR10'))}</HdrMode>",
            "VideoProcess": "<ColorEnhance><Enable>true</Enable><Contrast>10</Contrast>"
            "</ColorEnhance><MsSharpen><Enable>true</Enable><SharpenLevel>5</SharpenLevel>"
            "</MsSharpen>",
            "SuperResolution": f"<Resolution>{rng.choice(('sdtohd', 'hdto4k'))}</Resolution>"
            "<EnableScaleUp>true</EnableScaleUp><Version>Enhance</Version>",
        }[tag]
        return f"<{tag}>{body}</{tag}><TranscodeTemplateId>{transcode_id}</TranscodeTemplateId>"
    if tag == "Segment":
        return (
            f"<Segment><Format>{rng.choice(('hls', 'mp4'))}</Format><Duration>6</Duration>"
            "</Segment>"
        )
    if tag == "DigitalWatermark":
        state = "Failed" if rng.random() < 0.05 else "Success"
        return (
            "<DigitalWatermark><Type>Text</Type>"
            f"<Message>{escape(f'owner={job.bucket}&id={rng.randint(1, 9999)}')}</Message>"
            f"<Version>V1</Version><IgnoreError>false</IgnoreError><State>{state}</State>"
            "</DigitalWatermark>"
        )
    if tag == "ExtractDigitalWatermark":
        return (
            "<ExtractDigitalWatermark><Type>Text</Type><Version>V1</Version>"
            "</ExtractDigitalWatermark>"
        )
    if tag == "VideoTag":
        return f"<VideoTag><Scenario>{rng.choice(('Stream', 'General'))}</Scenario></VideoTag>"
    if tag == "QualityEstimate":
        return (
            "<QualityEstimateConfig><Rotate>0</Rotate><Mode>Default</Mode></QualityEstimateConfig>"
        )
    if tag == "Tts":
        return (
            "<TtsTpl><Mode>Sync</Mode><Codec>mp3</Codec>"
            f"<VoiceType>{rng.choice(('ruxue', 'aixiaonan'))}</VoiceType>"
            "<Volume>0</Volume><Speed>100</Speed></TtsTpl><TtsConfig>"
            f"<InputType>Text</InputType><Input>{escape('欢迎收看 & 订阅 <频道>')}</Input>"
            "</TtsConfig>"
        )
    if tag == "NoiseReduction":
        return "<NoiseReduction><Format>mp3</Format><Samplerate>44100</Samplerate></NoiseReduction>"
    return ""  # MediaInfo and StreamExtract have no block of their own (§4.8).


def _tag_result(rng: random.Random, job: EmulatedJob) -> str:
    """Result blocks some tags carry instead of (or besides) ``MediaResult``."""
    if job.tag == "VideoTag":
        tags = "".join(
            f"<Tags><Tag>{name}</Tag><TagCls>{cls}</TagCls>"
            f"<Confidence>{rng.uniform(0.5, 1.0):.4f}</Confidence></Tags>"
            for name, cls in rng.sample(
                [
                    ("教育", "场景"),
                    ("户外", "场景"),
                    ("猫", "物体"),
                    ("汽车", "物体"),
                    ("演讲", "动作"),
                ],
                2,
            )
        )
        return (
            "<VideoTagResult><StreamData><SubErrCode>0</SubErrCode><SubErrMsg/>"
            f"<Data>{tags}</Data></StreamData></VideoTagResult>"
        )
    if job.tag == "QualityEstimate":
        return (
            f"<QualityEstimate><Score>{rng.uniform(40.0, 99.0):.2f}</Score><VqaPlusResult>"
            "<NoAudio>false</NoAudio><NoVideo>false</NoVideo></VqaPlusResult></QualityEstimate>"
        )
    return ""


def _operation(rng: random.Random, job: EmulatedJob) -> str:
    names = _TEMPLATE_NAMES.get(job.tag)
    parts: list[str] = []
    if names:
        name = rng.choice(names)
        parts.append(f"<TemplateId>{_template_id(job.tag, name)}</TemplateId>")
        parts.append(f"<TemplateName>{name}</TemplateName>")
    if job.tag == "Transcode":
        for i in range(rng.choices((0, 1, 2, 3), (60, 25, 10, 5))[0]):
            parts.append(
                f"<WatermarkTemplateId>{_template_id('Watermark', str(i))}</WatermarkTemplateId>"
            )
        if rng.random() < 0.05:
            parts.append(
                "<RemoveWatermark><Dx>150</Dx><Dy>150</Dy><Width>75</Width><Height>75</Height>"
                "</RemoveWatermark>"
            )
        if rng.random() < 0.08:
            # A nested State and Message that a careless "first <State> anywhere" read trips on.
            sub_state = "Running" if job.is_open else rng.choice(("Success", "Success", "Failed"))
            parts.append(
                "<DigitalWatermark><Type>Text</Type><Message>123456789ab</Message>"
                "<Version>V1</Version><IgnoreError>true</IgnoreError>"
                f"<State>{sub_state}</State></DigitalWatermark>"
            )
    parts.append(_tag_block(rng, job))
    pattern, names_out = _outputs(rng, job)
    bucket, region = escape(job.bucket), escape(job.region)
    stream_extract = ""
    if job.tag == "StreamExtract":
        stream_extract = "".join(
            f"<StreamExtract><Index>{i}</Index><Object>{escape(name)}</Object></StreamExtract>"
            for i, name in enumerate(names_out)
        )
    if job.tag not in _NO_RESULT_TAGS:
        parts.append(
            f"<Output><Region>{region}</Region><Bucket>{bucket}</Bucket>"
            f"<Object>{escape(pattern)}</Object>{stream_extract}</Output>"
        )
    user_data = rng.choice(("", "", f"course=math{rng.randint(100, 999)}&lesson=2", "批量任务"))
    parts.append(_el("UserData", user_data))
    parts.append(f"<JobLevel>{rng.choices((0, 1, 2), (85, 10, 5))[0]}</JobLevel>")
    if job.state == "Success":
        if job.tag in _MEDIA_TAGS:
            parts.append(_media_info(rng, job))
        parts.append(_tag_result(rng, job))
        if job.tag not in _NO_RESULT_TAGS:
            files = "".join(f"<ObjectName>{escape(name)}</ObjectName>" for name in names_out)
            md5s = "".join(
                f"<Md5Info><Md5>{_md5(rng)}</Md5><ObjectName>{escape(name)}</ObjectName></Md5Info>"
                for name in names_out
            )
            parts.append(
                f"<MediaResult><OutputFile><Bucket>{bucket}</Bucket><Region>{region}</Region>"
                f"<ObjectPrefix/>{files}{md5s}</OutputFile></MediaResult>"
            )
    return f"<Operation>{''.join(parts)}</Operation>"


def render_job(job: EmulatedJob) -> str:
    """Render one job as its ``<JobsDetail>`` element.

    Args:
        job: the job; its ``variant`` seeds every detail not held in its fields.

    Returns:
        the element text, compact (no whitespace between elements).
    """
    rng = random.Random(job.variant)
    bucket, region = escape(job.bucket), escape(job.region)
    cos_headers = workflow = ""
    if job.workflow_id:
        cos_headers = (
            "<CosHeaders><Key>x-cos-meta-uploader</Key><Value>app-backend</Value></CosHeaders>"
            "<CosHeaders><Key>Content-Type</Key><Value>video/mp4</Value></CosHeaders>"
        )
        workflow = (
            f"<Workflow><RunId>i{rng.getrandbits(128):032x}</RunId>"
            f"<WorkflowId>{job.workflow_id}</WorkflowId>"
            f"<WorkflowName>{escape(rng.choice(_WORKFLOW_NAMES))}</WorkflowName>"
            f"<Name>{job.tag}_1</Name></Workflow>"
        )
    return (
        f"<JobsDetail><Code>{escape(job.code)}</Code>{_el('Message', job.message)}"
        f"<JobId>{job.job_id}</JobId><State>{job.state}</State>"
        f"<Progress>{job.progress}</Progress>"
        f"<CreationTime>{wire_time(job.creation_time)}</CreationTime>"
        f"<StartTime>{wire_time(job.start_time)}</StartTime>"
        f"<EndTime>{wire_time(job.end_time)}</EndTime>"
        f"<QueueId>{job.queue_id}</QueueId><Tag>{escape(job.tag)}</Tag>"
        f"<Input><BucketId>{bucket}</BucketId><Object>{escape(job.input_object)}</Object>"
        f"<Region>{region}</Region>{cos_headers}</Input>"
        f"{_operation(rng, job)}{workflow}</JobsDetail>"
    )
