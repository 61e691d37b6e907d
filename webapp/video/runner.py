"""Running ffmpeg and ffprobe: one deadline per call, child limits, slots, killing and reaping.

Every child runs under ``prlimit`` (address space, CPU seconds, no core) with
``CHILD_THREADS`` threads; at most ``MAX_CHILDREN`` run at once in this process (a burst
queues, within its deadline). A child stopped by a limit is a rejection (267537), never a
video sent to Juhe.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Literal, overload

from . import limits
from .errors import BAD_FORMAT, StorageFull, VideoRejected, VideoToolError
from .inputs import SOUND_PIPE
from .types import Tools

_SLOTS = threading.BoundedSemaphore(limits.MAX_CHILDREN)
_PRLIMIT = shutil.which("prlimit")  # util-linux; without it the children run unlimited


class Deadline:
    """One time budget shared by every subprocess of a call."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise VideoToolError(f"video processing exceeded its {self.seconds:g} s budget")
        return left


class Job:
    """A running ffmpeg/ffprobe process, its input files, its slot, and the means to kill it."""

    def __init__(self, argv: list[str], proc: subprocess.Popen, files: list[IO[bytes]], deadline: Deadline):
        self.argv = argv  # as built, without the prlimit wrapper
        self.proc = proc
        self.files = files  # the upload as stdin (and as SOUND_PIPE)
        self.deadline = deadline
        self.result: tuple[int, bytes, bytes] | None = None
        self.killed = False  # killed before its result was read
        self.slot = True  # holds one of _SLOTS until reaped

    @overload
    @classmethod
    def start(cls, argv: list[str], stdin_path: Path | None, deadline: Deadline, jobs: list[Job], *,
              speculative: Literal[False] = False) -> Job: ...

    @overload
    @classmethod
    def start(cls, argv: list[str], stdin_path: Path | None, deadline: Deadline, jobs: list[Job], *,
              speculative: bool) -> Job | None: ...

    @classmethod
    def start(cls, argv: list[str], stdin_path: Path | None, deadline: Deadline, jobs: list[Job], *,
              speculative: bool = False) -> Job | None:
        """Start ``argv`` under the child limits once a slot is free, and add it to ``jobs``.

        ``speculative``: only if a slot is free right now (else ``None``).  A call
        never waits for a slot while holding one (two calls could wait on each
        other): its running jobs are killed first.
        """
        deadline.left()
        if not _take_slot(deadline, jobs, speculative=speculative):
            return None
        files: list[IO[bytes]] = []
        try:
            command = _limited(argv)
            if stdin_path is not None:
                # The child's stdin (and sound descriptor) outlive this call: Job._close closes
                # them once the child is reaped, or the except below if it never starts.
                files.append(open(stdin_path, "rb"))  # noqa: SIM115
                if SOUND_PIPE in command:
                    files.append(open(stdin_path, "rb"))  # noqa: SIM115
                    command[command.index(SOUND_PIPE)] = SOUND_PIPE.format(sound=files[1].fileno())
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


def _take_slot(deadline: Deadline, jobs: list[Job], *, speculative: bool) -> bool:
    """Take one of ``_SLOTS``: False when ``speculative`` and none is free right now; otherwise
    the call's running ``jobs`` are killed, and a slot awaited within the deadline."""
    if _SLOTS.acquire(blocking=False):
        return True
    if speculative:
        return False
    for job in jobs:
        job.kill()
    if not _SLOTS.acquire(timeout=deadline.left()):
        raise VideoToolError(f"video processing exceeded its {deadline.seconds:g} s budget "
                             f"waiting for one of {limits.MAX_CHILDREN} ffmpeg slots")
    return True


def _limited(argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` under the child limits (``prlimit``, when installed)."""
    binary = shutil.which(argv[0])
    if binary is None:
        raise VideoToolError(f"{argv[0]} not found")
    rlimits = [f"--as={limits.CHILD_MEMORY}", f"--cpu={limits.CHILD_CPU_SECONDS}:{limits.CHILD_CPU_SECONDS + 2}",
               "--core=0"]
    return [*([_PRLIMIT, *rlimits, "--"] if _PRLIMIT else []), binary, *argv[1:]]


def finish_ffmpeg(job: Job, what: str) -> str:
    """Wait for an ffmpeg job; its stderr, or ``VideoRejected`` (``StorageFull``: the disk) if it failed."""
    returncode, _stdout, stderr = job.wait(what)
    text = stderr.decode("utf-8", "replace")
    if returncode != 0:
        check_storage(text, returncode, what)
        raise VideoRejected(BAD_FORMAT, f"ffmpeg could not {what} the video (exit {returncode})"
                                        f"{_error_hint(text, returncode)}")
    return text


# ffmpeg exits with its AVERROR(errno) truncated to a byte: -ENOSPC is 228, -EDQUOT 134.
_FULL_EXITS = {-code & 0xFF for code in (errno.ENOSPC, errno.EDQUOT)}
_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded")


def check_storage(stderr: str, returncode: int, what: str) -> None:
    """Raise ``StorageFull`` when a failed ffmpeg could not write its output for lack of space."""
    if returncode in _FULL_EXITS or _FULL_TEXT.search(stderr):
        raise StorageFull(f"{what}: ffmpeg could not write its output: the disk is full "
                          f"(exit {returncode})")


def limit_hint(stderr: str, returncode: int) -> str:
    """": stopped at its limit of ..." when a child limit (or a crash) ended the process, else ""."""
    if returncode in (255, -signal.SIGXCPU, -signal.SIGKILL):  # 255: ffmpeg stopping on SIGXCPU
        return f": stopped at its limit of {limits.CHILD_CPU_SECONDS} CPU seconds"
    if returncode < 0 or re.search(r"Cannot allocate memory|malloc of size|failed to map|bad_alloc", stderr):
        return f": out of its {limits.CHILD_MEMORY >> 20} MiB memory limit, or crashed"
    return ""


def _error_hint(stderr: str, returncode: int) -> str:
    """A short, metadata-free hint from ffmpeg's error lines (or the limit that stopped it)."""
    if limit := limit_hint(stderr, returncode):
        return limit
    for line in reversed(stderr.splitlines()):
        if re.search(r"error|invalid|fail|not found|exist|unsupported|cannot|could not", line, re.I):
            return ": " + line.strip()[:160]
    return ""


def tools_problem(tools: Tools) -> str | None:
    """``None`` when ffmpeg and ffprobe both run; otherwise a short reason (for /readyz)."""
    for name, binary in (("ffmpeg", tools.ffmpeg), ("ffprobe", tools.ffprobe)):
        try:
            proc = subprocess.run(
                [binary, "-hide_banner", "-version"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=min(5.0, max(tools.timeout, 0.001)),
                check=False,  # the exit code is read below
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
