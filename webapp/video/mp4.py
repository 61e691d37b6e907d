"""Just enough of an ISO BMFF (MP4/MOV) reader: boxes, the top-level 'moov' of a file, and
per track its handler, codec, picture size, duration, sample count and display matrix.

Pure: no subprocess, no ffmpeg; tests/test_mp4.py builds its boxes from bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import VideoToolError


def find_moov(path: Path, limit: int = 8 << 20) -> bytes | None:
    """The bytes of the top-level 'moov' box (at most ``limit``), or None."""
    with open(path, "rb") as fh:
        end = os.fstat(fh.fileno()).st_size
        offset = 0
        for _ in range(10_000):
            if offset + 8 > end:
                return None
            fh.seek(offset)
            header = fh.read(16)
            size, kind = struct.unpack(">I4s", header[:8])
            head = 8
            if size == 1 and len(header) == 16:
                size, head = struct.unpack(">Q", header[8:16])[0], 16
            elif size == 0:
                size = end - offset
            if size < head:
                return None
            if kind == b"moov":
                fh.seek(offset + head)
                return fh.read(min(size - head, limit))
            offset += size
    return None


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
MAX_DEPTH = 16  # containers inside a trak: a real one has 3 (mdia, minf, stbl)


@dataclass
class Track:
    handler: bytes = b""
    codec: bytes = b""
    width: int = 0
    height: int = 0
    duration: float = 0.0
    samples: int = 0
    ticks: int = 0  # sum of the sample durations (stts), in timescale units
    timescale: int = 0
    matrix_at: int | None = None  # offset of the tkhd matrix in the file

    IDENTITY = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)

    def clear_matrix(self, data: bytearray) -> None:
        if self.matrix_at is not None:
            data[self.matrix_at : self.matrix_at + 36] = self.IDENTITY


@dataclass
class Mp4:
    """Just enough of an ISO BMFF reader for the files our own ffmpeg writes."""

    tracks: list[Track]
    duration: float
    moov_offset: int
    mdat_offset: int | None

    @classmethod
    def parse(cls, data: bytes | bytearray) -> Mp4:
        moov_offset = mdat_offset = None
        duration = 0.0
        tracks: list[Track] = []
        try:
            for kind, start, end, body in boxes(data, 0, len(data)):
                if kind == b"mdat" and mdat_offset is None:
                    mdat_offset = start
                elif kind == b"moov" and moov_offset is None:
                    moov_offset = start
                    for k, _s, _e, b in boxes(data, body, end):
                        if k == b"mvhd":
                            duration = _mvhd_duration(data, b)
                        elif k == b"trak":
                            tracks.append(read_trak(data, b, _e))
        except (struct.error, IndexError, ValueError):
            raise VideoToolError("output MP4 cannot be parsed") from None
        if moov_offset is None:
            raise VideoToolError("output MP4 has no moov box")
        return cls(tracks, duration, moov_offset, mdat_offset)


def boxes(data: bytes | bytearray, start: int, end: int):
    """(type, start, end, body) of the boxes between start and end."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        body = offset + 8
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            body = offset + 16
        elif size == 0:
            size = end - offset
        if size < body - offset or offset + size > end:
            raise ValueError("bad box size")
        yield kind, offset, offset + size, body
        offset += size


def _mvhd_duration(data: bytes | bytearray, body: int) -> float:
    if data[body] == 1:
        timescale, duration = struct.unpack_from(">IQ", data, body + 20)
    else:
        timescale, duration = struct.unpack_from(">II", data, body + 12)
    return duration / timescale if timescale else 0.0


def read_trak(data: bytes | bytearray, start: int, end: int) -> Track:
    track = Track()

    def walk(s: int, e: int, depth: int = 0) -> None:
        if depth > MAX_DEPTH:  # a real track nests 5 deep; a crafted one would exhaust the stack
            raise ValueError("boxes nested too deep")
        for kind, _bs, be, body in boxes(data, s, e):
            if kind in _CONTAINERS:
                walk(body, be, depth + 1)
            elif kind == b"tkhd":
                track.matrix_at = body + (52 if data[body] == 1 else 40)
            elif kind == b"mdhd":
                track.duration = _mvhd_duration(data, body)
                track.timescale = struct.unpack_from(">I", data, body + (20 if data[body] == 1 else 12))[0]
            elif kind == b"hdlr" and not track.handler:  # the media's, not QuickTime's data handler
                track.handler = bytes(data[body + 8 : body + 12])
            elif kind == b"stsd":
                track.codec = bytes(data[body + 12 : body + 16])
                if track.handler == b"vide":
                    track.width, track.height = struct.unpack_from(">HH", data, body + 8 + 8 + 24)
            elif kind == b"stts":
                count = struct.unpack_from(">I", data, body + 4)[0]
                entries = [struct.unpack_from(">II", data, body + 8 + 8 * i) for i in range(count)]
                track.samples = sum(n for n, _ in entries)
                track.ticks = sum(n * delta for n, delta in entries)

    walk(start, end)
    return track
