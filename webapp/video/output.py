"""Step 5, verify the output: our own MP4 read back, its display matrix cleared, described
without another process."""

from __future__ import annotations

from pathlib import Path

from . import limits
from .errors import BAD_FORMAT, TOO_SHORT, VideoRejected, VideoToolError
from .mp4 import Mp4
from .plan import Plan
from .types import ProbeInfo


def verify_output(out: Path, plan: Plan, source: ProbeInfo) -> tuple[bytes, ProbeInfo]:
    """Read our own MP4 back: faststart, one H.264 track (+ AAC), no rotation.

    Clears any display matrix ffmpeg copied from the source (we rotated the
    pixels ourselves), and describes the output without another process.
    """
    try:
        data = bytearray(out.read_bytes())
    except OSError:
        raise VideoToolError("ffmpeg wrote no output") from None
    mp4 = Mp4.parse(data)
    video = [t for t in mp4.tracks if t.handler == b"vide"]
    audio = [t for t in mp4.tracks if t.handler == b"soun"]
    if mp4.mdat_offset is not None and mp4.moov_offset > mp4.mdat_offset:
        raise VideoToolError("output is not faststart (moov after mdat)")
    if len(video) != 1 or video[0].codec not in (b"avc1", b"avc3") or len(mp4.tracks) != len(video) + len(audio):
        raise VideoToolError("output does not hold exactly one H.264 track")
    track = video[0]
    for t in mp4.tracks:
        t.clear_matrix(data)
    duration = track.duration or mp4.duration
    if not track.samples or duration < limits.MIN_SECONDS:
        # the header promised more than the stream held: a broken upload
        raise VideoRejected(TOO_SHORT if track.samples else BAD_FORMAT,
                            f"only {duration:.2f} s of video could be decoded")
    output = ProbeInfo(
        container="mov",
        video_codec="h264",
        pix_fmt=source.pix_fmt if plan.remux else "yuv420p",
        width=track.width,
        height=track.height,
        rotation=0,
        fps=round(track.samples * track.timescale / track.ticks, 3) if track.ticks and track.timescale else None,
        duration=duration,
        audio_codec=("aac" if audio[0].codec == b"mp4a" else audio[0].codec.decode("latin-1")) if audio else None,
        size_bytes=len(data),
    )
    return bytes(data), output
