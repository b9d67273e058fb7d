"""Replace personal data in text by typed placeholders (``<EMAIL>``, ``<PHONE>`` ...).

One function serves the model's training text, stored text and logs, so the
same data is hidden everywhere.  Phone numbers are found with ``phonenumbers``
(French formats first, then international ``+`` numbers) and IBANs are checked
with ``python-stdnum`` (a random 27-character code is not an IBAN unless its
checksum says so).  E-mail addresses, URLs and French postal addresses are
matched by pattern, since no maintained library finds them in free text.
People's names are found word by word from a packaged list of first names
(INSEE, see data/README.md) and the places mail puts names; reference numbers
(member, contract, invoice) from their shape or the word before them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from importlib import resources

import phonenumbers
from stdnum import iban as _iban

from assoc_ai_core.mail.stopwords import ENGLISH_STOP_WORDS, FRENCH_STOP_WORDS

__all__ = ["pseudonymise", "pseudonymize", "mask_addresses_and_links", "EMAIL", "PHONE", "IBAN", "URL", "ADDRESS", "POSTCODE", "NAME", "NUMBER",
           "person_name_spans"]

EMAIL = "<EMAIL>"
PHONE = "<PHONE>"
IBAN = "<IBAN>"
URL = "<URL>"
ADDRESS = "<ADDRESS>"
POSTCODE = "<POSTCODE>"
NAME = "<NAME>"
NUMBER = "<NUMBER>"

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
    """Return ``text`` with e-mails, URLs, IBANs, phones, postal addresses, people's names and reference
    numbers replaced.

    ``names`` are people's names known from elsewhere (e.g. the sender's display
    name); each word of three letters or more is replaced by ``<NAME>``.  Other
    names are found from a packaged list of first names and the places mail
    puts names (greetings, "M." / "Madame", "Nom :", "…, trésorier", the lines
    under "Cordialement,"); member, contract and invoice numbers become
    ``<NUMBER>``.

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
        # Only the characters just before: searching from 0 for each postcode was quadratic in the text.
        start = m.start() - 2 if _COUNTRY_PREFIX.search(text, max(0, m.start() - 3), m.start()) else m.start()
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
    spans = [(s, e, NAME) for s, e in _person_name_spans(text)]
    if spans:
        text = _replace_spans(text, spans)
    if _DIGIT.search(text):
        spans = [(s, e, NUMBER) for s, e in _number_spans(text)]
        if spans:
            text = _replace_spans(text, spans)
    return text


def person_name_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` names people (first names, surnames by their cues), as sorted (start, end) spans."""
    return sorted(set(_person_name_spans(text)))


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


# ----------------------------------------------------------------------------- people's names
# Found without a list of every name: a packaged list of first names (data/README.md) and the places
# where French and English mail puts names (greetings, "M." / "Madame", "Nom :", "…, trésorier",
# signature lines).  Each word is looked up in a set, so the cost stays linear in the text's length.

_WORD_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
_CIVILITY = frozenset("m mr mrs ms mme mmes mlle mlles madame monsieur mademoiselle messieurs dr docteur me maître "
                      "maitre pr professeur sir".split())
_GREETING = frozenset("bonjour bonsoir salut coucou hello hi hey dear cher chère chers chères merci thanks thank "
                      "bravo félicitations amitiés bises".split())
_ROLE = frozenset("""président présidente vice-président vice-présidente trésorier trésorière trésorier-adjoint
    secrétaire secrétaire-adjoint secrétaire-adjointe bénévole bénévoles adhérent adhérente membre directeur directrice
    responsable coordinateur coordinatrice animateur animatrice chargé chargée délégué déléguée gérant gérante
    maire adjoint adjointe conseiller conseillère journaliste correspondant correspondante chef cheffe
    president treasurer secretary chair chairman chairwoman volunteer member director manager coordinator
    fils fille mari femme épouse époux frère sœur soeur mère père cousin cousine oncle tante neveu nièce
    petit-fils petite-fille grand-mère grand-père voisin voisine collègue ami amie copain copine
    son daughter husband wife brother sister mother father friend colleague neighbour neighbor""".split())
_FORM_LABEL = re.compile(
    r"^[ \t>*•-]*(?:votre |your )?(?:nom(?: complet| de famille| et prénom)?|prénom(?: et nom)?|prenom(?: et nom)?"
    r"|full name|first name|last name|surname|name|given name|family name|contact|signataire|demandeur|demandeuse)"
    r"[ \t]*(?:\(s\))?[ \t]*:[ \t]*(?P<value>[^\n]{1,80})$", re.I | re.M)
_CLOSING_LINE = re.compile(
    r"^[ \t]*(?:bien |très |tres )?(?:cordialement|amicalement|amitiés|bien à vous|bien a vous|salutations"
    r"|sincères salutations|sincèrement|respectueusement|bonne (?:journée|soirée|fin de journée)|à bientôt|a bientot"
    r"|bises|merci(?: d'avance| beaucoup| encore)?|(?:best|kind|warm)? ?regards|best wishes|best|cheers|thanks"
    r"|thank you|sincerely|yours|--)[ \t]*[,.!]?",
    re.I | re.M)
# Capitalised words that stand where a name could and are not one (a greeting's "Madame", a signature's role).
_NOT_NAME = _CIVILITY | _GREETING | _ROLE | frozenset("""
    tous toutes tout amis amies ami amie adhérents adhérentes membres collègues voisins voisines bénévoles équipe
    l'équipe association asso club comité bureau conseil service mairie ville commune le la les un une des du de
    et ou à au aux en pour par sur avec sans nous vous je il elle on ils elles ce cette ces mon ma mes notre nos
    votre vos leur leurs encore beaucoup avance d'avance bonne bon belle beau journée soirée semaine week-end
    all everyone team members friends colleagues folks there again so much in advance the a an and or to of
    from for with on at is it this that we you our your my i oui non ok cordialement envoyé sent objet subject
    re tr fwd fw date pj madame monsieur lundi mardi mercredi jeudi vendredi samedi dimanche janvier février
    mars avril mai juin juillet août septembre octobre novembre décembre january february march april may june
    july august september october november december""".split()) | FRENCH_STOP_WORDS | ENGLISH_STOP_WORDS
_PARTICLES = frozenset("de du des le la van von der den di da del dos".split())
_JOINERS = re.compile(r"[ \t]*(?:,|et|and|&|ou|or)[ \t]*|[ \t]+")
_NAME_SEP = re.compile(r"[ \t]{1,2}")  # words of one name: a blank or two between them, not a column gap
_INITIAL_GAP = re.compile(r"\.-?[ \t]*")  # "L. Barbier", the "J.-" of "J.-P. Arnal"
_HEADER_LINE = re.compile(r"^[ \t>]*(?:de|from|à|a|to|cc|envoyé par|sent by|expéditeur)[ \t]*:[ \t]*"
                          r"(?P<value>[^\n<\[]{1,80})[<\[]", re.I | re.M)


@functools.cache
def _first_names() -> tuple[frozenset[str], frozenset[str]]:
    """The packaged first names, lower-cased, and those that are also ordinary words (read once)."""
    data = resources.files("assoc_ai_core.mail").joinpath("data")

    def read(name: str) -> frozenset[str]:
        text = data.joinpath(name).read_text(encoding="utf-8")
        return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))

    return read("first_names.txt"), read("first_names_ambiguous.txt")


def _is_first_name(low: str, names: frozenset[str]) -> bool:
    if "-" not in low:
        return low in names
    parts = low.split("-")
    # "Saint-Martin", "Sainte-Anne": a feast, a place or a street, not a person.
    return parts[0] not in _SAINTS and all(p in names for p in parts)


_SAINTS = frozenset("saint sainte st ste san santa".split())
_CUES = _CIVILITY | _GREETING | _ROLE
_BEFORE_FIRST = _CIVILITY | _GREETING
_DIGIT = re.compile(r"\d")


class _NameWords:
    """The words of one text, which of them are names so far, and the cues that mark more of them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.first, self.ambiguous = _first_names()
        # The words of the placeholders already put ("<IBAN>": Iban is a first name too) are not text.
        self.words = [(m.start(), m.end(), m.group()) for m in _WORD_RE.finditer(text)
                      if not (m.start() and text[m.start() - 1] == "<" and text.startswith(">", m.end()))]
        self.lows = [w.lower() for _, _, w in self.words]
        self.caps = [w[0].isupper() for _, _, w in self.words]
        self.n = len(self.words)
        self.masked = [False] * self.n

    def gap(self, i: int) -> str:
        """What lies between word i and word i+1."""
        return self.text[self.words[i][1]:self.words[i + 1][0]]

    def same_name(self, i: int) -> bool:
        """Word i+1 continues the name word i is part of: only blanks between them."""
        return i + 1 < self.n and _NAME_SEP.fullmatch(self.gap(i)) is not None

    def could_be_name(self, i: int) -> bool:
        """Capitalised and no known ordinary word; "AVQ", "RSE" (an acronym) are organisations or topics."""
        word = self.words[i][2]
        return (self.caps[i] and self.lows[i] not in _NOT_NAME and len(word) > 1
                and not (len(word) <= 3 and word.isupper()))

    def unambiguous_first(self, i: int) -> bool:
        """A first name that no ordinary word shares, capitalised; a word in capitals may be an acronym."""
        low = self.lows[i]
        return (self.caps[i] and low not in _NOT_NAME and _is_first_name(low, self.first)
                and not _is_first_name(low, self.ambiguous) and not self.words[i][2].isupper())

    def mark_from(self, i: int, most: int = 2) -> None:
        """Word i is a name, and so are up to ``most`` capitalised words after it (a surname, "de La Tour")."""
        self.masked[i] = True
        j = i
        while most and self.same_name(j):
            nxt = j + 1
            if self.lows[nxt] in _PARTICLES and self.same_name(nxt) and self.could_be_name(nxt + 1):
                self.masked[nxt] = True
                nxt += 1
            if not self.could_be_name(nxt):
                break
            self.masked[nxt] = True
            j, most = nxt, most - 1

    def first_name(self, i: int) -> bool:
        """A first name, ambiguous ones ("Rose") only with a surname after them or a greeting before."""
        low = self.lows[i]
        if not (self.caps[i] and len(low) > 2 and low not in _NOT_NAME and _is_first_name(low, self.first)):
            return False  # "The", "Pour": rare first names, common words first
        if self.unambiguous_first(i):
            return True
        if self.same_name(i) and self.could_be_name(i + 1) and self.lows[i + 1] not in self.ambiguous:
            return True  # "Rose Fabre"
        return i > 0 and self.lows[i - 1] in _BEFORE_FIRST and "\n" not in self.gap(i - 1)

    def cue(self, i: int) -> None:
        """The name a cue word points at: after "M.", "Bonjour", an initial, a role; before ", trésorier"."""
        low, nxt = self.lows[i], i + 1
        if nxt >= self.n:
            return
        sep = self.gap(i)
        if low in _CIVILITY and self.caps[i]:
            if (_NAME_SEP.fullmatch(sep) or sep.startswith(".") and _NAME_SEP.fullmatch(sep[1:])) \
                    and self.could_be_name(nxt):
                self.mark_from(nxt)
        elif low in _GREETING and _NAME_SEP.fullmatch(sep):
            after = self.lows[nxt]  # "bonjour marie": a first name written small after a greeting
            if self.could_be_name(nxt) or (after in self.first and after not in _NOT_NAME
                                           and after not in self.ambiguous):
                self.mark_from(nxt)
        elif len(low) == 1 and self.caps[i] and _INITIAL_GAP.fullmatch(sep) and self.could_be_name(nxt):
            self.mark_from(nxt, 1)  # "L. Barbier", "J.-P. Arnal"
        elif low in _ROLE:
            self.before_role(i)
            if self.same_name(i) and self.could_be_name(nxt):
                self.mark_from(nxt)  # "notre trésorier Bernard Lacombe"

    def before_role(self, i: int) -> None:
        """ "Bernard Lacombe, trésorier": the capitalised words just before ", role"."""
        if not i or self.gap(i - 1).strip() not in (",", "-", "–", "(") or "\n" in self.gap(i - 1):
            return
        j = i - 1
        while j >= 0 and self.could_be_name(j) and j > i - 4:
            self.masked[j] = True
            if j == 0 or not _NAME_SEP.fullmatch(self.gap(j - 1)):
                break  # the name starts after punctuation or a line break
            j -= 1

    def around_names(self) -> None:
        """A surname in capitals before a first name ("DUPONT Jean"); first names listed with a name found."""
        words, masked = self.words, self.masked
        for i in range(1, self.n):
            before = words[i - 1][2]
            if masked[i] and not masked[i - 1] and before.isupper() and len(before) > 1 \
                    and not words[i][2].isupper() and self.same_name(i - 1) and self.lows[i - 1] not in _NOT_NAME:
                masked[i - 1] = True
        # "René, Francis et Cédric"; an ordinary word ("Hi Mark, Will you…") is no name because it follows one.
        for i in range(self.n - 1):
            if masked[i] and not masked[i + 1] and self.unambiguous_first(i + 1) and self.joined(i):
                masked[i + 1] = True
        for i in range(self.n - 2, -1, -1):
            if masked[i + 1] and not masked[i] and self.unambiguous_first(i) and self.joined(i):
                masked[i] = True

    def joined(self, i: int) -> bool:
        """Words i and i+1 are side by side in a list (", ", " et ", " and ") on one line."""
        gap = self.gap(i)
        return "\n" not in gap and _JOINERS.fullmatch(gap) is not None


def _person_name_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the words of ``text`` that are people's names, found by the cues above."""
    w = _NameWords(text)
    if not w.n:
        return []
    for i in range(w.n):
        if not w.caps[i] and w.lows[i] not in _CUES:
            continue  # most words: nothing to do, and this loop must stay cheap on a 1 MB text
        if w.first_name(i):
            w.mark_from(i)
        else:
            w.cue(i)
    w.around_names()
    spans = [(w.words[i][0], w.words[i][1]) for i in range(w.n) if w.masked[i]]
    spans += _form_and_signature_spans(text, w.first)
    # A surname found once (in a signature, after "M.") is hidden wherever else the text names it.
    found = {low for i, low in enumerate(w.lows)
             if w.masked[i] and len(low) > 2 and low not in w.ambiguous and low not in _NOT_NAME}
    if found:
        spans += [(w.words[i][0], w.words[i][1]) for i in range(w.n)
                  if not w.masked[i] and w.caps[i] and w.lows[i] in found]
    return spans


def _form_and_signature_spans(text: str, first: frozenset[str]) -> list[tuple[int, int]]:
    """Names given in a form's fields ("Nom : Fabre") and on the lines under a closing formula."""
    spans: list[tuple[int, int]] = []
    if ":" in text:
        for m in _FORM_LABEL.finditer(text):
            value = m.group("value")
            if "<" in value or any(c.isdigit() for c in value) or len(value.split()) > 5:
                continue
            base = m.start("value")
            spans += [(base + w.start(), base + w.end()) for w in _WORD_RE.finditer(value)
                      if w.group().lower() not in _PARTICLES and w.group().lower() not in _NOT_NAME]
    if "<" in text or "[" in text:
        # A quoted header, "De : Lucía Herrero <EMAIL>": the display name in front of the address.
        for m in _HEADER_LINE.finditer(text):
            base = m.start("value")
            found = [w for w in _WORD_RE.finditer(m.group("value"))
                     if w.group()[0].isupper() and w.group().lower() not in _NOT_NAME]
            # "Amis du Vieux Quartier <EMAIL>" is an association: a person's name holds a first name.
            if any(_is_first_name(w.group().lower(), first) for w in found):
                spans += [(base + w.start(), base + w.end()) for w in found]
    for m in _CLOSING_LINE.finditer(text):
        eol = text.find("\n", m.end())
        rest_of_line = text[m.end():len(text) if eol < 0 else eol]
        if any(not w.group()[0].isupper() and w.group().lower() not in _PARTICLES
               for w in _WORD_RE.finditer(rest_of_line)):
            continue  # "Merci pour votre aide": a sentence, not a closing formula
        candidates = [(m.end(), rest_of_line)]
        pos = m.end() + len(rest_of_line)
        while pos < len(text) and text[pos] in "\n \t":  # the line under the formula, blank lines skipped
            pos += 1
        end = text.find("\n", pos)
        candidates.append((pos, text[pos:len(text) if end < 0 else end]))
        for base, line in candidates:
            found = list(_WORD_RE.finditer(line))
            if not found or len(found) > 4 or any(c.isdigit() or c in "<@:" for c in line):
                continue
            lows = [w.group().lower() for w in found]
            names = [w for w, low in zip(found, lows, strict=True)
                     if w.group()[0].isupper() and low not in _NOT_NAME and low not in _PARTICLES]
            lower_words = [low for w, low in zip(found, lows, strict=True)
                           if not w.group()[0].isupper() and low not in _PARTICLES]
            # A signature's name line holds a known first name or an initial ("J. Dupont"); "Service
            # Clientèle" or a company's name under the formula hold neither.
            if names and not lower_words and any(_is_first_name(low, first) or len(low) == 1 for low in lows):
                spans += [(base + w.start(), base + w.end()) for w in names]
    return spans


# ----------------------------------------------------------------------------- reference numbers
# A member, contract or invoice number names one person as surely as a name does, and a model learns
# it as a word of its category.  Dates, times, years, seasons and amounts stay: they carry meaning.
_CODE_RE = re.compile(r"(?<![\w/<-])[A-Za-z]{0,6}[-_/#]?\d[\w/-]*+")
_NUMBER_CUE = re.compile(
    r"\b(?:n°|nº|no\.?|num(?:éro|ero)?\.?|réf(?:érence)?\.?|ref(?:erence)?\.?|dossier|contrat|contract|adhérent"
    r"|adhérente|membre|member|facture|invoice|commande|order|ticket|client|customer|id|identifiant|account"
    r"|compte|licence|license|badge|carte)[ \t]*+(?:n°|no\.?|#|:)?[ \t]*+#?", re.I)
_NOT_A_CODE = re.compile(
    r"\d{1,4}[/.-]\d{1,2}(?:[/.-]\d{1,4})?|\d{1,2}h\d{0,2}|(?:19|20)\d\d(?:[/-](?:19|20)?\d\d)?|\d{1,2}(?:er|ère|e|ème|eme"
    r"|nd|nde|st|th|rd)|\d+(?:[.,]\d+)?(?:k€|€|eur|euros?|kg|km|m|cm|mm|h|min|ans?|%)", re.I)
_AMOUNT_AFTER = re.compile(r"[ \t]*(?:€|eur\b|euros?\b|\$|£|%)", re.I)


def _number_spans(text: str) -> list[tuple[int, int]]:
    """Reference numbers: five digits or more, codes mixing letters and three digits or more, or any
    number right after "n°", "réf.", "adhérent"…"""
    spans = []
    cue_ends = {m.end() for m in _NUMBER_CUE.finditer(text)}  # one pass: a number right after a cue is cued
    for m in _CODE_RE.finditer(text):
        token = m.group().rstrip("/-_")
        digits = sum(c.isdigit() for c in token)
        cued = m.start() in cue_ends
        if _NOT_A_CODE.fullmatch(token) and not cued:
            continue
        if _AMOUNT_AFTER.match(text, m.end()) and not cued:
            continue
        letters = any(c.isalpha() for c in token)
        if digits >= 5 or (letters and digits >= 3) or (cued and digits >= 2):
            spans.append((m.start(), m.start() + len(token)))
    return spans


pseudonymize = pseudonymise  # American spelling, same function
