"""The same flows (tests/browser/flows.py) in the three engines a phone's browser is built on:
Chromium (Android Chrome, WeChat on Android), WebKit (every iPhone browser, WeChat on iOS) and
Firefox. What each engine is given as a camera, and what is stood in, is in engines/__init__.py.

After the run, tests/browser/screenshots/engines.md has the table of what each engine recorded
and which path the server took (copied or re-encoded), as the operator's API reports it.
"""
from __future__ import annotations

import pytest

from . import flows
from .engines.chromium import ChromiumEngine

ENGINES = ["chromium", "firefox", "webkit"]


@pytest.fixture(scope="session", params=ENGINES)
def engine(request, live_app):
    """One engine for every flow (pytest runs the flows engine by engine, closing each after)."""
    if request.param == "chromium":
        started = ChromiumEngine(request.getfixturevalue("browser"),
                                 (live_app.url, live_app.operator_origin))
    elif request.param == "firefox":
        from .engines.firefox import FirefoxEngine
        started = FirefoxEngine()
    else:
        from .engines.webkit import WebKitEngine
        started = WebKitEngine()
    yield started
    started.close()


@pytest.fixture(scope="session")
def recordings():
    """What each engine recorded, written to screenshots/engines.md after the run."""
    seen: list[dict] = []
    yield seen
    if seen:
        flows.SHOTS.mkdir(exist_ok=True)
        columns = list(seen[0])
        lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in seen]
        (flows.SHOTS / "engines.md").write_text("\n".join(lines) + "\n")


@pytest.fixture
def run(engine, live_app, standin):
    started = flows.Run(engine, live_app, standin)
    yield started
    started.close()


@pytest.mark.parametrize("mode", ["number", "action", "silent"])
def test_each_mode_passes_and_the_operator_sees_which_path_the_video_took(run, recordings, mode):
    seen = {"number": flows.number_mode_passes, "action": flows.action_mode_passes,
            "silent": flows.silent_mode_passes}[mode](run)
    recordings.append(seen)
    # What the engine made decides the path: H.264 is copied, anything else re-encoded.
    assert seen["path"] == ("copied" if seen["video_codec"] == "h264" else "re-encoded"), seen
    # Sound is recorded only where the challenge needs it (a stream without a microphone must
    # not be recorded with an audio codec: Firefox then records nothing).
    assert (seen["audio_codec"] is not None) == (mode == "number"), seen
    # Measured from its frames (WebKit's fragmented MP4 says 0 in its header), not refused.
    assert 4.5 <= seen["duration"] <= 7.5, seen
    # The camera's face did what was asked (engines/camera.js): the page's own check saw it.
    assert seen["page_check"] == "passed", seen


def test_a_face_that_does_nothing_is_caught_before_upload(run):
    flows.a_face_that_does_nothing_is_caught_and_may_be_sent_anyway(run)


def test_consent_can_be_declined_and_reconsidered(run):
    flows.consent_can_be_declined_and_reconsidered(run)


def test_a_failed_answer_is_explained_and_a_new_challenge_passes(run):
    flows.a_failed_answer_is_explained_and_a_new_challenge_passes(run)


def test_a_refused_camera_is_explained_and_the_phone_camera_sends(run, media):
    flows.a_refused_camera_is_explained_and_the_phone_camera_sends(run, media("chrome_webm"))


def test_the_phone_camera_can_be_chosen_instead(run, media):
    flows.the_phone_camera_can_be_chosen_instead(run, media("safari_fmp4"))
