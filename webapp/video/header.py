"""What an upload's header says it is, read without a process (MOV: its 'moov' box;
Matroska/WebM: its track list). Only guesses, to start a copy or an encode early; the
probe, or what ffmpeg itself read, decides."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from . import limits
from .mp4 import Track, boxes, find_moov, read_trak
from .types import ProbeInfo
from .values import right_angle


def mov_h264_sound(path: Path) -> str | bool | None:
    """The sound's codec ("aac", "other", None: no sound) of a MOV holding one upright H.264
    track; False for anything else."""
    moov = find_moov(path)
    if moov is None:
        return False
    tracks = [read_trak(moov, body, end) for kind, _s, end, body in boxes(moov, 0, len(moov)) if kind == b"trak"]
    videos = [t for t in tracks if t.handler == b"vide"]
    if len(videos) != 1 or videos[0].codec not in (b"avc1", b"avc3") or videos[0].matrix_at is None:
        return False
    if moov[videos[0].matrix_at : videos[0].matrix_at + 36] != Track.IDENTITY:
        return False
    if sum(t.samples for t in tracks) > limits.MAX_PACKET_RATE * limits.MAX_SECONDS:
        return False  # dense with packets: the full path's probe refuses it before decoding any
    sound = next((t for t in tracks if t.handler == b"soun"), None)
    return None if sound is None else "aac" if sound.codec == b"mp4a" else "other"


def matroska_h264_sound(path: Path) -> str | bool | None:
    """The same for Matroska/WebM, from the codec IDs in its first 64 KB (the track list of a
    recorder's stream comes right after its header)."""
    with open(path, "rb") as fh:
        head = fh.read(64 << 10)
    if b"V_MPEG4/ISO/AVC" not in head or any(k in head for k in (b"V_VP8", b"V_VP9", b"V_AV1", b"V_MPEGH")):
        return False
    if b"A_AAC" in head:
        return "aac"
    return "other" if b"A_" in head else None


def guess_from_header(path: Path, container: str) -> ProbeInfo | None:
    """What the header says the upload is (MOV: the 'moov' box; Matroska/WebM: its track
    list), without a process; None when it cannot tell, or when it holds anything a probe
    might refuse.  Only a guess, to start the encode alongside ffprobe."""
    try:
        size = path.stat().st_size
        found = _mov_header(path) if container == "mov" else _matroska_header(path) if container == "matroska" else None
    except (OSError, struct.error, IndexError, ValueError, ZeroDivisionError):
        return None
    if found is None:
        return None
    codec, width, height, rotation, fps, duration, audio = found
    if not (min(width, height) >= limits.MIN_SHORT_SIDE and max(width, height) <= limits.MAX_CODED_LONG_SIDE
            and width * height <= limits.MAX_CODED_PIXELS) or (duration is not None and duration < limits.MIN_SECONDS):
        return None
    if rotation in (90, 270):
        width, height = height, width
    return ProbeInfo(container, codec, None, width, height, rotation, fps, duration, audio, size)


def _mov_header(path: Path) -> tuple | None:
    moov = find_moov(path)
    if moov is None or b"pasp" in moov:  # non-square pixels: let the probe say how
        return None
    tracks = [read_trak(moov, body, end) for kind, _s, end, body in boxes(moov, 0, len(moov)) if kind == b"trak"]
    videos = [t for t in tracks if t.handler == b"vide"]
    if len(videos) != 1 or not videos[0].samples or not videos[0].ticks or videos[0].matrix_at is None:
        return None  # fragmented (no samples in moov), or several pictures
    video = videos[0]
    if video.matrix_at is None:
        return None
    a, b = struct.unpack_from(">2i", moov, video.matrix_at)
    rotation = right_angle(math.degrees(math.atan2(b, a)))
    codec = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}.get(video.codec)
    if codec is None:
        return None
    sound = next((t for t in tracks if t.handler == b"soun"), None)
    audio = None if sound is None else "aac" if sound.codec == b"mp4a" else "other"
    fps = video.samples * video.timescale / video.ticks
    return codec, video.width, video.height, rotation, fps, video.duration, audio


_EBML_SEGMENT, _EBML_TRACKS, _EBML_CLUSTER = 0x18538067, 0x1654AE6B, 0x1F43B675


def _matroska_header(path: Path) -> tuple | None:
    """Codec and size of a Matroska/WebM's one video track, from its first 64 KB."""
    with open(path, "rb") as fh:
        head = fh.read(64 << 10)
    tracks = None
    for element, start, end in _ebml(head, 0, len(head)):
        if element == _EBML_SEGMENT:
            for child, cstart, cend in _ebml(head, start, end):
                if child == _EBML_TRACKS:
                    tracks = (cstart, cend)
                    break
                if child == _EBML_CLUSTER:
                    break
    if tracks is None:
        return None
    videos, audio = [], None
    for entry, estart, eend in _ebml(head, *tracks):
        if entry != 0xAE:  # TrackEntry
            continue
        fields = {child: (cstart, cend) for child, cstart, cend in _ebml(head, estart, eend)}
        codec = head[slice(*fields[0x86])].decode("ascii", "replace") if 0x86 in fields else ""
        if 0xE0 in fields:  # Video
            size = {child: int.from_bytes(head[cstart:cend], "big") for child, cstart, cend in _ebml(head, *fields[0xE0])}
            videos.append((codec, size.get(0xB0, 0), size.get(0xBA, 0)))
        elif codec.startswith("A_") and audio is None:
            audio = "aac" if codec.startswith("A_AAC") else "other"
    names = {"V_VP8": "vp8", "V_VP9": "vp9", "V_MPEG4/ISO/AVC": "h264", "V_AV1": "av1"}
    if len(videos) != 1 or videos[0][0] not in names:
        return None
    codec, width, height = videos[0]
    # A recorder's stream has no duration in its header and ~30 fps: the probe says how long.
    return names[codec], width, height, 0, None, None, audio


def _ebml(data: bytes, start: int, end: int):
    """(id, body start, body end) of the EBML elements between start and end (an unknown or
    overlong size runs to ``end``); stops at the first element cut off."""
    offset = start
    while offset < end:
        first = data[offset]
        length = 8 - first.bit_length() + 1
        if not 1 <= length <= 4 or offset + length > end:
            return
        element = int.from_bytes(data[offset : offset + length], "big")
        offset += length
        if offset >= end:
            return
        first = data[offset]
        width = 8 - first.bit_length() + 1
        if not 1 <= width <= 8 or offset + width > end:
            return
        size = int.from_bytes(data[offset : offset + width], "big") & ((1 << (7 * width)) - 1)
        offset += width
        body_end = end if size == (1 << (7 * width)) - 1 else min(end, offset + size)
        yield element, offset, body_end
        offset = body_end
