"""Juhe's input rules and the limits we measured, in one place.

The other modules read them as ``limits.NAME`` when they run (never a copy taken at import),
so patching one here (``monkeypatch.setattr(limits, "MAX_BYTES", ...)``) changes every use.
Two exceptions are taken at import: ``MAX_CHILDREN`` sizes ``runner._SLOTS``, and
``X264_CRF``/``VIDEO_MAXRATE`` are ``plan.Plan``'s defaults.
"""

from __future__ import annotations

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
