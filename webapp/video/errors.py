"""What can go wrong with a video, and whose fault it is.

``VideoRejected`` (with the code Juhe would answer) is what is wrong with the upload;
``VideoToolError`` is what is wrong with the server (ffmpeg missing, a call timed out) --
do not blame the person for those.
"""

from __future__ import annotations

# Juhe's codes for what it would reject.
EMPTY = 267536  # 视频为空，或大小不合适
BAD_FORMAT = 267537  # 视频格式有误
LOW_RESOLUTION = 267538  # 视频像素太低
NO_SOUND = 267539  # 未检测到声音
TOO_QUIET = 267540  # 视频声音太小
TOO_SHORT = 267549  # 视频录制时间过短，请录制2秒以上的视频


class VideoRejected(Exception):
    """The upload is not something Juhe would accept; ``code`` is what Juhe would answer.

    ``detail`` says what was wrong, for logs and operators; it never contains
    personal data (no metadata values, no file contents).
    """

    def __init__(self, code: int, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class VideoToolError(RuntimeError):
    """The server could not process the video: ffmpeg/ffprobe missing, crashed
    on our own output, or a call ran out of time (``Tools.timeout``).

    Not the person's fault: do not count it as an attempt, answer "try again later".
    ``reason`` is a short operator-facing explanation.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StorageFull(VideoToolError):
    """ffmpeg (or this package) could not write to ``Tools.tmpdir``: the disk is full, or the
    user's quota is spent. Not the person's fault, nor ffmpeg's: the service cannot take videos
    until space returns (the web app answers 503 ``storage_full``)."""
