"""Our video pipeline against the vendor's recommended ffmpeg command (not a test).

Run from the repository root::

    python -m bench.benchmark [--runs 5] [--dir DIR] [--kinds chrome_webm,safari_fmp4,...]

For each of the four main upload kinds (fixtures from ``tests/media.py``) it
times, in the same run and interleaved (ours, seed, ours, seed, ...):

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
ours: the rate ``prepare`` chose, nothing for a remux) so frame n meets frame n,
then both are scaled to the seed output's size with the same scaler (bicubic).

Targets: geometric mean of ratios <= 0.6; Safari (remux) <= 0.25; our SSIM never
more than 0.01 below the seed's.
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

from tests.media import BENCH_KINDS, make_fixture
from webapp import video

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
    """The frame-rate filter ``prepare`` applied (none for a remux)."""
    if prepared.remuxed:
        return "null"
    rate = Fraction(prepared.output.fps).limit_denominator(1001)
    return f"fps={rate.numerator}/{rate.denominator}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="fixture cache directory (default: a temp dir)")
    parser.add_argument("--kinds", default=",".join(BENCH_KINDS))
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        fixtures = args.dir or work / "fixtures"
        tools = video.Tools(timeout=600)
        problem = video.tools_problem(tools)
        if problem:
            print(f"cannot run: {problem}", file=sys.stderr)
            return 2
        rows, rows_number = [], []
        for kind in kinds:
            src = make_fixture(kind, fixtures)
            ours_t, number_t, seed_t = [], [], []
            ours_out, number_out, seed_out = work / f"{kind}-ours.mp4", work / f"{kind}-number.mp4", work / f"{kind}-seed.mp4"
            # one warm-up of each (page cache, first-run effects), then interleaved runs
            run_ours(src, ours_out, tools, number_mode=False)
            run_seed(src, seed_out)
            prepared = None
            for _ in range(args.runs):
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
                         f"{out.width}x{out.height}", "remux" if prepared.remuxed else "encode",
                         f"{width}x{height}", out.size_bytes, seed_out.stat().st_size))
            rows_number.append((kind, number_s, seed_s, number_s / seed_s))
            print(f"  {kind}: ours {ours_s:.3f}s seed {seed_s:.3f}s", file=sys.stderr)

    print(f"\nSilent mode (no audio sent), median of {args.runs} interleaved runs:\n")
    print("| kind | ours s | seed s | ratio | SSIM ours | SSIM seed | ours size | how | seed size | ours bytes | seed bytes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.2f} | {r[4]:.4f} | {r[5]:.4f} | {r[6]} | {r[7]} | {r[8]} "
              f"| {r[9]:,} | {r[10]:,} |")
    geo = math.exp(statistics.fmean(math.log(r[3]) for r in rows))
    print(f"\ngeometric mean of ratios: {geo:.3f} (target <= 0.6)")
    geo_n = math.exp(statistics.fmean(math.log(r[3]) for r in rows_number))
    print("\nNumber mode (AAC kept, loudness checked), same seed runs:\n")
    print("| kind | ours s | seed s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows_number:
        print(f"| {r[0]} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.2f} |")
    print(f"\ngeometric mean of ratios: {geo_n:.3f}")

    failures = []
    if geo > 0.6:
        failures.append(f"geometric mean {geo:.3f} > 0.6")
    for r in rows:
        if r[7] == "remux" and r[3] > 0.25:
            failures.append(f"{r[0]} remux ratio {r[3]:.2f} > 0.25")
        if r[4] < r[5] - 0.01:
            failures.append(f"{r[0]} SSIM {r[4]:.4f} more than 0.01 below seed {r[5]:.4f}")
    print("\ntargets: " + ("met" if not failures else "NOT met: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
