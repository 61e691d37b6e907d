"""The copy that runs first and alone: an upload whose header says H.264 is remuxed in one
ffmpeg process, and the facts a probe would give are read from that process's own
description of its input. Used only when they show the very upload the full path copies."""

from __future__ import annotations

import re
import struct
from dataclasses import replace
from pathlib import Path

from . import limits
from .checks import check_loudness, check_upload
from .errors import VideoRejected, VideoToolError
from .header import matroska_h264_sound, mov_h264_sound
from .inputs import PIPED
from .mp4 import Mp4
from .output import verify_output
from .plan import Plan, choose_plan, ffmpeg_command
from .runner import Deadline, Job, check_storage
from .types import PreparedVideo, ProbeInfo, Tools


def copy_plan(path: Path, container: str, keep_audio: bool, require_audio: bool) -> Plan | None:
    """The copy this upload will probably get, judged from its header alone; None if unlikely.

    MP4/MOV: the 'moov' box holds one H.264 track, not turned by its matrix.  Matroska/WebM
    (Chromium asked for H.264): the track list names AVC and no other video codec.  Only a
    guess, to start the copy without a probe: ``try_copy`` checks what ffmpeg then read.
    """
    try:
        if path.stat().st_size > limits.MAX_BYTES:
            return None
        if container == "mov":
            sound = mov_h264_sound(path)
        elif container == "matroska":
            sound = matroska_h264_sound(path)
        else:
            return None
    except (OSError, struct.error, IndexError, ValueError):
        return None
    if sound is False:  # not H.264, or not upright
        return None
    if require_audio and sound is None:
        return None  # the full path says "no sound" (267539)
    audio = None
    if keep_audio and sound is not None:
        audio = "copy" if sound == "aac" else "aac"
    return Plan(remux=True, audio=audio, volumedetect=require_audio)


def try_copy(plan: Plan, path: Path, container: str, keep_audio: bool, require_audio: bool, tools: Tools,
             out: Path, deadline: Deadline, jobs: list[Job]) -> PreparedVideo | None:
    """Copy the upload in one process and read from that process what ffprobe would have said.

    Returns the prepared video only when the input ffmpeg described is one the full path
    copies too (H.264 yuv420p, upright, square pixels, <= 1080p, <= 30 fps, 2..10 s, not
    dense with packets) and the output verifies; otherwise ``None`` (the caller probes).
    Digital silence in number mode is rejected here, as the full path would.
    """
    stderr = _run_copy(plan, path, container, tools, out, deadline, jobs)
    if stderr is None:
        return None
    facts = _input_facts(stderr)
    if facts is None:
        return None
    try:
        data, output = verify_output(out, plan, _COPY_SOURCE)
    except (VideoRejected, VideoToolError):
        return None
    if len(data) > limits.MAX_BYTES:  # AAC from Opus can add a little: the full path squeezes it
        return None
    packets = sum(t.samples for t in Mp4.parse(data).tracks)
    info = _source_info(facts, container, output, path.stat().st_size)
    if not _as_the_full_path_copies(plan, info, facts, output, packets, keep_audio, require_audio):
        return None
    if plan.volumedetect:
        check_loudness(stderr)
    return PreparedVideo(data=data, source=info, output=replace(output, pix_fmt=info.pix_fmt),
                         remuxed=True, timings={})


def _run_copy(plan: Plan, path: Path, container: str, tools: Tools, out: Path, deadline: Deadline,
              jobs: list[Job]) -> str | None:
    """Run the copy, its input described (``-v info``); its stderr, or None when ffmpeg failed."""
    command = ffmpeg_command(plan, path, container, tools, out)
    command[command.index("-v") + 1] = "info"  # the input's description, and volumedetect's
    job = Job.start(command, path if container in PIPED else None, deadline, jobs)
    returncode, _stdout, stderr_bytes = job.wait("copy")
    stderr = stderr_bytes.decode("utf-8", "replace")
    if returncode != 0:
        # A full disk is no reason to try the full path. (Only ffmpeg's own lines after its
        # output's heading are read: the input's, at -v info, print the upload's metadata.)
        heading = stderr.rfind("\nOutput #0,")
        check_storage(stderr[heading:] if heading >= 0 else "", returncode, "copy")
        return None
    return stderr


def _source_info(facts: dict, container: str, output: ProbeInfo, size: int) -> ProbeInfo:
    """The upload as the probe would have described it: what ffmpeg said of its input, and the
    rate (and, if the input stated none, the duration) of the copy."""
    return ProbeInfo(
        container=container,
        video_codec=facts["codec"],
        pix_fmt=facts["pix_fmt"],
        width=facts["width"],
        height=facts["height"],
        rotation=0,
        fps=output.fps,
        duration=facts["duration"] or output.duration,
        audio_codec=facts["audio"],
        size_bytes=size,
    )


def _as_the_full_path_copies(plan: Plan, info: ProbeInfo, facts: dict, output: ProbeInfo, packets: int,
                             keep_audio: bool, require_audio: bool) -> bool:
    """Whether the full path would have made this very copy of this upload: the same picture,
    not cut short unseen, not dense with packets, the same plan, nothing Juhe would reject."""
    output_seconds = output.duration or 0.0  # our own MP4 always states it
    if (
        (output.width, output.height) != (info.width, info.height)
        or (facts["duration"] is None and output_seconds >= limits.MAX_SECONDS - 0.05)  # streamed: was it longer?
        or packets > limits.MAX_PACKET_RATE * max(output_seconds, 1.0)
        or choose_plan(info, keep_audio, require_audio) != replace(plan, width=info.width, height=info.height)
    ):
        return False
    try:
        check_upload(info, require_audio)
    except VideoRejected:
        return False  # the full path says what is wrong
    return True


_COPY_SOURCE = ProbeInfo("mov", "h264", "yuv420p", 0, 0, 0, None, None, None, 0)  # what a copy is made from
_STREAM_LINE = re.compile(r"^  Stream #0:\d+\S*: (\w+): (.*)$", re.M)
_INPUT_DURATION = re.compile(r"^  Duration: (?:N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))", re.M)


def _input_facts(stderr: str) -> dict | None:
    """Codec, pixel format, size, duration and sound of input #0, from ffmpeg's own description
    of it (``-v info``); None when it is not one plain, upright, square-pixel video stream.

    A key that fakes a stream line (``_input_section`` says why it cannot fake much more) shows
    as one "Stream #0:" more than the lines that parse, or as a second video: either way None,
    and the full path (ffprobe's JSON) decides.
    """
    section = _input_section(stderr)
    if section is None or "displaymatrix" in section:
        return None
    streams = _STREAM_LINE.findall(section)
    if section.count("Stream #0:") != len(streams):
        return None
    videos = [desc for kind, desc in streams if kind == "Video" and "(attached pic)" not in desc]
    if len(videos) != 1:
        return None
    parts = _top_level_split(videos[0])
    size = re.match(r"(\d+)x(\d+)(?: \[SAR (\d+):(\d+) DAR \d+:\d+\])?$", parts[2].strip()) if len(parts) > 2 else None
    if size is None or (size.group(3) and size.group(3) != size.group(4)):
        return None
    audio = next((desc.split(None, 1)[0].rstrip(",") for kind, desc in streams if kind == "Audio"), None)
    match = _INPUT_DURATION.search(section)
    duration = None
    if match and match.group(1) is not None:
        duration = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    return {
        "codec": parts[0].split(None, 1)[0],
        "pix_fmt": _leading_word(parts[1].strip()) if len(parts) > 1 else None,
        "width": int(size.group(1)),
        "height": int(size.group(2)),
        "duration": duration,
        "audio": audio,
    }


def _input_section(stderr: str) -> str | None:
    """ffmpeg's description of input #0 in its stderr; None when its markers are missing.

    An upload's metadata keys are printed raw (newlines and all), so the section is bounded by
    ffmpeg's own markers: the first "Input #0," (nothing of the upload comes before it) and the
    last "Output #0," (the output carries no metadata of the upload: -map_metadata -1), or the
    "Stream mapping:" just before it (ffmpeg 7 and later print the mapping first).
    """
    begin = stderr.find("Input #0,")
    end = stderr.rfind("\nOutput #0,")
    if begin < 0 or end < begin:
        return None
    # ffmpeg 7 and later print the stream mapping before the outputs: its last heading before
    # "Output #0," is ffmpeg's own (the inputs' metadata all comes before it).
    mapping = stderr.rfind("\nStream mapping:", begin, end)
    end = mapping if mapping >= 0 else end
    return stderr[begin:end]

def _leading_word(text: str) -> str:
    """"yuv420p(progressive)" → "yuv420p"."""
    word = re.match(r"\w*", text)
    return word.group(0) if word else ""


def _top_level_split(text: str) -> list[str]:
    """Split ffmpeg's stream description at the commas outside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
