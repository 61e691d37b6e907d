"""Step 1, locked-down inputs: which container the bytes say an upload is, and the ffmpeg
input that may open nothing else.

ffmpeg can open far more than files (HLS playlists, ffconcat lists, QuickTime external
data references, GAB2 subtitles probed as playlists...), so nothing here lets it guess:
the container is sniffed from its magic bytes, that demuxer is forced (``-f``) and the
only one allowed (``-format_whitelist``, inherited by nested demuxers); MP4/MOV is read
as ``file:`` with ``-protocol_whitelist file`` and ``-enable_drefs 0``, the others on a
pipe with ``-protocol_whitelist pipe``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import ffmpeg  # ffmpeg-python: command-line builder only

from . import limits
from .errors import BAD_FORMAT, EMPTY, VideoRejected

_DEMUXERS = {  # our container name -> (-f demuxer, -format_whitelist)
    "mov": ("mov", "mov,mp4,m4a,3gp,3g2,mj2"),
    "matroska": ("matroska", "matroska,webm"),
    "avi": ("avi", "avi"),
    "flv": ("flv", "flv"),
}
PIPED = {"matroska", "avi", "flv"}  # read from stdin, no protocol but pipe
SOUND_PIPE = "pipe:{sound}"  # Job.start puts the number of a second descriptor of the upload here


def sniff_container(head: bytes) -> str | None:
    """The container the first bytes of a file announce, or ``None``.

    MP4/MOV: an ISO BMFF box at offset 0 ('ftyp', or for old QuickTime files
    'moov'/'mdat'/'free'/'wide'/'skip'); Matroska/WebM: EBML magic 1A 45 DF A3;
    AVI: 'RIFF' .... 'AVI '; FLV: 'FLV' and version 1.
    """
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"FLV\x01":
        return "flv"
    if len(head) >= 8:
        size = struct.unpack(">I", head[:4])[0]
        kind = head[4:8]
        if kind == b"ftyp" and 8 <= size <= 4096:
            return "mov"
        if kind in (b"moov", b"mdat", b"free", b"wide", b"skip") and (size in (0, 1) or size >= 8):
            return "mov"
    return None


def sniff_file(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise VideoRejected(EMPTY, f"upload cannot be read ({exc.__class__.__name__})") from None
    if not head:
        raise VideoRejected(EMPTY, "empty file")
    container = sniff_container(head)
    if container is None:
        raise VideoRejected(BAD_FORMAT, "not a video container we accept (MP4/MOV, WebM/Matroska, AVI, FLV)")
    return container


def locked_input(path: Path, container: str, *, autorotate: bool = True, seconds: float | None = None,
                  sound: bool = False):
    """The ffmpeg-python input for ``path``, locked to its sniffed demuxer.

    MOV: ``file:`` + ``-protocol_whitelist file`` + ``-enable_drefs 0``.
    Others: ``pipe:0`` (the caller feeds the file on stdin) + ``-protocol_whitelist pipe``.
    ``autorotate=False`` adds ``-noautorotate`` (we then turn the picture ourselves).
    Decoders get ``CHILD_THREADS`` threads and refuse pictures over ``MAX_CODED_PIXELS``;
    ``seconds`` (ffmpeg only) stops reading the input there.  ``sound``: the
    same file opened a second time for its sound alone (``-vn``; not on stdin
    but on ``SOUND_PIPE``, a second descriptor ``Job.start`` hands over).
    """
    demuxer, whitelist = _DEMUXERS[container]
    options = {"f": demuxer, "format_whitelist": whitelist, "threads": limits.CHILD_THREADS, "max_pixels": limits.MAX_CODED_PIXELS}
    if seconds is not None:
        options["t"] = f"{seconds:g}"
    if not autorotate:
        options["noautorotate"] = None  # ffmpeg-python: a bare flag
    if sound:
        options["vn"] = None
    if container in PIPED:
        return ffmpeg.input(SOUND_PIPE if sound else "pipe:0", protocol_whitelist="pipe", **options)
    return ffmpeg.input(f"file:{path}", protocol_whitelist="file", enable_drefs=0, **options)
