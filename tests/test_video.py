"""webapp.video with the real ffmpeg/ffprobe on realistic uploads (tests/media.py).

Behaviour, not implementation: what comes out is checked with ffprobe and by
reading the MP4 boxes ourselves; pictures are compared with SSIM; the hostile
files are run against a real loopback HTTP server and a FIFO that records
whether anything opened it.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from webapp import video
from webapp.video import Tools, VideoRejected, VideoToolError, limits, probing

from .media import DREF_TARGET, PRIVATE_METADATA, hls_playlist, make_fixture

PASSWD_MARKERS = (b"root:x:0:0", b"/bin/bash", b"/usr/sbin/nologin", b"daemon:")

# upload kind -> expected output (width, height, remuxed)
EXPECTED = {
    "chrome_webm": (640, 480, False),
    "chromium_mp4_vp9": (640, 480, False),
    "safari_fmp4": (640, 480, True),
    "iphone_hevc_mov": (540, 960, False),  # portrait: rotation applied, short side 540
    "android_1080p_mp4": (540, 960, False),
    "small_360p": (480, 360, False),  # never upscaled
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """One directory of generated fixture videos for the whole session."""
    return tmp_path_factory.mktemp("video-fixtures")


@pytest.fixture(scope="session")
def clip(video_dir):
    """``clip("safari_fmp4")`` -> path of that fixture, generated once per session."""
    return lambda kind, **kw: make_fixture(kind, video_dir, **kw)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """The parent of prepare's temporary directory; must be empty again after each test."""
    path = tmp_path / "video-tmp"
    path.mkdir()
    yield path
    assert list(path.iterdir()) == [], "temporary files left behind"


@pytest.fixture
def tools(workdir) -> Tools:
    """Tools whose temporary files go to a directory the test can inspect."""
    return Tools(tmpdir=str(workdir), timeout=120)


# --------------------------------------------------------------------------- helpers


def ffprobe(path: Path, *extra: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", *extra, str(path)],
        capture_output=True, check=True, timeout=60,
    ).stdout
    return json.loads(out)


def write(tmp_path: Path, prepared: video.PreparedVideo, name="out.mp4") -> Path:
    path = tmp_path / name
    path.write_bytes(prepared.data)
    return path


def top_level_boxes(data: bytes) -> list[bytes]:
    kinds, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        kinds.append(kind)
        offset += size if size else len(data)
    return kinds


def gray_frame(path: Path, seconds: float, width: int, height: int) -> np.ndarray:
    """One frame at ``seconds``, autorotated as a player shows it, as grey ``width``x``height``."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(path), "-frames:v", "1",
         "-vf", f"scale={width}:{height}:flags=area", "-pix_fmt", "gray", "-f", "rawvideo", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, data_range=255)


def all_tags(doc: dict) -> dict:
    tags = dict(doc.get("format", {}).get("tags", {}))
    for stream in doc.get("streams", []):
        tags.update(stream.get("tags", {}))
    return tags


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\0\0\0\x20ftypisom\0\0\2\0isomiso2avc1mp41", "mov"),
        (b"\0\0\0\x14ftypqt  \0\0\0\0qt  ", "mov"),
        (b"\0\0\x01\0moov" + b"\0" * 8, "mov"),
        (b"\0\0\0\x08wide\0\0\0\x10mdat", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "matroska"),
        (b"RIFF\x10\0\0\0AVI LIST", "avi"),
        (b"FLV\x01\x05\0\0\0\x09", "flv"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n", None),
        (b"ffconcat version 1.0\nfile x", None),
        (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", None),
        (b"RIFF\x10\0\0\0WAVEfmt ", None),
        (b"\0\0\0\x20ftyp", "mov"),
        (b"\0\0\0\x04ftypisom", None),  # box smaller than its header
        (b"", None),
    ],
)
def test_sniff_container_reads_magic_bytes_only(head, expected):
    assert video.sniff_container(head) == expected


def test_input_is_locked_to_the_sniffed_demuxer_and_protocol(tmp_path):
    """The command lines themselves: forced demuxer, whitelists, stdin for non-MOV."""
    path = tmp_path / "upload.webm"
    webm = probing._probe_argv(path, "matroska", Tools(), packets=True)
    assert webm[webm.index("-f") + 1] == "matroska"
    assert webm[webm.index("-protocol_whitelist") + 1] == "pipe"
    assert webm[webm.index("-format_whitelist") + 1] == "matroska,webm"
    assert webm[webm.index("-i") + 1] == "pipe:0"
    assert str(path) not in " ".join(webm)  # the file is handed over as stdin only
    mov = probing._probe_argv(tmp_path / "upload.mp4", "mov", Tools(), packets=False)
    assert mov[mov.index("-f") + 1] == "mov"
    assert mov[mov.index("-protocol_whitelist") + 1] == "file"
    assert mov[mov.index("-enable_drefs") + 1] == "0"
    assert mov[mov.index("-i") + 1] == f"file:{tmp_path / 'upload.mp4'}"


# --------------------------------------------------------------------------- probe


def test_probe_computes_duration_of_chrome_webm_without_one_in_the_header(clip, tools):
    path = clip("chrome_webm")
    # the fixture really is like Chrome's: no Duration element (0x4489) before the first Cluster
    data = path.read_bytes()
    assert b"\x44\x89" not in data[: data.index(b"\x1f\x43\xb6\x75")]
    info = video.probe(path, tools=tools)
    assert info.container == "matroska"
    assert (info.video_codec, info.audio_codec) == ("vp8", "opus")
    assert info.duration == pytest.approx(6.0, abs=0.1)
    assert info.fps == pytest.approx(30, abs=0.5)
    assert (info.width, info.height, info.rotation) == (640, 480, 0)


@pytest.mark.parametrize("kind", ["iphone_hevc_mov", "android_1080p_mp4"])
def test_probe_reports_portrait_phone_video_as_displayed(clip, tools, kind):
    info = video.probe(clip(kind), tools=tools)
    assert (info.width, info.height, info.rotation) == (1080, 1920, 90)
    assert info.container == "mov"
    assert info.duration == pytest.approx(6.0, abs=0.05)
    assert info.fps == pytest.approx(30)
    assert info.audio_codec == "aac"
    if kind == "iphone_hevc_mov":
        assert (info.video_codec, info.pix_fmt) == ("hevc", "yuv420p10le")
    else:
        assert (info.video_codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.size_bytes == clip(kind).stat().st_size


@pytest.mark.parametrize(
    ("kind", "code"),
    [("empty", 267536), ("broken", 267537), ("not_video", 267537), ("text_file", 267537), ("audio_only", 267537)],
)
def test_probe_rejects_what_is_not_a_readable_video(clip, tools, kind, code):
    with pytest.raises(VideoRejected) as caught:
        video.probe(clip(kind), tools=tools)
    assert caught.value.code == code
    assert caught.value.detail


# --------------------------------------------------------------------------- prepare: accepted uploads


@pytest.mark.parametrize("keep_audio", [False, True], ids=["silent-mode", "keep-audio"])
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_each_upload_kind_becomes_a_small_plain_faststart_mp4(clip, tools, tmp_path, kind, keep_audio):
    source = clip(kind)
    prepared = video.prepare(source, keep_audio=keep_audio, require_audio=keep_audio, tools=tools)
    width, height, remuxed = EXPECTED[kind]
    out = write(tmp_path, prepared)
    doc = ffprobe(out)

    assert prepared.remuxed is remuxed
    assert "mp4" in doc["format"]["format_name"]
    boxes = top_level_boxes(prepared.data)
    assert boxes.index(b"moov") < boxes.index(b"mdat"), "not faststart"
    assert b"moof" not in boxes, "still fragmented"
    streams = doc["streams"]
    videos = [s for s in streams if s["codec_type"] == "video"]
    audios = [s for s in streams if s["codec_type"] == "audio"]
    assert len(streams) == len(videos) + len(audios), "data/subtitle streams left"
    assert len(videos) == 1
    v = videos[0]
    assert (v["codec_name"], v["pix_fmt"]) == ("h264", "yuv420p")
    assert (v["width"], v["height"]) == (width, height)
    assert not v.get("side_data_list"), "rotation metadata left"
    assert "rotate" not in v.get("tags", {})
    num, den = map(int, v["avg_frame_rate"].split("/"))
    assert 0 < num / den <= 30.0
    if keep_audio:
        assert [a["codec_name"] for a in audios] == ["aac"]
    else:
        assert audios == []
    assert float(doc["format"]["duration"]) == pytest.approx(prepared.source.duration, abs=0.15)
    assert len(prepared.data) < 6_000_000

    # what prepare says about its output is what ffprobe sees
    o = prepared.output
    assert (o.container, o.video_codec, o.pix_fmt, o.rotation) == ("mov", "h264", "yuv420p", 0)
    assert (o.width, o.height) == (width, height)
    assert o.audio_codec == ("aac" if keep_audio else None)
    assert o.size_bytes == len(prepared.data)
    assert o.duration == pytest.approx(float(v["duration"]), abs=0.1)
    assert o.fps == pytest.approx(num / den, rel=0.01)
    # what prepare says about its input is what ffprobe says (a copy reads it from ffmpeg's
    # own description of the input, to the hundredth of a second)
    probed = video.probe(source, tools=tools)
    assert replace(prepared.source, fps=None, duration=None) == replace(probed, fps=None, duration=None)
    assert prepared.source.fps == pytest.approx(probed.fps, rel=0.01)
    assert prepared.source.duration == pytest.approx(probed.duration, abs=0.02)
    assert set(prepared.timings) >= {"probe", "normalise", "total"}
    assert prepared.timings["total"] >= prepared.timings["probe"] >= 0

    # the picture is the source's, upright (a wrong turn would not match)
    small = (width // 4, height // 4)
    assert ssim(gray_frame(out, 2.0, *small), gray_frame(source, 2.0, *small)) > 0.8


def test_rotated_iphone_video_comes_out_upright_portrait(clip, tools, tmp_path):
    """The portrait test is about the pixels: frames physically turned, no matrix left."""
    source = clip("iphone_hevc_mov")
    prepared = video.prepare(source, keep_audio=False, require_audio=False, tools=tools)
    out = write(tmp_path, prepared)
    v = ffprobe(out)["streams"][0]
    assert v["width"] < v["height"]
    ours = gray_frame(out, 3.0, 135, 240)
    upright = gray_frame(source, 3.0, 135, 240)
    upside_down = upright[::-1, ::-1]
    assert ssim(ours, upright) > 0.8
    assert ssim(ours, upright) > ssim(ours, upside_down) + 0.2


def test_no_upscaling_of_a_small_upload(clip, tools):
    prepared = video.prepare(clip("small_360p"), keep_audio=False, require_audio=False, tools=tools)
    assert (prepared.source.width, prepared.source.height) == (480, 360)
    assert (prepared.output.width, prepared.output.height) == (480, 360)


def test_long_upload_is_trimmed_to_ten_seconds(clip, tools, tmp_path):
    prepared = video.prepare(clip("long"), keep_audio=True, require_audio=True, tools=tools)
    assert prepared.source.duration == pytest.approx(15, abs=0.1)
    assert not prepared.remuxed  # compliant H.264 otherwise: the speculative remux was discarded
    doc = ffprobe(write(tmp_path, prepared))
    assert 9.9 <= float(doc["format"]["duration"]) <= 10.1
    assert all(float(s["duration"]) <= 10.1 for s in doc["streams"])


@pytest.mark.parametrize("kind", ["iphone_hevc_mov", "android_1080p_mp4"])
def test_private_metadata_never_leaves(clip, tools, tmp_path, kind):
    source = clip(kind)
    tags = all_tags(ffprobe(source))  # the fixture does carry them
    assert tags["location"] == PRIVATE_METADATA["location"]  # MP4: a binary 'loci' box
    if kind == "iphone_hevc_mov":
        assert tags["com.apple.quicktime.location.ISO6709"] == PRIVATE_METADATA["location"]
        assert tags["com.apple.quicktime.make"] == "Apple"
        assert tags["com.apple.quicktime.model"] == "iPhone 15 Pro"
    for keep_audio in (False, True):
        prepared = video.prepare(source, keep_audio=keep_audio, require_audio=False, tools=tools)
        for value in PRIVATE_METADATA.values():
            assert value.encode() not in prepared.data
        assert b"+39.9042" not in prepared.data and b"116.4074" not in prepared.data
        assert b"com.apple.quicktime" not in prepared.data
        header = prepared.data[: prepared.data.index(b"mdat")]
        for box in (b"loci", b"\xa9xyz", b"\xa9mak", b"\xa9mod", b"keys", b"mdta"):
            assert box not in header
        if b"ilst" in header:  # the muxer's own empty tag list, nothing in it
            assert header[header.index(b"ilst") - 4 : header.index(b"ilst")] == b"\0\0\0\x08"
        assert b"Core Media" not in prepared.data  # stream handler names are not copied
        doc = ffprobe(write(tmp_path, prepared))
        values = " ".join(map(str, all_tags(doc).values()))
        for value in PRIVATE_METADATA.values():
            assert value not in values
        assert "creation_time" not in all_tags(doc)
        assert not doc["format"].get("tags", {}).keys() - {"major_brand", "minor_version", "compatible_brands"}


def test_safari_fragmented_mp4_is_remuxed_with_its_audio(clip, tools, tmp_path):
    prepared = video.prepare(clip("safari_fmp4"), keep_audio=True, require_audio=True, tools=tools)
    assert prepared.remuxed
    assert top_level_boxes(prepared.data)[:2] == [b"ftyp", b"moov"]
    assert b"moof" not in top_level_boxes(prepared.data)
    doc = ffprobe(write(tmp_path, prepared))
    assert [s["codec_name"] for s in doc["streams"]] == ["h264", "aac"]


def test_chapters_subtitles_and_data_streams_are_dropped_even_when_remuxing(clip, tools, tmp_path):
    chapters = tmp_path / "chapters.txt"
    chapters.write_text(";FFMETADATA1\ntitle=Home address 1 Example Road\n"
                        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=3000\ntitle=Secret chapter\n")
    subs = tmp_path / "subs.srt"
    subs.write_text("1\n00:00:00,000 --> 00:00:02,000\nSecret subtitle\n")
    upload = tmp_path / "chaptered.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("safari_fmp4")), "-i", str(subs), "-i", str(chapters),
                    "-map", "0", "-map", "1", "-map_metadata", "2", "-map_chapters", "2", "-c", "copy",
                    "-c:s", "mov_text", str(upload)], check=True, timeout=60)
    assert ffprobe(upload, "-show_chapters")["chapters"]
    prepared = video.prepare(upload, keep_audio=True, require_audio=False, tools=tools)
    assert prepared.remuxed
    doc = ffprobe(write(tmp_path, prepared), "-show_chapters")
    assert doc["chapters"] == []
    assert [s["codec_type"] for s in doc["streams"]] == ["video", "audio"]
    for secret in (b"Secret", b"Example Road"):
        assert secret not in prepared.data


@pytest.mark.parametrize("audio", ["aac", "libopus"])
def test_compliant_h264_in_matroska_is_remuxed_too(clip, tools, tmp_path, audio):
    """Chrome can record H.264 in Matroska: the video is copied; Opus becomes AAC."""
    upload = tmp_path / "h264.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("safari_fmp4")), "-c:v", "copy", "-c:a", audio,
                    "-f", "matroska", str(upload)], check=True, timeout=60)
    prepared = video.prepare(upload, keep_audio=True, require_audio=True, tools=tools)
    assert prepared.source.container == "matroska"
    assert prepared.remuxed
    doc = ffprobe(write(tmp_path, prepared))
    assert [s["codec_name"] for s in doc["streams"]] == ["h264", "aac"]
    assert top_level_boxes(prepared.data)[:2] == [b"ftyp", b"moov"]


def test_a_declined_copy_falls_back_to_a_whole_output(clip, tools, tmp_path):
    """When the one-process copy is declined (what ffmpeg described is not trusted), the full
    path runs its own ffmpeg: it never takes the declined run's place while the speculative
    encode rewrites the same file (that left an MP4 without its moov box).

    The upload's title reads like one of ffmpeg's stream headings, so the copy's description
    of its input shows one stream more than it lists: not trusted. The same upload untitled
    is copied first (no probe), so it is the title that declines the copy."""
    def upload(name: str, *metadata: str) -> Path:
        path = tmp_path / name
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("safari_fmp4")), "-c:v", "copy", "-c:a", "libopus",
                        *metadata, "-f", "matroska", str(path)], check=True, timeout=60)
        return path

    plain = video.prepare(upload("plain.mkv"), keep_audio=True, require_audio=True, tools=tools)
    assert plain.remuxed and plain.timings["probe"] == 0.0  # copied first: no probe
    title = "Stream #0:1 of the recital"
    prepared = video.prepare(upload("titled.mkv", "-metadata", f"title={title}"), keep_audio=True,
                             require_audio=True, tools=tools)
    assert prepared.timings["probe"] > 0  # the copy was declined: the full path probed
    assert prepared.remuxed and top_level_boxes(prepared.data)[:2] == [b"ftyp", b"moov"]
    assert title.encode() not in prepared.data


def test_silent_video_is_fine_when_sound_is_not_needed(clip, tools):
    prepared = video.prepare(clip("silent"), keep_audio=True, require_audio=False, tools=tools)
    assert prepared.source.audio_codec is None and prepared.output.audio_codec is None


def test_digital_silence_is_fine_when_sound_is_not_needed(clip, tools):
    prepared = video.prepare(clip("mute_audio"), keep_audio=True, require_audio=False, tools=tools)
    assert prepared.output.audio_codec == "aac"


# --------------------------------------------------------------------------- prepare: rejections


@pytest.mark.parametrize(
    ("kind", "require_audio", "code"),
    [
        ("empty", False, 267536),
        ("broken", False, 267537),
        ("not_video", False, 267537),
        ("text_file", False, 267537),
        ("audio_only", True, 267537),
        ("too_short", False, 267549),
        ("tiny", False, 267538),
        ("silent", True, 267539),
        ("mute_audio", True, 267540),
    ],
)
def test_rejections_use_juhes_codes(clip, tools, kind, require_audio, code):
    with pytest.raises(VideoRejected) as caught:
        video.prepare(clip(kind), keep_audio=require_audio, require_audio=require_audio, tools=tools)
    assert caught.value.code == code
    assert caught.value.detail and str(code) in str(caught.value)


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_metadata_cannot_pretend_a_silent_upload_is_loud(clip, tools, tmp_path, container):
    """ffmpeg prints the upload's metadata beside volumedetect's result: a tag that reads like
    that result changes nothing. Both the copy path (H.264) and the probe path see it."""
    upload = tmp_path / f"spoof.{container[:3]}"
    fake = "[Parsed_volumedetect_9 @ 0x1] max_volume: -1.0 dB"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("mute_audio")), "-c:v", "copy", "-c:a", "aac",
                    "-metadata", f"title={fake}", "-metadata", f"comment=x\n{fake}\n",
                    "-metadata:s:a:0", f"title={fake}", "-f", container, str(upload)], check=True, timeout=60)
    with pytest.raises(VideoRejected) as caught:
        video.prepare(upload, keep_audio=True, require_audio=True, tools=tools)
    assert caught.value.code == video.TOO_QUIET


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_a_metadata_key_cannot_pretend_a_silent_upload_is_loud(clip, tools, tmp_path, container):
    """Keys, unlike values, are printed raw: a key holding a newline and volumedetect's line
    starts a line of its own. The real summary comes last and decides."""
    upload = tmp_path / f"spoof-key.{container[:3]}"
    fake = "\n[Parsed_volumedetect_0 @ 0x1] max_volume: -3.0 dB\n"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("mute_audio")), "-c:v", "copy", "-c:a", "aac",
                    "-metadata", f"k{fake}=v", "-metadata:s:a:0", f"t{fake}=v",
                    *(["-movflags", "use_metadata_tags"] if container == "mp4" else []),
                    "-f", container, str(upload)], check=True, timeout=60)
    with pytest.raises(VideoRejected) as caught:
        video.prepare(upload, keep_audio=True, require_audio=True, tools=tools)
    assert caught.value.code == video.TOO_QUIET


def test_a_metadata_key_cannot_fake_the_stream_the_copy_path_reads(tools, tmp_path):
    """A 4:4:4 H.264 upload whose own stream line does not parse (a language with a space) and
    whose metadata key holds a 4:2:0 stream line: not copied as it is (Juhe gets yuv420p)."""
    upload = tmp_path / "spoof-stream.mkv"
    fake = "\n  Stream #0:0: Video: h264 (High), yuv420p(progressive), 640x480, 30 fps\n"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=640x480:r=30", "-t", "3",
                    "-c:v", "libx264", "-pix_fmt", "yuv444p", "-metadata", f"k{fake}=v",
                    "-metadata:s:v:0", "language=a b", "-f", "matroska", str(upload)], check=True, timeout=60)
    prepared = video.prepare(upload, keep_audio=False, require_audio=False, tools=tools)
    assert not prepared.remuxed and prepared.output.pix_fmt == "yuv420p"


def test_rejection_details_carry_no_metadata(clip, tools, tmp_path):
    # a portrait iPhone video cut to 1 s: rejected, and the detail names no private value
    short = tmp_path / "short.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip("iphone_hevc_mov")), "-t", "1", "-c", "copy",
                    "-map_metadata", "0", "-movflags", "use_metadata_tags", str(short)], check=True, timeout=60)
    with pytest.raises(VideoRejected) as caught:
        video.prepare(short, keep_audio=True, require_audio=True, tools=tools)
    assert caught.value.code == 267549
    for value in PRIVATE_METADATA.values():
        assert value not in caught.value.detail


# --------------------------------------------------------------------------- size limit


def test_output_over_the_limit_is_re_encoded_at_a_lower_bitrate(clip, tools, monkeypatch):
    monkeypatch.setattr(limits, "MAX_BYTES", 350_000)
    prepared = video.prepare(clip("android_1080p_mp4"), keep_audio=True, require_audio=False, tools=tools)
    assert len(prepared.data) <= 350_000
    assert prepared.output.audio_codec == "aac"
    assert prepared.output.duration == pytest.approx(6.0, abs=0.15)


def test_upload_over_the_limit_is_not_remuxed(clip, tools, monkeypatch):
    monkeypatch.setattr(limits, "MAX_BYTES", 1_000_000)  # safari_fmp4 is ~1.6 MB
    prepared = video.prepare(clip("safari_fmp4"), keep_audio=False, require_audio=False, tools=tools)
    assert not prepared.remuxed
    assert len(prepared.data) <= 1_000_000


# --------------------------------------------------------------------------- tools and timeouts


def test_a_tiny_budget_raises_video_tool_error_and_cleans_up(clip, workdir):
    tools = Tools(tmpdir=str(workdir), timeout=0.001)
    with pytest.raises(VideoToolError) as caught:
        video.prepare(clip("iphone_hevc_mov"), keep_audio=False, require_audio=False, tools=tools)
    assert "0.001" in caught.value.reason
    with pytest.raises(VideoToolError):
        video.probe(clip("iphone_hevc_mov"), tools=tools)


def test_a_timeout_while_encoding_kills_ffmpeg_and_cleans_up(clip, workdir):
    tools = Tools(tmpdir=str(workdir), timeout=0.6)  # probe fits, the HEVC encode does not
    started = time.monotonic()
    with pytest.raises(VideoToolError) as caught:
        video.prepare(clip("iphone_hevc_mov"), keep_audio=False, require_audio=False, tools=tools)
    assert time.monotonic() - started < 3
    assert "timed out" in caught.value.reason or "budget" in caught.value.reason


def test_tools_problem(tmp_path):
    assert video.tools_problem(Tools()) is None
    assert "ffmpeg" in video.tools_problem(Tools(ffmpeg=str(tmp_path / "no-ffmpeg")))
    assert "ffprobe" in video.tools_problem(Tools(ffprobe=str(tmp_path / "no-ffprobe")))
    fake = tmp_path / "fake-ffprobe"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    assert "ffprobe" in video.tools_problem(Tools(ffprobe=str(fake)))
    slow = tmp_path / "slow-ffmpeg"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    started = time.monotonic()
    assert "timed out" in video.tools_problem(Tools(ffmpeg=str(slow), timeout=0.3))
    assert time.monotonic() - started < 2


def test_missing_ffprobe_is_a_tool_error_not_the_persons_fault(clip, workdir, tmp_path):
    tools = Tools(ffprobe=str(tmp_path / "no-ffprobe"), tmpdir=str(workdir))
    with pytest.raises(VideoToolError):
        video.prepare(clip("chrome_webm"), keep_audio=False, require_audio=False, tools=tools)


# --------------------------------------------------------------------------- hostile files


def _passwd_free(prepared: video.PreparedVideo) -> None:
    for marker in PASSWD_MARKERS:
        assert marker not in prepared.data


def _prepare_hostile(path: Path, tools: Tools) -> video.PreparedVideo | VideoRejected:
    try:
        return video.prepare(path, keep_audio=True, require_audio=False, tools=tools)
    except VideoRejected as rejected:
        return rejected


def test_control_a_permissive_ffmpeg_does_fetch_the_playlist_segments(loopback, tmp_path):
    """Proves the playlists and the server are live: an ffmpeg left to guess the
    format, with http allowed, fetches from the loopback server.  (Debian's
    ffmpeg 5.1 already limits a *local* playlist's segments to file/crypto/data
    and refuses file:///etc/passwd segments; our defences do not rely on that.)"""
    playlist = tmp_path / "control.mp4"
    playlist.write_text(hls_playlist(loopback.server_address[1], with_passwd=False))
    subprocess.run(["ffprobe", "-v", "quiet", "-protocol_whitelist", "file,http,tcp,crypto,data", str(playlist)],
                   timeout=60)
    assert any(r.startswith("/hls/") for r in loopback.requests)


@pytest.mark.parametrize("kind", ["hls_m3u8", "hls_as_mp4", "ffconcat", "avi_gab2_hls"])
def test_hostile_files_open_nothing(clip, tools, loopback, kind):
    path = clip(kind, port=loopback.server_address[1])
    result = _prepare_hostile(path, tools)
    if isinstance(result, VideoRejected):
        assert result.code in (267536, 267537, 267549)
    else:
        _passwd_free(result)
    if kind == "avi_gab2_hls":
        assert video.probe(path, tools=tools).container == "avi"  # the only real video here
    else:
        with pytest.raises(VideoRejected) as caught:
            video.probe(path, tools=tools)
        assert caught.value.code == 267537
    assert loopback.requests == []


@pytest.mark.parametrize("with_passwd", [True, False])
@pytest.mark.parametrize(
    "magic", [b"\0\0\0\x10ftypisom\0\0\0\0", b"\x1a\x45\xdf\xa3", b"FLV\x01", b"RIFF\0\0\0\0AVI "],
    ids=["ftyp", "ebml", "flv", "avi"],
)
def test_playlist_behind_video_magic_bytes_opens_nothing(tools, loopback, tmp_path, magic, with_passwd):
    """The demuxer is forced from the magic bytes: a playlist behind them is just garbage."""
    path = tmp_path / "disguised.mp4"
    path.write_bytes(magic + b"\n" + hls_playlist(loopback.server_address[1], with_passwd=with_passwd).encode())
    with pytest.raises(VideoRejected) as caught:
        video.prepare(path, keep_audio=True, require_audio=False, tools=tools)
    assert caught.value.code == 267537
    assert loopback.requests == []


def test_nested_gab2_demuxer_is_refused_by_our_format_whitelist(clip, tools):
    """Control first: plain ffprobe parses the SRT inside our AVI's GAB2 chunk (so
    the chunk is well-formed; this ffmpeg would refuse anything but SRT/ASS in it
    anyway).  With our input options the nested demuxer itself is refused: the
    avi-only format whitelist is inherited, so no ffmpeg version could open an
    HLS playlist there either."""
    path = clip("avi_gab2_srt")
    streams = ffprobe(path)["streams"]
    assert [s["codec_name"] for s in streams if s["codec_type"] == "subtitle"] == ["subrip"]
    argv = probing._probe_argv(path, "avi", tools, packets=False)
    with open(path, "rb") as fh:
        proc = subprocess.run(argv, stdin=fh, capture_output=True, timeout=60)
    ours = json.loads(proc.stdout)["streams"]
    assert [s.get("codec_name") for s in ours if s["codec_type"] == "subtitle"] != ["subrip"]
    assert b"not on whitelist" in proc.stderr


def test_gab2_avi_is_accepted_without_subtitles_and_without_fetching(clip, tools, loopback, tmp_path):
    prepared = video.prepare(clip("avi_gab2_hls", port=loopback.server_address[1]), keep_audio=True,
                             require_audio=False, tools=tools)
    assert [s["codec_type"] for s in ffprobe(write(tmp_path, prepared))["streams"]] == ["video"]
    _passwd_free(prepared)
    assert loopback.requests == []


class _FifoWatch:
    """A FIFO that records whether anything opened it for reading."""

    def __init__(self, path: Path):
        self.path = path
        self.opened = threading.Event()
        os.mkfifo(path)
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self):
        fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens it
        self.opened.set()
        os.close(fd)

    def release(self):
        if not self.opened.is_set():  # unblock the waiting thread
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            time.sleep(0.05)
            os.close(fd)


def test_mov_external_data_reference_is_not_followed(clip, tools, tmp_path):
    upload_dir = tmp_path / "upload"
    upload_dir.mkdir()
    upload = upload_dir / "dref.mov"
    upload.write_bytes(clip("mov_dref").read_bytes())
    target = _FifoWatch(upload_dir / DREF_TARGET)
    try:
        # control: with drefs enabled ffmpeg opens the referenced file
        subprocess.run(["ffprobe", "-v", "quiet", "-enable_drefs", "1", str(upload)], timeout=60)
        assert target.opened.wait(5)
    finally:
        target.release()
    (upload_dir / DREF_TARGET).unlink()
    target = _FifoWatch(upload_dir / DREF_TARGET)
    try:
        result = _prepare_hostile(upload, tools)
        assert not target.opened.wait(0.5)
        assert isinstance(result, (VideoRejected, video.PreparedVideo))
    finally:
        target.release()


def test_an_mp4_nested_thousands_deep_is_refused_not_a_crash(tools, tmp_path):
    """A 24 KB upload whose track nests 3000 containers once raised RecursionError out of
    prepare (the header reader walked it recursively); now it is one more broken file."""
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    inner = box(b"hdlr", bytes(8) + b"vide" + bytes(12))
    for _ in range(3000):
        inner = box(b"stbl", inner)
    path = tmp_path / "deep.mp4"
    path.write_bytes(box(b"ftyp", b"isom" + bytes(4) + b"isomavc1") + box(b"moov", box(b"trak", inner))
                     + box(b"mdat", bytes(64)))
    with pytest.raises(VideoRejected) as refused:
        video.prepare(path, keep_audio=False, require_audio=False, tools=tools)
    assert refused.value.code == video.BAD_FORMAT


@pytest.mark.parametrize("kind", ["safari_fmp4", "chrome_h264_mp4", "chrome_h264_webm", "chrome_h264_mkv"])
@pytest.mark.parametrize("number", [True, False], ids=["number", "silent"])
def test_compliant_h264_is_copied_by_one_ffmpeg_with_no_ffprobe(clip, tools, kind, number):
    """The fast path for every browser's H.264, with the sound kept (Opus made AAC) or not:
    the shipped ffmpeg describes its input itself (ffmpeg 7 prints the stream mapping before the
    outputs; that once made every upload whose sound is re-encoded take ffprobe's path too)."""
    assert "imageio_ffmpeg" in tools.ffmpeg   # the static build the service runs by default
    prepared = video.prepare(clip(kind), keep_audio=number, require_audio=number, tools=tools)
    assert prepared.remuxed and prepared.timings["probe"] == 0
    assert prepared.output.audio_codec == ("aac" if number else None)
