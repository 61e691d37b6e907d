"""Realistic upload fixtures, generated with the real ffmpeg (no pytest needed).

``make_fixture(kind, directory)`` writes one file for ``kind`` into ``directory``
and returns its path; ``KINDS`` lists every kind.  A file that already exists is
reused, so a caller can cache a whole session's fixtures in one directory.

The picture is a real face, ``skimage.data.astronaut()``, pasted on a sharp
texture background (skimage's brick/gravel/grass) so that encoders and scalers
have real detail to lose.  A "camera" window pans slowly over that scene, so
every frame differs.  The sound is a speech-like voiced tone (a 140 Hz
fundamental with harmonics, switched on and off like syllables); nothing
depends on espeak-ng.

Upload kinds (what browsers and phones send):

=====================  ======================================================
``chrome_webm``         WebM VP8/Opus 640x480, muxed to a pipe like Chrome's
                        MediaRecorder: no duration in the header, no cues,
                        jittery (VFR) 1 ms timestamps
``chromium_mp4_vp9``    fragmented MP4 VP9/Opus 640x480 (Chromium "video/mp4")
``safari_fmp4``         fragmented MP4 H.264 yuv420p/AAC 640x480 (Safari)
``iphone_hevc_mov``     MOV HEVC Main 10 (yuv420p10le, tag hvc1) coded 1920x1080
                        with a 90 degree display matrix (portrait), AAC, and
                        location/make/model metadata
``android_1080p_mp4``   MP4 H.264 coded 1920x1080, 30 fps, ~12 Mbit/s, rotation
                        90 (portrait), AAC, location metadata
=====================  ======================================================

Edge cases: ``small_360p`` (480x360, must not be upscaled), ``too_short`` (1 s),
``silent`` (no audio track), ``mute_audio`` (audio track of digital silence),
``broken`` (MP4 truncated mid-file: no moov), ``empty`` (0 bytes),
``not_video`` (a PNG), ``text_file``, ``audio_only`` (M4A), ``tiny`` (160x120),
``long`` (15 s), ``uhd_4k_mp4`` (H.264 3840x2160, 3 s: a phone camera's 4K, still accepted),
``anamorphic_mp4`` (H.264 coded 2000x1200 with 1:2 pixels: displayed 1000x1200,
but remuxing it would send 1200p).

Hostile files (``HOSTILE_KINDS``; they name ``http://127.0.0.1:<port>``, pass
``port=`` the port of a loopback server that records requests):
``hls_m3u8`` / ``hls_as_mp4`` (an HLS playlist, the latter renamed .mp4) whose
segments are ``http://127.0.0.1:<port>/...`` and ``file:///etc/passwd``;
``ffconcat`` (an ffconcat list naming /etc/passwd and the loopback server,
named .mp4); ``avi_gab2_hls`` (a hand-built AVI whose GAB2 subtitle chunk
carries such an HLS playlist, the classic ffmpeg SSRF/file-read trick);
``avi_gab2_srt`` (the same AVI carrying an SRT instead: a control proving the
GAB2 chunk is well-formed, since ffmpeg then exposes a subrip stream);
``mov_dref`` (a MOV whose video track's data reference is a Macintosh alias to
``DREF_TARGET`` in the same directory: what ``-enable_drefs`` guards).

Media bombs (``BOMB_KINDS``; small files that are expensive to decode or probe):
``bomb_16k_mov`` (~4 MB QuickTime, 10 frames of 16000x16000 baseline JPEG at
1 fps, all ten samples pointing at one hand-written flat JPEG); ``bomb_wide_mp4``
(H.264 8000x1000, 3 s: 8 Mpx, but a long side no camera has);
``bomb_hour_mp4`` (~2 MB MP4, an hour of black 640x480 H.264 and AAC digital
silence: a 10 s clip looped with ``-c copy``); ``bomb_packets_mkv`` (~30 MB
Matroska without a duration, like a MediaRecorder stream: 6 s of VP8 640x480
and 4.3 million one-byte PCM audio packets, 500 a second, so for 2.4 hours);
``bomb_dense_mkv`` (the same with 400,000 packets, 8,000 a second).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

UPLOAD_KINDS = (
    "chrome_webm",
    "chromium_mp4_vp9",
    "safari_fmp4",
    "iphone_hevc_mov",
    "android_1080p_mp4",
)
EDGE_KINDS = (
    "small_360p",
    "too_short",
    "silent",
    "mute_audio",
    "broken",
    "empty",
    "not_video",
    "text_file",
    "audio_only",
    "tiny",
    "long",
    "uhd_4k_mp4",
    "anamorphic_mp4",
)
HOSTILE_KINDS = ("hls_m3u8", "hls_as_mp4", "ffconcat", "avi_gab2_hls", "avi_gab2_srt", "mov_dref")
BOMB_KINDS = ("bomb_16k_mov", "bomb_wide_mp4", "bomb_hour_mp4", "bomb_packets_mkv", "bomb_dense_mkv")

#: The file name a ``mov_dref`` fixture's external data reference points at,
#: resolved in the fixture's own directory (ffmpeg only follows relative aliases).
DREF_TARGET = "dref-target.dat"
#: Chromium's H.264 recordings (MediaRecorder asked for avc1/h264 first): the copy path.
H264_KINDS = ("chrome_h264_webm", "chrome_h264_mp4", "chrome_h264_mkv")
KINDS = UPLOAD_KINDS + EDGE_KINDS + HOSTILE_KINDS + BOMB_KINDS + H264_KINDS

#: The four kinds the benchmark times.
BENCH_KINDS = ("chrome_webm", "safari_fmp4", "iphone_hevc_mov", "android_1080p_mp4")

#: Metadata the iPhone/Android fixtures carry and the output must not.
PRIVATE_METADATA = {
    "location": "+39.9042+116.4074/",
    "make": "Apple",
    "model": "iPhone 15 Pro",
}

FFMPEG = os.environ.get("FFMPEG", "ffmpeg")
_DEFAULT_PORT = 9  # "discard": nothing listens there

_EXT = {
    "chrome_webm": ".webm",
    "chromium_mp4_vp9": ".mp4",
    "safari_fmp4": ".mp4",
    "iphone_hevc_mov": ".mov",
    "android_1080p_mp4": ".mp4",
    "small_360p": ".webm",
    "too_short": ".mp4",
    "silent": ".mp4",
    "mute_audio": ".mp4",
    "broken": ".mp4",
    "empty": ".mp4",
    "not_video": ".png",
    "text_file": ".mp4",
    "audio_only": ".m4a",
    "tiny": ".mp4",
    "long": ".mp4",
    "uhd_4k_mp4": ".mp4",
    "anamorphic_mp4": ".mp4",
    "hls_m3u8": ".m3u8",
    "hls_as_mp4": ".mp4",
    "ffconcat": ".mp4",
    "avi_gab2_hls": ".avi",
    "avi_gab2_srt": ".avi",
    "mov_dref": ".mov",
    "bomb_16k_mov": ".mov",
    "bomb_wide_mp4": ".mp4",
    "bomb_hour_mp4": ".mp4",
    "bomb_packets_mkv": ".mkv",
    "bomb_dense_mkv": ".mkv",
    "chrome_h264_webm": ".webm",
    "chrome_h264_mp4": ".mp4",
    "chrome_h264_mkv": ".mkv",
}

# A voiced, speech-like tone: 140 Hz fundamental (slightly wobbling) with
# harmonics and a formant-ish partial, gated into ~2.2 "syllables" a second.
_VOICE = (
    "0.5*(sin(2*PI*140*t+3*sin(2*PI*0.7*t))+0.6*sin(2*PI*280*t)+0.35*sin(2*PI*420*t)"
    "+0.2*sin(2*PI*1100*t))/2.15*pow(max(0\\,sin(2*PI*2.2*t))\\,2)"
)


def make_fixture(kind: str, directory: Path, *, port: int | None = None) -> Path:
    """Create (or reuse) the fixture ``kind`` in ``directory`` and return its path.

    ``port`` only matters for the hostile kinds (the loopback server they point
    at); their file name then carries the port so different ports never clash.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown fixture kind {kind!r}; known: {', '.join(KINDS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if kind in HOSTILE_KINDS:
        port = _DEFAULT_PORT if port is None else int(port)
        path = directory / f"{kind}-{port}{_EXT[kind]}"
    else:
        path = directory / f"{kind}{_EXT[kind]}"
    if path.exists():
        return path
    # Build under a temporary name, then rename: a half-written file from an
    # interrupted run is never mistaken for a finished fixture.
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        builder = globals()[f"_make_{kind}"]
        if kind in HOSTILE_KINDS:
            builder(partial, directory, port)
        else:
            builder(partial, directory)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- helpers


def _ffmpeg(*args: str, stdout=None) -> subprocess.CompletedProcess:
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    proc = subprocess.run(cmd, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"fixture generation failed: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")
    return proc


def _scene(directory: Path, orientation: str) -> Path:
    """A still scene PNG: the astronaut's face on sharp textures (cached)."""
    path = directory / f"_scene_{orientation}.png"
    if path.exists():
        return path
    from skimage import data, io, transform

    if orientation == "portrait":
        height, width, face = 2160, 1216, 1040
    else:
        height, width, face = 1080, 1440, 860
    tiles = [data.brick(), data.gravel(), data.grass()]
    tint = np.array([[1.0, 0.93, 0.85], [0.9, 0.95, 1.0], [0.8, 1.0, 0.8]])
    rows = []
    for r in range(-(-height // 512)):
        row = []
        for c in range(-(-width // 512)):
            i = (r + c) % 3
            row.append(np.clip(tiles[i][..., None] * tint[i], 0, 255))
        rows.append(np.concatenate(row, axis=1))
    canvas = np.concatenate(rows, axis=0)[:height, :width].astype(np.uint8)
    astronaut = transform.resize(data.astronaut(), (face, face), order=3, anti_aliasing=True)
    astronaut = (astronaut * 255).round().astype(np.uint8)
    top = (height - face) // 2 - height // 12
    left = (width - face) // 2
    canvas[top : top + face, left : left + face] = astronaut
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    io.imsave(partial, canvas, check_contrast=False)
    os.replace(partial, path)
    return path


def _camera(directory: Path, width: int, height: int, fps: float, *, jitter: bool = False) -> tuple[list[str], str]:
    """Input arguments and filter for a slowly panning camera over the scene.

    Returns ``(input_args, filter)`` where the filter takes ``[0:v]`` and ends
    in a ``width``x``height`` picture, frames at ``fps`` (VFR with
    millisecond jitter when ``jitter``).
    """
    orientation = "portrait" if height > width else "landscape"
    scene = _scene(directory, orientation)
    # the scene is 1.125 times the frame, so the window can move around
    sw, sh = (round(width * 1.125 / 2) * 2, round(height * 1.125 / 2) * 2)
    pts = f"N/({fps}*TB)" if not jitter else f"(N/{fps}+0.004*sin(N*1.7))/TB"
    vf = (
        f"[0:v]scale={sw}:{sh}:flags=bicubic,loop=loop=-1:size=1,setpts={pts},"
        f"crop={width}:{height}:x='(iw-ow)*(0.5+0.45*sin(2*PI*t/4))':y='(ih-oh)*(0.5+0.45*sin(2*PI*t/5))'"
    )
    return ["-framerate", str(fps), "-i", str(scene)], vf


def _voice(duration: float, rate: int = 48000, channels: int = 1) -> list[str]:
    layout = "mono" if channels == 1 else "stereo"
    expr = _VOICE if channels == 1 else f"{_VOICE}|{_VOICE}"
    return ["-f", "lavfi", "-i", f"aevalsrc=exprs='{expr}':s={rate}:c={layout}:d={duration}"]


def _silence(duration: float, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"anullsrc=r={rate}:cl=mono:d={duration}"]


def _h264_mp4(path: Path, directory: Path, width: int, height: int, duration: float, *, audio: str | None = "voice",
              faststart: bool = True, extra: list[str] = ()) -> None:
    """A plain H.264 yuv420p MP4 (the shape many phones upload)."""
    inputs, vf = _camera(directory, width, height, 30)
    if audio == "voice":
        inputs += _voice(duration)
    elif audio == "silence":
        inputs += _silence(duration)
    args = [*inputs, "-filter_complex", vf + ",format=yuv420p[v]", "-map", "[v]"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "96k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-t", str(duration)]
    if faststart:
        args += ["-movflags", "+faststart"]
    _ffmpeg(*args, *extra, "-f", "mp4", str(path))


# --------------------------------------------------------------------------- upload kinds


def _make_chrome_webm(path: Path, directory: Path, *, width: int = 640, height: int = 480, duration: float = 6) -> None:
    # Chrome's MediaRecorder streams WebM: the muxer cannot seek back, so the
    # header has no duration and there are no cues.  Muxing to a pipe does the same.
    # No -t: ffmpeg would pass it to the muxer as a duration hint and the header
    # would get a Duration after all.  The streams end by themselves instead.
    inputs, vf = _camera(directory, width, height, 30, jitter=True)
    proc = _ffmpeg(
        *inputs, *_voice(duration),
        "-filter_complex", vf + f",trim=duration={duration},format=yuv420p[v]", "-map", "[v]", "-map", "1:a",
        "-fps_mode", "passthrough",
        "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1500k",
        "-c:a", "libopus", "-b:a", "64k",
        "-f", "webm", "pipe:1",
        stdout=subprocess.PIPE,
    )
    path.write_bytes(proc.stdout)


def _make_small_360p(path: Path, directory: Path) -> None:
    _make_chrome_webm(path, directory, width=480, height=360, duration=4)


def _make_chromium_mp4_vp9(path: Path, directory: Path) -> None:
    inputs, vf = _camera(directory, 640, 480, 30)
    _ffmpeg(
        *inputs, *_voice(6),
        "-filter_complex", vf + ",format=yuv420p[v]", "-map", "[v]", "-map", "1:a", "-t", "6",
        "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "1500k",
        "-c:a", "libopus", "-b:a", "64k",
        "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", str(path),
    )


def _make_safari_fmp4(path: Path, directory: Path) -> None:
    inputs, vf = _camera(directory, 640, 480, 30)
    _ffmpeg(
        *inputs, *_voice(6),
        "-filter_complex", vf + ",format=yuv420p[v]", "-map", "[v]", "-map", "1:a", "-t", "6",
        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "2000k", "-g", "30",
        "-c:a", "aac", "-b:a", "96k",
        "-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", str(path),
    )


def _rotate_and_tag(src: Path, path: Path, fmt: str, metadata: dict[str, str], *, mdta: bool) -> None:
    """Remux ``src`` to ``path`` with a portrait display matrix and private metadata.

    ``rotate=-90`` gives the matrix phones write for portrait video
    (``0 65536 / -65536 0``; ffprobe: rotation -90, display rotated 90 deg clockwise).
    """
    args = ["-i", str(src), "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=-90",
            "-metadata:s:v:0", "handler_name=Core Media Video",
            "-metadata:s:a:0", "handler_name=Core Media Audio",
            "-metadata", "creation_time=2024-05-01T08:30:00.000000Z"]
    for key, value in metadata.items():
        args += ["-metadata", f"{key}={value}"]
    if mdta:
        args += ["-movflags", "use_metadata_tags"]
    _ffmpeg(*args, "-f", fmt, str(path))


def _portrait_coded(directory: Path, duration: float) -> tuple[list[str], str]:
    """Camera for a portrait phone video: upright 1080x1920, coded sideways 1920x1080."""
    inputs, vf = _camera(directory, 1080, 1920, 30)
    return inputs, vf + ",transpose=cclock"


def _make_iphone_hevc_mov(path: Path, directory: Path) -> None:
    inputs, vf = _portrait_coded(directory, 6)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        coded = Path(tmp) / "coded.mov"
        _ffmpeg(
            *inputs, *_voice(6, rate=44100, channels=2),
            "-filter_complex", vf + ",format=yuv420p10le[v]", "-map", "[v]", "-map", "1:a", "-t", "6",
            "-c:v", "libx265", "-preset", "ultrafast", "-crf", "22", "-tag:v", "hvc1",
            "-x265-params", "log-level=error",
            "-c:a", "aac", "-b:a", "128k", "-f", "mov", str(coded),
        )
        apple = {
            "com.apple.quicktime.location.ISO6709": PRIVATE_METADATA["location"],
            "com.apple.quicktime.make": PRIVATE_METADATA["make"],
            "com.apple.quicktime.model": PRIVATE_METADATA["model"],
            "com.apple.quicktime.software": "17.4.1",
            **PRIVATE_METADATA,
        }
        _rotate_and_tag(coded, path, "mov", apple, mdta=True)


def _make_android_1080p_mp4(path: Path, directory: Path) -> None:
    inputs, vf = _portrait_coded(directory, 6)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        coded = Path(tmp) / "coded.mp4"
        _ffmpeg(
            *inputs, *_voice(6, channels=2),
            "-filter_complex", vf + ",format=yuv420p[v]", "-map", "[v]", "-map", "1:a", "-t", "6",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "12M", "-maxrate", "14M", "-bufsize", "12M",
            "-g", "30", "-c:a", "aac", "-b:a", "128k", "-f", "mp4", str(coded),
        )
        _rotate_and_tag(coded, path, "mp4", {"location": PRIVATE_METADATA["location"]}, mdta=False)


def _chrome_h264(path: Path, directory: Path, fmt: str, muxer: list[str]) -> None:
    """What Chromium's MediaRecorder makes when asked for H.264 first: constrained-baseline
    H.264 yuv420p 640x480 with Opus, streamed (no duration in a WebM/Matroska header, a
    fragmented MP4), VFR with jittery millisecond timestamps."""
    inputs, vf = _camera(directory, 640, 480, 30, jitter=True)
    proc = _ffmpeg(
        *inputs, *_voice(6),
        "-filter_complex", vf + ",trim=duration=6,format=yuv420p[v]", "-map", "[v]", "-map", "1:a",
        "-fps_mode", "passthrough",
        # CRF under a VBV cap, not an average bitrate: x264 would share that out over the
        # 1 ms time base as if 1000 frames came a second (and skip almost every macroblock).
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-crf", "23",
        "-maxrate", "1500k", "-bufsize", "3000k", "-g", "100",
        "-c:a", "libopus", "-b:a", "64k", *muxer, "-f", fmt, "pipe:1",
        stdout=subprocess.PIPE,
    )
    path.write_bytes(proc.stdout)


def _make_chrome_h264_webm(path: Path, directory: Path) -> None:  # video/webm;codecs=h264,opus
    # ffmpeg's webm muxer refuses H.264 (Chromium's does not): write Matroska, then give its
    # EBML header the DocType "webm" as Chromium does (an EBML Void keeps the header's size).
    _chrome_h264(path, directory, "matroska", [])
    data = path.read_bytes()
    doctype = b"\x42\x82\x88matroska"
    at = data.index(doctype, 0, 64)
    path.write_bytes(data[:at] + b"\x42\x82\x84webm" + b"\xec\x82\x00\x00" + data[at + len(doctype):])


def _make_chrome_h264_mkv(path: Path, directory: Path) -> None:  # video/x-matroska;codecs=avc1,opus
    _chrome_h264(path, directory, "matroska", [])


def _make_chrome_h264_mp4(path: Path, directory: Path) -> None:  # video/mp4;codecs=avc1,opus
    _chrome_h264(path, directory, "mp4", ["-movflags", "frag_keyframe+empty_moov+default_base_moof"])


# --------------------------------------------------------------------------- edge cases


def _make_too_short(path: Path, directory: Path) -> None:
    _h264_mp4(path, directory, 640, 480, 1)


def _make_silent(path: Path, directory: Path) -> None:
    _h264_mp4(path, directory, 640, 480, 3, audio=None)


def _make_mute_audio(path: Path, directory: Path) -> None:
    _h264_mp4(path, directory, 640, 480, 3, audio="silence")


def _make_tiny(path: Path, directory: Path) -> None:
    _h264_mp4(path, directory, 160, 120, 3)


def _make_long(path: Path, directory: Path) -> None:
    _h264_mp4(path, directory, 640, 480, 15)


def _make_uhd_4k_mp4(path: Path, directory: Path) -> None:
    _h264_mp4(path, directory, 3840, 2160, 3)


def _make_anamorphic_mp4(path: Path, directory: Path) -> None:
    inputs, vf = _camera(directory, 2000, 1200, 30)
    _ffmpeg(*inputs, *_voice(3), "-filter_complex", vf + ",setsar=1/2,format=yuv420p[v]", "-map", "[v]", "-map", "1:a",
            "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-c:a", "aac", "-b:a", "96k",
            "-movflags", "+faststart", "-f", "mp4", str(path))


def _make_broken(path: Path, directory: Path) -> None:
    # An upload cut off mid-transfer: moov comes last, so it is missing.
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        whole = Path(tmp) / "whole.mp4"
        _h264_mp4(whole, directory, 640, 480, 3, faststart=False)
        data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _make_empty(path: Path, directory: Path) -> None:
    path.write_bytes(b"")


def _make_not_video(path: Path, directory: Path) -> None:
    shutil.copyfile(_scene(directory, "landscape"), path)


def _make_text_file(path: Path, directory: Path) -> None:
    path.write_text("This is not a video, whatever its name says.\n" * 20)


def _make_audio_only(path: Path, directory: Path) -> None:
    _ffmpeg(*_voice(3), "-c:a", "aac", "-b:a", "96k", "-f", "ipod", str(path))


# --------------------------------------------------------------------------- hostile files


def hls_playlist(port: int, *, with_passwd: bool = True) -> str:
    """An HLS playlist whose segments are the loopback server (and /etc/passwd).

    ``with_passwd=False`` leaves out the ``file:`` segment: some ffmpeg builds
    (Debian's 5.1.x backports ``allowed_segment_extensions``) refuse a whole
    playlist that names /etc/passwd, so only the http-only variant shows that a
    permissive ffmpeg really fetches from the loopback server (the control).
    """
    segments = [f"http://127.0.0.1:{port}/hls/segment0.ts"]
    if with_passwd:
        segments.append("file:///etc/passwd")
    segments.append(f"http://127.0.0.1:{port}/hls/segment1.ts")
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:3", "#EXT-X-MEDIA-SEQUENCE:0"]
    for url in segments:
        lines += ["#EXTINF:3.0,", url]
    return "\n".join(lines + ["#EXT-X-ENDLIST", ""])


def _make_hls_m3u8(path: Path, directory: Path, port: int) -> None:
    path.write_text(hls_playlist(port))


def _make_hls_as_mp4(path: Path, directory: Path, port: int) -> None:
    path.write_text(hls_playlist(port))


def _make_ffconcat(path: Path, directory: Path, port: int) -> None:
    path.write_text(
        "ffconcat version 1.0\n"
        f"file 'http://127.0.0.1:{port}/concat/part.mp4'\n"
        "file /etc/passwd\n"
        "file 'file:/etc/passwd'\n"
    )


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    body = kind + b"".join(chunks)
    return b"LIST" + struct.pack("<I", len(body)) + body


def _gab2(text: str, title: str = "English") -> bytes:
    """A GAB2 subtitle chunk payload as ffmpeg's avidec ``read_gab2_sub`` parses it.

    ``"GAB2\\0"``, u16 2, u32 title length, UTF-16LE title, u16 flags,
    u32 data size, then the embedded subtitle *file* (probed by ffmpeg).
    """
    name = title.encode("utf-16-le") + b"\0\0"
    data = text.encode()
    return (b"GAB2\0" + struct.pack("<H", 2) + struct.pack("<I", len(name)) + name
            + struct.pack("<H", 4) + struct.pack("<I", len(data)) + data)


def _jpeg_frames(directory: Path, count: int, width: int, height: int) -> list[bytes]:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        inputs, vf = _camera(directory, width, height, 10)
        _ffmpeg(*inputs, "-filter_complex", vf + ",format=yuvj420p[v]", "-map", "[v]", "-frames:v", str(count),
                "-c:v", "mjpeg", "-q:v", "5", str(Path(tmp) / "f%03d.jpg"))
        return [(Path(tmp) / f"f{i:03d}.jpg").read_bytes() for i in range(1, count + 1)]


def _gab2_avi(path: Path, directory: Path, subtitle_file: str) -> None:
    """A hand-built AVI: MJPEG video (10 fps, 3 s) plus a 'txts' stream whose
    first chunk is a GAB2 subtitle carrying ``subtitle_file``."""
    width, height, count, fps = 640, 480, 30, 10
    frames = _jpeg_frames(directory, count, width, height)
    biggest = max(len(f) for f in frames)
    avih = struct.pack("<10I4I", 1_000_000 // fps, biggest * fps, 0, 0x10, count, 0, 2, biggest, width, height,
                       0, 0, 0, 0)
    strh_v = b"vids" + b"MJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, fps, 0, count, biggest, 10000, 0,
                                             0, 0, width, height)
    strf_v = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, int.from_bytes(b"MJPG", "little"),
                         width * height * 3, 0, 0, 0, 0)
    sub = _gab2(subtitle_file)
    strh_s = b"txts" + b"\0\0\0\0" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, fps, 0, 1, len(sub), 0, 0,
                                                  0, 0, 0, 0)
    hdrl = _list(
        b"hdrl",
        _chunk(b"avih", avih),
        _list(b"strl", _chunk(b"strh", strh_v), _chunk(b"strf", strf_v)),
        _list(b"strl", _chunk(b"strh", strh_s), _chunk(b"strf", b"")),
    )
    payloads = [(b"01tx", sub)] + [(b"00dc", f) for f in frames]
    movi = _list(b"movi", *(_chunk(tag, data) for tag, data in payloads))
    # idx1 offsets are relative to the 'movi' fourcc
    index, offset = [], 4
    for tag, data in payloads:
        index.append(struct.pack("<4sIII", tag, 0x10, offset, len(data)))
        offset += 8 + len(data) + len(data) % 2
    idx1 = _chunk(b"idx1", b"".join(index))
    body = b"AVI " + hdrl + movi + idx1
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def _make_avi_gab2_hls(path: Path, directory: Path, port: int) -> None:
    _gab2_avi(path, directory, hls_playlist(port))


def _make_avi_gab2_srt(path: Path, directory: Path, port: int) -> None:
    _gab2_avi(path, directory, "1\n00:00:00,000 --> 00:00:02,000\nGAB2 control subtitle\n\n")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _rebuild(data: bytes, path: tuple[bytes, ...], replace) -> bytes:
    """``data`` (a run of boxes) with the first box at ``path`` replaced by ``replace(box_bytes)``;
    every enclosing box's size is fixed up.  For the video track, ``trak`` must hold 'vide'."""
    out, offset, done = b"", 0, False
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        box = data[offset : offset + size]
        if not done and kind == path[0] and (kind != b"trak" or b"vide" in box):
            if len(path) == 1:
                box = replace(box)
            else:
                box = _box(kind, _rebuild(box[8:], path[1:], replace))
            done = True
        out += box
        offset += size
    return out + data[offset:]


def _alias_dref(target: str) -> bytes:
    """A 'dref' with one Macintosh alias record naming ``target`` one level down
    from the movie's own directory (the layout ffmpeg's ``mov_read_dref`` parses)."""
    name = target.encode()
    record = (
        b"\0" * 10  # user type, record size, version, kind
        + bytes([0]) + b"\0" * 27  # volume name (empty)
        + b"\0" * 12  # volume date, fs type, disk type, parent dir id
        + bytes([len(name)]) + name.ljust(63, b"\0")  # file name
        + b"\0" * 16  # file number, date, type, creator
        + struct.pack(">HH", 1, 1)  # nlvl_from, nlvl_to: same directory
        + b"\0" * 16
    )
    absolute = b"/somewhere/" + name
    record += struct.pack(">HH", 2, len(absolute)) + absolute + (b"\0" if len(absolute) % 2 else b"")
    record += struct.pack(">hH", -1, 0)
    entry = struct.pack(">I", 12 + len(record)) + b"alis" + struct.pack(">I", 0) + record
    return _box(b"dref", struct.pack(">II", 0, 1) + entry)


def _make_mov_dref(path: Path, directory: Path, port: int) -> None:
    """A MOV whose video track says its samples live in another file,
    ``DREF_TARGET`` next to it (ffmpeg opens it only with ``-enable_drefs 1``)."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        plain = Path(tmp) / "plain.mov"
        # moov at the end: growing it cannot move the sample offsets
        inputs, vf = _camera(directory, 640, 480, 30)
        _ffmpeg(*inputs, "-filter_complex", vf + ",format=yuv420p[v]", "-map", "[v]", "-t", "3",
                "-c:v", "libx264", "-preset", "ultrafast", "-f", "mov", str(plain))
        data = plain.read_bytes()
    dref = _alias_dref(DREF_TARGET)
    path.write_bytes(_rebuild(data, (b"moov", b"trak", b"mdia", b"minf", b"dinf", b"dref"), lambda _old: dref))


# --------------------------------------------------------------------------- media bombs


def _flat_jpeg(width: int, height: int) -> bytes:
    """A baseline 4:2:0 JPEG of one flat grey, written by hand (nothing decodes it here).

    No DHT: MJPEG decoders use the standard Huffman tables (T.81 Annex K).
    Every block is "DC difference 0, end of block": Y ``00`` + ``1010``, Cb
    and Cr ``00`` + ``00``, so one 16x16 MCU is exactly 32 bits.
    """
    assert width % 16 == 0 and height % 16 == 0
    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", marker, len(payload) + 2) + payload
    dqt = segment(0xFFDB, b"\0" + b"\1" * 64)
    sof = segment(0xFFC0, struct.pack(">BHHB", 8, height, width, 3) + bytes([1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0]))
    sos = segment(0xFFDA, bytes([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]))
    scan = b"\x28\xa2\x8a\x00" * (width // 16 * height // 16)
    return b"\xff\xd8" + dqt + sof + sos + scan + b"\xff\xd9"


def _full_box(kind: bytes, version_flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version_flags) + payload)


def _make_bomb_16k_mov(path: Path, directory: Path, *, side: int = 16000, frames: int = 10) -> None:
    """A QuickTime file of ``frames`` ``side``x``side`` JPEG frames at 1 fps, sharing one sample."""
    jpeg = _flat_jpeg(side, side)
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    scale, duration = 1000, 1000 * frames
    entry = (b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 16 + struct.pack(">HHIIIH", side, side, 0x480000, 0x480000, 0, 1)
             + bytes([10]) + b"Photo JPEG".ljust(31, b"\0") + struct.pack(">hh", 24, -1))

    def moov(offset: int) -> bytes:
        stbl = _box(b"stbl", b"".join([
            _full_box(b"stsd", 0, struct.pack(">I", 1) + _box(b"jpeg", entry)),
            _full_box(b"stts", 0, struct.pack(">III", 1, frames, scale)),
            _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, 1, 1)),
            _full_box(b"stsz", 0, struct.pack(">II", len(jpeg), frames)),
            _full_box(b"stco", 0, struct.pack(f">I{frames}I", frames, *[offset] * frames)),
        ]))
        dinf = _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1) + _full_box(b"url ", 1, b"")))
        minf = _box(b"minf", _full_box(b"vmhd", 1, b"\0" * 8) + dinf + stbl)
        hdlr = _full_box(b"hdlr", 0, b"mhlrvideappl" + b"\0" * 8 + b"\0")
        mdia = _box(b"mdia", _full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, scale, duration, 0, 0)) + hdlr + minf)
        tkhd = _full_box(b"tkhd", 3, struct.pack(">IIIII8xHHHH", 0, 0, 1, 0, duration, 0, 0, 0, 0)
                         + matrix + struct.pack(">II", side << 16, side << 16))
        mvhd = _full_box(b"mvhd", 0, struct.pack(">IIIIIH10x", 0, 0, scale, duration, 0x10000, 0x100)
                         + matrix + b"\0" * 24 + struct.pack(">I", 2))
        return _box(b"moov", mvhd + _box(b"trak", tkhd + mdia))

    ftyp = _box(b"ftyp", b"qt  " + struct.pack(">I", 0x200) + b"qt  ")
    offset = len(ftyp) + len(moov(0)) + 8
    path.write_bytes(ftyp + moov(offset) + _box(b"mdat", jpeg))


def _make_bomb_wide_mp4(path: Path, directory: Path) -> None:
    _ffmpeg("-f", "lavfi", "-i", "color=gray:s=8000x1000:r=10", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast",
            "-f", "mp4", str(path))


def _make_bomb_hour_mp4(path: Path, directory: Path) -> None:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        ten = Path(tmp) / "ten.mp4"
        _ffmpeg("-f", "lavfi", "-i", "color=black:s=640x480:r=10", *_silence(10, rate=16000), "-t", "10",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "100", "-c:a", "aac", "-b:a", "16k",
                "-f", "mp4", str(ten))
        _ffmpeg("-stream_loop", "359", "-i", str(ten), "-c", "copy", "-f", "mp4", str(path))


def _ebml(element_id: int, payload: bytes | int | str) -> bytes:
    """One EBML element (unsigned integers in 8 bytes, strings as ASCII)."""
    if isinstance(payload, int):
        payload = struct.pack(">Q", payload)
    elif isinstance(payload, str):
        payload = payload.encode()
    head = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return head + (len(payload) | 1 << 56).to_bytes(8, "big") + payload


def _vp8_ivf(directory: Path) -> bytes:
    """6 s of VP8 640x480 30 fps in IVF (cached)."""
    ivf = directory / "_bomb_vp8.ivf"
    if not ivf.exists():
        partial = ivf.with_name(f".partial-{os.getpid()}-{ivf.name}")
        inputs, vf = _camera(directory, 640, 480, 30)
        _ffmpeg(*inputs, "-filter_complex", vf + ",format=yuv420p[v]", "-map", "[v]", "-t", "6", "-c:v", "libvpx",
                "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1000k", "-f", "ivf", str(partial))
        os.replace(partial, ivf)
    return ivf.read_bytes()


def _make_bomb_packets_mkv(path: Path, directory: Path, *, audio_packets: int = 4_300_000,
                           per_second: int = 500) -> None:
    """Matroska, no duration, no cues: 6 s of VP8 and ``audio_packets`` one-byte
    pcm_u8 packets (8 kHz: each lasts 1/8 ms), ``per_second`` of them a second."""
    data = _vp8_ivf(directory)
    frames, offset = [], struct.unpack_from("<H", data, 6)[0]
    while offset + 12 <= len(data):
        size = struct.unpack_from("<I", data, offset)[0]
        frames.append(data[offset + 12 : offset + 12 + size])
        offset += 12 + size
    header = _ebml(0x1A45DFA3, _ebml(0x4286, 1) + _ebml(0x42F7, 1) + _ebml(0x42F2, 4) + _ebml(0x42F3, 8)
                   + _ebml(0x4282, "matroska") + _ebml(0x4287, 4) + _ebml(0x4285, 2))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, 1_000_000) + _ebml(0x4D80, "bomb") + _ebml(0x5741, "bomb"))
    tracks = _ebml(0x1654AE6B, _ebml(0xAE, _ebml(0xD7, 1) + _ebml(0x73C5, 1) + _ebml(0x83, 1) + _ebml(0x86, "V_VP8")
                                     + _ebml(0xE0, _ebml(0xB0, 640) + _ebml(0xBA, 480)))
                   + _ebml(0xAE, _ebml(0xD7, 2) + _ebml(0x73C5, 2) + _ebml(0x83, 2) + _ebml(0x86, "A_PCM/INT/LIT")
                           + _ebml(0xE1, _ebml(0xB5, struct.pack(">d", 8000.0)) + _ebml(0x9F, 1) + _ebml(0x6264, 8))))
    # One cluster per second: its video frames, then ``per_second`` audio blocks
    # (A3 size=6, track 2, int16 relative ms timestamp, keyframe flag, one sample).
    millis = (np.arange(per_second) * 1000 // per_second).astype(">i2")
    audio = np.zeros((per_second, 7), np.uint8)
    audio[:, 0], audio[:, 1], audio[:, 2] = 0xA3, 0x86, 0x82
    audio[:, 3:5] = millis.view(np.uint8).reshape(-1, 2)
    audio[:, 5], audio[:, 6] = 0x80, 0x80
    audio = audio.tobytes()
    with open(path, "wb") as out:
        out.write(header + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + info + tracks)
        for second in range(-(-audio_packets // per_second)):
            blocks = []
            for n, frame in enumerate(frames[second * 30 : second * 30 + 30]):
                key = 0x80 if frame[0] & 1 == 0 else 0
                blocks.append(_ebml(0xA3, b"\x81" + struct.pack(">hB", n * 1000 // 30, key) + frame))
            count = min(per_second, audio_packets - second * per_second)
            cluster = _ebml(0xE7, second * 1000) + b"".join(blocks) + audio[: count * 7]
            out.write(_ebml(0x1F43B675, cluster))


def _make_bomb_dense_mkv(path: Path, directory: Path) -> None:
    _make_bomb_packets_mkv(path, directory, audio_packets=400_000, per_second=8000)


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.media DIR [KIND...]
    import sys
    import time

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    for k in sys.argv[2:] or KINDS:
        t0 = time.perf_counter()
        p = make_fixture(k, out)
        print(f"{k:20s} {time.perf_counter() - t0:6.2f}s {p.stat().st_size:>10,d} {p}")
