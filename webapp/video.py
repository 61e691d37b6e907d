"""One uploaded video's path: sniff -> probe -> check -> remux or encode -> verify -> bytes for Juhe.

Juhe's antiFaceId API takes a base64 video of at most 8 MB (so at most 6,000,000
raw bytes), 270p to 1080p, and rejects on its side what we can see here already:
empty files (267536), anything it cannot read (267537), too few pixels (267538),
no sound (267539), too quiet (267540), shorter than 2 s (267549).  ``prepare``
checks all of that locally, then hands back a small, plain MP4:

* H.264 yuv420p, AAC only when the caller keeps the sound, ``+faststart``;
* rotation applied to the pixels (no display matrix, no ``rotate`` tag);
* never upscaled, short side at most 540 px (never above 1080p), at most 30 fps
  (a copy; 25 when we encode, the vendor's own rate, at most 1 Mbit/s), at most 10 s,
  under 6,000,000 bytes;
* none of the upload's metadata: no global or stream tags, no chapters, no data
  or subtitle streams, no display matrix (a phone's location, make and model
  never leave the server); only what the muxer itself writes (brands, handler
  "VideoHandler", encoder "Lavc libx264").

An upload that already complies (H.264 yuv420p, no rotation, <= 1080p, <= 30 fps,
<= 10 s, small enough; typically Safari's fragmented MP4, or Chromium's H.264 in MP4,
WebM or Matroska, its Opus made AAC) is remuxed with ``-c copy`` instead of
re-encoded, which is an order of magnitude faster.  When its header says so, that
copy runs first and alone, and the facts a probe would give are read from that
ffmpeg's own description of its input (``_try_copy``): one process instead of two,
each costing a few tenths of a second to start on a busy machine.  Otherwise the
probe runs, with the encode the header promises already started beside it.

Security.  ffmpeg can open far more than files: HLS playlists, ffconcat lists,
QuickTime external data references, subtitle files nested in AVI (GAB2) that are
themselves probed as playlists...  An upload is only a name we pass to ffmpeg,
so nothing here lets ffmpeg guess:

1. we sniff the container from its magic bytes and reject anything that is not
   MP4/MOV, Matroska/WebM, AVI or FLV (267537), whatever the file is called;
2. we force that demuxer (``-f``) and allow only it (``-format_whitelist``,
   which nested demuxers inherit, so a GAB2 subtitle can never become HLS);
3. MP4/MOV is read as ``file:<absolute path>`` with ``-protocol_whitelist file``
   and ``-enable_drefs 0`` (MOV needs seeking; it then has no way to name
   another file);  Matroska, AVI and FLV are fed on **stdin** (and, for the
   sound, a second descriptor of the same file) with ``-protocol_whitelist
   pipe``: the process is given open file descriptors and may not open any
   URL, file or network, at all.

Every ffmpeg/ffprobe call runs under ``subprocess`` with a timeout taken from one
deadline (``Tools.timeout`` is the budget of a whole ``probe``/``prepare`` call);
temporary files live in one private directory that is removed on every path,
after every child process has been killed and reaped.

Media bombs.  No upload may cost more than a few CPU-seconds or a few hundred MB:
coded pictures beyond 4K are refused from the probe (``-max_pixels`` keeps every
decoder from even allocating one); every decode reads at most ``MAX_SECONDS`` of
the input (input-side ``-t``); ffprobe lists at most ``PROBE_PACKETS`` packets;
every child runs under ``prlimit`` (address space, CPU seconds, no core) with
``CHILD_THREADS`` threads; at most ``MAX_CHILDREN`` children run at once in this
process (a burst queues, within its deadline).  A child stopped by a limit is a
rejection (267537), never a video sent to Juhe.

Command lines are built with ffmpeg-python (``import ffmpeg``), which only
compiles argument lists here; running them is ours.

Errors: ``VideoRejected`` (with the Juhe code Juhe would answer) for what is
wrong with the upload; ``VideoToolError`` for what is wrong with the server
(ffmpeg missing, a call timed out) -- do not blame the person for those.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import IO

import ffmpeg  # ffmpeg-python: command-line builder only

__all__ = [
    "PreparedVideo",
    "ProbeInfo",
    "Tools",
    "VideoRejected",
    "VideoToolError",
    "prepare",
    "probe",
    "sniff_container",
    "tools_problem",
]

# Juhe's codes for what it would reject.
EMPTY = 267536  # 视频为空，或大小不合适
BAD_FORMAT = 267537  # 视频格式有误
LOW_RESOLUTION = 267538  # 视频像素太低
NO_SOUND = 267539  # 未检测到声音
TOO_QUIET = 267540  # 视频声音太小
TOO_SHORT = 267549  # 视频录制时间过短，请录制2秒以上的视频

MAX_BYTES = 6_000_000  # 8 MB of base64
MIN_SECONDS = 2.0
MAX_SECONDS = 10.0
MIN_SHORT_SIDE = 270  # Juhe: 270p..1080p
MAX_SHORT_SIDE = 1080
MAX_LONG_SIDE = 1920
TARGET_SHORT_SIDE = 540  # what we send when we re-encode (480 lost 0.015 SSIM; see bench/benchmark.py)
MAX_FPS = 30
MAX_FPS_VFR = MAX_FPS * 1.02  # a 30 fps recorder's mean rate over jittery (VFR) timestamps
OUTPUT_FPS = 25  # what we encode at most: the vendor's own recommended rate (fewer frames to encode)
MAX_CODED_LONG_SIDE = 4096  # a phone camera's 4K (UHD 3840x2160, DCI 4096x2160) is the most we decode
MAX_CODED_PIXELS = 9_500_000
SILENCE_DB = -60.0  # volumedetect max_volume below this is digital silence

# x264 settings for re-encoding (tuned with bench/benchmark.py against the
# vendor's recommended command: same or better SSIM, a fraction of the time).
X264_PRESET = "superfast"
X264_CRF = 23
VIDEO_MAXRATE = 1_000_000  # bit/s cap, the seed's own rate: noisy phone video stays ~0.8 MB for 6 s, SSIM within 0.01 of the seed
AUDIO_BITRATE = 64_000  # AAC mono, speech

# Limits of every ffmpeg/ffprobe child.  Measured with 2 threads: a 1080p phone upload
# needs ~500 MiB of address space and ~2 CPU-s, 6 s of 4K HEVC 10-bit ~770 MiB and ~7 CPU-s.
PROBE_PACKETS = 4000  # packets ffprobe lists at most: ~40 s of a phone's video and audio
MAX_PACKET_RATE = 1000  # per second, all streams (240 fps slow motion and its sound: ~300)
CHILD_THREADS = 2
CHILD_MEMORY = 1 << 30  # RLIMIT_AS, bytes
CHILD_CPU_SECONDS = 30  # RLIMIT_CPU: ffmpeg stops at the soft limit, SIGKILL 2 s later
MAX_CHILDREN = 2  # children running at once in this process; more wait for a slot
_SLOTS = threading.BoundedSemaphore(MAX_CHILDREN)
_PRLIMIT = shutil.which("prlimit")  # util-linux; without it the children run unlimited

_DEMUXERS = {  # our container name -> (-f demuxer, -format_whitelist)
    "mov": ("mov", "mov,mp4,m4a,3gp,3g2,mj2"),
    "matroska": ("matroska", "matroska,webm"),
    "avi": ("avi", "avi"),
    "flv": ("flv", "flv"),
}
_PIPED = {"matroska", "avi", "flv"}  # read from stdin, no protocol but pipe
_SOUND_PIPE = "pipe:{sound}"  # _Job.start puts the number of a second descriptor of the upload here
_REMUXABLE_CONTAINERS = {"mov", "matroska", "flv"}  # AVI H.264 often lacks sane timestamps


# --------------------------------------------------------------------------- public types


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


@dataclass(frozen=True)
class Tools:
    """Where ffmpeg and ffprobe are, and how long one ``probe``/``prepare`` may take.

    ``timeout`` is the budget in seconds for a whole ``probe`` or ``prepare``
    call (each subprocess gets what is left of it).  ``tmpdir`` is the parent
    of the private temporary directory (``None``: the system default).
    """

    ffmpeg: str = "ffmpeg"
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


# --------------------------------------------------------------------------- the path of one video


def prepare(path, *, keep_audio: bool, require_audio: bool, tools: Tools) -> PreparedVideo:
    """Probe, check and normalise one upload; return the MP4 to send.

    ``keep_audio``: put the sound in the output (number mode: Juhe listens).
    ``require_audio``: reject a video without sound (267539) or with digital
    silence (267540), as Juhe would.

    Raises ``VideoRejected`` for what Juhe would reject anyway, and
    ``VideoToolError`` when ffmpeg is missing or runs out of time.
    Opens nothing but ``path``; leaves no temporary file behind.
    """
    started = time.perf_counter()
    deadline = _Deadline(tools.timeout)
    source_path = Path(path).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="video-", dir=tools.tmpdir))
    jobs: list[_Job] = []
    try:
        # 1. sniff: what container do the bytes say this is?
        container = _sniff_file(source_path)
        out = workdir / "out.mp4"

        # An upload whose header says H.264 (Safari's MP4, Chromium's H.264 WebM/MP4/Matroska)
        # is copied straight away, in one ffmpeg process that also describes its input: no
        # ffprobe (each process costs a third of a second of start-up on a busy machine).
        # Used only when what that process read shows the very upload the full path would
        # copy; anything else (rotated, too long, odd) takes the full path below.
        copy = _copy_plan(source_path, container, keep_audio, require_audio)
        if copy is not None:
            copied = _try_copy(copy, source_path, container, keep_audio, require_audio, tools, out, deadline, jobs)
            if copied is not None:
                finished = time.perf_counter()
                return replace(copied, timings={"probe": 0.0, "normalise": finished - started,
                                                "total": finished - started})

        # 2. probe; meanwhile (if a slot is free) the encode the header promises, used only
        #    if the plan made from the probe is the very same command line
        guess = _header_info(source_path, container)
        guess_command = None
        if guess is not None:
            guess_command = _command(_plan(guess, keep_audio, require_audio), source_path, container, tools, out)
        info = _probe(source_path, container, tools, deadline, jobs, guess_command)
        probed = time.perf_counter()

        # 3. check what Juhe would reject
        _check(info, require_audio)

        # 4. decide: remux or encode, and run it
        plan = _plan(info, keep_audio, require_audio)
        command = _command(plan, source_path, container, tools, out)
        stdin = source_path if container in _PIPED else None
        # (a job already waited for, such as a declined copy with the same command line, has
        # done its work on `out` already: only a running speculative encode is taken over)
        job = next((j for j in jobs if j.argv == command and not j.killed and j.result is None), None)
        for other in jobs:
            if other is not job:
                other.kill()
        if job is None:
            job = _Job.start(command, stdin, deadline, jobs)
        stderr = _finish_ffmpeg(job, "normalise")
        if plan.volumedetect:
            _check_loudness(stderr)

        # 5. verify the output (and squeeze it if it is too big, encode it if a
        #    remux kept a coded picture over 1080p: non-square pixels)
        data, output = _verify_output(out, plan, info)
        while len(data) > MAX_BYTES or _over_1080p(output.width, output.height):
            if not plan.remux and plan.crf is None and plan.maxrate <= 100_000:
                raise VideoRejected(EMPTY, "video cannot be made small enough")
            plan = plan.smaller(info, output.duration or info.duration or MAX_SECONDS)
            command = _command(plan, source_path, container, tools, out)
            _finish_ffmpeg(_Job.start(command, stdin, deadline, jobs), "re-encode")
            data, output = _verify_output(out, plan, info)

        finished = time.perf_counter()
        return PreparedVideo(
            data=data,
            source=info,
            output=output,
            remuxed=plan.remux,
            timings={"probe": probed - started, "normalise": finished - probed, "total": finished - started},
        )
    finally:
        for job in jobs:
            job.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def probe(path, *, tools: Tools) -> ProbeInfo:
    """Describe a video as displayed (rotation applied), with ffprobe.

    Raises ``VideoRejected(267536)`` for an empty file and ``VideoRejected(267537)``
    for anything that is not a readable video (wrong magic bytes, broken,
    truncated, no video stream).  ``VideoToolError`` on timeout / missing ffprobe.
    """
    source_path = Path(path).resolve()
    jobs: list[_Job] = []
    try:
        return _probe(source_path, _sniff_file(source_path), tools, _Deadline(tools.timeout), jobs)
    finally:
        for job in jobs:
            job.kill()


def tools_problem(tools: Tools) -> str | None:
    """``None`` when ffmpeg and ffprobe both run; otherwise a short reason (for /readyz)."""
    for name, binary in (("ffmpeg", tools.ffmpeg), ("ffprobe", tools.ffprobe)):
        try:
            proc = subprocess.run(
                [binary, "-hide_banner", "-version"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=min(5.0, max(tools.timeout, 0.001)),
            )
        except FileNotFoundError:
            return f"{name} not found ({binary})"
        except subprocess.TimeoutExpired:
            return f"{name} -version timed out"
        except OSError as exc:
            return f"{name} cannot run: {exc.strerror or exc}"
        if proc.returncode != 0 or not proc.stdout.startswith(f"{name} version".encode()):
            return f"{name} -version failed (exit {proc.returncode})"
    return None


# --------------------------------------------------------------------------- 1. sniff


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


def _sniff_file(path: Path) -> str:
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


def _input_stream(path: Path, container: str, *, autorotate: bool = True, seconds: float | None = None,
                  sound: bool = False):
    """The ffmpeg-python input for ``path``, locked to its sniffed demuxer.

    MOV: ``file:`` + ``-protocol_whitelist file`` + ``-enable_drefs 0``.
    Others: ``pipe:0`` (the caller feeds the file on stdin) + ``-protocol_whitelist pipe``.
    ``autorotate=False`` adds ``-noautorotate`` (we then turn the picture ourselves).
    Decoders get ``CHILD_THREADS`` threads and refuse pictures over ``MAX_CODED_PIXELS``;
    ``seconds`` (ffmpeg only) stops reading the input there.  ``sound``: the
    same file opened a second time for its sound alone (``-vn``; not on stdin
    but on ``_SOUND_PIPE``, a second descriptor ``_Job.start`` hands over).
    """
    demuxer, whitelist = _DEMUXERS[container]
    options = {"f": demuxer, "format_whitelist": whitelist, "threads": CHILD_THREADS, "max_pixels": MAX_CODED_PIXELS}
    if seconds is not None:
        options["t"] = f"{seconds:g}"
    if not autorotate:
        options["noautorotate"] = None  # ffmpeg-python: a bare flag
    if sound:
        options["vn"] = None
    if container in _PIPED:
        return ffmpeg.input(_SOUND_PIPE if sound else "pipe:0", protocol_whitelist="pipe", **options)
    return ffmpeg.input(f"file:{path}", protocol_whitelist="file", enable_drefs=0, **options)


# --------------------------------------------------------------------------- 2. probe

_STREAM_ENTRIES = (
    "index,codec_type,codec_name,pix_fmt,width,height,sample_aspect_ratio,"
    "avg_frame_rate,r_frame_rate,duration"
)
_PACKET_ENTRIES = "stream_index,pts_time,dts_time,duration_time"


def _probe_argv(path: Path, container: str, tools: Tools, *, packets: bool) -> list[str]:
    """ffprobe's argv: streams and format, and with ``packets`` the first ``PROBE_PACKETS`` packets."""
    entries = (
        f"format=duration:stream={_STREAM_ENTRIES}:stream_disposition=attached_pic"
        ":stream_side_data=rotation:stream_tags=rotate"
    )
    if packets:
        entries += f":packet={_PACKET_ENTRIES}"
    # ffprobe takes the same input options as ffmpeg: compile the locked-down
    # input with ffmpeg-python and keep its part of the command line.
    argv = ffmpeg.output(_input_stream(path, container), "-", f="null").compile(cmd=tools.ffprobe)
    inputs = argv[1 : argv.index("-i") + 2]  # the input options and "-i URL"
    options = ["-read_intervals", f"%+#{PROBE_PACKETS}"] if packets else []
    return [tools.ffprobe, "-hide_banner", "-v", "error", "-of", "json", "-show_entries", entries, *options, *inputs]


def _probe(path: Path, container: str, tools: Tools, deadline: _Deadline, jobs: list[_Job],
           guess: list[str] | None = None) -> ProbeInfo:
    """ffprobe the upload; ``guess`` (an ffmpeg argv) starts alongside it if a slot is free."""
    # Streamed WebM (Chrome's MediaRecorder) has no duration in its header and
    # a pipe cannot seek to the end: list the first packets in the same pass
    # (their timestamps, and how densely they come).
    argv = _probe_argv(path, container, tools, packets=True)
    doc = _run_probe(argv, path if container in _PIPED else None, deadline, jobs, guess)
    return _probe_info(doc, container, path.stat().st_size)


def _run_probe(argv: list[str], stdin_path: Path | None, deadline: _Deadline, jobs: list[_Job],
               guess: list[str] | None = None) -> dict:
    job = _Job.start(argv, stdin_path, deadline, jobs)
    if guess is not None:
        _Job.start(guess, stdin_path, deadline, jobs, speculative=True)
    returncode, stdout, stderr = job.wait("probe")
    if b"exceeds specified max pixel count" in stderr:  # -max_pixels: the decoder allocated nothing
        raise VideoRejected(BAD_FORMAT, f"video picture over {MAX_CODED_PIXELS:,} pixels, larger than a phone camera's 4K")
    try:
        doc = json.loads(stdout or b"{}")
    except ValueError:
        doc = {}
    if returncode != 0 or not doc.get("streams"):
        hint = _limit_hint(stderr.decode("utf-8", "replace"), returncode)
        raise VideoRejected(BAD_FORMAT, f"ffprobe cannot read a video from the upload (broken or truncated?){hint}")
    return doc


def _probe_info(doc: dict, container: str, size: int) -> ProbeInfo:
    streams = doc.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise VideoRejected(BAD_FORMAT, "no video stream")
    width, height = _int(video.get("width")), _int(video.get("height"))
    if not width or not height:
        raise VideoRejected(BAD_FORMAT, "video stream without picture size")
    if max(width, height) > MAX_CODED_LONG_SIDE or width * height > MAX_CODED_PIXELS:
        raise VideoRejected(BAD_FORMAT, f"video is coded {width}x{height}, larger than a phone camera's 4K")
    sar = _ratio(video.get("sample_aspect_ratio"))
    if sar and sar != 1 and 0.25 < sar < 4:
        width = _even(width * sar) or width  # square pixels, as displayed
    rotation = _rotation(video)
    if rotation in (90, 270):
        width, height = height, width
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)

    fps = _ratio(video.get("avg_frame_rate")) or _ratio(video.get("r_frame_rate"))
    duration = _float(doc.get("format", {}).get("duration")) or _float(video.get("duration"))
    packets = doc.get("packets") or []
    if len(packets) >= PROBE_PACKETS and (_packet_span(packets)[0] or 0) * MAX_PACKET_RATE < len(packets):
        # thousands of packets a second: no camera; decoding them would cost minutes
        raise VideoRejected(BAD_FORMAT, f"over {MAX_PACKET_RATE} packets per second")
    packets = [p for p in packets if p.get("stream_index") == video.get("index")]
    if packets and (container in _PIPED or duration is None):
        # Streamed WebM has no duration in its header; ffprobe then *estimates*
        # one (from the bitrate, for bigger files).  The packets are the truth.
        span, count = _packet_span(packets)
        if span:
            duration = span
            if count > 1 and not (fps and fps <= 240):
                fps = count / span
    if fps is not None and not 0 < fps <= 1000:
        fps = None
    return ProbeInfo(
        container=container,
        video_codec=str(video.get("codec_name") or "unknown"),
        pix_fmt=video.get("pix_fmt"),
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        duration=duration,
        audio_codec=(audio or {}).get("codec_name") if audio else None,
        size_bytes=size,
    )


def _rotation(stream: dict) -> int:
    """Clockwise degrees (0/90/180/270) a player turns the coded picture."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # ffprobe reports the display matrix angle counter-clockwise
            return _right_angle(-float(side["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")
    return _right_angle(float(tag)) if _float(tag) is not None else 0


def _packet_span(packets: list[dict]) -> tuple[float | None, int]:
    """Duration covered by a stream's packets (first timestamp to end of last)."""
    times = []
    for p in packets:
        t = _float(p.get("pts_time"))
        if t is None:
            t = _float(p.get("dts_time"))
        if t is not None:
            times.append((t, _float(p.get("duration_time")) or 0.0))
    if not times:
        return None, 0
    first = min(t for t, _ in times)
    last, last_duration = max(times)
    if not last_duration and len(times) > 1:
        last_duration = (last - first) / (len(times) - 1)  # one more average frame
    span = last + last_duration - first
    return (span if span > 0 else None), len(times)


# --------------------------------------------------------------------------- 3. check


def _check(info: ProbeInfo, require_audio: bool) -> None:
    """Reject locally what Juhe would reject (same codes)."""
    if info.duration is not None and info.duration < MIN_SECONDS:
        raise VideoRejected(TOO_SHORT, f"video lasts {info.duration:.2f} s, at least {MIN_SECONDS:g} s needed")
    if info.duration is None:
        raise VideoRejected(BAD_FORMAT, "video duration cannot be determined")
    if min(info.width, info.height) < MIN_SHORT_SIDE:
        raise VideoRejected(
            LOW_RESOLUTION, f"video is {info.width}x{info.height}, short side below {MIN_SHORT_SIDE} px"
        )
    if require_audio and info.audio_codec is None:
        raise VideoRejected(NO_SOUND, "video has no audio track")


def _check_loudness(stderr: str) -> None:
    """Reject digital silence, from ffmpeg's volumedetect summary."""
    # Volumedetect's own line, and its last: an upload's metadata keys are printed raw at -v info
    # (newlines and all), so a fake line can come first, never after the real summary, which
    # ffmpeg writes once the whole input is read.
    found = re.findall(r"^\[Parsed_volumedetect_\d+ @ [^\]]+\] max_volume:\s*(-?inf|-?[\d.]+)\s*dB", stderr, re.M)
    if not found:
        raise VideoRejected(NO_SOUND, "audio track holds no samples")
    max_volume = float(found[-1])
    if max_volume < SILENCE_DB:
        raise VideoRejected(TOO_QUIET, f"audio is silent (max volume {max_volume:.1f} dB)")


# --------------------------------------------------------------------------- 4. plan and commands


@dataclass(frozen=True)
class _Plan:
    remux: bool  # copy the video stream
    audio: str | None  # None (drop), "copy" or "aac"
    volumedetect: bool  # also measure the loudness of the first audio stream
    width: int = 0  # output picture, as displayed (encode only)
    height: int = 0
    rotation: int = 0
    fps: Fraction | None = None
    crf: int | None = X264_CRF
    maxrate: int = VIDEO_MAXRATE

    def smaller(self, source: ProbeInfo, duration: float) -> _Plan:
        """This output re-encoded at an average bitrate that fits ``MAX_BYTES``."""
        plan = _encode_plan(source, self.audio, False) if self.remux else self
        budget = int(0.85 * 8 * MAX_BYTES / max(duration, 1.0)) - (AUDIO_BITRATE if self.audio else 0)
        rate = max(100_000, min(budget, int(plan.maxrate * 0.7)))
        return replace(plan, audio="aac" if self.audio else None, volumedetect=False, crf=None, maxrate=rate)


def _plan(info: ProbeInfo, keep_audio: bool, require_audio: bool) -> _Plan:
    """Remux when the upload already is what Juhe wants, otherwise encode."""
    audio = None
    if keep_audio and info.audio_codec is not None:
        audio = "copy" if info.audio_codec == "aac" else "aac"
    volumedetect = require_audio and info.audio_codec is not None
    short, long = sorted((info.width, info.height))
    fps = info.fps
    # Already what Juhe wants?  Then copy the video stream instead of encoding.
    compliant = (
        info.container in _REMUXABLE_CONTAINERS
        and info.video_codec == "h264"
        and info.pix_fmt == "yuv420p"
        and info.rotation == 0
        and short <= MAX_SHORT_SIDE
        and long <= MAX_LONG_SIDE
        and fps is not None
        and fps <= MAX_FPS_VFR
        and info.duration is not None
        and info.duration <= MAX_SECONDS
        and info.size_bytes <= MAX_BYTES
    )
    if compliant:
        return _Plan(remux=True, audio=audio, volumedetect=volumedetect, width=info.width, height=info.height)
    return _encode_plan(info, audio, volumedetect)


def _encode_plan(info: ProbeInfo, audio: str | None, volumedetect: bool) -> _Plan:
    width, height = _output_size(info.width, info.height)
    return _Plan(
        remux=False,
        audio=audio,
        volumedetect=volumedetect,
        width=width,
        height=height,
        rotation=info.rotation,
        fps=_output_fps(info.fps),
    )


def _over_1080p(width: int, height: int) -> bool:
    return min(width, height) > MAX_SHORT_SIDE or max(width, height) > MAX_LONG_SIDE


def _output_size(width: int, height: int) -> tuple[int, int]:
    """Shrink (never enlarge) so the short side is <= 540 and it fits 1080p; even sides."""
    short, long = min(width, height), max(width, height)
    factor = min(1.0, TARGET_SHORT_SIDE / short, MAX_LONG_SIDE / long)
    return max(2, _even(width * factor)), max(2, _even(height * factor))


_COMMON_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30))


def _output_fps(fps: float | None) -> Fraction:
    """The source rate when it is <= 25 fps (snapped to a common rate), else 25."""
    if fps is None or fps > OUTPUT_FPS + 0.01:
        return Fraction(OUTPUT_FPS)
    nearest = min(_COMMON_RATES, key=lambda rate: abs(fps - rate))
    if abs(fps - nearest) < nearest * 0.005:
        return nearest
    return Fraction(round(fps * 100), 100) or Fraction(OUTPUT_FPS)


def _command(plan: _Plan, path: Path, container: str, tools: Tools, out: Path) -> list[str]:
    """The ffmpeg argv for a plan (one process: the MP4, plus volumedetect when asked)."""
    # -noautorotate when encoding: we turn the picture after shrinking it (cheaper);
    # input-side -t: ffmpeg reads (and volumedetect hears) only what we send.  The
    # sound comes from a second input: the first one, waiting for its video to
    # end, may have to read to the end of the file (when the picture stops
    # before MAX_SECONDS), but it then only skips the audio, never decodes it.
    source = _input_stream(path, container, autorotate=plan.remux, seconds=MAX_SECONDS)
    sound = _input_stream(path, container, seconds=MAX_SECONDS, sound=True)
    streams = []
    options: dict = {
        "f": "mp4",
        "threads": CHILD_THREADS,
        "movflags": "+faststart",
        "map_metadata": -1,
        "map_chapters": -1,
        "fflags": "+bitexact",  # no muxer-written tags or timestamps either
    }
    if plan.remux:
        streams.append(source["v:0"])
        options["c:v"] = "copy"
    else:
        video = source["v:0"]
        video = video.filter("fps", fps=str(plan.fps))  # drop frames before scaling them
        coded_w, coded_h = (plan.height, plan.width) if plan.rotation in (90, 270) else (plan.width, plan.height)
        # one swscale pass: resize and convert (10-bit HEVC, yuvj...) to yuv420p
        video = video.filter("scale", coded_w, coded_h, flags="bicubic").filter("format", "yuv420p")
        if plan.rotation == 90:
            video = video.filter("transpose", "clock")
        elif plan.rotation == 270:
            video = video.filter("transpose", "cclock")
        elif plan.rotation == 180:
            video = video.filter("hflip").filter("vflip")
        streams.append(video.filter("setsar", "1"))
        options.update({"c:v": "libx264", "preset": X264_PRESET, "profile:v": "high"})
        if plan.crf is not None:
            options.update({"crf": plan.crf, "maxrate": plan.maxrate, "bufsize": plan.maxrate * 2})
        else:
            options.update({"b:v": plan.maxrate, "maxrate": plan.maxrate, "bufsize": plan.maxrate})
    if plan.audio:
        streams.append(sound["a:0"])
        if plan.audio == "copy":
            options["c:a"] = "copy"
        else:
            # mono speech; the "fast" coder costs a third of the default "twoloop"
            options.update({"c:a": "aac", "aac_coder": "fast", "b:a": AUDIO_BITRATE, "ac": 1})
    outputs = [ffmpeg.output(*streams, f"file:{out}", **options)]
    if plan.volumedetect:
        loudness = sound["a:0"].filter("volumedetect")
        outputs.append(ffmpeg.output(loudness, "-", f="null"))
    # volumedetect reports at "info" level; everything else only reports errors
    level = "info" if plan.volumedetect else "error"
    node = ffmpeg.merge_outputs(*outputs) if len(outputs) > 1 else outputs[0]
    argv = node.compile(cmd=tools.ffmpeg)
    return [argv[0], "-nostdin", "-hide_banner", "-nostats", "-y", "-v", level,
            "-filter_complex_threads", str(CHILD_THREADS), *argv[1:]]


def _copy_plan(path: Path, container: str, keep_audio: bool, require_audio: bool) -> _Plan | None:
    """The copy this upload will probably get, judged from its header alone; None if unlikely.

    MP4/MOV: the 'moov' box holds one H.264 track, not turned by its matrix.  Matroska/WebM
    (Chromium asked for H.264): the track list names AVC and no other video codec.  Only a
    guess, to start the copy without a probe: ``_try_copy`` checks what ffmpeg then read.
    """
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        if container == "mov":
            sound = _mov_h264_sound(path)
        elif container == "matroska":
            sound = _matroska_h264_sound(path)
        else:
            return None
    except (OSError, struct.error, IndexError, ValueError):
        return None
    if sound is False:  # not H.264, or not upright
        return None
    if require_audio and sound is None:
        return None  # the full path says "no sound" (267539)
    audio = None
    if keep_audio and sound is not None:
        audio = "copy" if sound == "aac" else "aac"
    return _Plan(remux=True, audio=audio, volumedetect=require_audio)


def _mov_h264_sound(path: Path) -> str | bool | None:
    """The sound's codec ("aac", "other", None: no sound) of a MOV holding one upright H.264
    track; False for anything else."""
    moov = _find_moov(path)
    if moov is None:
        return False
    tracks = [_read_trak(moov, body, end) for kind, _s, end, body in _boxes(moov, 0, len(moov)) if kind == b"trak"]
    videos = [t for t in tracks if t.handler == b"vide"]
    if len(videos) != 1 or videos[0].codec not in (b"avc1", b"avc3") or videos[0].matrix_at is None:
        return False
    if moov[videos[0].matrix_at : videos[0].matrix_at + 36] != _Track._IDENTITY:
        return False
    if sum(t.samples for t in tracks) > MAX_PACKET_RATE * MAX_SECONDS:
        return False  # dense with packets: the full path's probe refuses it before decoding any
    sound = next((t for t in tracks if t.handler == b"soun"), None)
    return None if sound is None else "aac" if sound.codec == b"mp4a" else "other"


def _matroska_h264_sound(path: Path) -> str | bool | None:
    """The same for Matroska/WebM, from the codec IDs in its first 64 KB (the track list of a
    recorder's stream comes right after its header)."""
    with open(path, "rb") as fh:
        head = fh.read(64 << 10)
    if b"V_MPEG4/ISO/AVC" not in head or any(k in head for k in (b"V_VP8", b"V_VP9", b"V_AV1", b"V_MPEGH")):
        return False
    if b"A_AAC" in head:
        return "aac"
    return "other" if b"A_" in head else None


def _try_copy(plan: _Plan, path: Path, container: str, keep_audio: bool, require_audio: bool, tools: Tools,
              out: Path, deadline: _Deadline, jobs: list[_Job]) -> PreparedVideo | None:
    """Copy the upload in one process and read from that process what ffprobe would have said.

    Returns the prepared video only when the input ffmpeg described is one the full path
    copies too (H.264 yuv420p, upright, square pixels, <= 1080p, <= 30 fps, 2..10 s, not
    dense with packets) and the output verifies; otherwise ``None`` (the caller probes).
    Digital silence in number mode is rejected here, as the full path would.
    """
    command = _command(plan, path, container, tools, out)
    command[command.index("-v") + 1] = "info"  # the input's description, and volumedetect's
    job = _Job.start(command, path if container in _PIPED else None, deadline, jobs)
    returncode, _stdout, stderr_bytes = job.wait("copy")
    if returncode != 0:
        return None
    stderr = stderr_bytes.decode("utf-8", "replace")
    facts = _input_facts(stderr)
    if facts is None:
        return None
    try:
        data, output = _verify_output(out, plan, _COPY_SOURCE)
    except (VideoRejected, VideoToolError):
        return None
    if len(data) > MAX_BYTES:  # AAC from Opus can add a little: the full path squeezes it
        return None
    mp4 = _Mp4.parse(data)
    packets = sum(t.samples for t in mp4.tracks)
    duration = facts["duration"] or output.duration
    info = ProbeInfo(
        container=container,
        video_codec=facts["codec"],
        pix_fmt=facts["pix_fmt"],
        width=facts["width"],
        height=facts["height"],
        rotation=0,
        fps=output.fps,
        duration=duration,
        audio_codec=facts["audio"],
        size_bytes=path.stat().st_size,
    )
    if (
        (output.width, output.height) != (info.width, info.height)
        or (facts["duration"] is None and output.duration >= MAX_SECONDS - 0.05)  # streamed: was it longer?
        or packets > MAX_PACKET_RATE * max(output.duration, 1.0)
        or _plan(info, keep_audio, require_audio) != replace(plan, width=info.width, height=info.height)
    ):
        return None
    try:
        _check(info, require_audio)
    except VideoRejected:
        return None  # the full path says what is wrong
    if plan.volumedetect:
        _check_loudness(stderr)
    return PreparedVideo(data=data, source=info, output=replace(output, pix_fmt=info.pix_fmt),
                         remuxed=True, timings={})


_COPY_SOURCE = ProbeInfo("mov", "h264", "yuv420p", 0, 0, 0, None, None, None, 0)  # what a copy is made from
_STREAM_LINE = re.compile(r"^  Stream #0:\d+\S*: (\w+): (.*)$", re.M)
_INPUT_DURATION = re.compile(r"^  Duration: (?:N/A|(\d+):(\d\d):(\d\d(?:\.\d+)?))", re.M)


def _input_facts(stderr: str) -> dict | None:
    """Codec, pixel format, size, duration and sound of input #0, from ffmpeg's own description
    of it (``-v info``); None when it is not one plain, upright, square-pixel video stream.

    An upload's metadata keys are printed raw (newlines and all), so the section is bounded by
    ffmpeg's own markers: the first "Input #0," (nothing of the upload comes before it) and the
    last "Output #0," (the output carries no metadata of the upload: -map_metadata -1). A key
    that fakes a stream line shows as one "Stream #0:" more than the lines that parse, or as a
    second video: either way None, and the full path (ffprobe's JSON) decides.
    """
    begin = stderr.find("Input #0,")
    end = stderr.rfind("\nOutput #0,")
    if begin < 0 or end < begin:
        return None
    section = stderr[begin:end]
    if "displaymatrix" in section:
        return None
    streams = _STREAM_LINE.findall(section)
    if section.count("Stream #0:") != len(streams):
        return None
    videos = [desc for kind, desc in streams if kind == "Video" and "(attached pic)" not in desc]
    if len(videos) != 1:
        return None
    parts = _top_level_split(videos[0])
    size = re.match(r"(\d+)x(\d+)(?: \[SAR (\d+):(\d+) DAR \d+:\d+\])?$", parts[2].strip()) if len(parts) > 2 else None
    if size is None or (size.group(3) and size.group(3) != size.group(4)):
        return None
    audio = next((desc.split(None, 1)[0].rstrip(",") for kind, desc in streams if kind == "Audio"), None)
    match = _INPUT_DURATION.search(section)
    duration = None
    if match and match.group(1) is not None:
        duration = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    return {
        "codec": parts[0].split(None, 1)[0],
        "pix_fmt": re.match(r"\w*", parts[1].strip()).group(0) if len(parts) > 1 else None,
        "width": int(size.group(1)),
        "height": int(size.group(2)),
        "duration": duration,
        "audio": audio,
    }


def _top_level_split(text: str) -> list[str]:
    """Split ffmpeg's stream description at the commas outside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _header_info(path: Path, container: str) -> ProbeInfo | None:
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
    if not (min(width, height) >= MIN_SHORT_SIDE and max(width, height) <= MAX_CODED_LONG_SIDE
            and width * height <= MAX_CODED_PIXELS) or (duration is not None and duration < MIN_SECONDS):
        return None
    if rotation in (90, 270):
        width, height = height, width
    return ProbeInfo(container, codec, None, width, height, rotation, fps, duration, audio, size)


def _mov_header(path: Path) -> tuple | None:
    moov = _find_moov(path)
    if moov is None or b"pasp" in moov:  # non-square pixels: let the probe say how
        return None
    tracks = [_read_trak(moov, body, end) for kind, _s, end, body in _boxes(moov, 0, len(moov)) if kind == b"trak"]
    videos = [t for t in tracks if t.handler == b"vide"]
    if len(videos) != 1 or not videos[0].samples or not videos[0].ticks or videos[0].matrix_at is None:
        return None  # fragmented (no samples in moov), or several pictures
    video = videos[0]
    a, b = struct.unpack_from(">2i", moov, video.matrix_at)
    rotation = _right_angle(math.degrees(math.atan2(b, a)))
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


def _find_moov(path: Path, limit: int = 8 << 20) -> bytes | None:
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


# --------------------------------------------------------------------------- 5. verify the output


def _verify_output(out: Path, plan: _Plan, source: ProbeInfo) -> tuple[bytes, ProbeInfo]:
    """Read our own MP4 back: faststart, one H.264 track (+ AAC), no rotation.

    Clears any display matrix ffmpeg copied from the source (we rotated the
    pixels ourselves), and describes the output without another process.
    """
    try:
        data = bytearray(out.read_bytes())
    except OSError:
        raise VideoToolError("ffmpeg wrote no output") from None
    mp4 = _Mp4.parse(data)
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
    if not track.samples or duration < MIN_SECONDS:
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


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


@dataclass
class _Track:
    handler: bytes = b""
    codec: bytes = b""
    width: int = 0
    height: int = 0
    duration: float = 0.0
    samples: int = 0
    ticks: int = 0  # sum of the sample durations (stts), in timescale units
    timescale: int = 0
    matrix_at: int | None = None  # offset of the tkhd matrix in the file

    _IDENTITY = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)

    def clear_matrix(self, data: bytearray) -> None:
        if self.matrix_at is not None:
            data[self.matrix_at : self.matrix_at + 36] = self._IDENTITY


@dataclass
class _Mp4:
    """Just enough of an ISO BMFF reader for the files our own ffmpeg writes."""

    tracks: list[_Track]
    duration: float
    moov_offset: int
    mdat_offset: int | None

    @classmethod
    def parse(cls, data: bytes) -> _Mp4:
        moov_offset = mdat_offset = None
        duration = 0.0
        tracks: list[_Track] = []
        try:
            for kind, start, end, body in _boxes(data, 0, len(data)):
                if kind == b"mdat" and mdat_offset is None:
                    mdat_offset = start
                elif kind == b"moov" and moov_offset is None:
                    moov_offset = start
                    for k, _s, _e, b in _boxes(data, body, end):
                        if k == b"mvhd":
                            duration = _mvhd_duration(data, b)
                        elif k == b"trak":
                            tracks.append(_read_trak(data, b, _e))
        except (struct.error, IndexError, ValueError):
            raise VideoToolError("output MP4 cannot be parsed") from None
        if moov_offset is None:
            raise VideoToolError("output MP4 has no moov box")
        return cls(tracks, duration, moov_offset, mdat_offset)


def _boxes(data: bytes, start: int, end: int):
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


def _mvhd_duration(data: bytes, body: int) -> float:
    if data[body] == 1:
        timescale, duration = struct.unpack_from(">IQ", data, body + 20)
    else:
        timescale, duration = struct.unpack_from(">II", data, body + 12)
    return duration / timescale if timescale else 0.0


def _read_trak(data: bytes, start: int, end: int) -> _Track:
    track = _Track()

    def walk(s: int, e: int) -> None:
        for kind, _bs, be, body in _boxes(data, s, e):
            if kind in _CONTAINERS:
                walk(body, be)
            elif kind == b"tkhd":
                track.matrix_at = body + (52 if data[body] == 1 else 40)
            elif kind == b"mdhd":
                track.duration = _mvhd_duration(data, body)
                track.timescale = struct.unpack_from(">I", data, body + (20 if data[body] == 1 else 12))[0]
            elif kind == b"hdlr" and not track.handler:  # the media's, not QuickTime's data handler
                track.handler = data[body + 8 : body + 12]
            elif kind == b"stsd":
                track.codec = data[body + 12 : body + 16]
                if track.handler == b"vide":
                    track.width, track.height = struct.unpack_from(">HH", data, body + 8 + 8 + 24)
            elif kind == b"stts":
                count = struct.unpack_from(">I", data, body + 4)[0]
                entries = [struct.unpack_from(">II", data, body + 8 + 8 * i) for i in range(count)]
                track.samples = sum(n for n, _ in entries)
                track.ticks = sum(n * delta for n, delta in entries)

    walk(start, end)
    return track


# --------------------------------------------------------------------------- running processes


class _Deadline:
    """One time budget shared by every subprocess of a call."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise VideoToolError(f"video processing exceeded its {self.seconds:g} s budget")
        return left


class _Job:
    """A running ffmpeg/ffprobe process, its input files, its slot, and the means to kill it."""

    def __init__(self, argv: list[str], proc: subprocess.Popen, files: list[IO[bytes]], deadline: _Deadline):
        self.argv = argv  # as built, without the prlimit wrapper
        self.proc = proc
        self.files = files  # the upload as stdin (and as _SOUND_PIPE)
        self.deadline = deadline
        self.result: tuple[int, bytes, bytes] | None = None
        self.killed = False  # killed before its result was read
        self.slot = True  # holds one of _SLOTS until reaped

    @classmethod
    def start(cls, argv: list[str], stdin_path: Path | None, deadline: _Deadline, jobs: list[_Job], *,
              speculative: bool = False) -> _Job | None:
        """Start ``argv`` under the child limits once a slot is free, and add it to ``jobs``.

        ``speculative``: only if a slot is free right now (else ``None``).  A call
        never waits for a slot while holding one (two calls could wait on each
        other): its running jobs are killed first.
        """
        deadline.left()
        if not _SLOTS.acquire(blocking=False):
            if speculative:
                return None
            for job in jobs:
                job.kill()
            if not _SLOTS.acquire(timeout=deadline.left()):
                raise VideoToolError(f"video processing exceeded its {deadline.seconds:g} s budget "
                                     f"waiting for one of {MAX_CHILDREN} ffmpeg slots")
        files: list[IO[bytes]] = []
        try:
            binary = shutil.which(argv[0])
            if binary is None:
                raise VideoToolError(f"{argv[0]} not found")
            limits = [f"--as={CHILD_MEMORY}", f"--cpu={CHILD_CPU_SECONDS}:{CHILD_CPU_SECONDS + 2}", "--core=0"]
            command = [*([_PRLIMIT, *limits, "--"] if _PRLIMIT else []), binary, *argv[1:]]
            if stdin_path is not None:
                files.append(open(stdin_path, "rb"))
                if _SOUND_PIPE in command:
                    files.append(open(stdin_path, "rb"))
                    command[command.index(_SOUND_PIPE)] = _SOUND_PIPE.format(sound=files[1].fileno())
            proc = subprocess.Popen(
                command,
                stdin=files[0] if files else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                pass_fds=[f.fileno() for f in files[1:]],
                # glibc reserves 64 MiB of address space per malloc arena (one a thread)
                env={**os.environ, "MALLOC_ARENA_MAX": "2"},
            )
        except BaseException as exc:
            _SLOTS.release()
            for file in files:
                file.close()
            if isinstance(exc, OSError):
                raise VideoToolError(f"{argv[0]} cannot run: {exc.strerror or exc}") from None
            raise
        job = cls(argv, proc, files, deadline)
        jobs.append(job)
        return job

    def wait(self, what: str) -> tuple[int, bytes, bytes]:
        """(returncode, stdout, stderr); kills the process when the deadline passes."""
        if self.result is None:
            try:
                stdout, stderr = self.proc.communicate(timeout=self.deadline.left())
            except subprocess.TimeoutExpired:
                self.kill()
                raise VideoToolError(f"{what}: {Path(self.argv[0]).name} timed out "
                                     f"(budget {self.deadline.seconds:g} s)") from None
            except VideoToolError:
                self.kill()
                raise
            self.result = (self.proc.returncode, stdout, stderr)
            self._close()
        return self.result

    def kill(self) -> None:
        """Kill (if still running) and reap; idempotent."""
        self.killed = self.killed or self.result is None
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass
        self._close()

    def _close(self) -> None:
        while self.files:
            self.files.pop().close()
        if self.slot and self.proc.poll() is not None:
            self.slot = False
            _SLOTS.release()


def _finish_ffmpeg(job: _Job, what: str) -> str:
    returncode, _stdout, stderr = job.wait(what)
    text = stderr.decode("utf-8", "replace")
    if returncode != 0:
        raise VideoRejected(BAD_FORMAT, f"ffmpeg could not {what} the video (exit {returncode})"
                                        f"{_error_hint(text, returncode)}")
    return text


def _limit_hint(stderr: str, returncode: int) -> str:
    """": stopped at its limit of ..." when a child limit (or a crash) ended the process, else ""."""
    if returncode in (255, -signal.SIGXCPU, -signal.SIGKILL):  # 255: ffmpeg stopping on SIGXCPU
        return f": stopped at its limit of {CHILD_CPU_SECONDS} CPU seconds"
    if returncode < 0 or re.search(r"Cannot allocate memory|malloc of size|failed to map|bad_alloc", stderr):
        return f": out of its {CHILD_MEMORY >> 20} MiB memory limit, or crashed"
    return ""


def _error_hint(stderr: str, returncode: int) -> str:
    """A short, metadata-free hint from ffmpeg's error lines (or the limit that stopped it)."""
    if limit := _limit_hint(stderr, returncode):
        return limit
    for line in reversed(stderr.splitlines()):
        if re.search(r"error|invalid|fail|not found|exist|unsupported|cannot|could not", line, re.I):
            return ": " + line.strip()[:160]
    return ""


# --------------------------------------------------------------------------- small helpers


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ratio(value) -> float | None:
    """"30000/1001" or "16:9" -> float; None for 0/0, N/A and the like."""
    if not value or not isinstance(value, str):
        return None
    for sep in ("/", ":"):
        if sep in value:
            num, _, den = value.partition(sep)
            n, d = _float(num), _float(den)
            return n / d if n and d else None
    return _float(value) or None


def _right_angle(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4 * 90


def _even(value: float) -> int:
    return int(value) // 2 * 2
