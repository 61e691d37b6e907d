"""A full upload folder (issue 19): a small real disk (a tmpfs mounted for the test) as UPLOAD_DIR,
filled to a chosen free space, and real videos uploaded into it.

Wherever the disk fills on the upload path (the request body spooled, the upload saved for
ffmpeg, ffmpeg's copy or encode written), the page gets a JSON 503 `storage_full` with words
for the person and a Retry-After, the operator API a 503 in the same shape with its own words; no attempt is used
or left in flight, nothing is sent to Juhe, and nothing half-written stays on the disk.
/readyz answers 503 (naming the free space) while the folder is below UPLOAD_MIN_FREE_MB, and
/metrics gives the folder's free bytes. Once space returns, uploads work again.

Mounting needs root, as the CI runs (tests/conftest.py fails a skip; so does this).
"""
from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pytest

from webapp.video import StorageFull
from webapp.video.runner import check_storage

from .conftest import AUTH, OPERATOR_KEY, STANDIN_KEY, create_session, idcard, rows
from .servers import Gunicorn, request

DISK_MB = 32
FLOOR_MB = 4
KB = 1024


class Disk:
    """A tmpfs of DISK_MB at `root`: `leave(n)` fills it until n bytes are free, `release()` empties
    the filler again."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / "filler"
        self.uploads = root / "uploads"

    def free(self) -> int:
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize

    def leave(self, free: int) -> None:
        self.release()
        size = self.free() - free
        assert size > 0, f"the disk has only {self.free()} bytes free"
        fd = os.open(self.filler, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
        assert abs(self.free() - free) <= 8 * KB, (self.free(), free)

    def release(self) -> None:
        self.filler.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.uploads.iterdir())

    def stray(self) -> int:
        """Bytes in use on the disk beside the filler: what an upload left behind (unnamed
        spooled files included, which no folder listing shows)."""
        stat = os.statvfs(self.root)
        used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
        return used - (self.filler.stat().st_blocks * 512 if self.filler.exists() else 0)

    def fill_once_ffmpeg_starts(self, monkeypatch, free: int) -> None:
        """Leave `free` bytes when the first upload reaches ffmpeg (other uploads filled the
        disk meanwhile: the upload's own copy fits, ffmpeg's output does not)."""
        from webapp import video
        real, filled = video.prepare, []

        def prepare(path, **kwargs):
            if not filled:
                filled.append(True)
                self.leave(free)
            return real(path, **kwargs)
        monkeypatch.setattr(video, "prepare", prepare)


@pytest.fixture
def disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(root)],
                             capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, f"these tests mount a tmpfs, as root (CI runs as root): {mounted.stderr}"
    try:
        yield Disk(root)
    finally:
        if subprocess.run(["umount", str(root)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(root)], check=False)


@pytest.fixture
def full_app(make_app, disk):
    """The app with its upload folder on the small disk."""
    return make_app(UPLOAD_DIR=str(disk.uploads), UPLOAD_MIN_FREE_MB=FLOOR_MB)


def _fill(disk: Disk, monkeypatch, stage: str, size: int) -> None:
    """Fill the disk so that an upload of `size` bytes gets as far as `stage` and fails there."""
    if stage == "spool":
        disk.leave(size // 3)                 # the request body itself does not fit
    elif stage == "save":
        disk.leave(size + 256 * KB)           # the body fits; its copy for ffmpeg does not
    else:
        disk.fill_once_ffmpeg_starts(monkeypatch, 64 * KB)  # ffmpeg's output (copy or encode) does not


def _assert_storage_full_page(response) -> None:
    assert response.status_code == 503, response.data[:300]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "storage_full"
    assert error["message"] and "几分钟" in error["message_zh"] and "不计" in error["message_zh"]
    assert int(response.headers["Retry-After"]) > 0


def _assert_nothing_counted(person, database_url, juhe, disk) -> None:
    state = person.state()
    assert state["attempts_left"] == 3 and not state["in_flight"] and state["last"] is None
    assert rows(database_url, "select count(*) from attempts") == [(0,)]
    assert juhe.requests == []
    assert disk.leftovers() == [] and disk.stray() == 0


@pytest.mark.parametrize(("kind", "stage"), [
    ("chrome_webm", "spool"), ("chrome_webm", "save"),
    ("chrome_webm", "ffmpeg"),        # VP9: probed, then encoded
    ("chrome_h264_webm", "ffmpeg"),   # H.264: the copy that runs first
])
def test_a_full_disk_is_a_json_503_for_the_page_and_nothing_is_counted(full_app, disk, juhe, database_url,
                                                                       new_session, media, monkeypatch,
                                                                       kind, stage):
    video = media(kind)
    _session, person = new_session(mode="number")
    _fill(disk, monkeypatch, stage, video.stat().st_size)
    _assert_storage_full_page(person.upload(video))
    _assert_nothing_counted(person, database_url, juhe, disk)

    disk.release()
    response = person.upload(video)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outcome"]["result"] == "passed"
    assert disk.leftovers() == []


@pytest.fixture
def new_session(full_app):
    client = full_app.test_client()
    return lambda **body: create_session(client, **body)


@pytest.mark.parametrize("stage", ["spool", "save", "ffmpeg"])
def test_a_full_disk_is_a_503_in_the_api_format_and_nothing_is_counted(full_app, disk, juhe, database_url,
                                                                       media, monkeypatch, stage):
    client = full_app.test_client()
    created = client.post("/api/v1/sessions", json={"realname": "张三", "idcard": idcard(7), "mode": "silent"},
                          headers=AUTH).get_json()
    path = f"/api/v1/sessions/{created['id']}"
    video = media("chrome_webm")

    def submit():
        challenge = client.post(f"{path}/challenge", headers=AUTH).get_json()["challenge"]["id"]
        with open(video, "rb") as fh:
            return client.post(f"{path}/video", headers=AUTH, content_type="multipart/form-data",
                               data={"challenge": challenge, "video": (fh, video.name)})

    _fill(disk, monkeypatch, stage, video.stat().st_size)
    response = submit()
    assert response.status_code == 503, response.data[:300]
    assert response.get_json()["error"]["code"] == "storage_full"
    error = response.get_json()["error"]
    assert "Retry-After" in response.headers and "try again" in error["message"]
    assert "存储空间已满" in error["message_zh"] and "存储" not in error["message"]   # apart, not joined
    session = client.get(path, headers=AUTH).get_json()
    assert session["attempts_left"] == 3 and session["attempts"] == [] and session["status"] == "pending"
    assert rows(database_url, "select count(*) from attempts") == [(0,)]
    assert juhe.requests == [] and disk.leftovers() == [] and disk.stray() == 0

    disk.release()
    response = submit()
    assert response.status_code == 200 and response.get_json()["outcome"]["result"] == "passed"


def _gauge(text: str, name: str = "liveness_upload_free_bytes") -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


def test_readyz_is_503_below_the_floor_and_metrics_give_the_free_space(full_app, disk):
    client = full_app.test_client()
    assert client.get("/readyz").status_code == 200
    free = _gauge(client.get("/metrics", headers=AUTH).get_data(as_text=True))
    assert abs(free - disk.free()) < 64 * KB

    disk.leave(FLOOR_MB * 1024 * KB // 2)
    response = client.get("/readyz")
    assert response.status_code == 503
    reason = response.get_json()["reason"]
    assert "free" in reason and "upload" in reason
    metrics = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert abs(_gauge(metrics) - disk.free()) < 64 * KB
    assert _gauge(metrics, "liveness_upload_min_free_bytes") == FLOOR_MB * 1024 * KB

    disk.release()
    assert client.get("/readyz").status_code == 200


@pytest.mark.sqlite_only
def test_readyz_is_503_when_the_sqlite_database_folder_is_full(make_app, disk, tmp_path):
    (disk.root / "db").mkdir()
    app = make_app(DATABASE_URL=f"sqlite:///{disk.root / 'db' / 'test.sqlite3'}",
                   UPLOAD_DIR=str(tmp_path / "uploads"), UPLOAD_MIN_FREE_MB=FLOOR_MB)
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    disk.leave(KB * KB)
    response = client.get("/readyz")
    assert response.status_code == 503 and "database" in response.get_json()["reason"]
    disk.release()
    assert client.get("/readyz").status_code == 200


@pytest.mark.service
def test_gunicorn_answers_a_full_disk_with_json_and_is_not_ready(tmp_path, disk, standin, database_url, media):
    """The deployed path: gunicorn's workers spool a body from a real socket, metrics are
    multiprocess (PROMETHEUS_MULTIPROC_DIR), exceptions are not propagated as in tests."""
    standin.script.clear()
    standin.requests.clear()
    env = {"JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": standin.url, "SECRET_KEY": "full-disk-secret-0123456789",
           "OPERATOR_API_KEYS": OPERATOR_KEY, "DATABASE_URL": database_url, "UPLOAD_DIR": str(disk.uploads),
           "UPLOAD_MIN_FREE_MB": str(FLOOR_MB), "GUNICORN_THREADS": "4"}
    web = Gunicorn(tmp_path / "instance", env, workers=2).start()
    try:
        created = request("POST", web.url + "/api/v1/sessions", headers=AUTH,
                          json_body={"realname": "张三", "idcard": idcard(9), "mode": "number"}).json()
        page = "/" + created["url"].split("://", 1)[1].split("/", 1)[1]
        video = media("android_1080p_mp4")  # 8.7 MB: the body is still arriving when the disk fills

        def upload():
            challenge = request("POST", web.url + page + "/challenge").json()["challenge"]["id"]
            return request("POST", web.url + page + "/upload",
                           fields={"challenge": challenge, "video": (video.name, video.read_bytes(), "video/mp4")})

        for free in (KB * KB, video.stat().st_size + 512 * KB):  # the body, then the saved copy
            disk.leave(free)
            reply = upload()
            assert reply.status == 503, reply.body[:300]
            assert reply.headers["Content-Type"] == "application/json"
            assert reply.json()["error"]["code"] == "storage_full" and reply.json()["error"]["message_zh"]
            assert int(reply.headers["Retry-After"]) > 0
            assert disk.leftovers() == [] and disk.stray() == 0

        disk.leave(FLOOR_MB * 1024 * KB // 2)
        ready = request("GET", web.url + "/readyz")
        assert ready.status == 503 and "free" in ready.json()["reason"]
        metrics = request("GET", web.url + "/metrics", headers=AUTH).body.decode()
        assert abs(_gauge(metrics) - disk.free()) < 64 * KB
        state = request("GET", web.url + page + "/state").json()
        assert state["attempts_left"] == 3 and state["last"] is None
        assert standin.requests == []

        disk.release()
        assert request("GET", web.url + "/readyz").status == 200
        reply = upload()
        assert reply.status == 200 and reply.json()["outcome"]["result"] == "passed"
    finally:
        web.stop()


# -- without a disk of their own (the fast tier) ---------------------------------------------------
class _FailingSpool(io.BytesIO):
    def __init__(self, code: int):
        super().__init__()
        self.code = code

    def write(self, data, /) -> int:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_quota_spent_is_a_full_disk_too_and_other_errors_stay_errors(client, monkeypatch, code):
    from webapp import uploads
    _session, person = create_session(client)
    challenge = person.challenge()["id"]
    monkeypatch.setattr(uploads, "spool_file", lambda folder: _FailingSpool(code))
    data = {"challenge": challenge, "video": (io.BytesIO(b"\0" * 100_000), "v.webm")}
    _assert_storage_full_page(client.post(f"{person.path}/upload", data=data, content_type="multipart/form-data"))
    assert person.state()["attempts_left"] == 3

    monkeypatch.setattr(uploads, "spool_file", lambda folder: _FailingSpool(errno.EIO))
    data = {"challenge": challenge, "video": (io.BytesIO(b"\0" * 100_000), "v.webm")}
    with pytest.raises(OSError, match="Input/output error"):  # a 500, as before (tests propagate it)
        client.post(f"{person.path}/upload", data=data, content_type="multipart/form-data")


def test_ffmpeg_out_of_space_is_told_by_its_exit_code_or_its_words():
    for stderr, code in (("", 228), ("", 134), ("[out#0/mp4] Error writing trailer: No space left on device", 1),
                         ("av_interleaved_write_frame(): Disk quota exceeded", 1)):
        with pytest.raises(StorageFull):
            check_storage(stderr, code, "normalise")
    check_storage("Invalid data found when processing input", 1, "normalise")  # the upload's fault
    check_storage("", 255, "normalise")
