"""A noisier corpus for the benchmark: the project's upload kinds shot by a phone in indoor light.

``make_noisy_fixture(kind, directory)`` builds the same file as ``tests.media.make_fixture``
(same container, codecs, sizes, rotation, metadata, bitrates) from the same moving crop of
the same scene, but each frame also gets what a small sensor adds under a ceiling lamp:
temporal luma and chroma noise (different in every frame, so no encoder can predict it), a
slightly darker, flatter picture, and a faint 50 Hz-mains brightness flicker. Encoders pay
for every bit of that noise, so this corpus is the harder one to be fast on, and nobody
tuned the server to it.

Run alone to write the corpus to a directory::

    python -m bench.noisy DIR [KIND ...]
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from tests import media

# Sensor noise: ffmpeg's `noise` filter, temporal (t) and uniform (u), a little stronger in
# luma than in chroma; then indoor exposure (darker, less contrast) with a slow flicker.
NOISE = (
    ",noise=c0s=14:c0f=t+u:c1s=8:c1f=t+u:c2s=8:c2f=t+u"
    ",eq=brightness=-0.04:contrast=0.9:saturation=0.9"
    ",eq=brightness='0.012*sin(2*PI*t*1.3)':eval=frame"
)

_LOCK = threading.Lock()  # the swap below is process-wide


def make_noisy_fixture(kind: str, directory: Path) -> Path:
    """Create (or reuse) the noisy version of upload ``kind`` in ``directory``."""
    directory = Path(directory)
    with _LOCK:
        camera = media._camera

        def noisy_camera(*args, **kwargs):
            inputs, vf = camera(*args, **kwargs)
            return inputs, vf + NOISE

        media._camera = noisy_camera  # every maker films through _camera: add the sensor to it
        try:
            return media.make_fixture(kind, directory)
        finally:
            media._camera = camera


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for name in sys.argv[2:] or media.BENCH_KINDS:
        print(make_noisy_fixture(name, target))
