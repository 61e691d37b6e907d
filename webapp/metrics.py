"""Prometheus metrics: what the service did, never who it did it for.

Counters and histograms live in this process; under gunicorn (PROMETHEUS_MULTIPROC_DIR set, as
scripts/serve.sh and the image do) every worker writes its own files and `/metrics` adds them
up (prometheus-client's multiprocess mode). Labels are closed sets (modes, guidance keys,
charge, delivery results), so no label can carry an ID number, a name or a URL.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

_SECONDS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)

VERIFICATIONS = Counter("liveness_verifications_total",
                        "Uploads run through the path, by outcome (guidance key; rejected ones too) and mode",
                        ["outcome", "mode"])
JUHE_CALLS = Counter("liveness_juhe_calls_total", "Requests sent to Juhe, by charge: true, false or unknown",
                     ["charged"])
FFMPEG_SECONDS = Histogram("liveness_ffmpeg_seconds", "Probe, checks and normalisation of one upload",
                           buckets=_SECONDS)
JUHE_SECONDS = Histogram("liveness_juhe_seconds", "One request to Juhe, from sending to its answer",
                         buckets=_SECONDS)
ATTEMPTS_IN_FLIGHT = Gauge("liveness_attempts_in_flight", "Uploads being prepared or waiting for Juhe (the queue)",
                  multiprocess_mode="livesum")
PAGE_CHECKS = Counter("liveness_page_checks_total",
                      "Answers from Juhe, by the capture page's own check of the recording (passed; missed: "
                      "sent anyway; not_measured; none: no check came) and Juhe's outcome (passed or failed)",
                      ["page", "juhe"])
PAGE_EVENTS = Counter("liveness_page_events_total",
                      "Milestones the capture pages reported (webapp.page_events), by event", ["event"])
WEBHOOKS = Counter("liveness_webhook_deliveries_total",
                   "Webhook tries, by result: delivered, retry, failed (gave up) or refused (target)",
                   ["result"])


def charge_label(charged: bool | None) -> str:
    return "unknown" if charged is None else str(charged).lower()


class _Queue:
    """Attempts waiting for a Celery worker, read from the database when scraped."""

    def __init__(self, count: Callable[[], int]):
        self.count = count

    def collect(self):
        yield GaugeMetricFamily("liveness_attempts_queued", "Attempts waiting for a Celery worker",
                                value=self.count())


class _UploadSpace:
    """The upload folder's free space and its floor (UPLOAD_MIN_FREE_MB), read when scraped:
    the same for every worker of a machine, so outside the multiprocess files."""

    def __init__(self, folder: Path, min_free_mb: int):
        self.folder, self.min_free_mb = folder, min_free_mb

    def collect(self):
        try:
            stat = os.statvfs(self.folder)
        except OSError:
            return
        yield GaugeMetricFamily("liveness_upload_free_bytes",
                                "Free space of the upload folder's filesystem (bytes)",
                                value=stat.f_bavail * stat.f_frsize)
        yield GaugeMetricFamily("liveness_upload_min_free_bytes",
                                "Below this free space /readyz answers 503 (UPLOAD_MIN_FREE_MB)",
                                value=self.min_free_mb * 1024 * 1024)


def registry() -> CollectorRegistry:
    """Where the counts are read, the one place that chooses: every worker's files in multiprocess
    mode (PROMETHEUS_MULTIPROC_DIR, which stays an environment variable: prometheus-client reads
    it when imported, to choose how this process keeps its values), else this process's own."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return REGISTRY
    workers = CollectorRegistry()
    multiprocess.MultiProcessCollector(workers, path=folder)
    return workers


def exposition(queued: Callable[[], int] | None = None,
               uploads: tuple[Path, int] | None = None) -> tuple[bytes, str]:
    """The metrics page: this process's, or every worker's in multiprocess mode; with
    `queued`, the queue's depth too; with `uploads` (folder, UPLOAD_MIN_FREE_MB), its free space."""
    body = generate_latest(registry())
    if queued is not None or uploads is not None:
        extra = CollectorRegistry()
        if queued is not None:
            extra.register(_Queue(queued))
        if uploads is not None:
            extra.register(_UploadSpace(*uploads))
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
