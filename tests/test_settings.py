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
