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
    # The image runs the README's serve command: nginx in front of gunicorn with the repo's config.
    assert re.search(r'^CMD \["bash", "scripts/serve.sh"\]', docker, re.M)
    assert re.search(r"^COPY deploy ", docker, re.M) and re.search(r"^COPY scripts ", docker, re.M)
    assert "INSTANCE_PATH=/data" in docker and "BIND=0.0.0.0:8000" in docker
    serve = (ROOT / "scripts" / "serve.sh").read_text()
    assert "bash scripts/setup.sh" in serve and "gunicorn -c gunicorn.conf.py wsgi:app" in serve
    assert "deploy/nginx_conf.py" in serve and (ROOT / "deploy" / "nginx.conf").exists()
    # setup.sh (run by the image as by the README) installs the proxy.
    assert "missing+=(nginx)" in (ROOT / "scripts" / "setup.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/serve.sh" in readme and "bash scripts/test.sh" in readme
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_shell_scripts_parse():
    for script in ("scripts/setup.sh", "scripts/serve.sh", "scripts/test.sh", ".ci/run"):
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_gunicorn_timeout_outlasts_ffmpeg_and_juhe(monkeypatch):
    from webapp.settings import Settings
    monkeypatch.setattr(os, "environ", dict(os.environ))  # the config sets PROMETHEUS_MULTIPROC_DIR
    namespace: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), namespace)
    defaults = Settings.model_fields
    assert namespace["worker_class"] == "gthread"
    assert namespace["timeout"] > defaults["FFMPEG_TIMEOUT"].default + defaults["JUHE_READ_TIMEOUT"].default


def test_setup_skips_python_packages_when_nothing_changed(tmp_path):
    """A second set-up with the same pyproject.toml installs nothing (the stamp in .venv)."""
    stamp = ROOT / ".venv" / ".installed"
    subprocess.run(["bash", "scripts/setup.sh", "test"], cwd=ROOT, check=True, timeout=900)
    before = stamp.stat().st_mtime_ns
    started = time.monotonic()
    subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, check=True, timeout=120)
    assert stamp.stat().st_mtime_ns == before and time.monotonic() - started < 30


def test_nginx_conf_renders_from_the_settings(tmp_path, monkeypatch):
    """deploy/nginx.conf as serve.sh renders it: body limit from MAX_UPLOAD_MB, a read timeout
    past gunicorn's, whole bodies buffered, forwarded headers set by nginx, paths in the run
    folder; and `nginx -t` accepts it."""
    import importlib.util
    import shutil
    spec = importlib.util.spec_from_file_location("nginx_conf", ROOT / "deploy" / "nginx_conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.chdir(tmp_path)   # no .env here
    monkeypatch.setenv("MAX_UPLOAD_MB", "7")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "100")
    run = tmp_path / "run"
    run.mkdir()
    text = module.render("127.0.0.1:8123", f"unix:{run}/g.sock", str(run))
    assert "client_max_body_size 8m;" in text and "proxy_read_timeout 130s;" in text
    assert "proxy_request_buffering on;" in text and "client_body_timeout 15s;" in text
    # No one address takes every connection (tests/test_flood.py): a cap and a rate per address,
    # counted by the connecting address unless PROXY_ADDRESSES names proxies in front.
    assert "limit_conn per_address 64;" in text and "limit_conn_status 429;" in text
    assert "worker_connections 4096;" in text or os.geteuid() != 0
    assert "set_real_ip_from" not in text
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text and "X-Forwarded-Proto $scheme" in text
    assert f'client_body_temp_path "{run}/body";' in text and f'pid "{run}/nginx.pid";' in text
    assert '"127.0.0.1:8123"' in text and not re.search(r"^[^#\n]*@[A-Z_]+@", text, re.M)
    monkeypatch.setenv("PROXY_ADDRESSES", "10.0.0.7, 192.168.0.0/16")
    behind = module.render("127.0.0.1:8123", f"unix:{run}/g.sock", str(run))
    assert "set_real_ip_from 10.0.0.7/32;" in behind and "set_real_ip_from 192.168.0.0/16;" in behind
    assert "real_ip_header X-Forwarded-For;" in behind
    assert module.proxy_hops() == 1
    monkeypatch.setenv("PROXY_HOPS", "2")
    assert module.proxy_hops() == 2
    nginx = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if nginx:
        for conf in (text, behind):
            (run / "nginx.conf").write_text(conf)
            subprocess.run([nginx, "-t", "-q", "-p", str(run), "-c", str(run / "nginx.conf"), "-e", "stderr"],
                           check=True)


def test_nginx_file_limits_fit_the_user(monkeypatch):
    """4096 connections per worker and twice as many descriptors; a user who is not root gets what
    the hard limit allows (root's workers raise their own)."""
    import importlib.util
    import resource
    spec = importlib.util.spec_from_file_location("nginx_conf", ROOT / "deploy" / "nginx_conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
    assert module.file_limits() == (4096, 8192)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert module.file_limits() == (512, 1024)
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, resource.RLIM_INFINITY))
    assert module.file_limits() == (4096, 8192)
