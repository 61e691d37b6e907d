"""Media bombs: small uploads that would cost minutes of CPU or gigabytes of memory.

Each one must be answered (refused, or normalised) at a bounded cost, measured as
an operator would see it: CPU seconds and peak memory of the ffmpeg/ffprobe
children (``getrusage(RUSAGE_CHILDREN)``) and the peak memory of this Python
process.  Bounds are generous (a loaded 2-core CI machine) but well below what
the same files cost before (see the figures in each test).  ``prepare`` is
called directly: when it raises, nothing can have been sent to Juhe.
"""

from __future__ import annotations

import os
import resource
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from webapp import video
from webapp.guidance import Category, guidance_for
from webapp.video import Tools, VideoRejected, VideoToolError, limits, runner

from .media import make_fixture

MB = 1 << 20
CHILD_RSS_LIMIT = 600 * MB  # the largest child so far (every test's), so also the bomb's


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bombs")
    return lambda kind: make_fixture(kind, directory)


@pytest.fixture
def tools(tmp_path) -> Tools:
    workdir = tmp_path / "video-tmp"
    workdir.mkdir()
    yield Tools(tmpdir=str(workdir), timeout=120)
    assert list(workdir.iterdir()) == [], "temporary files left behind"


class Cost:
    """CPU seconds and peak RSS of the children started inside the block, and
    the growth of this process's own peak RSS (VmHWM, reset first when the
    kernel lets us).

    The children's peak is sampled from /proc every 5 ms while they run (their
    own VmHWM, which only grows): getrusage's ru_maxrss for children is the
    largest child of the whole test run, not of this block."""

    def __enter__(self):
        _reset_own_peak()
        self._own = _own_peak()
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.child_rss = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self):
        while not self._done.wait(0.005):
            for pid, _name in _child_processes():
                try:
                    with open(f"/proc/{pid}/status") as fh:
                        peak = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:")), 0)
                except OSError:
                    continue
                self.child_rss = max(self.child_rss, peak)

    def __exit__(self, *exc):
        self._done.set()
        self._sampler.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime + after.ru_stime) - (self._children.ru_utime + self._children.ru_stime)
        self.own_growth = _own_peak() - self._own
        return False


def _reset_own_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass  # then only a new peak above every earlier one counts


def _own_peak() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _refused(path: Path, tools: Tools, *, number: bool) -> VideoRejected:
    with pytest.raises(VideoRejected) as caught:
        video.prepare(path, keep_audio=number, require_audio=number, tools=tools)
    # the person gets guidance they can act on, and the try counts as a recording problem
    assert guidance_for(caught.value.code).category is Category.CAPTURE
    return caught.value


# --------------------------------------------------------------------------- the bombs


@pytest.mark.parametrize("kind", ["bomb_16k_mov", "bomb_wide_mp4"])
def test_pictures_beyond_4k_are_refused_from_the_probe(bomb, tools, kind):
    """16000x16000 JPEG frames; 8000x1000 H.264.  Before: both decoded and sent
    (the 16k one: 300 frames scaled from 256 Mpx, 6.8 CPU-s, a 821 MB child)."""
    with Cost() as cost:
        rejected = _refused(bomb(kind), tools, number=False)
    assert rejected.code == video.BAD_FORMAT and "4K" in rejected.detail
    assert cost.cpu < 3 and cost.child_rss < CHILD_RSS_LIMIT


def test_an_hour_long_clip_is_read_only_as_far_as_what_is_sent(bomb, tools):
    """An hour of black and digital silence in 2 MB, number mode.

    Before: volumedetect decoded the whole hour (7 CPU-s here, 47 on the
    reporter's file).  Now ffmpeg reads 10 s and stops."""
    path = bomb("bomb_hour_mp4")
    with Cost() as cost:
        assert video.probe(path, tools=tools).duration > 3500
        rejected = _refused(path, tools, number=True)
    assert rejected.code == video.TOO_QUIET
    assert cost.cpu < 3 and cost.child_rss < CHILD_RSS_LIMIT


@pytest.mark.parametrize("number", [False, True], ids=["silent-mode", "number-mode"])
def test_millions_of_audio_packets_cost_neither_memory_nor_minutes(bomb, tools, number):
    """30 MB Matroska: 6 s of video, 4.3 million audio packets (2.4 hours).

    Before: ffprobe's JSON of every packet held in Python (1.5 GB peak, 1.5 GB
    child), 16 CPU-s (41 in number mode: every packet decoded)."""
    path = bomb("bomb_packets_mkv")
    assert path.stat().st_size > 25 * MB
    with Cost() as cost:
        prepared = video.prepare(path, keep_audio=number, require_audio=number, tools=tools)
    assert prepared.output.duration == pytest.approx(6.0, abs=0.15)
    assert (prepared.output.width, prepared.output.height) == (640, 480)
    assert prepared.output.audio_codec == ("aac" if number else None)
    assert cost.cpu < 8 and 10 * MB < cost.child_rss < CHILD_RSS_LIMIT  # (the sampler saw them)
    assert cost.own_growth < 150 * MB


def test_thousands_of_packets_a_second_are_refused_from_the_probe(bomb, tools):
    """400,000 audio packets, 8,000 a second: no camera writes that; decoding them all costs."""
    with Cost() as cost:
        rejected = _refused(bomb("bomb_dense_mkv"), tools, number=True)
    assert rejected.code == video.BAD_FORMAT and "packets per second" in rejected.detail
    assert cost.cpu < 3 and cost.own_growth < 150 * MB


def test_a_phone_cameras_4k_is_still_accepted_and_sent_at_540p(bomb, tools):
    with Cost() as cost:
        prepared = video.prepare(bomb("uhd_4k_mp4"), keep_audio=True, require_audio=True, tools=tools)
    assert prepared.source.width == 3840 and prepared.source.height == 2160
    assert (prepared.output.width, prepared.output.height) == (960, 540)
    assert cost.cpu < 15 and cost.child_rss < CHILD_RSS_LIMIT


def test_a_remux_never_sends_a_coded_picture_over_1080p(bomb, tools):
    """Displayed 1000x1200 (plain H.264, remuxable), but coded 2000x1200: Juhe would get 1200p."""
    prepared = video.prepare(bomb("anamorphic_mp4"), keep_audio=True, require_audio=True, tools=tools)
    assert (prepared.source.width, prepared.source.height) == (1000, 1200)
    assert not prepared.remuxed
    assert (prepared.output.width, prepared.output.height) == (540, 648)


# --------------------------------------------------------------------------- limits on every child


def test_a_child_over_its_cpu_limit_is_a_clear_rejection(bomb, tools, monkeypatch):
    monkeypatch.setattr(limits, "CHILD_CPU_SECONDS", 1)  # the 4K encode needs about 3
    with pytest.raises(VideoRejected) as caught:
        video.prepare(bomb("uhd_4k_mp4"), keep_audio=False, require_audio=False, tools=tools)
    assert caught.value.code == video.BAD_FORMAT
    assert "CPU" in caught.value.detail


def test_a_child_over_its_memory_limit_is_a_clear_rejection(bomb, tools, monkeypatch):
    monkeypatch.setattr(limits, "CHILD_MEMORY", 160 * MB)  # less than ffmpeg's libraries alone
    with pytest.raises(VideoRejected) as caught:
        video.prepare(bomb("uhd_4k_mp4"), keep_audio=False, require_audio=False, tools=tools)
    assert caught.value.code == video.BAD_FORMAT
    assert "memory limit" in caught.value.detail


def _child_processes() -> list[tuple[int, str]]:
    """(pid, name) of the processes whose parent is this process, right now."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[1]) == os.getpid():
            found.append((int(entry), name))
    return found


def _children() -> int:
    """ffmpeg/ffprobe processes whose parent is this process, right now."""
    return sum(1 for _pid, name in _child_processes() if name in ("ffmpeg", "ffprobe"))


def test_a_burst_queues_for_slots_and_every_call_completes(bomb, tools):
    """Six calls at once (a guessed remux killed, one used, two inputs for the sound...):
    never more than MAX_CHILDREN children, and every answer is right."""
    calls = [("uhd_4k_mp4", False, (960, 540)), ("bomb_packets_mkv", True, (640, 480)),
             ("safari_fmp4", True, (640, 480))] * 2
    paths = {kind: bomb(kind) for kind, _, _ in calls}
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(_children())
            done.wait(0.02)

    def run(call):
        kind, number, _ = call
        return video.prepare(paths[kind], keep_audio=number, require_audio=number, tools=tools)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(calls)) as pool:
            results = list(pool.map(run, calls))
    finally:
        done.set()
        watcher.join()
    for (kind, number, size), result in zip(calls, results):
        assert (result.output.width, result.output.height) == size, kind
        assert result.output.audio_codec == ("aac" if number else None), kind
        assert result.output.duration >= 2.9, kind
    assert results[2].remuxed
    assert 1 <= max(seen) <= limits.MAX_CHILDREN


def test_waiting_for_a_slot_past_the_deadline_is_a_tool_error(bomb, tmp_path):
    workdir = tmp_path / "video-tmp"
    workdir.mkdir()
    for _ in range(limits.MAX_CHILDREN):  # as if other uploads held every slot
        assert runner._SLOTS.acquire(timeout=60)
    try:
        with pytest.raises(VideoToolError) as caught:
            video.prepare(bomb("uhd_4k_mp4"), keep_audio=False, require_audio=False,
                          tools=Tools(tmpdir=str(workdir), timeout=0.5))
    finally:
        for _ in range(limits.MAX_CHILDREN):
            runner._SLOTS.release()
    assert "budget" in caught.value.reason
    assert list(workdir.iterdir()) == []
