"""French-first, English-too user messages.

Messages are written in place as a French/English pair, ``tr("Bonjour", "Hello")``,
so a reader sees both languages side by side and no catalogue drifts out of date.
The language comes from ``ASSOC_AI_LANG``, then the usual locale variables;
French is the default when nothing says otherwise.
"""

from __future__ import annotations

import os

SUPPORTED = ("fr", "en")


def current_lang() -> str:
    """Return ``"fr"`` or ``"en"`` from ``ASSOC_AI_LANG`` or the locale variables."""
    for var in ("ASSOC_AI_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var, "").strip().lower()
        if not value or value in ("c", "posix", "c.utf-8"):
            continue
        code = value.split(":")[0][:2]
        if code in SUPPORTED:
            return code
        if var == "ASSOC_AI_LANG":
            continue
        return "en"  # another language: English is the more widely read fallback
    return "fr"


def tr(fr: str, en: str, lang: str | None = None) -> str:
    """Pick the French or English text of a message for ``lang`` (default: locale)."""
    return en if (lang or current_lang()) == "en" else fr


def decimal(value: float, digits: int = 3, lang: str | None = None) -> str:
    """Format a number with a decimal comma in French (``0,719``) and a point in English (``0.719``)."""
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if (lang or current_lang()) == "fr" else text


def percent(value: float, lang: str | None = None) -> str:
    """Format a share as a percentage the way each language writes it (``87 %`` / ``87%``)."""
    number = f"{value * 100:.0f}"
    return f"{number}\u202f%" if (lang or current_lang()) == "fr" else f"{number}%"
