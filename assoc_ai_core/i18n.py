"""French-first, English-too user messages.

Messages are written in place as a French/English pair, ``tr("Bonjour", "Hello")``,
so a reader sees both languages side by side and no catalogue drifts out of date.
The language comes from the run (``assoc-ai --lang``, see :func:`use_lang`), then
``ASSOC_AI_LANG``, then the usual locale variables; French is the default when
nothing says otherwise.  Numbers follow the language too: a decimal comma in French.
"""

from __future__ import annotations

import os

SUPPORTED = ("fr", "en")

_run_lang: str | None = None


def use_lang(lang: str | None) -> str | None:
    """Fix the language of this run (``None``: back to the environment); return the previous setting."""
    global _run_lang
    previous, _run_lang = _run_lang, (lang if lang in SUPPORTED else None)
    return previous


def current_lang() -> str:
    """Return ``"fr"`` or ``"en"``: the run's language, else ``ASSOC_AI_LANG`` or the locale variables."""
    if _run_lang is not None:
        return _run_lang
    return env_lang()


def env_lang() -> str:
    """The language the environment asks for (``ASSOC_AI_LANG``, LC_ALL, LC_MESSAGES, LANG, LANGUAGE)."""
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


class Bilingual(str):
    """A message in one language that still knows its other version.

    Help texts are written when a module is imported, before the command line's ``--lang`` is read;
    keeping both versions lets the CLI show them in the run's language (:func:`in_lang`).
    """

    fr: str
    en: str

    def __new__(cls, fr: str, en: str, lang: str) -> Bilingual:
        """The ``lang`` version, carrying both."""
        obj = super().__new__(cls, en if lang == "en" else fr)
        obj.fr, obj.en = fr, en
        return obj

    def __reduce__(self) -> tuple[type[str], tuple[str]]:  # pickled, copied or sent to a worker as a plain str
        return (str, (str(self),))


def tr(fr: str, en: str, lang: str | None = None) -> str:
    """Pick the French or English text of a message for ``lang`` (default: the run's language)."""
    return Bilingual(fr, en, lang or current_lang())


def in_lang(text: str, lang: str | None = None) -> str:
    """``text`` in ``lang`` (still carrying both versions) when it was made by :func:`tr`; other text unchanged."""
    if isinstance(text, Bilingual):
        return Bilingual(text.fr, text.en, lang or current_lang())
    return text


def decimal(value: float, digits: int = 3, lang: str | None = None) -> str:
    """Format a number with a decimal comma in French (``0,719``) and a point in English (``0.719``)."""
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if (lang or current_lang()) == "fr" else text


def signed(value: float, digits: int = 2, lang: str | None = None) -> str:
    """A signed weight the way each language writes it: ``+1,34`` / ``-0,06`` in French, ``+1.34`` in English."""
    text = f"{value:+.{digits}f}"
    return text.replace(".", ",") if (lang or current_lang()) == "fr" else text


def percent(value: float, lang: str | None = None) -> str:
    """Format a share as a percentage the way each language writes it (``87 %`` / ``87%``)."""
    number = f"{value * 100:.0f}"
    return f"{number}\u202f%" if (lang or current_lang()) == "fr" else f"{number}%"


def count(n: int, fr: tuple[str, str], en: tuple[str, str], lang: str | None = None) -> str:
    """``n`` and its noun, singular or plural: ``count(1, ("catégorie", "catégories"), ...)`` → ``1 catégorie``.

    French keeps the singular below 2 (« 0 catégorie », « 1 catégorie »); English only for exactly 1.
    """
    if (lang or current_lang()) == "en":
        return f"{n} {en[0] if n == 1 else en[1]}"
    return f"{n} {fr[0] if abs(n) < 2 else fr[1]}"
