"""One uploaded video's path, top to bottom: sniff -> (copy first | probe -> check -> plan ->
remux or encode) -> verify -> the bytes for Juhe. The package's docstring says why each step."""

from __future__ import annotations

import errno
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import limits
from .checks import check_loudness, check_upload
from .errors import EMPTY, StorageFull, VideoRejected
from .fast_copy import copy_plan, try_copy
from .header import guess_from_header
from .inputs import PIPED, sniff_file
from .output import verify_output
from .plan import Plan, choose_plan, ffmpeg_command, over_1080p
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
    workdir = _private_workdir(tools)
    jobs: list[Job] = []
    try:
        # 1. sniff: what container do the bytes say this is?
        call = _Call(source_path, sniff_file(source_path), keep_audio, require_audio, tools,
                     workdir / "out.mp4", deadline, jobs)
        copied = _copy_first(call)
        if copied is not None:
            finished = time.perf_counter()
            return replace(copied, timings={"probe": 0.0, "normalise": finished - started,
                                            "total": finished - started})
        info = _probe_beside_the_guess(call)  # 2. probe
        probed = time.perf_counter()
        check_upload(info, require_audio)  # 3. check what Juhe would reject
        plan = choose_plan(info, keep_audio, require_audio)  # 4. decide: remux or encode, and run it
        _normalise(call, plan)
        prepared = _verified(call, plan, info)  # 5. verify the output
        finished = time.perf_counter()
        return replace(prepared, timings={"probe": probed - started, "normalise": finished - probed,
                                          "total": finished - started})
    except OSError as exc:
        _raise_if_full(exc)
        raise
    finally:
        for job in jobs:
            job.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class _Call:
    """One ``prepare`` call: the upload, what the caller asked, and what its processes share."""

    path: Path  # the upload, resolved
    container: str  # sniffed from its bytes
    keep_audio: bool
    require_audio: bool
    tools: Tools
    out: Path  # our MP4, in the call's private directory
    deadline: Deadline
    jobs: list[Job]  # every process started, killed and reaped when the call ends

    @property
    def stdin(self) -> Path | None:
        """What ffmpeg reads on stdin: the upload, unless it is read as a ``file:``."""
        return self.path if self.container in PIPED else None

    def command(self, plan: Plan) -> list[str]:
        return ffmpeg_command(plan, self.path, self.container, self.tools, self.out)


def _private_workdir(tools: Tools) -> Path:
    """The call's own temporary directory (``StorageFull`` when the disk has no room for it)."""
    try:
        return Path(tempfile.mkdtemp(prefix="video-", dir=tools.tmpdir))
    except OSError as exc:
        _raise_if_full(exc)
        raise


def _copy_first(call: _Call) -> PreparedVideo | None:
    """The upload copied by one process, without a probe; None when not tried or declined."""
    # An upload whose header says H.264 (Safari's MP4, Chromium's H.264 WebM/MP4/Matroska)
    # is copied straight away, in one ffmpeg process that also describes its input: no
    # ffprobe (each process costs a third of a second of start-up on a busy machine).
    # Used only when what that process read shows the very upload the full path would
    # copy; anything else (rotated, too long, odd) takes the full path.
    plan = copy_plan(call.path, call.container, call.keep_audio, call.require_audio)
    if plan is None:
        return None
    return try_copy(plan, call.path, call.container, call.keep_audio, call.require_audio, call.tools,
                    call.out, call.deadline, call.jobs)


def _probe_beside_the_guess(call: _Call) -> ProbeInfo:
    """The probe; meanwhile (if a slot is free) the encode the header promises, used only
    if the plan made from the probe is the very same command line."""
    guess = guess_from_header(call.path, call.container)
    guess_command = None
    if guess is not None:
        guess_command = call.command(choose_plan(guess, call.keep_audio, call.require_audio))
    return probe_upload(call.path, call.container, call.tools, call.deadline, call.jobs, guess_command)


def _normalise(call: _Call, plan: Plan) -> None:
    """Run the plan's ffmpeg (or take over the guessed encode that is the same command line),
    and reject digital silence from its volumedetect."""
    command = call.command(plan)
    # (a job already waited for, such as a declined copy with the same command line, has
    # done its work on `out` already: only a running speculative encode is taken over)
    job = next((j for j in call.jobs if j.argv == command and not j.killed and j.result is None), None)
    for other in call.jobs:
        if other is not job:
            other.kill()
    if job is None:
        job = Job.start(command, call.stdin, call.deadline, call.jobs)
    stderr = finish_ffmpeg(job, "normalise")
    if plan.volumedetect:
        check_loudness(stderr)


def _verified(call: _Call, plan: Plan, info: ProbeInfo) -> PreparedVideo:
    """Our MP4 read back (without timings), squeezed while it is too big, encoded if a remux
    kept a coded picture over 1080p (non-square pixels)."""
    data, output = verify_output(call.out, plan, info)
    while len(data) > limits.MAX_BYTES or over_1080p(output.width, output.height):
        if not plan.remux and plan.crf is None and plan.maxrate <= 100_000:
            raise VideoRejected(EMPTY, "video cannot be made small enough")
        plan = plan.smaller(info, output.duration or info.duration or limits.MAX_SECONDS)
        finish_ffmpeg(Job.start(call.command(plan), call.stdin, call.deadline, call.jobs), "re-encode")
        data, output = verify_output(call.out, plan, info)
    return PreparedVideo(data=data, source=info, output=output, remuxed=plan.remux, timings={})


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
