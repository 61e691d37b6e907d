"""Settings come from the environment, typed, and a bad deployment fails at start."""
import pytest

from webapp.settings import ConfigurationError, load_settings

CONTRACT_VARS = ("JUHE_KEY", "JUHE_API_URL", "SECRET_KEY", "DATABASE_URL", "OPERATOR_API_KEYS",
                 "EMBED_ORIGINS", "PASS_SCORE", "LIVENESS_MODE", "MAX_ATTEMPTS", "SESSION_TTL",
                 "STANDALONE", "WEBHOOK_SECRET", "PUBLIC_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in CONTRACT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_contracts_and_sandbox_without_a_key(tmp_path):
    s = load_settings(tmp_path / "instance")
    assert s.sandbox and s.standalone
    assert s.JUHE_API_URL == "https://apis.juhe.cn/antiFaceId/query"
    assert (s.PASS_SCORE, s.LIVENESS_MODE, s.MAX_ATTEMPTS, s.SESSION_TTL) == (70, "number", 3, 900)
    assert s.operator_keys == ("sandbox-operator-key",)
    assert s.EMBED_ORIGINS == ()


def test_sandbox_secret_is_made_once_and_kept(tmp_path):
    first = load_settings(tmp_path / "instance").SECRET_KEY
    assert first and first == load_settings(tmp_path / "instance").SECRET_KEY


def test_environment_values_are_parsed(monkeypatch, tmp_path):
    monkeypatch.setenv("JUHE_KEY", "k" * 32)
    monkeypatch.setenv("SECRET_KEY", "s" * 32)
    monkeypatch.setenv("OPERATOR_API_KEYS", " a-key , b-key ,")
    monkeypatch.setenv("EMBED_ORIGINS", "https://Bank.example  http://localhost:3000/")
    monkeypatch.setenv("PASS_SCORE", "80")
    monkeypatch.setenv("LIVENESS_MODE", "Random")
    s = load_settings(tmp_path)
    assert not s.sandbox and not s.standalone
    assert s.operator_keys == ("a-key", "b-key")
    assert s.EMBED_ORIGINS == ("https://bank.example", "http://localhost:3000")
    assert s.PASS_SCORE == 80 and s.LIVENESS_MODE == "random"


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("MAX_ATTEMPTS=5\nLIVENESS_MODE=action\n")
    s = load_settings(tmp_path / "instance")
    assert s.MAX_ATTEMPTS == 5 and s.LIVENESS_MODE == "action"


@pytest.mark.parametrize("env, names", [
    ({"JUHE_KEY": "live-key"}, "SECRET_KEY"),
    ({"PASS_SCORE": "120"}, "PASS_SCORE"),
    ({"LIVENESS_MODE": "dance"}, "LIVENESS_MODE"),
    ({"MAX_ATTEMPTS": "many"}, "MAX_ATTEMPTS"),
    ({"EMBED_ORIGINS": "https://bank.example/path"}, "EMBED_ORIGINS"),
    ({"JUHE_API_URL": "ftp://x"}, "JUHE_API_URL"),
    ({"STANDALONE": "perhaps"}, "STANDALONE"),
    ({"CELERY_VISIBILITY_SECONDS": "soon"}, "CELERY_VISIBILITY_SECONDS"),
    ({"CELERY_VISIBILITY_SECONDS": "0"}, "CELERY_VISIBILITY_SECONDS"),
    ({"GUNICORN_THREADS": "eight"}, "GUNICORN_THREADS"),
    ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS"),
])
def test_bad_configuration_fails_at_start_naming_the_variable(monkeypatch, tmp_path, env, names):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=names):
        load_settings(tmp_path)


def test_env_example_copied_as_dotenv_gives_a_sandbox(tmp_path, monkeypatch):
    """The README's first step: `cp .env.example .env` (blank values mean unset, bools too)."""
    import shutil
    from pathlib import Path
    shutil.copy(Path(__file__).resolve().parent.parent / ".env.example", tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(tmp_path / "instance")
    assert settings.sandbox and settings.standalone and settings.webhook_allow_private


def test_ffmpeg_defaults_to_the_static_build_that_runs(monkeypatch, tmp_path):
    import subprocess

    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    chosen = load_settings(tmp_path).FFMPEG_BINARY
    assert "imageio_ffmpeg" in chosen   # the package is a dependency: the static build is used
    shown = subprocess.run([chosen, "-hide_banner", "-version"], capture_output=True, text=True, check=True)
    assert shown.stdout.startswith("ffmpeg version")
    monkeypatch.setenv("FFMPEG_BINARY", "/usr/bin/ffmpeg")   # an explicit path wins
    assert load_settings(tmp_path).FFMPEG_BINARY == "/usr/bin/ffmpeg"
    monkeypatch.setenv("FFMPEG_BINARY", "auto")
    assert load_settings(tmp_path).FFMPEG_BINARY == chosen


def test_gunicorn_threads_bound_the_waiting_state_requests(make_app):
    """At most half of a worker's threads (GUNICORN_THREADS, a setting) wait for a verdict."""
    assert make_app().extensions["liveness"].wakeups.max_waiters == 4   # the default 8 threads
    assert make_app(GUNICORN_THREADS=6).extensions["liveness"].wakeups.max_waiters == 3
    assert make_app(GUNICORN_THREADS=1).extensions["liveness"].wakeups.max_waiters == 1


def _import_worker(tmp_path, **env: str):
    """`import webapp.worker` (what `celery -A webapp.worker worker` does first) in a process of
    its own, with `env` and no .env: its Celery configuration, or its error."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from webapp.settings import Settings

    root = Path(__file__).resolve().parents[1]
    base = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    script = ("import json, webapp.worker as w\n"
              "print(json.dumps([w.celery.conf.broker_url, "
              "w.celery.conf.broker_transport_options['visibility_timeout']]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**base, "PYTHONPATH": str(root), "INSTANCE_PATH": str(tmp_path / "instance"),
                               **env}, timeout=120)
    return (json.loads(done.stdout) if done.returncode == 0 else None), done.stderr


def test_the_celery_worker_takes_the_broker_and_visibility_timeout_from_the_settings(tmp_path):
    config, errors = _import_worker(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:1/0",
                                    CELERY_VISIBILITY_SECONDS="7")
    assert config == ["redis://127.0.0.1:1/0", 7], errors
    config, errors = _import_worker(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert config == ["redis://127.0.0.1:1/0", 20], errors   # the default


def test_a_bad_visibility_timeout_stops_the_celery_worker_naming_the_variable(tmp_path):
    config, errors = _import_worker(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:1/0",
                                    CELERY_VISIBILITY_SECONDS="20s")
    assert config is None
    assert "ConfigurationError" in errors and "CELERY_VISIBILITY_SECONDS" in errors, errors
