"""Cleaning people data: names, e-mails, phone numbers, postcodes, dates, numbers.

Everything here works one value at a time and never raises on bad input: a
value that cannot be read becomes empty (or ``None``) and the caller gets an
*issue* code saying why, so a data-quality report can count it.  Phone numbers
go through ``phonenumbers`` (French first, then the overseas regions); record
linkage of probable duplicates lives in :mod:`assoc_ai_core.people.dedupe`.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from assoc_ai_core.ext.values import parse_number
from assoc_ai_core.records.people import Person

__all__ = [
    "parse_number", "parse_date", "parse_datetime", "parse_bool", "split_list",
    "normalize_name", "normalize_email", "email_issue", "normalize_phone", "normalize_postcode",
    "department_of", "normalize_city", "fold", "clean_person", "clean_people",
]

# -- numbers, dates, booleans -------------------------------------------------

_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1, "january": 1, "fevrier": 2, "fevr": 2, "fev": 2, "feb": 2, "february": 2,
    "mars": 3, "mar": 3, "march": 3, "avril": 4, "avr": 4, "apr": 4, "april": 4, "mai": 5, "may": 5,
    "juin": 6, "jun": 6, "june": 6, "juillet": 7, "juil": 7, "jul": 7, "july": 7, "aout": 8, "aug": 8, "august": 8,
    "septembre": 9, "sept": 9, "sep": 9, "september": 9, "octobre": 10, "oct": 10, "october": 10,
    "novembre": 11, "nov": 11, "november": 11, "decembre": 12, "dec": 12, "december": 12,
}
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_NUMERIC = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})(?:[ T](\d{1,2})[:h](\d{2})(?::(\d{2}))?)?$")
_WORDS = re.compile(r"^(?:\w+\.?\s+)?(\d{1,2})(?:er)?\s+([a-z]+)\.?\s+(\d{4})$")


def _year(two_or_four: str) -> int:
    y = int(two_or_four)
    if len(two_or_four) == 2:
        pivot = date.today().year % 100 + 1
        y += 2000 if y <= pivot else 1900
    return y


def parse_datetime(value: Any, *, dayfirst: bool = True) -> datetime | None:
    """Read a date or date-time (``05/03/2024``, ``2024-03-05T10:00``, ``5 mars 2024``); None if unreadable.

    ``dayfirst`` (the French habit) decides ``05/03/2024``; ``13/03/2024`` is
    read as 13 March either way.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value).strip()
    if not text:
        return None
    try:
        m = _ISO.match(text)
        if m:
            if m.group(7):
                return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups()[:6])
            return datetime(y, mo, d, h, mi, s)
        m = _NUMERIC.match(text)
        if m:
            a, b, y = int(m.group(1)), int(m.group(2)), _year(m.group(3))
            day, month = (a, b) if dayfirst else (b, a)
            if month > 12 and day <= 12:
                day, month = month, day
            h, mi, s = (int(g) if g else 0 for g in m.groups()[3:6])
            return datetime(y, month, day, h, mi, s)
        m = _WORDS.match(fold(text))
        if m and m.group(2) in _MONTHS:
            return datetime(int(m.group(3)), _MONTHS[m.group(2)], int(m.group(1)))
        if re.fullmatch(r"\d{8}", text):
            return datetime(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:  # 31/02/2024 and friends
        return None
    return None


def parse_date(value: Any, *, dayfirst: bool = True) -> date | None:
    """Like :func:`parse_datetime` but returns the calendar date."""
    found = parse_datetime(value, dayfirst=dayfirst)
    return found.date() if found else None


_TRUE = {"1", "oui", "o", "yes", "y", "true", "vrai", "x", "ok", "on"}
_FALSE = {"0", "non", "n", "no", "false", "faux", "", "off", "-"}


def parse_bool(value: Any) -> bool | None:
    """Read a yes/no cell (``oui``, ``X``, ``1``, ``true``, ``non``...); None when it is something else."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return bool(value)
    text = fold(str(value))
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def split_list(value: Any) -> tuple[str, ...]:
    """Split a multi-valued cell (``"accueil; cuisine, logistique"``) into trimmed items."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(p.strip() for p in re.split(r"[;,|/\n]", str(value)) if p.strip())


# -- text --------------------------------------------------------------------

def fold(text: str) -> str:
    """Lower-case, accents removed, spaces collapsed: the form used to *compare* values (never to store them)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.lower().split())


_PARTICLES = {"de", "du", "des", "d'", "van", "von", "der", "den", "ter", "di", "da", "del", "della", "dos", "das"}


def _cap(word: str) -> str:
    if not word:
        return word
    out = word[0].upper() + word[1:].lower()
    for sep in ("-", "'", "\u2019"):
        if sep in out:
            out = sep.join(_cap(part) if part else part for part in out.split(sep))
    return out


def normalize_name(value: Any) -> str:
    """Tidy a first or last name: spaces, case (``JEAN-PIERRE`` → ``Jean-Pierre``), particles (``de la Tour``).

    Accents are kept (``ÉLODIE`` → ``Élodie``): they are part of the name.
    ``d'`` stays lower-case before the capitalised rest (``d'Estaing``).
    """
    if value is None:
        return ""
    text = " ".join(str(value).replace("\u2019", "'").split()).strip(" .,;")
    if not text:
        return ""
    words = text.split(" ")
    out: list[str] = []
    for i, word in enumerate(words):
        low = word.lower()
        if low.startswith("d'") and len(low) > 2:
            out.append("d'" + _cap(word[2:]))
        elif i < len(words) - 1 and (low in _PARTICLES or (low in ("la", "le") and i > 0 and words[i - 1].lower() == "de")):
            out.append(low)
        else:
            out.append(_cap(word))
    if out and out[0] in _PARTICLES and len(out) == 1:
        out[0] = _cap(out[0])
    return " ".join(out)


_EMAIL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z]{2,}$")
_TYPO_DOMAINS = {
    "gmial.com": "gmail.com", "gmai.com": "gmail.com", "gmail.con": "gmail.com", "gmail.co": "gmail.com",
    "gamil.com": "gmail.com", "hotmial.com": "hotmail.com", "hotmail.fe": "hotmail.fr", "hotmal.fr": "hotmail.fr",
    "wanadoo.fe": "wanadoo.fr", "orange.fe": "orange.fr", "yahou.fr": "yahoo.fr", "yaho.fr": "yahoo.fr",
    "free.fe": "free.fr", "laposte.fe": "laposte.net", "outlook.fe": "outlook.fr",
}


def normalize_email(value: Any) -> str:
    """Lower-cased, trimmed address without ``mailto:`` or display name; ``""`` when it is not an address."""
    if value is None:
        return ""
    text = str(value).strip()
    m = re.search(r"<([^>]+)>", text)
    if m:
        text = m.group(1)
    text = text.strip().lower().removeprefix("mailto:").strip(" .;,")
    return text if _EMAIL.match(text) and ".." not in text else ""


def email_issue(value: Any) -> str | None:
    """Why an address is doubtful: ``"invalid"``, ``"typo:<suggested domain>"``, or None when it looks fine."""
    if value is None or not str(value).strip():
        return None
    email = normalize_email(value)
    if not email:
        return "invalid"
    domain = email.rpartition("@")[2]
    if domain in _TYPO_DOMAINS:
        return f"typo:{_TYPO_DOMAINS[domain]}"
    return None


# Overseas departments and collectivities have their own phone regions but share French postcodes.
_OVERSEAS_REGIONS = {
    "971": "GP", "972": "MQ", "973": "GF", "974": "RE", "975": "PM", "976": "YT", "977": "BL", "978": "MF",
    "986": "WF", "987": "PF", "988": "NC",
}


def normalize_phone(value: Any, *, region: str = "FR", postcode: str = "") -> str:
    """The number in E.164 (``+33612345678``), or ``""`` when it is not a valid number.

    French numbering first; an overseas postcode (974..., Réunion) picks that
    region, and a number invalid in metropolitan France is tried in the
    overseas regions (``0692...`` is a Réunion mobile).
    """
    import phonenumbers

    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if isinstance(value, int) and not text.startswith("0") and len(text) == 9:
        text = "0" + text  # a spreadsheet ate the leading zero
    if not text or not re.search(r"\d{4}", re.sub(r"\D", "", text) or "x"):
        return ""
    regions = []
    dep = department_of(postcode) if postcode else ""
    if dep in _OVERSEAS_REGIONS:
        regions.append(_OVERSEAS_REGIONS[dep])
    regions.append(region)
    regions += [r for r in _OVERSEAS_REGIONS.values() if r not in regions]
    for reg in regions:
        try:
            number = phonenumbers.parse(text, reg)
        except phonenumbers.NumberParseException:
            return ""
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if text.startswith("+") or text.startswith("00"):
            break  # an international number does not depend on the region guessed
    return ""


def normalize_postcode(value: Any, *, country: str = "FR") -> str:
    """A French postcode as 5 digits (``1000`` from a spreadsheet → ``01000``), or ``""`` when invalid.

    Corsican postcodes (``20000``–``20620``) and overseas ones (``97x``/``98x``)
    are valid; a department code such as ``2A`` is not a postcode.  Other
    countries: trimmed and upper-cased, not checked.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = re.sub(r"[\s\u00a0.]", "", str(value)).upper()
    if country.upper() != "FR":
        return text
    text = re.sub(r"^(F-|FR-|FR)", "", text)
    if re.fullmatch(r"\d{4}", text):
        text = "0" + text
    if not re.fullmatch(r"\d{5}", text):
        return ""
    dep = int(text[:2])
    if dep == 0 or dep == 96 or dep == 99:
        return ""
    if dep == 97 and text[2] not in "1234678":
        return ""
    if dep == 98 and text[2] not in "0678":
        return ""
    return text


def department_of(postcode: Any) -> str:
    """The département of a French postcode: ``75``, ``2A``/``2B`` for Corsica, ``974`` overseas; ``""`` if unknown.

    A value that is already a département code (``2A``, ``974``, ``06``) is returned as is.
    """
    text = str(postcode or "").strip().upper()
    if re.fullmatch(r"2[AB]|\d{2}|9[78]\d", text):
        return text
    if re.fullmatch(r"2[AB]\d{3}", text):  # INSEE commune code of Corsica
        return text[:2]
    code = normalize_postcode(text)
    if not code:
        return ""
    if code.startswith("20"):
        return "2A" if int(code) < 20200 else "2B"
    if code[:2] in ("97", "98"):
        return code[:3]
    return code[:2]


def normalize_city(value: Any) -> str:
    """Tidy a commune name (``ST ETIENNE`` → ``Saint-Étienne`` is beyond reach; ``PARIS 11`` → ``Paris 11``)."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    text = re.sub(r"\b(?i:cedex)\b.*$", "", text).strip()
    words = []
    for i, word in enumerate(text.split(" ")):
        low = word.lower()
        words.append(low if i > 0 and low in ("de", "du", "des", "la", "le", "les", "sur", "sous", "en", "et", "lès", "lez") else _cap(word))
    return " ".join(words)


# -- whole records -----------------------------------------------------------

def clean_person(person: Person, *, region: str = "FR") -> tuple[Person, list[str]]:
    """A tidied copy of ``person`` and the issue codes met (``email:invalid``, ``phone:invalid``...)."""
    issues: list[str] = []
    email = normalize_email(person.email)
    problem = email_issue(person.email)
    if problem:
        issues.append(f"email:{problem}")
    postcode = normalize_postcode(person.postcode) if person.postcode else ""
    if person.postcode and not postcode:
        issues.append("postcode:invalid")
    phone = normalize_phone(person.phone, region=region, postcode=postcode) if person.phone else ""
    if person.phone and not phone:
        issues.append("phone:invalid")
    birth_year = person.birth_year
    this_year = date.today().year
    if birth_year is not None and not (this_year - 120 <= birth_year <= this_year):
        issues.append("birth_year:implausible")
        birth_year = None
    cleaned = dataclasses.replace(
        person,
        first_name=normalize_name(person.first_name),
        last_name=normalize_name(person.last_name),
        email=email,
        phone=phone,
        postcode=postcode,
        city=normalize_city(person.city),
        birth_year=birth_year,
    )
    return cleaned, issues


def clean_people(persons: Iterable[Person], *, region: str = "FR") -> tuple[list[Person], dict[str, list[str]]]:
    """Clean every person; returns the cleaned list and the issues by person key (only those with issues)."""
    out: list[Person] = []
    issues: dict[str, list[str]] = {}
    for person in persons:
        cleaned, found = clean_person(person, region=region)
        out.append(cleaned)
        if found:
            issues[person.key] = found
    return out, issues
