"""What ships: gunicorn with the repo's config serves the app; the image uses the same steps."""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_with_the_repo_config_serves_a_ready_sandbox(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUHE_", "OPERATOR_"))}
    env.update(BIND=f"127.0.0.1:{port}", INSTANCE_PATH=str(tmp_path / "instance"), WEB_CONCURRENCY="2")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.3)
        assert '"ready"' in body and '"sandbox":true' in body.replace(" ", "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert "沙箱" in r.read().decode()
        assert (tmp_path / "instance" / "secret_key").exists()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert "gthread" in output


def test_readyz_fails_while_ffmpeg_is_missing(make_app):
    client = make_app(FFMPEG_BINARY="/nonexistent/ffmpeg").test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and "ffmpeg" in response.get_json()["reason"]
    assert client.get("/healthz").status_code == 200


def test_dockerfile_follows_the_readme_install_and_serve_steps():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    assert "bash scripts/setup.sh" in docker
    assert re.search(r"^USER (?!root)\w+", docker, re.M)
    assert re.search(r"HEALTHCHECK .*\n?.*readyz", docker)
    assert '"gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"' in docker
    serve = (ROOT / "scripts" / "serve.sh").read_text()
    assert "bash scripts/setup.sh" in serve and "gunicorn -c gunicorn.conf.py wsgi:app" in serve
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/serve.sh" in readme and "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_shell_scripts_parse():
    for script in ("scripts/setup.sh", "scripts/serve.sh", "scripts/test.sh", ".ci/run"):
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_gunicorn_timeout_outlasts_ffmpeg_and_juhe():
    from webapp.settings import Settings
    namespace: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), namespace)
    defaults = Settings.model_fields
    assert namespace["worker_class"] == "gthread"
    assert namespace["timeout"] > defaults["FFMPEG_TIMEOUT"].default + defaults["JUHE_READ_TIMEOUT"].default
