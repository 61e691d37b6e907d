"""One uploaded video's path, top to bottom: sniff -> (copy first | probe -> check -> plan ->
remux or encode) -> verify -> the bytes for Juhe. The package's docstring says why each step."""

from __future__ import annotations

import errno
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from . import limits
from .checks import check_loudness, check_upload
from .errors import EMPTY, StorageFull, VideoRejected
from .fast_copy import copy_plan, try_copy
from .header import guess_from_header
from .inputs import PIPED, sniff_file
from .output import verify_output
from .plan import choose_plan, ffmpeg_command, over_1080p
from .probing import probe_upload
from .runner import Deadline, Job, finish_ffmpeg
from .types import PreparedVideo, ProbeInfo, Tools


def prepare(path, *, keep_audio: bool, require_audio: bool, tools: Tools) -> PreparedVideo:
    """Probe, check and normalise one upload; return the MP4 to send.

    ``keep_audio``: put the sound in the output (number mode: Juhe listens).
    ``require_audio``: reject a video without sound (267539) or with digital
    silence (267540), as Juhe would.

    Raises ``VideoRejected`` for what Juhe would reject anyway, and
    ``VideoToolError`` when ffmpeg is missing or runs out of time (``StorageFull`` when
    the disk under ``tools.tmpdir`` is full). Opens nothing but ``path``; leaves no
    temporary file behind.
    """
    started = time.perf_counter()
    deadline = Deadline(tools.timeout)
    source_path = Path(path).resolve()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="video-", dir=tools.tmpdir))
    except OSError as exc:
        _raise_if_full(exc)
        raise
    jobs: list[Job] = []
    try:
        # 1. sniff: what container do the bytes say this is?
        container = sniff_file(source_path)
        out = workdir / "out.mp4"

        # An upload whose header says H.264 (Safari's MP4, Chromium's H.264 WebM/MP4/Matroska)
        # is copied straight away, in one ffmpeg process that also describes its input: no
        # ffprobe (each process costs a third of a second of start-up on a busy machine).
        # Used only when what that process read shows the very upload the full path would
        # copy; anything else (rotated, too long, odd) takes the full path below.
        copy = copy_plan(source_path, container, keep_audio, require_audio)
        if copy is not None:
            copied = try_copy(copy, source_path, container, keep_audio, require_audio, tools, out, deadline, jobs)
            if copied is not None:
                finished = time.perf_counter()
                return replace(copied, timings={"probe": 0.0, "normalise": finished - started,
                                                "total": finished - started})

        # 2. probe; meanwhile (if a slot is free) the encode the header promises, used only
        #    if the plan made from the probe is the very same command line
        guess = guess_from_header(source_path, container)
        guess_command = None
        if guess is not None:
            guess_command = ffmpeg_command(choose_plan(guess, keep_audio, require_audio), source_path, container, tools, out)
        info = probe_upload(source_path, container, tools, deadline, jobs, guess_command)
        probed = time.perf_counter()

        # 3. check what Juhe would reject
        check_upload(info, require_audio)

        # 4. decide: remux or encode, and run it
        plan = choose_plan(info, keep_audio, require_audio)
        command = ffmpeg_command(plan, source_path, container, tools, out)
        stdin = source_path if container in PIPED else None
        # (a job already waited for, such as a declined copy with the same command line, has
        # done its work on `out` already: only a running speculative encode is taken over)
        job = next((j for j in jobs if j.argv == command and not j.killed and j.result is None), None)
        for other in jobs:
            if other is not job:
                other.kill()
        if job is None:
            job = Job.start(command, stdin, deadline, jobs)
        stderr = finish_ffmpeg(job, "normalise")
        if plan.volumedetect:
            check_loudness(stderr)

        # 5. verify the output (and squeeze it if it is too big, encode it if a
        #    remux kept a coded picture over 1080p: non-square pixels)
        data, output = verify_output(out, plan, info)
        while len(data) > limits.MAX_BYTES or over_1080p(output.width, output.height):
            if not plan.remux and plan.crf is None and plan.maxrate <= 100_000:
                raise VideoRejected(EMPTY, "video cannot be made small enough")
            plan = plan.smaller(info, output.duration or info.duration or limits.MAX_SECONDS)
            command = ffmpeg_command(plan, source_path, container, tools, out)
            finish_ffmpeg(Job.start(command, stdin, deadline, jobs), "re-encode")
            data, output = verify_output(out, plan, info)

        finished = time.perf_counter()
        return PreparedVideo(
            data=data,
            source=info,
            output=output,
            remuxed=plan.remux,
            timings={"probe": probed - started, "normalise": finished - probed, "total": finished - started},
        )
    except OSError as exc:
        _raise_if_full(exc)
        raise
    finally:
        for job in jobs:
            job.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _raise_if_full(exc: OSError) -> None:
    """A write of ours that failed for lack of space (ENOSPC, EDQUOT) is ``StorageFull``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull(f"cannot write to the temporary folder: {exc.strerror}") from None


def probe(path, *, tools: Tools) -> ProbeInfo:
    """Describe a video as displayed (rotation applied), with ffprobe.

    Raises ``VideoRejected(267536)`` for an empty file and ``VideoRejected(267537)``
    for anything that is not a readable video (wrong magic bytes, broken,
    truncated, no video stream).  ``VideoToolError`` on timeout / missing ffprobe.
    """
    source_path = Path(path).resolve()
    jobs: list[Job] = []
    try:
        return probe_upload(source_path, sniff_file(source_path), tools, Deadline(tools.timeout), jobs)
    finally:
        for job in jobs:
            job.kill()
