"""Our video pipeline against the vendor's recommended ffmpeg command (not a test).

Run from the repository root::

    python -m bench.benchmark [--runs 5] [--dir DIR] [--corpus own,noisy] [--kinds chrome_webm,...]

Two corpora: ``own`` (the fixtures of ``tests/media.py``) and ``noisy`` (the same
uploads shot through a phone sensor in indoor light: ``bench/noisy.py``).  For each
of the four main upload kinds, and Chromium's H.264 recordings (WebM, MP4,
Matroska: the copy path; reported, not in the geometric mean), it times, in the
same run and interleaved (ours, seed, ours, seed, ...):

* **ours**: ``webapp.video.prepare`` -- the full server processing: sniff,
  ffprobe, checks, remux or encode, output verification -- in silent mode
  (``keep_audio=False, require_audio=False``, the default liveness mode), and
  separately in number mode (``keep_audio=True, require_audio=True``: AAC kept,
  loudness measured);
* **seed**: Juhe's documented command, run as documented::

    ffmpeg -y -v error -i SRC -preset veryfast -b:v 1048576 \\
        -vf format=pix_fmts=yuv420p,fps=25,scale=640:-16 DST.mp4

and reports the median of the runs, the ratio ours/seed, and their geometric
mean.  Picture quality: SSIM (ffmpeg's ``ssim`` filter, "All") of what we send
and of the seed's output, each against the source (autorotated): the source goes
through the same frame-rate filter as the file compared with it (seed: fps=25;
ours: the rate ``prepare`` chose, nothing for a copy) so frame n meets frame n,
then both are scaled to the seed output's size with the same scaler (bicubic).

Targets (issue 10), on each corpus: geometric mean of the four ratios <= 0.5;
Safari MP4 (copy) <= 0.2; our SSIM never more than 0.01 below the seed's.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from bench.noisy import make_noisy_fixture
from tests.media import BENCH_KINDS, H264_KINDS, make_fixture
from webapp import video

CORPORA = {"own": make_fixture, "noisy": make_noisy_fixture}
GEO_TARGET = 0.5
COPY_TARGET = 0.2

SEED = "ffmpeg -y -v error -i {src} -preset veryfast -b:v 1048576 -vf format=pix_fmts=yuv420p,fps=25,scale=640:-16 {dst}"


def run_seed(src: Path, dst: Path) -> float:
    argv = SEED.format(src="SRC", dst="DST").split()
    argv = [str(src) if a == "SRC" else str(dst) if a == "DST" else a for a in argv]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - started


def run_ours(src: Path, dst: Path, tools: video.Tools, *, number_mode: bool) -> tuple[float, video.PreparedVideo]:
    started = time.perf_counter()
    prepared = video.prepare(src, keep_audio=number_mode, require_audio=number_mode, tools=tools)
    elapsed = time.perf_counter() - started
    dst.write_bytes(prepared.data)
    return elapsed, prepared


def size_of(path: Path) -> tuple[int, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    width, height = out.split(",")[:2]
    return int(width), int(height)


def ssim(reference: Path, distorted: Path, width: int, height: int, timing: str) -> float:
    """Mean SSIM ("All") of ``distorted`` against ``reference``, frame by frame.

    ``timing`` is the frame-rate filter the distorted file went through
    (``"fps=25"`` for the seed, ours: ``"fps=30"`` etc., ``"null"`` for a remux):
    applying it to the source too gives the very frames the distorted file was
    made from, so frame *n* is compared with frame *n*, whatever the source's
    timestamps (Chrome's WebM is VFR with jitter; re-sampling both files to a
    common rate would pair neighbouring frames at the tick boundaries).  Both are
    then scaled to ``width``x``height`` with the same scaler (bicubic).
    """
    scale = f"scale={width}:{height}:flags=bicubic,format=yuv420p,setsar=1,setpts=N/(25*TB)"
    graph = f"[0:v]{scale}[d];[1:v]{timing},{scale}[r];[d][r]ssim=shortest=1"
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(distorted), "-i", str(reference),
         "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True, text=True, timeout=600,
    )
    match = re.search(r"SSIM .*All:([\d.]+)", proc.stderr)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"ssim failed: {proc.stderr[-500:]}")
    return float(match.group(1))


def our_timing(prepared: video.PreparedVideo) -> str:
    """The frame-rate filter ``prepare`` applied (none for a copy)."""
    if prepared.remuxed:
        return "null"
    rate = Fraction(prepared.output.fps).limit_denominator(1001)
    return f"fps={rate.numerator}/{rate.denominator}"


def bench_corpus(corpus: str, kinds: list[str], fixtures: Path, work: Path, runs: int,
                 tools: video.Tools) -> tuple[list[tuple], list[tuple]]:
    """Time and compare every kind of one corpus; (silent-mode rows, number-mode rows)."""
    make = CORPORA[corpus]
    rows, rows_number = [], []
    for kind in kinds:
        src = make(kind, fixtures / corpus)
        ours_t, number_t, seed_t = [], [], []
        ours_out, number_out, seed_out = (work / f"{corpus}-{kind}-{x}.mp4" for x in ("ours", "number", "seed"))
        # one warm-up of each (page cache, first-run effects), then interleaved runs
        run_ours(src, ours_out, tools, number_mode=False)
        run_seed(src, seed_out)
        prepared = None
        for _ in range(runs):
            elapsed, prepared = run_ours(src, ours_out, tools, number_mode=False)
            ours_t.append(elapsed)
            seed_t.append(run_seed(src, seed_out))
            elapsed, _ = run_ours(src, number_out, tools, number_mode=True)
            number_t.append(elapsed)
        width, height = size_of(seed_out)
        ours_s, seed_s, number_s = (statistics.median(x) for x in (ours_t, seed_t, number_t))
        ssim_ours = ssim(src, ours_out, width, height, our_timing(prepared))
        ssim_seed = ssim(src, seed_out, width, height, "fps=25")
        out = prepared.output
        rows.append((kind, ours_s, seed_s, ours_s / seed_s, ssim_ours, ssim_seed,
                     f"{out.width}x{out.height}", "copy" if prepared.remuxed else "encode",
                     f"{width}x{height}", out.size_bytes, seed_out.stat().st_size, src.stat().st_size))
        rows_number.append((kind, number_s, seed_s, number_s / seed_s))
        print(f"  {corpus} {kind}: ours {ours_s:.3f}s seed {seed_s:.3f}s", file=sys.stderr)
    return rows, rows_number


def geomean(rows: list[tuple], column: int = 3) -> float:
    main = [r for r in rows if r[0] in BENCH_KINDS]
    return math.exp(statistics.fmean(math.log(r[column]) for r in main)) if main else float("nan")


def report(corpus: str, rows: list[tuple], rows_number: list[tuple], runs: int) -> list[str]:
    """Print one corpus's tables; return what misses a target."""
    print(f"\n## Corpus `{corpus}`: silent mode (no audio sent), median of {runs} interleaved runs\n")
    print("| kind | upload bytes | ours s | seed s | ratio | SSIM ours | SSIM seed | ours size | how "
          "| seed size | ours bytes | seed bytes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r[0]} | {r[11]:,} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.2f} | {r[4]:.4f} | {r[5]:.4f} | {r[6]} "
              f"| {r[7]} | {r[8]} | {r[9]:,} | {r[10]:,} |")
    geo = geomean(rows)
    print(f"\ngeometric mean of the ratios over {', '.join(BENCH_KINDS)}: {geo:.3f} (target <= {GEO_TARGET})")
    print(f"\n## Corpus `{corpus}`: number mode (sound kept as AAC, loudness checked), same seed runs\n")
    print("| kind | ours s | seed s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows_number:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.2f} |")
    print(f"\ngeometric mean of the ratios: {geomean(rows_number):.3f}")

    failures = []
    if geo > GEO_TARGET:
        failures.append(f"{corpus}: geometric mean {geo:.3f} > {GEO_TARGET}")
    for r in rows:
        if r[0] == "safari_fmp4" and (r[7] != "copy" or r[3] > COPY_TARGET):
            failures.append(f"{corpus}: {r[0]} {r[7]} ratio {r[3]:.2f} > {COPY_TARGET}")
        if r[0] in H264_KINDS and r[7] != "copy":
            failures.append(f"{corpus}: {r[0]} was re-encoded, not copied")
        if r[4] < r[5] - 0.01:
            failures.append(f"{corpus}: {r[0]} SSIM {r[4]:.4f} more than 0.01 below seed {r[5]:.4f}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="fixture cache directory (default: a temp dir)")
    parser.add_argument("--corpus", default=",".join(CORPORA), help="own, noisy, or both (comma-separated)")
    parser.add_argument("--kinds", default=",".join(BENCH_KINDS + H264_KINDS))
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    corpora = [c for c in args.corpus.split(",") if c]

    failures = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        fixtures = args.dir or work / "fixtures"
        tools = video.Tools(timeout=600)
        problem = video.tools_problem(tools)
        if problem:
            print(f"cannot run: {problem}", file=sys.stderr)
            return 2
        results = {corpus: bench_corpus(corpus, kinds, fixtures, work, args.runs, tools) for corpus in corpora}
    for corpus, (rows, rows_number) in results.items():
        failures += report(corpus, rows, rows_number, args.runs)
    print("\ntargets: " + ("met" if not failures else "NOT met: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
