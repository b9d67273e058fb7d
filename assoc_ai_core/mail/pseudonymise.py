"""Replace personal data in text by typed placeholders (``<EMAIL>``, ``<PHONE>`` ...).

One function serves the model's training text, stored text and logs, so the
same data is hidden everywhere.  Phone numbers are found with ``phonenumbers``
(French formats first, then international ``+`` numbers) and IBANs are checked
with ``python-stdnum`` (a random 27-character code is not an IBAN unless its
checksum says so).  E-mail addresses, URLs and French postal addresses are
matched by pattern, since no maintained library finds them in free text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import phonenumbers
from stdnum import iban as _iban

__all__ = ["pseudonymise", "pseudonymize", "mask_addresses_and_links", "EMAIL", "PHONE", "IBAN", "URL", "ADDRESS", "POSTCODE", "NAME"]

EMAIL = "<EMAIL>"
PHONE = "<PHONE>"
IBAN = "<IBAN>"
URL = "<URL>"
ADDRESS = "<ADDRESS>"
POSTCODE = "<POSTCODE>"
NAME = "<NAME>"

_EMAIL_RE = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+", re.UNICODE)  # the reference; see _emails
_LOCAL_BEFORE_AT = re.compile(r"(?<![\w.+'-])[\w.+'-]++(?=@)")  # a run of local-part characters, from its start
_DOMAIN = re.compile(r"[\w-]++(\.[\w-]++)+")
_MAX_NAME_WORDS = 32  # a display name has a handful; each word becomes a branch of one pattern
_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.I)
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# Patterns that start with a digit, checking the word boundary behind it (``\d(?<!\w\d)`` is
# ``\b\d``): the regex engine then jumps from digit to digit instead of trying every position.
_STREET = (
    r"(?:rue|avenue|av\.|boulevard|bd|place|pl\.|chemin|ch\.|all[ée]e|impasse|route|rte|quai|cours|square|"
    r"passage|sentier|r[ée]sidence|lotissement|hameau|lieu-dit|faubourg|fg|street|st\.|road|rd\.|lane|drive)"
)
_ADDRESS_RE = re.compile(
    rf"\d(?<!\w\d)\d{{0,3}}(?:\s?(?:bis|ter|quater|[a-d]))?,?\s+{_STREET}\b[^\n,;.]{{0,50}}", re.I
)
# A five-digit postcode and a capitalised town; an "F-" in front (F-75001) is taken with it below.
_POSTCODE_CITY_RE = re.compile(r"\d(?<!\w\d)\d{4}\s+[A-ZÉÈÀÂÎÔÛÇ][\w'’-]+(?:[ -][A-Za-zÉÈÀÂÎÔÛÇéèàâîôûç'’-]+){0,3}")
_COUNTRY_PREFIX = re.compile(r"(?<!\w)F-\Z")
_BP_RE = re.compile(r"\b(?:BP|CS|CEDEX)\s*\d+\b", re.I)
_BP_HINTS = ("bp", "cs", "cedex")


# Eight digits or more, with the separators people type: only there can a phone number be.
_PHONE_HINT = re.compile(r"\d(?:[\s.\-/()]{0,3}\d){7,}")


def _phones(text: str) -> list[tuple[int, int]]:
    """Phone numbers found by phonenumbers, run only around digit runs long enough to be one.

    The matcher is the costly part of pseudonymisation; most mail has no
    phone number, and this keeps its cost where one may be.
    """
    spans = []
    for hint in _PHONE_HINT.finditer(text):
        start = hint.start() - (hint.start() > 0 and text[hint.start() - 1] == "+")
        lo = max(0, start - 6)  # room for a "+33 " or "(0)" the hint may have missed
        window = text[lo : hint.end() + 2]
        # Without a "+" only French national formats can match; the international pass would find nothing.
        for region in ("FR", None) if "+" in window else ("FR",):
            try:
                for m in phonenumbers.PhoneNumberMatcher(window, region or "ZZ", leniency=phonenumbers.Leniency.VALID):
                    spans.append((lo + m.start, lo + m.end))
            except Exception:  # phonenumbers is defensive, but a crash must not leak the raw text
                continue
    return spans


_IBAN_START = re.compile(r"\d(?<=[A-Za-z]{2}\d)\d")  # two letters and two digits: a country and check digits


def _ibans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if not _IBAN_START.search(text):  # no country code + check digits anywhere: no IBAN
        return spans
    for m in _IBAN_RE.finditer(text.upper()):
        if _iban.is_valid(m.group(0)):
            spans.append((m.start(), m.end()))
    return spans


def _emails(text: str) -> list[tuple[int, int]]:
    """The spans ``_EMAIL_RE.finditer`` gives, found from each "@" instead of from each character.

    The pattern, tried from every letter of a 50 KB "x@ aaaa…" subject, read
    the rest of the run each time (8 s a pass).  An address's local part is
    the end of the run of its characters just before an "@" (an "@" is not
    one of them), so each run is read once, from its start, and the leftmost
    matches are the same.
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    for run in _LOCAL_BEFORE_AT.finditer(text):
        start, at = max(run.start(), pos), run.end()
        if start >= at:
            continue  # the run was part of the previous address
        domain = _DOMAIN.match(text, at + 1)
        if domain:
            spans.append((start, domain.end()))
            pos = domain.end()
    return spans


def _replace_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, tag in sorted(spans):
        if start < pos:
            continue  # overlapping finds: the first (leftmost) wins
        out.append(text[pos:start])
        out.append(tag)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def pseudonymise(text: str, *, names: Iterable[str] = ()) -> str:
    """Return ``text`` with e-mails, URLs, IBANs, phones, postal addresses and given names replaced.

    ``names`` are people's names known from elsewhere (e.g. the sender's display
    name); each word of three letters or more is replaced by ``<NAME>``.

    >>> pseudonymise("Écrivez à marie@exemple.fr ou au 06 12 34 56 78.")
    'Écrivez à <EMAIL> ou au <PHONE>.'
    """
    if not text:
        return text
    spans: list[tuple[int, int, str]] = []
    # Cheap membership tests first: most text has no "@", link or long digit run, and each
    # pattern pass over a long mail costs more than the test.
    if "@" in text:
        spans += [(start, end, EMAIL) for start, end in _emails(text)]
    if "http" in text or "www" in text or "HTTP" in text or "WWW" in text:
        spans += [(m.start(), m.end(), URL) for m in _URL_RE.finditer(text)]
    spans += [(s, e, IBAN) for s, e in _ibans(text)]
    if spans:
        text = _replace_spans(text, spans)
    phones = _phones(text)
    if phones:
        text = _replace_spans(text, [(s, e, PHONE) for s, e in phones])
    spans = [(m.start(), m.end(), ADDRESS) for m in _ADDRESS_RE.finditer(text)]
    for m in _POSTCODE_CITY_RE.finditer(text):
        start = m.start() - 2 if _COUNTRY_PREFIX.search(text, 0, m.start()) else m.start()
        spans.append((start, m.end(), POSTCODE))
    folded = _fold(text)  # for cheap tests that find at least what the case-insensitive patterns match
    if any(hint in folded for hint in _BP_HINTS):
        spans += [(m.start(), m.end(), POSTCODE) for m in _BP_RE.finditer(text)]
    if spans:
        text = _replace_spans(text, spans)
        folded = _fold(text)
    words, folded_words = _name_words(tuple(n for n in names if n))
    if any(w in folded for w in folded_words):  # compile the names' pattern only when one appears
        text = _names_pattern(words).sub(NAME, text)
    return text


def mask_addresses_and_links(text: str) -> str:
    """Only e-mail addresses and links replaced by placeholders: the light masking of text kept raw."""
    if "@" in text:
        text = _replace_spans(text, [(start, end, EMAIL) for start, end in _emails(text)])
    return _URL_RE.sub(URL, text)


@functools.lru_cache(maxsize=4096)
def _name_words(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of three letters or more of people's names (longest first), and the same case-folded.

    At most ``_MAX_NAME_WORDS`` words are kept, the first ones met: a 1 MB display name built a
    100,000-branch pattern.
    """
    found = dict.fromkeys(w for n in names for w in re.findall(r"[\w'’-]{3,}", n[:4096]))
    words = tuple(sorted(list(found)[:_MAX_NAME_WORDS], key=lambda w: (-len(w), w)))
    return words, tuple({_fold(w) for w in words})


def _fold(text: str) -> str:
    # Case folding turns a Turkish "İ" into "i" + a combining dot, where the case-insensitive regex sees "i".
    return text.casefold().replace("\u0307", "")


@functools.lru_cache(maxsize=1024)
def _names_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.I)


pseudonymize = pseudonymise  # American spelling, same function
