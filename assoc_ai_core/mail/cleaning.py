"""From a message to the text that carries its intent.

``clean`` keeps the subject and the *new* text of a mail: quoted history of a
reply is dropped (it is usually about another topic), but when the mail is a
forward the forwarded message is kept, because that is the actual request.
Signatures, mobile footers and legal disclaimers are removed.  Quote and
forward detection uses quotequail (French, English and a dozen other mailers'
markers); this module adds what it does not cover: telling a forward from an
Outlook-style reply, and stripping signatures.

``TextCleaner`` is the same thing as a scikit-learn transformer; it outputs two
columns, the cleaned text and a few *meta tokens* (sender domain, attachment
types, automated mail, language) that the model can weigh separately.

Who wrote and to whom enter the meta tokens only as *keyed* tokens
(``sender_…``, ``rcpt_…``: a truncated HMAC-SHA256 of the address under the
installation's secret, a :class:`SenderKey`).  The key is passed explicitly to
each call that cleans (``sender_key=``) and is never stored in a model; without
it no sender or recipient token is made at all.  Anyone holding a model file
and a list of addresses therefore cannot tell who wrote: recomputing a token
needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import quotequail
from sklearn.base import BaseEstimator, TransformerMixin

from assoc_ai_core.files import read_secret_key
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.parsing import MAX_SUBJECT_CHARS, message_from_text
from assoc_ai_core.mail.pseudonymise import mask_addresses_and_links, pseudonymise
from assoc_ai_core.records.mail import Message

__all__ = ["CleanedMail", "TextCleaner", "clean", "clean_message", "detect_language", "strip_signature", "meta_tokens",
           "SenderKey", "address_terms", "legacy_address_terms", "ADDRESS_TOKEN_PREFIXES", "TOKEN_HEX", "FINGERPRINT_HEX",
           "MAX_BODY_CHARS", "CHAR_FEATURE_CHARS", "MAX_RECIPIENT_TOKENS", "HISTORY_CHARS", "SCAN_CHARS"]

# Subject prefixes of replies and forwards in the languages an association meets.
# Possessive white space: "re" and 2,000 spaces were otherwise split every way between the two "\s*".
_REPLY_PREFIX = re.compile(r"^\s*+((re|ré|rép|réf|aw|sv|antw|r)\s*+(\[\d+\]\s*+)?:\s*+)+", re.I)
_FWD_PREFIX = re.compile(r"^\s*+((fwd?|tr|trans|transf|wg|rv|enc)\s*+:\s*+)+", re.I)
_ANY_PREFIX = re.compile(r"^\s*+((re|ré|rép|réf|aw|sv|antw|r|fwd?|tr|trans|transf|wg|rv|enc)\s*+(\[\d+\]\s*+)?:\s*+)+", re.I)

_SIG_DASHES = re.compile(r"^(-- ?|__+|—)$")
_MOBILE = re.compile(
    r"^(envoy[ée] (de|depuis) (mon|ma|l'application)|sent from my|get outlook for|t[ée]l[ée]chargez outlook|"
    r"obtenir outlook pour|envoy[ée] avec|sent with|sent via|envoy[ée] à partir de)\b.*$",
    re.I,
)
_DISCLAIMER = re.compile(
    r"(ce (message|courriel|e-?mail)( et (toutes )?(les|ses) pi[eè]ces jointes)?.{0,40}(confidentiel|destin[ée]s? exclusivement|usage exclusif)|"
    r"this (e-?mail|message)( and any (files|attachments))?.{0,60}(confidential|intended (solely|only))|"
    r"pensez (à|a) l'environnement|please consider the environment|avis de confidentialit[ée]|"
    r"confidentiality notice|disclaimer\s*:|if you (are not|have received this).{0,40}(intended|in error)|"
    r"si vous (n'[êe]tes pas|avez re[çc]u ce).{0,60}(destinataire|par erreur))",
    re.I,
)
# Every disclaimer pattern holds one of these words; looked for with ``in`` on the lower-cased text,
# which is many times faster than a case-insensitive search.
_DISCLAIMER_HINTS = ("confidenti", "intended", "exclusi", "environ", "disclaimer", "in error", "destinataire",
                     "par erreur")
_CLOSING = re.compile(
    r"^(bien )?(cordialement|amicalement|sinc[èe]rement|chaleureusement|bien (à|a) (vous|toi)|bien des choses|"
    r"salutations( distingu[ée]es| cordiales)?|bonne (journ[ée]e|soir[ée]e|fin de journ[ée]e)|"
    r"(avec )?mes (meilleures |sinc[èe]res )?salutations|(tr[èe]s )?belle journ[ée]e|à bient[ôo]t|"
    r"(best|kind|warm|many thanks and)( regards| wishes)?|regards|cheers|sincerely( yours)?|yours (sincerely|truly|faithfully)|"
    r"thanks( again| in advance)?|thank you|merci( beaucoup| d'avance| par avance| encore)?|"
    r"je vous (prie|remercie).{0,80})[ ,.!]*$",
    re.I,
)
_HEADER_LINE = re.compile(r"^\*?(de|from|envoy[ée]( le)?|sent|date|[àa]|to|cc|objet|subject)\s?\*?\s?:", re.I)
_SEPARATOR = re.compile(r"^\s*-{2,}\s*(original message|message d'origine|message original|forwarded message|message transf[ée]r[ée])\s*-{2,}\s*$", re.I)
_QUOTED = re.compile(r"^\s*>")
# Lines that can start a reply or forward in the formats quotequail knows; a
# cheap first pass so quotequail only runs where it can succeed.  Bare "> "
# blocks with no attribution line above need no library: they are dropped below.
_ATTRIBUTION_WORDS = r"wrote|[ée]crit|schrieb|escribi[óo]|escreveu|schreef|skrev|geschreven|написал"
_CANDIDATE = re.compile(
    rf"(^.{{0,300}}\b({_ATTRIBUTION_WORDS})\b.{{0,40}}$"
    r"|^\s*-{2,}\s*(original|forwarded|message|mensaje|urspr|oorspronkelijk|doorgestuurd|weitergeleitet|origineel|vidarebefordrat)"
    r"|^\s*(begin forwarded|d[ée]but du message r[ée]exp[ée]di|anfang der weitergeleiteten|inicio del mensaje)"
    r"|^\s*_{30,34}\s*$|^\s*\*?(de|from|von|da|van|från)\s?\*?\s?:|^\d{4}/\d{1,2}/\d{1,2} )",
    re.I | re.M,
)
# ``_candidate`` finds what ``_CANDIDATE`` (the tests' reference) finds, cheaper: attribution words with
# ``str.find`` in the lower-cased body, line markers once per run of blank lines (``_line_marker``).
_ATTRIBUTION_KEYS = ("wrote", "écrit", "ecrit", "schrieb", "escribi", "escreveu", "schreef", "skrev", "geschreven",
                     "написал")
_ATTRIBUTION_AT = re.compile(rf"\b({_ATTRIBUTION_WORDS})\b", re.I)
# A marker line: a line break, white space within the line, then one of the markers (each starts with a
# visible character), or a date right after the line break.
_MARKER_LINE = re.compile(
    r"\n[^\S\n]*+(?:-{2,}\s*(original|forwarded|message|mensaje|urspr|oorspronkelijk|doorgestuurd|weitergeleitet|"
    r"origineel|vidarebefordrat)|(begin forwarded|d[ée]but du message r[ée]exp[ée]di|anfang der weitergeleiteten|"
    r"inicio del mensaje)|_{30,34}\s*$|\*?(de|from|von|da|van|från)\s?\*?\s?:)|\n(?P<date>\d{4}/\d{1,2}/\d{1,2} )",
    re.I | re.M,
)
_SPACES = re.compile(r"[ \t\u00a0\u200b\ufeff]+")
_BLANKS = re.compile(r"\n\s*\n+")
_WORDISH = re.compile(r"\w+")
_TWO_WORDS = re.compile(r"\w\W+\w")  # two words somewhere: found at the first pair, not by listing all

MAX_BODY_CHARS = 3000
CHAR_FEATURE_CHARS = 600
MAX_RECIPIENT_TOKENS = 50  # a mailing list with hundreds of recipients says "list", not who
HISTORY_CHARS = 1500
SCAN_CHARS = 4 * MAX_BODY_CHARS
_WINDOW_LINES = 3  # the intent of a mail is in its first paragraphs; long tails only add noise and time


@dataclass(frozen=True)
class CleanedMail:
    """A cleaned message: the text used for classification and what was found on the way."""

    text: str
    subject: str
    body: str
    kind: str  # "new", "reply" or "forward"
    lang: str
    history: str = ""  # quoted history of a reply (kept apart: context, often another topic)


# Tried only where a run of spaces starts, and never backtracked into: a line of 12,000 ideographic
# spaces (which the pass above leaves) was otherwise re-read from each of its characters.
_TRAILING = re.compile(r"(?<![^\S\n])[^\S\n]++(?=\n|\Z)")


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Whole-text passes rather than a loop over lines: same result, a fraction of the time on long mail.
    return _TRAILING.sub("", _SPACES.sub(" ", text))


def _looks_like_outlook_block(lines: Sequence[str], start: int) -> bool:
    """A 'De : / Envoyé : / Objet :' header block begins at ``start``."""
    window = [line for line in lines[start : start + 7] if line.strip()]
    return sum(1 for line in window if _HEADER_LINE.match(line.strip())) >= 2


def _line_marker(text: str, pos: int) -> tuple[int, int] | None:
    """(start, end) of the first match from ``pos`` of ``\\n\\s*<marker>|\\n<date>`` in ``text``.

    ``\\s*`` tried from each line break of a run of blank lines re-read the run
    (12 KB of them took 30 s).  The marker is found from the run's last line
    break; the match starts at the run's first one, as ``\\s*`` would give.
    """
    found = _MARKER_LINE.search(text, pos)
    if found is None:
        return None
    if found.group("date") is not None:  # a date follows its line break directly: no run to go back over
        return found.start(), found.end()
    start = found.start()
    while start > pos and text[start - 1].isspace():
        start -= 1
    return text.find("\n", start), found.end()


def _candidate(body: str, lowered: str, pos: int) -> tuple[int, int] | None:
    """(start, end) of the first line from ``pos`` that ``_CANDIDATE`` matches, as its search would give."""
    if len(lowered) != len(body):  # "İ" lower-cases to two characters: keep one for each, offsets stay
        lowered = "".join(ch.lower()[:1] for ch in body)
    attribution = None
    hits = []
    for key in _ATTRIBUTION_KEYS:
        at = lowered.find(key, pos)
        while at >= 0:
            hits.append(at)
            at = lowered.find(key, at + 1)
    for at in sorted(hits):
        word = _ATTRIBUTION_AT.match(body, at)
        line_start = body.rfind("\n", 0, at) + 1
        if word is None or line_start < pos:
            continue
        line_end = body.find("\n", word.end())
        line_end = len(body) if line_end < 0 else line_end
        if at - line_start <= 300 and line_end - word.end() <= 40:
            attribution = (line_start, line_end)
            break
    # "\n" + body: a newline at index j of it is a line starting at index j of the body.
    marker = _line_marker("\n" + body, pos)
    if marker is not None and (attribution is None or marker[0] < attribution[0]):
        return marker[0], marker[1] - 1
    return attribution


# quotequail's header line (its HEADER_RE, matched the same way), and the longest run of them it is given.
_HEADERISH = re.compile(r"\*?[-\w ]+:")
_MAX_HEADER_RUN = 50
_MAX_FORWARDS = 8


def _header_runs_bounded(text: str) -> str:
    """``text`` cut where a run of header-like lines passes ``_MAX_HEADER_RUN`` lines.

    quotequail re-reads a header block from each of its lines (2,000 "De : a"
    lines took 0.5 s; real blocks have under ten).  Runs as it reads them: blank
    lines and one wrapped line after a header line do not end one.
    """
    run, wrapped, pos = 0, False, 0
    for line in text.split("\n"):
        if _HEADERISH.match(line):
            run, wrapped = run + 1, False
        elif line.strip():
            run, wrapped = (run, True) if run and not wrapped else (0, False)
        if run > _MAX_HEADER_RUN:
            return text[:pos]
        pos += len(line) + 1
    return text


def _unwrap(body: str) -> dict[str, str] | None:
    """quotequail.unwrap, run only where a reply or forward marker can be.

    quotequail tries every pattern on every line, which on long mail costs
    more than everything else we do.  A cheap scan finds lines that could
    start a quote or a forward; quotequail looks at a short window from a few
    lines above each (markers are wrapped over up to three lines), and only
    when it recognises a forward does it read the rest of the body (a reply's
    quoted history is dropped anyway, unless its new text is below the quote).  The text before
    the window is put back in front of ``text_top``.
    """
    pos = 0
    lowered = body.lower()
    for _ in range(2):
        span = _candidate(body, lowered, pos)
        if span is None:
            return None
        start, span_end = span
        for _ in range(2):  # back to the start of the line, then one line above (wrapped "a\nécrit :")
            start = body.rfind("\n", 0, max(start - 1, 0) if start else 0)
            if start <= 0:
                start = 0
                break
        window_end = span_end
        for _ in range(_WINDOW_LINES):
            nxt = body.find("\n", window_end + 1)
            if nxt < 0:
                window_end = len(body)
                break
            window_end = nxt
        found: dict[str, str] | None
        try:
            found = quotequail.unwrap(_header_runs_bounded(body[start:window_end]))
            needs_all = found is not None and (found.get("type") == "forward" or not (found.get("text_top") or "").strip())
            if needs_all and window_end < len(body):
                # a forward's content is the request: read all of it
                found = quotequail.unwrap(_header_runs_bounded(body[start:]))
        except Exception:  # quotequail is heuristic; a failure must not lose the mail
            return None
        if found is not None:
            head = body[:start]
            if head.strip():
                found = dict(found)
                found["text_top"] = (head + "\n" + (found.get("text_top") or "")).strip()
            return found
        pos = max(window_end, span_end + 1)
    return None


def _split_history(body: str, subject: str, depth: int = 0) -> tuple[str, str, str]:
    """Return (kind, new_text, forwarded_text) of a body; forwards nested past ``_MAX_FORWARDS`` are read as is."""
    lines = body.split("\n")
    is_fwd_subject = bool(_FWD_PREFIX.match(subject))
    is_reply_subject = bool(_REPLY_PREFIX.match(subject))
    found = _unwrap(body)
    if found:
        top = found.get("text_top", "") or ""
        inner = found.get("text", "") or ""
        bottom = found.get("text_bottom", "") or ""
        top = "\n".join(line for line in top.split("\n") if not _SEPARATOR.match(line))
        kind = found.get("type")
        if kind == "forward" and not is_fwd_subject:
            # quotequail calls every Outlook header block a forward; in a reply it is history
            short_note = len(_WORDISH.findall(top)) < 40
            says_forward = re.search(r"transf[ée]r|forward|ci-dessous|below|fais suivre|relai", top, re.I)
            if is_reply_subject or not (short_note or says_forward):
                kind = "reply"
        if kind == "forward":
            fwd_subject = found.get("subject", "")
            # Each level re-reads the rest: hostile mail nests hundreds, real mail a few.
            inner_new = _split_history(inner, fwd_subject, depth + 1)[1] if depth < _MAX_FORWARDS else inner
            return "forward", (top + "\n" + bottom).strip(), (fwd_subject + "\n" + inner_new).strip()
        if kind == "reply":
            new = top.strip() or bottom.strip()
            if new:
                return "reply", new, "\x00" + inner
    # No marker quotequail knows: drop '>' lines and cut at a bare Outlook block or separator.
    kept: list[str] = []
    quoted: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if _SEPARATOR.match(stripped) or (_HEADER_LINE.match(stripped) and _looks_like_outlook_block(lines, i) and kept):
            kind = "reply" if any(k.strip() for k in kept) else "new"
            return kind, "\n".join(kept), "\x00" + "\n".join(lines[i:])
        if _QUOTED.match(line):
            quoted.append(line.lstrip("> "))
            continue
        kept.append(line)
    kind = "reply" if len(kept) < len(lines) else "new"
    return kind, "\n".join(kept), ("\x00" + "\n".join(quoted)) if quoted else ""


def strip_signature(text: str) -> str:
    """Remove signature blocks, mobile footers and legal disclaimers from a body."""
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        s = line.strip()
        if _SIG_DASHES.match(s):
            break  # "-- " is the standard signature delimiter: the rest is signature
        if _MOBILE.match(s):
            continue
        out.append(line)
    # Disclaimers come as paragraphs: drop the paragraph from its first matching line.  Every
    # disclaimer pattern holds one of the hint words, so most mail skips the costly search.
    joined = "\n".join(out)
    lowered = joined.lower()
    if any(hint in lowered for hint in _DISCLAIMER_HINTS):
        kept_pars = [par for par in _BLANKS.split(joined) if not _DISCLAIMER.search(par.replace("\n", " "))]
        out = "\n\n".join(kept_pars).split("\n")
    else:
        out = _BLANKS.sub("\n\n", joined).split("\n")
    # Closing formula: everything after the last one near the end is name + contact details.
    non_empty = [i for i, line in enumerate(out) if line.strip()]
    for idx in reversed(non_empty[-12:] if len(non_empty) > 1 else []):
        if _CLOSING.match(out[idx].strip()) and idx != non_empty[0]:
            out = out[:idx]
            break
    return "\n".join(out).strip()


_LANG_LOCK = threading.Lock()
_LANG_ID: Any = None


def detect_language(text: str) -> str:
    """ISO code of the text's language among fr, en, de, es, it, nl, pt ("und" when too short)."""
    global _LANG_ID
    if not _TWO_WORDS.search(text):
        return "und"
    if _LANG_ID is None:
        with _LANG_LOCK:
            if _LANG_ID is None:
                from py3langid.langid import _load_identifier

                identifier = _load_identifier(langs=["fr", "en", "de", "es", "it", "nl", "pt"])
                # The identifier keeps its 97-language table (28 MB) to allow a later reset; we never
                # reset, so only the seven languages' columns stay in memory.
                if hasattr(identifier, "_full_model"):
                    identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
                _LANG_ID = identifier
    return str(_LANG_ID.classify(text[:200])[0])


def clean_message(message: Message | str, *, keep_signature: bool = False, pseudonymize: bool = False) -> CleanedMail:
    """Clean one message (or a plain string treated as a message body)."""
    msg = message_from_text(message) if isinstance(message, str) else message
    # The parser caps what it reads; a message built otherwise (a CSV cell, a caller's record) is capped here.
    raw_subject = (msg.subject or "")[:MAX_SUBJECT_CHARS]
    subject = _ANY_PREFIX.sub("", raw_subject).strip()
    # What is kept is at most MAX_BODY_CHARS of new text and HISTORY_CHARS of quote: reading further
    # into a very long mail (a newsletter, a pasted log) only costs time.
    body = _normalise((msg.text or "")[:SCAN_CHARS])
    kind, new, forwarded = _split_history(body, raw_subject)
    history = ""
    if forwarded.startswith("\x00"):  # a reply's quoted history, not a forwarded request
        history, forwarded = forwarded[1:][:HISTORY_CHARS], ""
    if not keep_signature:
        new = strip_signature(new)
        forwarded = strip_signature(forwarded)
    body_text = (new + ("\n\n" + forwarded if forwarded else "")).strip()
    body_text = _BLANKS.sub("\n\n", body_text)[:MAX_BODY_CHARS]
    if pseudonymize:
        body_text = pseudonymise(body_text, names=(msg.sender_name,))
        subject = pseudonymise(subject, names=(msg.sender_name,))
        history = pseudonymise(history, names=(msg.sender_name,))
    else:
        # Addresses and links are one-off strings: as placeholders they generalise
        # (a newsletter "has links") and stay out of explanations.
        body_text = mask_addresses_and_links(body_text)
        history = mask_addresses_and_links(history)
    lang = detect_language(subject + "\n" + body_text)
    text = (subject + "\n\n" + body_text).strip()
    return CleanedMail(text=text, subject=subject, body=body_text, kind=kind, lang=lang, history=history)


# The model's tokens use the job's key file, which also keys the state file's sender hashes: a label of
# their own keeps a token from being a prefix of the hash stored for the same address.
_TOKEN_LABEL = b"assoc-ai/model-address-token/v1\x00"
_FINGERPRINT_LABEL = b"assoc-ai/model-address-token/key-fingerprint/v1"
TOKEN_HEX = 12  # 48 bits: collisions between an association's few thousand correspondents stay negligible
FINGERPRINT_HEX = 16
ADDRESS_TOKEN_PREFIXES = ("sender_", "rcpt_")
_MIN_KEY_BYTES = 16


def _normalised_address(address: str) -> bytes:
    return (address or "").strip().lower().encode("utf-8", "surrogatepass")


class SenderKey:
    """The installation's secret that turns addresses into sender and recipient tokens.

    A model records only :attr:`fingerprint` (an HMAC of a fixed label, which
    says nothing of the key); the key itself is never saved in a model and never
    shown (``repr`` hides it, pickling is refused).  The job uses its
    ``[privacy] key_file``; a volunteer's ``assoc-ai train --key-file``, any file
    of 16 bytes or more (hex text is read as the bytes it spells).
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < _MIN_KEY_BYTES:
            raise ValueError(tr(f"Clé trop courte : {_MIN_KEY_BYTES} octets au moins.",
                                f"Key too short: at least {_MIN_KEY_BYTES} bytes."))
        self._secret = bytes(secret)

    def __repr__(self) -> str:
        return f"SenderKey(fingerprint={self.fingerprint})"

    def __reduce__(self) -> Any:
        raise TypeError("a SenderKey is never serialised")

    def token(self, address: str) -> str:
        """The keyed token of an address (trimmed and lower-cased first): hex, ``TOKEN_HEX`` characters."""
        mac = hmac.new(self._secret, _TOKEN_LABEL + _normalised_address(address), hashlib.sha256)
        return mac.hexdigest()[:TOKEN_HEX]

    @property
    def fingerprint(self) -> str:
        """Identifies the key in a model's record without revealing it (same key, same fingerprint)."""
        return hmac.new(self._secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, create: bool = False) -> SenderKey:
        """Read a key file (the job's format: hex text, or any text); ``create``: a random one when missing.

        A created file is mode 0600 in a 0700 folder, written so that two
        first runs racing end up with the same key.
        """
        return cls(read_secret_key(path, create=create))


def address_terms(address: str, sender_key: SenderKey) -> list[str]:
    """The meta tokens an address becomes under ``sender_key`` (as sender, as recipient)."""
    token = sender_key.token(address)
    return [prefix + token for prefix in ADDRESS_TOKEN_PREFIXES]


def legacy_address_terms(address: str) -> list[str]:
    """The unkeyed tokens models trained before keyed tokens hold for an address (so erasure can find them)."""
    digest = hashlib.blake2b(address.lower().encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    return [prefix + digest for prefix in ADDRESS_TOKEN_PREFIXES]


def _domain_token(domain: str) -> str:
    return domain.replace(".", "_").replace("-", "_")


def meta_tokens(message: Message, cleaned: CleanedMail, *, sender_key: SenderKey | None = None) -> str:
    """Space-separated tokens describing a message beyond its words.

    Sender and recipient tokens are made only with ``sender_key`` (see
    :class:`SenderKey`); without it they are left out and the other tokens stay.
    """
    tokens = [f"lang_{cleaned.lang}", f"kind_{cleaned.kind}"]
    recipients = (message.to + message.cc)[:MAX_RECIPIENT_TOKENS]
    # Who writes and to whom: regular correspondents and aliases (info@ vs tresorier@) are strong hints.
    # An unkeyed digest let anyone with a list of addresses tell who wrote; keyed, only this installation can.
    if sender_key is not None:
        if message.sender:
            tokens.append("sender_" + sender_key.token(message.sender))
        for rcpt in recipients:
            tokens.append("rcpt_" + sender_key.token(rcpt))
    domain = message.sender_domain
    if domain:
        tokens.append("from_" + _domain_token(domain))
        tokens.append("fromtld_" + domain.rsplit(".", 1)[-1])
    # Organisations written to (a partner's domain, a press agency) name a thread's topic even when
    # the people change; a domain is not a person, so it stays readable.
    for rcpt_domain in sorted({r.rpartition("@")[2].lower() for r in recipients if "@" in r}):
        tokens.append("rcptdom_" + _domain_token(rcpt_domain))
    for att in message.attachments[:10]:
        tokens.append("att_" + att.content_type.replace("/", "_").replace("-", "_").replace(".", "_").replace("+", "_"))
    if message.attachments:
        tokens.append("has_attachment")
    if message.is_automated:
        tokens.append("automated")
    if message.html:
        tokens.append("html_only")
    if not cleaned.body:
        tokens.append("empty_body")
    return " ".join(tokens)


def clean(
    messages: Iterable[Message | str], *, keep_signature: bool = False, pseudonymize: bool = False
) -> list[str]:
    """Cleaned intent text (subject + new body) of each message or string.

    >>> clean(["Bonjour,\\nje souhaite adhérer.\\n\\nCordialement,\\nMarie\\n06 12 34 56 78"])
    ['Bonjour,\\nje souhaite adhérer.']
    """
    return [clean_message(m, keep_signature=keep_signature, pseudonymize=pseudonymize).text for m in messages]


class TextCleaner(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type information
    """scikit-learn transformer: messages (or strings) to a 3-column array.

    Columns: cleaned text, meta tokens, the first ``CHAR_FEATURE_CHARS``
    characters of the text (character n-grams are the costliest features;
    the opening of a mail carries its intent), and the quoted history of a
    reply (weighed lightly by the model: context, often on another topic).

    Stateless: ``fit`` learns nothing, so cleaning can be done once before a
    cross-validated search and the pipeline still holds the whole recipe.

    Parameters
    ----------
    keep_signature : bool
        Keep signature blocks (default drops them).
    pseudonymize : bool
        Replace personal data by typed placeholders before the model sees the text.
    """

    def __init__(self, keep_signature: bool = False, pseudonymize: bool = False) -> None:
        self.keep_signature = keep_signature
        self.pseudonymize = pseudonymize

    def fit(self, X: Iterable[Any], y: Any = None) -> TextCleaner:
        """Nothing to learn; present for the pipeline contract."""
        self.n_features_in_ = 1
        return self

    def transform(self, X: Iterable[Any], sender_key: SenderKey | None = None) -> np.ndarray:
        """Clean each message; returns an object array (n, 4): text, meta tokens, text head, quoted history.

        ``sender_key`` makes the sender and recipient tokens; it is an argument
        of each call, never an attribute, so a saved cleaner cannot hold it.
        """
        if isinstance(X, np.ndarray) and X.ndim == 2:
            return X  # already cleaned (cleaning is done once before cross-validation)
        rows = []
        for item in X:
            msg = message_from_text(item) if isinstance(item, str) else item
            cleaned = clean_message(msg, keep_signature=self.keep_signature, pseudonymize=self.pseudonymize)
            rows.append((cleaned.text, meta_tokens(msg, cleaned, sender_key=sender_key), cleaned.history))
        out = np.empty((len(rows), 4), dtype=object)
        for i, (text, meta, history) in enumerate(rows):
            out[i, 0] = text
            out[i, 1] = meta
            out[i, 2] = text[:CHAR_FEATURE_CHARS]
            out[i, 3] = history
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the two output columns."""
        return np.asarray(["text", "meta", "text_head", "history"], dtype=object)

    def __sklearn_tags__(self) -> Any:  # inputs are messages, not numbers
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = False
        return tags
