"""Step 3, the checks: reject locally, with the same codes, what Juhe would reject."""

from __future__ import annotations

import re

from . import limits
from .errors import BAD_FORMAT, LOW_RESOLUTION, NO_SOUND, TOO_QUIET, TOO_SHORT, VideoRejected
from .types import ProbeInfo


def check_upload(info: ProbeInfo, require_audio: bool) -> None:
    """Reject locally what Juhe would reject (same codes)."""
    if info.duration is not None and info.duration < limits.MIN_SECONDS:
        raise VideoRejected(TOO_SHORT, f"video lasts {info.duration:.2f} s, at least {limits.MIN_SECONDS:g} s needed")
    if info.duration is None:
        raise VideoRejected(BAD_FORMAT, "video duration cannot be determined")
    if min(info.width, info.height) < limits.MIN_SHORT_SIDE:
        raise VideoRejected(
            LOW_RESOLUTION, f"video is {info.width}x{info.height}, short side below {limits.MIN_SHORT_SIDE} px"
        )
    if require_audio and info.audio_codec is None:
        raise VideoRejected(NO_SOUND, "video has no audio track")


def check_loudness(stderr: str) -> None:
    """Reject digital silence, from ffmpeg's volumedetect summary."""
    # Volumedetect's own line, and its last: an upload's metadata keys are printed raw at -v info
    # (newlines and all), so a fake line can come first, never after the real summary, which
    # ffmpeg writes once the whole input is read.
    found = re.findall(r"^\[Parsed_volumedetect_\d+ @ [^\]]+\] max_volume:\s*(-?inf|-?[\d.]+)\s*dB", stderr, re.M)
    if not found:
        raise VideoRejected(NO_SOUND, "audio track holds no samples")
    max_volume = float(found[-1])
    if max_volume < limits.SILENCE_DB:
        raise VideoRejected(TOO_QUIET, f"audio is silent (max volume {max_volume:.1f} dB)")
