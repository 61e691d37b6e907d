"""Operator theming: a primary colour and a logo per operator, checked at start.

OPERATOR_THEMES is JSON mapping an operator (its API key, the key's fingerprint ``op_…`` as the
console shows it, or ``standalone`` for the self-service form) to
``{"color": "#RRGGBB", "logo": "https://…" | "data:image/…;base64,…", "name": "…"}``; every field
is optional. The colour is the buttons' background under white text and the colour of links on
the light page, so it must reach 4.5:1 against both (WCAG 2 AA for text): a colour that does not
is refused at start with the darker shade of it that would pass. The logo is shown in the capture
page's header with ``name`` as its text alternative; a ``data:`` logo shows under the page's
Content-Security-Policy as it is, an ``https://`` one only where img-src names its origin.

The page gets the colour from a stylesheet of this site (``/theme.css?primary=RRGGBB``), since
its Content-Security-Policy allows no inline style.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

WHITE = "#ffffff"
PAGE = "#f2f4f7"   # app.css --bg: links in the colour stand on it
MIN_CONTRAST = 4.5
MAX_DATA_LOGO = 32 * 1024
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_DATA_LOGO = re.compile(r"data:image/(png|jpeg|webp|gif|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True)
class Theme:
    color: str | None = None   # "#rrggbb", lower case
    logo: str | None = None    # https URL or data:image/…;base64
    name: str = ""             # the logo's text alternative (the operator's name)

    def soft(self) -> str | None:
        """A pale tint of the colour (backgrounds of highlighted steps)."""
        return mix(self.color, WHITE, 0.9) if self.color else None

    def disabled(self) -> str | None:
        """The colour of a disabled button: the colour faded."""
        return mix(self.color, WHITE, 0.55) if self.color else None


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""
    high, low = sorted((_luminance(one), _luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix(colour: str, other: str, amount: float) -> str:
    """`colour` moved `amount` (0..1) of the way towards `other`."""
    channels = [round(int(colour[i:i + 2], 16) * (1 - amount) + int(other[i:i + 2], 16) * amount)
                for i in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in channels)


def passing_shade(colour: str) -> str:
    """The lightest darker shade of `colour` that reaches MIN_CONTRAST on white and the page."""
    for step in range(1, 101):
        shade = mix(colour, "#000000", step / 100)
        if min(contrast(shade, WHITE), contrast(shade, PAGE)) >= MIN_CONTRAST:
            return shade
    return "#000000"


def _theme(name: str, value: object) -> Theme:
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected an object like {{\"color\": \"#1a5bc9\"}}")
    unknown = set(value) - {"color", "logo", "name"}
    if unknown:
        raise ValueError(f"{name}: unknown field(s) {', '.join(sorted(unknown))} (color, logo, name)")
    color = value.get("color")
    if color is not None:
        if not isinstance(color, str) or not _HEX.fullmatch(color.strip()):
            raise ValueError(f"{name}.color: {color!r} is not a colour like #1a5bc9")
        color = color.strip().lower()
        worst = min(contrast(color, WHITE), contrast(color, PAGE))
        if worst < MIN_CONTRAST:
            raise ValueError(f"{name}.color: {color} reaches only {worst:.2f}:1 against the white text on "
                             f"its buttons and the page behind its links; {MIN_CONTRAST}:1 is needed "
                             f"(the darker {passing_shade(color)} passes)")
    logo = value.get("logo")
    if logo is not None:
        if not isinstance(logo, str):
            raise ValueError(f"{name}.logo: expected an https:// URL or a data:image/…;base64 URI")
        logo = logo.strip()
        if logo.startswith("data:"):
            if not _DATA_LOGO.fullmatch(logo) or len(logo) > MAX_DATA_LOGO:
                raise ValueError(f"{name}.logo: a data: logo must be data:image/(png|jpeg|webp|gif|svg+xml);"
                                 f"base64,… and at most {MAX_DATA_LOGO // 1024} KB")
        else:
            parts = urlsplit(logo)
            if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
                raise ValueError(f"{name}.logo: {logo!r} is not an https:// URL")
    label = value.get("name", "")
    if not isinstance(label, str) or len(label) > 60:
        raise ValueError(f"{name}.name: expected the operator's name (at most 60 characters)")
    return Theme(color=color, logo=logo, name=label.strip())


def parse_themes(value: object) -> dict[str, Theme]:
    """OPERATOR_THEMES (JSON text or an already decoded mapping) → themes by operator."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object like {"op_0123456789ab": {"color": "#1a5bc9"}}')
    return {str(key): item if isinstance(item, Theme) else _theme(str(key), item)
            for key, item in value.items()}


def logo_origins(themes: dict[str, Theme]) -> tuple[str, ...]:
    """The origins of the https logos (what the page's img-src must allow for them to show)."""
    origins = []
    for theme in themes.values():
        if theme.logo and theme.logo.startswith("https://"):
            parts = urlsplit(theme.logo)
            origin = f"https://{parts.netloc.lower()}"
            if origin not in origins:
                origins.append(origin)
    return tuple(origins)


def theme_for(themes: dict[str, Theme], operator: str, fingerprint) -> Theme | None:
    """The theme of the operator a session was made by (its key's `fingerprint`, or
    "standalone"): named by that, or by the key itself."""
    if operator in themes:
        return themes[operator]
    for key, theme in themes.items():
        if fingerprint(key) == operator:
            return theme
    return None
