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
ffmpeg's own description of its input (``try_copy``): one process instead of two,
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
(ffmpeg missing, a call timed out) -- do not blame the person for those; its
``StorageFull`` when the disk under ``Tools.tmpdir`` is full (ffmpeg's exit code
and stderr say so, or a write of ours failed with ENOSPC/EDQUOT).

The package, in the order a video goes through it:

* ``pipeline``: ``prepare`` and ``probe``, the one video's path read top to bottom;
* ``inputs``: sniffing the container, the locked-down ffmpeg input (1);
* ``probing``: ffprobe's answer read into a ``ProbeInfo`` (2); ``checks``: what Juhe would reject (3);
* ``plan``: copy or encode, and the ffmpeg command line (4); ``output``: our MP4 read back (5);
* ``header`` and ``fast_copy``: the upload's header read without a process, and the copy run first;
* ``mp4``: the pure MP4 box reader; ``runner``: processes, deadlines, limits, slots;
* ``limits``: Juhe's rules and our measured limits, read from there at each call (patch them
  there); ``errors``, ``types``, ``values``: the rest.

Inside the package, a name one module imports from another has no leading underscore; a name
with one is used only in its own module.  The API for the rest of the app is ``__all__`` below
(the modules' other public names are the package's own, for its modules and its tests).
"""

from __future__ import annotations

from .errors import (
    BAD_FORMAT,
    EMPTY,
    LOW_RESOLUTION,
    NO_SOUND,
    TOO_QUIET,
    TOO_SHORT,
    StorageFull,
    VideoRejected,
    VideoToolError,
)
from .inputs import sniff_container
from .pipeline import prepare, probe
from .runner import tools_problem
from .types import PreparedVideo, ProbeInfo, Tools, static_ffmpeg

__all__ = [
    "BAD_FORMAT",
    "EMPTY",
    "LOW_RESOLUTION",
    "NO_SOUND",
    "TOO_QUIET",
    "TOO_SHORT",
    "PreparedVideo",
    "ProbeInfo",
    "StorageFull",
    "Tools",
    "VideoRejected",
    "VideoToolError",
    "prepare",
    "probe",
    "sniff_container",
    "static_ffmpeg",
    "tools_problem",
]
