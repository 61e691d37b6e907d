"""Which browser family and operating system an upload came from, for the console's funnel.

Flask-free. Only the family and the OS are kept (a closed, short vocabulary), never the User-Agent
string itself: it is detailed enough to help tell people apart. The in-app browsers people in
China verify in (WeChat, Alipay, QQ, DingTalk...) come first: their User-Agent also names the
engine they embed (Chrome, Safari), which is not what an operator needs to know.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

API = "API"  # a video sent through the operator API (recorded in the operator's own app)

# (family, pattern), first match wins.
_BROWSERS = (
    ("WeChat", r"MicroMessenger/"), ("WeCom", r"wxwork/"), ("Alipay", r"AlipayClient/"),
    ("DingTalk", r"DingTalk/"), ("QQ", r"\bQQ/"), ("QQ Browser", r"MQQBrowser/"),
    ("UC", r"UCBrowser/|UCWEB"), ("Baidu", r"baiduboxapp/|BaiduBrowser"),
    ("Douyin", r"aweme|BytedanceWebview"), ("Weibo", r"Weibo"),
    ("Huawei Browser", r"HuaweiBrowser/"), ("Mi Browser", r"MiuiBrowser/"),
    ("Vivo Browser", r"VivoBrowser/"), ("Oppo Browser", r"HeyTapBrowser/"),
    ("Samsung Internet", r"SamsungBrowser/"), ("Edge", r"\bEdg(?:e|A|iOS)?/"),
    ("Firefox", r"Firefox/|FxiOS/"), ("Headless Chrome", r"HeadlessChrome/"),
    ("Chrome", r"Chrome/|CriOS/"), ("Safari", r"Version/[\d.]+.*Safari/"),
)
_SYSTEMS = (
    ("HarmonyOS", r"HarmonyOS|OpenHarmony"), ("Android", r"Android"),
    ("iOS", r"iPhone|iPad|iPod"), ("Windows", r"Windows"), ("macOS", r"Macintosh|Mac OS X"),
    ("ChromeOS", r"CrOS"), ("Linux", r"Linux|X11"),
)
OTHER = "other"


@dataclass(frozen=True)
class Client:
    browser: str
    os: str

    @property
    def label(self) -> str:
        return f"{self.browser} · {self.os}"


def _first(table, user_agent: str) -> str:
    return next((name for name, pattern in table if re.search(pattern, user_agent)), OTHER)


def parse(user_agent: str | None) -> Client:
    """The browser family and OS of a User-Agent header ("other" for what is not recognised)."""
    user_agent = (user_agent or "")[:1000]
    return Client(_first(_BROWSERS, user_agent), _first(_SYSTEMS, user_agent))


def operator_api(user_agent: str | None) -> Client:
    """A video sent through the operator API: the family is "API", the OS what the caller says."""
    return Client(API, parse(user_agent).os)
