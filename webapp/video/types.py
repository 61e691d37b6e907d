"""The package's public types: where the tools are and how long they may take (``Tools``),
what a video is (``ProbeInfo``), what ``prepare`` hands back (``PreparedVideo``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache


@cache
def static_ffmpeg() -> str:
    """The statically linked ffmpeg of the imageio-ffmpeg package, else ``ffmpeg`` on PATH.

    A process start is most of what a copied upload costs: Debian's ffmpeg loads 215 shared
    libraries and takes ~75 ms of CPU to start, a static build a few (README, Benchmarks).
    The package is pinned at 0.6.0, whose ffmpeg is 7.0.2: the ffmpeg 9.0.2 of 0.7 and later
    hung at exit about one run in four on ``bomb_packets_mkv`` (tests/test_media_bombs.py),
    holding a slot until the deadline. ffprobe (only for uploads that are re-encoded) stays
    the one on PATH: the package has none.
    """
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):  # not installed, or no binary for this platform
        return "ffmpeg"


@dataclass(frozen=True)
class Tools:
    """Where ffmpeg and ffprobe are, and how long one ``probe``/``prepare`` may take.

    ``timeout`` is the budget in seconds for a whole ``probe`` or ``prepare``
    call (each subprocess gets what is left of it).  ``tmpdir`` is the parent
    of the private temporary directory (``None``: the system default).
    """

    ffmpeg: str = field(default_factory=static_ffmpeg)
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
