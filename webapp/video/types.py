"""The package's public types: where the tools are and how long they may take (``Tools``),
what a video is (``ProbeInfo``), what ``prepare`` hands back (``PreparedVideo``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tools:
    """Where ffmpeg and ffprobe are, and how long one ``probe``/``prepare`` may take.

    ``timeout`` is the budget in seconds for a whole ``probe`` or ``prepare``
    call (each subprocess gets what is left of it).  ``tmpdir`` is the parent
    of the private temporary directory (``None``: the system default).
    """

    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    timeout: float = 60.0
    tmpdir: str | None = None


@dataclass(frozen=True)
class ProbeInfo:
    """What a video is, as displayed."""

    container: str  # "mov" | "matroska" | "avi" | "flv"  (the demuxer we forced)
    video_codec: str  # ffprobe codec_name, e.g. "h264", "hevc", "vp8", "vp9"
    pix_fmt: str | None
    width: int  # as displayed (rotation applied)
    height: int
    rotation: int  # 0, 90, 180, 270: clockwise turn a player applies
    fps: float | None
    duration: float | None  # seconds
    audio_codec: str | None  # None when there is no audio stream
    size_bytes: int


@dataclass(frozen=True)
class PreparedVideo:
    """The MP4 to send to Juhe and how it was made."""

    data: bytes  # H.264 yuv420p [+ AAC], faststart, no metadata
    source: ProbeInfo
    output: ProbeInfo
    remuxed: bool  # True when the video stream was copied, not re-encoded
    timings: dict[str, float]  # seconds: "probe", "normalise", "total"
