"""Step 4, the encode plan: copy the video stream or re-encode it, and the ffmpeg command
line for either (built with ffmpeg-python, which only compiles argument lists here)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg  # ffmpeg-python: command-line builder only

from . import limits
from .inputs import locked_input
from .types import ProbeInfo, Tools
from .values import floor_even

_REMUXABLE_CONTAINERS = {"mov", "matroska", "flv"}  # AVI H.264 often lacks sane timestamps


@dataclass(frozen=True)
class Plan:
    remux: bool  # copy the video stream
    audio: str | None  # None (drop), "copy" or "aac"
    volumedetect: bool  # also measure the loudness of the first audio stream
    width: int = 0  # output picture, as displayed (encode only)
    height: int = 0
    rotation: int = 0
    fps: Fraction | None = None
    crf: int | None = limits.X264_CRF
    maxrate: int = limits.VIDEO_MAXRATE

    def smaller(self, source: ProbeInfo, duration: float) -> Plan:
        """This output re-encoded at an average bitrate that fits ``MAX_BYTES``."""
        plan = _encode_plan(source, self.audio, False) if self.remux else self
        budget = int(0.85 * 8 * limits.MAX_BYTES / max(duration, 1.0)) - (limits.AUDIO_BITRATE if self.audio else 0)
        rate = max(100_000, min(budget, int(plan.maxrate * 0.7)))
        return replace(plan, audio="aac" if self.audio else None, volumedetect=False, crf=None, maxrate=rate)


def choose_plan(info: ProbeInfo, keep_audio: bool, require_audio: bool) -> Plan:
    """Remux when the upload already is what Juhe wants, otherwise encode."""
    audio = None
    if keep_audio and info.audio_codec is not None:
        audio = "copy" if info.audio_codec == "aac" else "aac"
    volumedetect = require_audio and info.audio_codec is not None
    short, long = sorted((info.width, info.height))
    fps = info.fps
    # Already what Juhe wants?  Then copy the video stream instead of encoding.
    compliant = (
        info.container in _REMUXABLE_CONTAINERS
        and info.video_codec == "h264"
        and info.pix_fmt == "yuv420p"
        and info.rotation == 0
        and short <= limits.MAX_SHORT_SIDE
        and long <= limits.MAX_LONG_SIDE
        and fps is not None
        and fps <= limits.MAX_FPS_VFR
        and info.duration is not None
        and info.duration <= limits.MAX_SECONDS
        and info.size_bytes <= limits.MAX_BYTES
    )
    if compliant:
        return Plan(remux=True, audio=audio, volumedetect=volumedetect, width=info.width, height=info.height)
    return _encode_plan(info, audio, volumedetect)


def _encode_plan(info: ProbeInfo, audio: str | None, volumedetect: bool) -> Plan:
    width, height = _output_size(info.width, info.height)
    return Plan(
        remux=False,
        audio=audio,
        volumedetect=volumedetect,
        width=width,
        height=height,
        rotation=info.rotation,
        fps=_output_fps(info.fps),
    )


def over_1080p(width: int, height: int) -> bool:
    return min(width, height) > limits.MAX_SHORT_SIDE or max(width, height) > limits.MAX_LONG_SIDE


def _output_size(width: int, height: int) -> tuple[int, int]:
    """Shrink (never enlarge) so the short side is <= 540 and it fits 1080p; even sides."""
    short, long = min(width, height), max(width, height)
    factor = min(1.0, limits.TARGET_SHORT_SIDE / short, limits.MAX_LONG_SIDE / long)
    return max(2, floor_even(width * factor)), max(2, floor_even(height * factor))


_COMMON_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))


def _output_fps(fps: float | None) -> Fraction:
    """The source rate when it is <= 25 fps (snapped to a common rate), else 25."""
    if fps is None or fps > limits.OUTPUT_FPS + 0.01:
        return Fraction(limits.OUTPUT_FPS)
    nearest = min(_COMMON_RATES, key=lambda rate: abs(fps - rate))
    if abs(fps - nearest) < nearest * 0.005:
        return nearest
    return Fraction(round(fps * 100), 100) or Fraction(limits.OUTPUT_FPS)


def ffmpeg_command(plan: Plan, path: Path, container: str, tools: Tools, out: Path) -> list[str]:
    """The ffmpeg argv for a plan (one process: the MP4, plus volumedetect when asked)."""
    # -noautorotate when encoding: we turn the picture after shrinking it (cheaper);
    # input-side -t: ffmpeg reads (and volumedetect hears) only what we send.  The
    # sound comes from a second input: the first one, waiting for its video to
    # end, may have to read to the end of the file (when the picture stops
    # before MAX_SECONDS), but it then only skips the audio, never decodes it.
    source = locked_input(path, container, autorotate=plan.remux, seconds=limits.MAX_SECONDS)
    sound = locked_input(path, container, seconds=limits.MAX_SECONDS, sound=True)
    video, video_options = _video_output(plan, source["v:0"])
    streams = [video]
    options: dict = {
        "f": "mp4",
        "threads": limits.CHILD_THREADS,
        "movflags": "+faststart",
        "map_metadata": -1,
        "map_chapters": -1,
        "fflags": "+bitexact",  # no muxer-written tags or timestamps either
        **video_options,
    }
    if plan.audio:
        streams.append(sound["a:0"])
        options.update(_audio_options(plan.audio))
    outputs = [ffmpeg.output(*streams, f"file:{out}", **options)]
    if plan.volumedetect:
        loudness = sound["a:0"].filter("volumedetect")
        outputs.append(ffmpeg.output(loudness, "-", f="null"))
    # volumedetect reports at "info" level; everything else only reports errors
    level = "info" if plan.volumedetect else "error"
    node = ffmpeg.merge_outputs(*outputs) if len(outputs) > 1 else outputs[0]
    argv = node.compile(cmd=tools.ffmpeg)
    return [argv[0], "-nostdin", "-hide_banner", "-nostats", "-y", "-v", level,
            "-filter_complex_threads", str(limits.CHILD_THREADS), *argv[1:]]


def _video_output(plan: Plan, video) -> tuple[Any, dict]:
    """The video stream to write (copied, or resized, turned and encoded) and its output options."""
    if plan.remux:
        return video, {"c:v": "copy"}
    video = video.filter("fps", fps=str(plan.fps))  # drop frames before scaling them
    coded_w, coded_h = (plan.height, plan.width) if plan.rotation in (90, 270) else (plan.width, plan.height)
    # one swscale pass: resize and convert (10-bit HEVC, yuvj...) to yuv420p
    video = video.filter("scale", coded_w, coded_h, flags="bicubic").filter("format", "yuv420p")
    video = _turned(video, plan.rotation)
    return video.filter("setsar", "1"), _x264_options(plan)


def _turned(video, rotation: int):
    """The picture turned clockwise by ``rotation`` degrees, as a player would show it."""
    if rotation == 90:
        return video.filter("transpose", "clock")
    if rotation == 270:
        return video.filter("transpose", "cclock")
    if rotation == 180:
        return video.filter("hflip").filter("vflip")
    return video


def _x264_options(plan: Plan) -> dict:
    """libx264's output options: capped quality (``crf``), or, squeezing, an average bitrate."""
    options: dict = {"c:v": "libx264", "preset": limits.X264_PRESET, "profile:v": "high"}
    if plan.crf is not None:
        options.update({"crf": plan.crf, "maxrate": plan.maxrate, "bufsize": plan.maxrate * 2})
    else:
        options.update({"b:v": plan.maxrate, "maxrate": plan.maxrate, "bufsize": plan.maxrate})
    return options


def _audio_options(audio: str) -> dict:
    """The sound's output options: ``"copy"``, or ``"aac"`` encoded."""
    if audio == "copy":
        return {"c:a": "copy"}
    # mono speech; the "fast" coder costs a third of the default "twoloop"
    return {"c:a": "aac", "aac_coder": "fast", "b:a": limits.AUDIO_BITRATE, "ac": 1}
