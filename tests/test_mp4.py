"""webapp.video.mp4, the pure MP4 box reader, on boxes built from bytes here (no ffmpeg, no
fixture files): what it reads, and how it refuses what it cannot."""
from __future__ import annotations

import struct

import pytest

from webapp.video import VideoToolError, mp4

ROTATE_90 = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)


def box(kind: bytes, *parts: bytes, size: int | None = None) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body) if size is None else size, kind) + body


def large_box(kind: bytes, *parts: bytes, size: int | None = None) -> bytes:
    """A box with size 1 and its 64-bit largesize after the type."""
    body = b"".join(parts)
    return struct.pack(">I4sQ", 1, kind, 16 + len(body) if size is None else size) + body


def full(version: int) -> bytes:
    return bytes([version, 0, 0, 0])


def tkhd(version: int = 0, matrix: bytes = mp4.Track.IDENTITY) -> bytes:
    times = bytes(8 + 8 + 4 + 4 + 8) if version == 1 else bytes(4 + 4 + 4 + 4 + 4)
    return box(b"tkhd", full(version), times, bytes(8 + 2 + 2 + 2 + 2), matrix, struct.pack(">II", 640 << 16, 480 << 16))


def mdhd(timescale: int, duration: int, version: int = 0) -> bytes:
    if version == 1:
        return box(b"mdhd", full(1), bytes(16), struct.pack(">IQ", timescale, duration), bytes(4))
    return box(b"mdhd", full(0), bytes(8), struct.pack(">II", timescale, duration), bytes(4))


def mvhd(timescale: int, duration: int, version: int = 0) -> bytes:
    if version == 1:
        return box(b"mvhd", full(1), bytes(16), struct.pack(">IQ", timescale, duration), bytes(80))
    return box(b"mvhd", full(0), bytes(8), struct.pack(">II", timescale, duration), bytes(80))


def hdlr(handler: bytes) -> bytes:
    return box(b"hdlr", full(0), bytes(4), handler, bytes(12), b"\0")


def stsd(codec: bytes, width: int = 0, height: int = 0) -> bytes:
    entry = box(codec, bytes(6 + 2 + 2 + 2 + 12), struct.pack(">HH", width, height), bytes(50))
    return box(b"stsd", full(0), struct.pack(">I", 1), entry)


def stts(*entries: tuple[int, int]) -> bytes:
    return box(b"stts", full(0), struct.pack(">I", len(entries)), *(struct.pack(">II", *e) for e in entries))


def trak(handler: bytes, codec: bytes, *, version: int = 0, matrix: bytes = mp4.Track.IDENTITY,
         size: tuple[int, int] = (0, 0), samples: tuple[tuple[int, int], ...] = ((150, 512),)) -> bytes:
    stbl = box(b"stbl", stsd(codec, *size), stts(*samples))
    minf = box(b"minf", box(b"vmhd", full(0), bytes(8)), stbl)
    return box(b"trak", tkhd(version, matrix), box(b"mdia", mdhd(12800, 76800, version), hdlr(handler), minf))


def movie(*, version: int = 0, matrix: bytes = mp4.Track.IDENTITY) -> bytes:
    """ftyp, moov (a 640x480 H.264 track of 150 frames at 25 fps, an AAC track), mdat."""
    moov = box(b"moov", mvhd(1000, 6000, version),
               trak(b"vide", b"avc1", version=version, matrix=matrix, size=(640, 480)),
               trak(b"soun", b"mp4a", samples=((282, 1024),)))
    return box(b"ftyp", b"isom", bytes(4), b"isomavc1") + moov + box(b"mdat", bytes(100))


# --------------------------------------------------------------------------- boxes


def test_boxes_lists_siblings_with_their_bounds():
    data = box(b"ftyp", b"isom") + box(b"free") + box(b"mdat", bytes(5))
    assert list(mp4.boxes(data, 0, len(data))) == [
        (b"ftyp", 0, 12, 8), (b"free", 12, 20, 20), (b"mdat", 20, 33, 28)]


def test_boxes_reads_between_start_and_end_only():
    inner = box(b"mvhd", bytes(4)) + box(b"trak", bytes(2))
    data = box(b"moov", inner) + box(b"mdat", bytes(3))
    assert [k for k, *_ in mp4.boxes(data, 8, 8 + len(inner))] == [b"mvhd", b"trak"]


def test_a_largesize_box_has_its_body_after_the_64_bit_size():
    data = large_box(b"mdat", bytes(20)) + box(b"free")
    assert list(mp4.boxes(data, 0, len(data))) == [(b"mdat", 0, 36, 16), (b"free", 36, 44, 44)]


def test_a_box_of_size_zero_runs_to_the_end_of_its_container():
    data = box(b"moov", box(b"trak", size=0) + bytes(10)) + box(b"mdat", size=0) + bytes(7)
    assert list(mp4.boxes(data, 0, len(data))) == [(b"moov", 0, 26, 8), (b"mdat", 26, len(data), 34)]
    assert list(mp4.boxes(data, 8, 26)) == [(b"trak", 8, 26, 16)]  # the container's end, not the file's


def test_bytes_too_few_for_a_header_end_the_list():
    assert list(mp4.boxes(box(b"free") + bytes(7), 0, 15)) == [(b"free", 0, 8, 8)]
    assert list(mp4.boxes(b"", 0, 0)) == []


@pytest.mark.parametrize("data", [
    box(b"mdat", bytes(10), size=100),  # says more than there is
    box(b"free", size=4),  # smaller than its own header
    box(b"free", size=7),
    large_box(b"mdat", bytes(4), size=15),  # smaller than a largesize header
    box(b"mdat", size=0xFFFF_FFFF),  # absurd sizes: refused, nothing allocated
    large_box(b"mdat", size=1 << 63),
    large_box(b"mdat", size=(1 << 64) - 1),
])
def test_a_box_whose_size_does_not_fit_is_refused(data):
    with pytest.raises(ValueError, match="bad box size"):
        list(mp4.boxes(data, 0, len(data)))


def test_a_box_cut_inside_its_largesize_is_refused():
    with pytest.raises(struct.error):
        list(mp4.boxes(struct.pack(">I4s", 1, b"mdat") + bytes(4), 0, 12))


def test_the_boxes_before_a_bad_one_are_still_listed():
    data = box(b"ftyp", b"isom") + box(b"mdat", size=3)
    found = mp4.boxes(data, 0, len(data))
    assert next(found)[0] == b"ftyp"
    with pytest.raises(ValueError):
        next(found)


# --------------------------------------------------------------------------- Mp4.parse and tracks


def test_a_movie_is_read_track_by_track():
    data = movie()
    parsed = mp4.Mp4.parse(data)
    assert parsed.duration == 6.0
    assert parsed.moov_offset == 24 and parsed.mdat_offset == len(data) - 108
    video, sound = parsed.tracks
    assert (video.handler, video.codec, video.width, video.height) == (b"vide", b"avc1", 640, 480)
    assert (video.timescale, video.duration, video.samples, video.ticks) == (12800, 6.0, 150, 150 * 512)
    assert (sound.handler, sound.codec, sound.width, sound.height, sound.samples) == (b"soun", b"mp4a", 0, 0, 282)
    assert data[video.matrix_at : video.matrix_at + 36] == mp4.Track.IDENTITY


def test_version_1_headers_are_read_at_their_own_offsets():
    data = movie(version=1, matrix=ROTATE_90)
    parsed = mp4.Mp4.parse(data)
    assert parsed.duration == 6.0
    video = parsed.tracks[0]
    assert (video.timescale, video.duration) == (12800, 6.0)
    assert data[video.matrix_at : video.matrix_at + 36] == ROTATE_90


def test_mdat_before_moov_is_seen_so_the_caller_can_refuse_it():
    head = box(b"ftyp", b"isom")
    data = head + box(b"mdat", bytes(10)) + box(b"moov", mvhd(1000, 3000)) + box(b"mdat", bytes(3))
    parsed = mp4.Mp4.parse(data)
    assert parsed.mdat_offset == len(head) < parsed.moov_offset  # the first mdat counts
    assert parsed.tracks == [] and parsed.duration == 3.0


def test_several_stts_entries_add_up():
    track = mp4.read_trak(*_trak_bounds(trak(b"vide", b"avc1", samples=((10, 500), (5, 600), (1, 0)))))
    assert (track.samples, track.ticks) == (16, 10 * 500 + 5 * 600)


def test_the_first_handler_is_the_media_s_not_quicktime_s_data_handler():
    media = box(b"mdia", mdhd(600, 1200), hdlr(b"soun"),
                box(b"minf", hdlr(b"alis"), box(b"stbl", stsd(b"mp4a"))))
    track = mp4.read_trak(*_trak_bounds(box(b"trak", media)))
    assert (track.handler, track.codec) == (b"soun", b"mp4a")


def test_only_the_known_containers_are_opened():
    hidden = box(b"udta", box(b"stbl", stsd(b"avc1", 640, 480)))  # not a container the reader opens
    track = mp4.read_trak(*_trak_bounds(box(b"trak", box(b"mdia", hidden))))
    assert (track.codec, track.width, track.matrix_at) == (b"", 0, None)


def test_containers_nested_deeper_than_a_real_file_are_still_read():
    inner = box(b"stbl", stsd(b"avc1", 320, 240))
    for _ in range(mp4.MAX_DEPTH - 1):   # 15 levels where a real track has 3
        inner = box(b"minf", inner)
    track = mp4.read_trak(*_trak_bounds(box(b"trak", hdlr(b"vide"), inner)))
    assert (track.codec, track.width, track.height) == (b"avc1", 320, 240)


def test_absurdly_deep_nesting_is_refused_not_a_crash():
    """~3000 nested containers (24 KB) once raised RecursionError out of prepare."""
    inner = hdlr(b"vide")
    for _ in range(3000):
        inner = box(b"stbl", inner)
    with pytest.raises(VideoToolError):
        mp4.Mp4.parse(box(b"moov", box(b"trak", inner)))


def test_clear_matrix_writes_the_identity_in_place():
    data = bytearray(movie(matrix=ROTATE_90))
    parsed = mp4.Mp4.parse(data)
    before = bytes(data)
    for track in parsed.tracks:
        track.clear_matrix(data)
    at = parsed.tracks[0].matrix_at
    assert data[at : at + 36] == mp4.Track.IDENTITY
    assert data[:at] == before[:at] and data[at + 36 :] == before[at + 36 :]
    mp4.Track().clear_matrix(data)  # a track without tkhd changes nothing
    assert len(data) == len(before)


@pytest.mark.parametrize(("data", "message"), [
    (box(b"ftyp", b"isom") + box(b"mdat", bytes(10)), "no moov box"),
    (b"", "no moov box"),
    (box(b"ftyp", b"isom") + box(b"moov", size=500), "cannot be parsed"),  # truncated file
    (box(b"moov", box(b"trak", box(b"tkhd", size=2))), "cannot be parsed"),  # child smaller than its header
    (box(b"moov", box(b"trak", box(b"mdia", box(b"mdhd", full(0), bytes(4))))), "cannot be parsed"),  # cut field
    (box(b"moov", box(b"trak", box(b"stts", full(0), struct.pack(">I", 1_000_000)))), "cannot be parsed"),
    (box(b"moov", box(b"trak", box(b"tkhd"))), "cannot be parsed"),  # an empty full box
])
def test_what_cannot_be_read_is_a_tool_error(data, message):
    with pytest.raises(VideoToolError, match=message):
        mp4.Mp4.parse(data)


def _trak_bounds(data: bytes) -> tuple[bytes, int, int]:
    (_kind, _start, end, body), = mp4.boxes(data, 0, len(data))
    return data, body, end


# --------------------------------------------------------------------------- find_moov


def _file(tmp_path, data: bytes):
    path = tmp_path / "upload.mp4"
    path.write_bytes(data)
    return path


def test_find_moov_skips_to_the_top_level_moov(tmp_path):
    moov = box(b"moov", mvhd(1000, 6000))
    data = box(b"ftyp", b"isom") + large_box(b"mdat", bytes(1000)) + box(b"free") + moov
    assert mp4.find_moov(_file(tmp_path, data)) == moov[8:]


def test_find_moov_reads_a_moov_of_size_zero_to_the_end_of_the_file(tmp_path):
    data = box(b"ftyp", b"isom") + box(b"moov", size=0) + b"rest of the file"
    assert mp4.find_moov(_file(tmp_path, data)) == b"rest of the file"


def test_find_moov_reads_a_largesize_moov(tmp_path):
    assert mp4.find_moov(_file(tmp_path, large_box(b"moov", b"body"))) == b"body"


def test_find_moov_reads_at_most_its_limit(tmp_path):
    assert mp4.find_moov(_file(tmp_path, box(b"moov", bytes(100))), limit=10) == bytes(10)


@pytest.mark.parametrize("data", [
    b"",
    box(b"ftyp", b"isom") + box(b"mdat", bytes(10)),  # no moov
    box(b"ftyp", b"isom") + box(b"mdat", size=0) + box(b"moov"),  # the mdat runs to the end
    box(b"ftyp", b"isom") + box(b"free", size=3) + box(b"moov"),  # a size below the header
    box(b"ftyp", b"isom") + large_box(b"mdat", size=1 << 40) + box(b"moov"),  # past the end of the file
    box(b"ftyp", b"isom") + b"moov",  # a header cut short
])
def test_find_moov_gives_none_when_there_is_no_moov_to_read(tmp_path, data):
    assert mp4.find_moov(_file(tmp_path, data)) is None


def test_find_moov_gives_up_after_ten_thousand_boxes(tmp_path):
    many = box(b"free") * 10_000
    assert mp4.find_moov(_file(tmp_path, many + box(b"moov", b"x"))) is None
    assert mp4.find_moov(_file(tmp_path, many[8:] + box(b"moov", b"x"))) == b"x"
