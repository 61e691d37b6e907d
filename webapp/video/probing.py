"""Step 2, the probe: ffprobe's streams, format and first packets, read into a ``ProbeInfo``
as displayed (rotation applied, square pixels)."""

from __future__ import annotations

import json
from pathlib import Path

import ffmpeg  # ffmpeg-python: command-line builder only

from . import limits
from .errors import BAD_FORMAT, VideoRejected
from .inputs import PIPED, locked_input
from .runner import Deadline, Job, limit_hint
from .types import ProbeInfo, Tools
from .values import as_float, as_int, as_ratio, floor_even, right_angle

_STREAM_ENTRIES = (
    "index,codec_type,codec_name,pix_fmt,width,height,sample_aspect_ratio,"
    "avg_frame_rate,r_frame_rate,duration"
)
_PACKET_ENTRIES = "stream_index,pts_time,dts_time,duration_time"


def _probe_argv(path: Path, container: str, tools: Tools, *, packets: bool) -> list[str]:
    """ffprobe's argv: streams and format, and with ``packets`` the first ``PROBE_PACKETS`` packets."""
    entries = (
        f"format=duration:stream={_STREAM_ENTRIES}:stream_disposition=attached_pic"
        ":stream_side_data=rotation:stream_tags=rotate"
    )
    if packets:
        entries += f":packet={_PACKET_ENTRIES}"
    # ffprobe takes the same input options as ffmpeg: compile the locked-down
    # input with ffmpeg-python and keep its part of the command line.
    argv = ffmpeg.output(locked_input(path, container), "-", f="null").compile(cmd=tools.ffprobe)
    inputs = argv[1 : argv.index("-i") + 2]  # the input options and "-i URL"
    options = ["-read_intervals", f"%+#{limits.PROBE_PACKETS}"] if packets else []
    return [tools.ffprobe, "-hide_banner", "-v", "error", "-of", "json", "-show_entries", entries, *options, *inputs]


def probe_upload(path: Path, container: str, tools: Tools, deadline: Deadline, jobs: list[Job],
           guess: list[str] | None = None) -> ProbeInfo:
    """ffprobe the upload; ``guess`` (an ffmpeg argv) starts alongside it if a slot is free."""
    # Streamed WebM (Chrome's MediaRecorder) has no duration in its header and
    # a pipe cannot seek to the end: list the first packets in the same pass
    # (their timestamps, and how densely they come).
    argv = _probe_argv(path, container, tools, packets=True)
    doc = _run_probe(argv, path if container in PIPED else None, deadline, jobs, guess)
    return _probe_info(doc, container, path.stat().st_size)


def _run_probe(argv: list[str], stdin_path: Path | None, deadline: Deadline, jobs: list[Job],
               guess: list[str] | None = None) -> dict:
    job = Job.start(argv, stdin_path, deadline, jobs)
    if guess is not None:
        Job.start(guess, stdin_path, deadline, jobs, speculative=True)
    returncode, stdout, stderr = job.wait("probe")
    if b"exceeds specified max pixel count" in stderr:  # -max_pixels: the decoder allocated nothing
        raise VideoRejected(BAD_FORMAT, f"video picture over {limits.MAX_CODED_PIXELS:,} pixels, larger than a phone camera's 4K")
    try:
        doc = json.loads(stdout or b"{}")
    except ValueError:
        doc = {}
    if returncode != 0 or not doc.get("streams"):
        hint = limit_hint(stderr.decode("utf-8", "replace"), returncode)
        raise VideoRejected(BAD_FORMAT, f"ffprobe cannot read a video from the upload (broken or truncated?){hint}")
    return doc


def _probe_info(doc: dict, container: str, size: int) -> ProbeInfo:
    streams = doc.get("streams") or []
    video = _video_stream(streams)
    width, height = _square_size(video)
    rotation = _rotation(video)
    if rotation in (90, 270):
        width, height = height, width
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fps, duration = _rate_and_duration(doc, video, container)
    return ProbeInfo(
        container=container,
        video_codec=str(video.get("codec_name") or "unknown"),
        pix_fmt=video.get("pix_fmt"),
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        duration=duration,
        audio_codec=(audio or {}).get("codec_name") if audio else None,
        size_bytes=size,
    )


def _video_stream(streams: list[dict]) -> dict:
    """The first video stream that is not a cover picture."""
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise VideoRejected(BAD_FORMAT, "no video stream")
    return video


def _square_size(video: dict) -> tuple[int, int]:
    """The coded picture's size in square pixels (before rotation); refused beyond a phone's 4K."""
    width, height = as_int(video.get("width")), as_int(video.get("height"))
    if not width or not height:
        raise VideoRejected(BAD_FORMAT, "video stream without picture size")
    if max(width, height) > limits.MAX_CODED_LONG_SIDE or width * height > limits.MAX_CODED_PIXELS:
        raise VideoRejected(BAD_FORMAT, f"video is coded {width}x{height}, larger than a phone camera's 4K")
    sar = as_ratio(video.get("sample_aspect_ratio"))
    if sar and sar != 1 and 0.25 < sar < 4:
        width = floor_even(width * sar) or width  # square pixels, as displayed
    return width, height


def _rate_and_duration(doc: dict, video: dict, container: str) -> tuple[float | None, float | None]:
    """Frame rate and duration, from the header or, for a stream, from its first packets;
    refused when the packets come thousands a second."""
    fps = as_ratio(video.get("avg_frame_rate")) or as_ratio(video.get("r_frame_rate"))
    duration = as_float(doc.get("format", {}).get("duration")) or as_float(video.get("duration"))
    packets = doc.get("packets") or []
    if len(packets) >= limits.PROBE_PACKETS and (_packet_span(packets)[0] or 0) * limits.MAX_PACKET_RATE < len(packets):
        # thousands of packets a second: no camera; decoding them would cost minutes
        raise VideoRejected(BAD_FORMAT, f"over {limits.MAX_PACKET_RATE} packets per second")
    packets = [p for p in packets if p.get("stream_index") == video.get("index")]
    if packets and (container in PIPED or duration is None):
        # Streamed WebM has no duration in its header; ffprobe then *estimates*
        # one (from the bitrate, for bigger files).  The packets are the truth.
        span, count = _packet_span(packets)
        if span:
            duration = span
            if count > 1 and not (fps and fps <= 240):
                fps = count / span
    if fps is not None and not 0 < fps <= 1000:
        fps = None
    return fps, duration

def _rotation(stream: dict) -> int:
    """Clockwise degrees (0/90/180/270) a player turns the coded picture."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # ffprobe reports the display matrix angle counter-clockwise
            return right_angle(-float(side["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    angle = as_float(tag)
    return right_angle(angle) if angle is not None else 0


def _packet_span(packets: list[dict]) -> tuple[float | None, int]:
    """Duration covered by a stream's packets (first timestamp to end of last)."""
    times = []
    for p in packets:
        t = as_float(p.get("pts_time"))
        if t is None:
            t = as_float(p.get("dts_time"))
        if t is not None:
            times.append((t, as_float(p.get("duration_time")) or 0.0))
    if not times:
        return None, 0
    first = min(t for t, _ in times)
    last, last_duration = max(times)
    if not last_duration and len(times) > 1:
        last_duration = (last - first) / (len(times) - 1)  # one more average frame
    span = last + last_duration - first
    return (span if span > 0 else None), len(times)
