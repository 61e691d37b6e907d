"""Debian's Firefox ESR, driven over WebDriver BiDi (bidi.py) with no geckodriver.

Firefox is started with `--remote-debugging-port=0` in a fresh profile whose user.js keeps it
off the network (no updates, telemetry, safe browsing, captive portal or connectivity checks,
remote settings, first-run pages) and gives it a fake camera and microphone. Every page is a tab
in its own user context (no cookies or storage shared between tests), phone-sized.

The camera is the engine's own fake (`media.navigator.streams.fake`), its video track replaced by
a canvas showing a face (camera.js, as a preload script). Refusing it is Firefox's own refusal,
from a second Firefox started on first need: BiDi's `permissions.setPermission` does not support
"camera" or "microphone" in Firefox 153 (bug 1609427), so that instance blocks both by default
(`permissions.default.camera` = 2) and getUserMedia rejects with Firefox's NotAllowedError.
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from . import CAMERA_JS, CLICKABLE_JS, FACE_URL, LOCATE_JS, EngineTimeout, JavaScriptError, wait_for
from .bidi import BidiClient, BidiError, BidiTimeout

FIREFOX = "/usr/bin/firefox-esr"
START_TIMEOUT = 30      # seconds for Firefox to start listening (a loaded 2-core machine)
LOAD_TIMEOUT = 30       # seconds for a page's load event
CALL_TIMEOUT = 90       # seconds for a called function's promise to settle

# Firefox makes these requests on its own; this machine has no internet, and a test run should
# not depend on one. (Firefox's remote agent sets most of them too, but only once it starts.)
QUIET_PREFS: dict[str, Any] = {
    # updates of Firefox, its add-ons, search engines, user agent overrides
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "extensions.update.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": "",
    "media.gmp-manager.updateEnabled": False,   # OpenH264 and Widevine downloads
    "media.gmp-manager.url": "",
    "media.gmp-manager.chromium-update-url": "",
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-widevinecdm.autoupdate": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.getAddons.discovery.api_url": "data:,",
    "browser.search.update": False,
    "general.useragent.updates.enabled": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "security.remote_settings.intermediates.enabled": False,
    "security.remote_settings.crlite_filters.enabled": False,
    # telemetry and data reporting
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "data:,",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.dataSubmissionPolicyBypassNotification": True,
    "datareporting.usage.uploadEnabled": False,
    "browser.ping-centre.telemetry": False,
    # safe browsing lists
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    # captive portal and connectivity checks, push, time, location, prefetching
    "network.captive-portal-service.enabled": False,
    "captivedetect.canonicalURL": "",
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "network.sntp.pools": "",
    "dom.push.connection.enabled": False,
    "browser.region.network.url": "",
    "geo.provider.network.url": "",
    # new tab page, suggestions, translations, machine learning, accounts
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.system.topstories": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.showSponsoredTopSites": False,
    "browser.topsites.contile.enabled": False,
    "browser.urlbar.suggest.searches": False,
    "browser.urlbar.merino.endpointURL": "",
    "browser.translations.enable": False,
    "browser.ml.enable": False,
    "browser.discovery.enabled": False,
    "identity.fxaccounts.enabled": False,
    # first run and start-up pages, default browser question
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "termsofuse.bypassNotification": True,
    "browser.sessionstore.resume_from_crash": False,
}
# Release builds ignore services.settings.server (and so ask firefox.settings.services.mozilla.com)
# unless MOZ_REMOTE_SETTINGS_DEVTOOLS is set. (MOZ_DISABLE_NONLOCAL_CONNECTIONS would do it too,
# but then Firefox aborts on the first connection a page makes off loopback.)
ENVIRONMENT = {"MOZ_REMOTE_SETTINGS_DEVTOOLS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}
# Chinese is what the capture page shows when nothing asks otherwise.
DEFAULT_LOCALE = "zh-CN"  # the profile's; a page in another locale is set up over BiDi
PAGE_PREFS = {"intl.accept_languages": "zh-CN, zh", "media.navigator.streams.fake": True}
CAMERA_PREFS = {**QUIET_PREFS, **PAGE_PREFS, "media.navigator.permission.disabled": True}
REFUSING_PREFS = {**QUIET_PREFS, **PAGE_PREFS, "media.navigator.permission.disabled": False,
                  "permissions.default.camera": 2, "permissions.default.microphone": 2}

# Errors of a click on an element the page replaced or moved between finding and clicking it.
GONE = {"no such node", "no such element", "stale element reference", "move target out of bounds"}


class FirefoxEngine:
    """Firefox with the fake camera allowed, and on first need a second one refusing it."""

    name = "firefox"

    def __init__(self) -> None:
        self._allowing = _Firefox(CAMERA_PREFS)
        self._refusing: _Firefox | None = None

    def new_page(self, *, camera: bool = True, locale: str = DEFAULT_LOCALE,
                 width: int = 360, height: int = 740) -> FirefoxPage:
        if camera:
            browser = self._allowing
        else:
            if self._refusing is None:
                self._refusing = _Firefox(REFUSING_PREFS)
            browser = self._refusing
        return FirefoxPage(browser.bidi, camera=camera, locale=locale, width=width, height=height)

    def close(self) -> None:
        try:
            self._allowing.close()
        finally:
            if self._refusing is not None:
                self._refusing.close()


class _Firefox:
    """One Firefox process in a fresh temporary profile, and its BiDi session."""

    def __init__(self, prefs: dict[str, Any]):
        self.directory = Path(tempfile.mkdtemp(prefix="firefox-"))
        profile = self.directory / "profile"
        profile.mkdir()
        (profile / "user.js").write_text("".join(
            f"user_pref({json.dumps(name)}, {json.dumps(value)});\n" for name, value in prefs.items()))
        self.log = self.directory / "firefox.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [FIREFOX, "--headless", "--remote-debugging-port=0", "--profile", str(profile),
                 "--no-remote"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, **ENVIRONMENT})
        try:
            self.bidi = BidiClient(self._listening_url() + "/session")
            self.bidi.send("session.new", {"capabilities": {}})
        except BaseException:
            self._stop()
            raise

    def _listening_url(self) -> str:
        """The websocket address Firefox prints on stderr once its remote agent listens."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = self.log.read_text(errors="replace")
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", text)
            if found:
                return found.group(1)
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Firefox did not start listening within {START_TIMEOUT} s "
                                   f"(exit code {self.process.returncode}); its log ends:\n"
                                   f"{text[-2000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        try:
            self.bidi.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        """End Firefox and its content processes (its process group), then its profile."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group is left
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _optional(bidi: BidiClient, method: str, params: dict, *, needed: bool) -> None:
    """Send a command that Firefox ESR 140 (Debian 12 without its security updates) lacks: the
    profile's prefs already give the default locale, so only another one needs it."""
    try:
        bidi.send(method, params)
    except BidiError as error:
        if needed or error.error != "unknown command":
            raise


class FirefoxPage:
    """A tab in a user context of its own, with the phone's viewport, language and camera."""

    engine = "firefox"

    def __init__(self, bidi: BidiClient, *, camera: bool, locale: str, width: int, height: int):
        # The browser's BiDi client and this tab's context id, for what Page does not offer.
        self.bidi = bidi
        self._user_context = bidi.send("browser.createUserContext")["userContext"]
        self._preload: str | None = None
        only_here = {"userContexts": [self._user_context]}
        try:
            if camera:
                stand_in = f"() => ({CAMERA_JS.read_text()})({json.dumps(FACE_URL)})"
                self._preload = bidi.send("script.addPreloadScript", {
                    "functionDeclaration": stand_in, **only_here})["script"]
            # Intl and navigator.language, and what the page is asked for in (as the
            # intl.accept_languages pref says for zh-CN).
            languages = ", ".join(dict.fromkeys([locale, locale.split("-")[0]]))
            _optional(bidi, "emulation.setLocaleOverride", {"locale": locale, **only_here},
                      needed=locale != DEFAULT_LOCALE)
            _optional(bidi, "network.setExtraHeaders", {"headers": [{
                "name": "Accept-Language", "value": {"type": "string", "value": languages}}],
                **only_here}, needed=locale != DEFAULT_LOCALE)
            self.context = bidi.send("browsingContext.create", {
                "type": "tab", "userContext": self._user_context})["context"]
            # Twice as many device pixels as CSS pixels, as the Chromium phone has.
            bidi.send("browsingContext.setViewport", {
                "context": self.context, "viewport": {"width": width, "height": height},
                "devicePixelRatio": 2})
        except BaseException:
            self.close()
            raise

    def goto(self, url: str) -> None:
        try:
            self.bidi.send("browsingContext.navigate", {
                "context": self.context, "url": url, "wait": "complete"}, timeout=LOAD_TIMEOUT)
        except BidiTimeout:
            raise EngineTimeout(f"waited {LOAD_TIMEOUT} s for {url} to load") from None

    def call(self, function: str, *args: Any) -> Any:
        return _python(self._call(function, args))

    def click(self, role: str, name: str, *, exact: bool = False, timeout: float = 15) -> None:
        def attempt() -> bool:
            element = self._element(CLICKABLE_JS, role, name, exact)
            if element is None:
                return False
            origin = {"type": "element", "element": {"sharedId": element}}
            try:
                self.bidi.send("input.performActions", {"context": self.context, "actions": [{
                    "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                    "actions": [{"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
                                {"type": "pointerDown", "button": 0},
                                {"type": "pointerUp", "button": 0}]}]})
            except BidiError as error:
                if error.error in GONE:
                    return False
                raise
            return True
        wait_for(attempt, f"a visible, enabled {role} named {name!r}", timeout)

    def set_file(self, label: str, path: Path, *, timeout: float = 15) -> None:
        element = wait_for(lambda: self._element(LOCATE_JS, "file", label, False),
                           f"a file input labelled {label!r}", timeout)
        self.bidi.send("input.setFiles", {"context": self.context,
                                           "element": {"sharedId": element},
                                           "files": [str(Path(path).resolve())]})

    def screenshot(self, path: Path) -> None:
        data = self.bidi.send("browsingContext.captureScreenshot", {"context": self.context})
        Path(path).write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        """Remove the user context, which closes its tab (and stops its camera)."""
        if self._preload is not None:
            self.bidi.send("script.removePreloadScript", {"script": self._preload})
            self._preload = None
        if self._user_context is not None:
            self.bidi.send("browser.removeUserContext", {"userContext": self._user_context})
            self._user_context = None

    def _call(self, function: str, args) -> dict:
        """The BiDi remote value `function(*args)` resolves to."""
        try:
            answer = self.bidi.send("script.callFunction", {
                "functionDeclaration": function, "awaitPromise": True,
                "target": {"context": self.context}, "arguments": [_local(a) for a in args]},
                timeout=CALL_TIMEOUT)
        except BidiError as error:
            # Firefox 153 answers a rejected promise with an "unknown error" ("Missing stack,
            # unable to build exceptionDetails") instead of an exception result.
            rejected = re.search(r"unable to build exceptionDetails for exception: (.*)", str(error))
            if not rejected:
                raise
            raise JavaScriptError(f"{rejected.group(1)} in {function[:200]!r}") from None
        if answer["type"] == "exception":
            raise JavaScriptError(f"{answer['exceptionDetails']['text']} in {function[:200]!r}")
        return answer["result"]

    def _element(self, function: str, *args: Any) -> str | None:
        """The sharedId of the element `function(*args)` returns, or None."""
        result = self._call(function, args)
        return result.get("sharedId") if result["type"] == "node" else None


# -- values between Python and BiDi --------------------------------------------------------------
SPECIAL_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}


def _local(value: Any) -> dict:
    """A JSON-able Python value as a BiDi local value."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int | float):
        if math.isnan(value):
            return {"type": "number", "value": "NaN"}
        if math.isinf(value):
            return {"type": "number", "value": "Infinity" if value > 0 else "-Infinity"}
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, list | tuple):
        return {"type": "array", "value": [_local(item) for item in value]}
    if isinstance(value, dict):
        return {"type": "object", "value": [[str(key), _local(item)] for key, item in value.items()]}
    raise TypeError(f"cannot pass {type(value).__name__} to the page: {value!r}")


def _python(remote: dict) -> Any:
    """A BiDi remote value as plain Python: undefined and null are None, arrays and sets lists,
    objects and maps dicts, dates their ISO text; anything else (elements, functions, values
    too deep or seen before) None."""
    kind, value = remote["type"], remote.get("value")
    if kind == "number":
        return SPECIAL_NUMBERS.get(value, value) if isinstance(value, str) else value
    if kind in {"string", "boolean", "date"}:
        return value
    if kind == "bigint":
        return int(remote["value"])
    if value is None:
        return None
    if kind in {"array", "set"}:
        return [_python(item) for item in value]
    if kind in {"object", "map"}:
        return {key if isinstance(key, str) else _python(key): _python(item)
                for key, item in value}
    return None
