"""Raw RFC 822 bytes to :class:`~assoc_ai_core.records.mail.Message`, never crashing.

Why the ``compat32`` policy and not the modern one: it is about three times
faster on real mail and never raises on malformed headers; we decode headers
and charsets ourselves with the same standard-library helpers the modern
policy uses, and record every work-around in ``Message.defects``.

Hostile mail is read in bounded time and memory: each header, the subject,
the sender's name, the body text and HTML parts are cut to a cap before any
pattern runs on them.  A message over a cap is still read on what was kept,
and its ``defects`` name the cap (:data:`TRUNCATION_DEFECTS`), so the review
reason can say so.
"""

from __future__ import annotations

import email
import email.header
import email.utils
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message as _EmailMessage
from email.policy import compat32
from typing import Any

from assoc_ai_core.ext.headers import (
    MAX_ENCODED_WORDS,
    MAX_HEADER_CHARS,
    bound_header,
    decode_bytes,
    decode_header,
    stable_key,
)
from assoc_ai_core.ext.subject import HEAD_LIMIT, message_key
from assoc_ai_core.i18n import tr
from assoc_ai_core.mail.html import FLATTENED_HTML, MAX_HTML_CHARS, TRUNCATED_HTML, read_html
from assoc_ai_core.records.mail import Attachment, Message

__all__ = [
    "KEPT_HEADERS", "parse_message", "message_from_text", "TRUNCATION_DEFECTS",
    "MAX_SUBJECT_CHARS", "MAX_NAME_CHARS", "MAX_ADDRESS_CHARS", "MAX_TEXT_CHARS",
    # defined in assoc_ai_core.ext.headers; re-exported because connector plugins import them from here
    "decode_bytes", "decode_header", "stable_key",
]

KEPT_HEADERS = (
    "message-id", "in-reply-to", "references", "auto-submitted", "precedence", "list-id",
    "list-unsubscribe", "x-autoreply", "x-autorespond", "reply-to", "content-type", "x-mailer",
    "user-agent", "return-path", "x-assoc-ai",
)
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes the parser could not decode, kept as surrogate escapes
_MAX_PARTS = 200  # a mail bomb with thousands of parts is read up to here
# What the later stages look at; far above real mail (the longest subject of the shared corpora is a few
# hundred characters), well below what makes a pattern slow.
MAX_SUBJECT_CHARS = 2000
MAX_NAME_CHARS = 256  # a display name; its words become a pattern in pseudonymisation
MAX_ADDRESS_CHARS = 320
MAX_TEXT_CHARS = 512 * 1024  # the body text; cleaning reads its first 12,000 characters
TRUNCATED_HEADER = "truncated:header"
TRUNCATED_SUBJECT = "truncated:subject"
TRUNCATED_TEXT = "truncated:text"
TRUNCATION_DEFECTS = frozenset({TRUNCATED_HEADER, TRUNCATED_SUBJECT, TRUNCATED_TEXT, TRUNCATED_HTML, FLATTENED_HTML})


def _part_bytes(part: _EmailMessage) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: fall back to the raw text below
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _repair_8bit(value: str) -> str:
    """A header written in raw 8-bit (common, though not allowed): decode its bytes, don't blank them.

    The parser keeps such bytes as surrogate escapes; compat32's ``get`` would
    turn them into U+FFFD, losing accented names and subjects.
    """
    if not isinstance(value, str):
        return str(value)
    if _SURROGATE.search(value):
        return decode_bytes(value.encode("ascii", "surrogateescape"), None)[0]
    return value


# Characters that give an address header a structure only the full RFC 5322 parser reads right.
_ADDRESS_SPECIALS = re.compile(r'["()\\;:\[\]]')


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """(name, address) pairs of a header made only of ``a@b`` and ``Name <a@b>`` items, else None.

    ``email.utils.getaddresses`` costs about 30 µs a header, more than the
    rest of reading a message's headers; most headers are this simple, and for
    them this gives what it gives (compared on 70,000 headers of the shared
    corpora).  Anything else — quotes, comments, groups, a second "@" — goes
    to the standard parser.
    """
    if _ADDRESS_SPECIALS.search(value):
        return None
    out = []
    for piece in value.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if "<" in piece:
            name, _, rest = piece.partition("<")
            addr, close, tail = rest.partition(">")
            addr = addr.strip()
            if (not close or tail.strip() or "<" in rest or not addr or " " in addr or addr.count("@") > 1
                    or ">" in name or "." in name or "@" in name):
                return None
            out.append((" ".join(name.split()), addr))
        else:
            if " " in piece or ">" in piece or piece.count("@") > 1:
                return None
            out.append(("", piece))
    return out


def _addresses(values: list[str]) -> tuple[str, ...]:
    pairs: list[tuple[str, str]] = []
    for value in values:
        simple = _simple_addresses(value)
        pairs += simple if simple is not None else email.utils.getaddresses([value])
    # Longer is no address (RFC 5321 allows 254 characters): the rest of a header cut to its cap.
    return tuple(a.lower() for _, a in pairs if a and len(a) <= MAX_ADDRESS_CHARS)


def _sender(value: str) -> tuple[str, str]:
    simple = _simple_addresses(value)
    if simple is not None and len(simple) == 1:
        return simple[0]
    return email.utils.parseaddr(value)


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


# The standard library reads header parameters (charset, boundary, filename) by re-slicing the rest of the
# header after each ";": 600 KB of them took 3 s, 1 MB minutes.  Real ones are a few hundred characters.
_MAX_PARAMS_CHARS = 8 * 1024
# Each header lookup of the standard library scans the whole list: 180,000 header lines made every lookup
# cost 20 ms.  Real mail has a few dozen (long Received chains, a hundred).
_MAX_FIELDS = 1000
_SHORT_HEADER = min(MAX_HEADER_CHARS, 2 * MAX_ENCODED_WORDS)  # shorter holds at most MAX_ENCODED_WORDS "=?"


class _BoundedMessage(_EmailMessage):
    """A compat32 message whose parameter reading looks at the first ``_MAX_PARAMS_CHARS`` of a header only.

    The parser builds every part with this class (``message_from_bytes``'s
    ``_class``), so a part's boundary is read with the cap too.  ``params_cut``
    says the cap was used; ``fields_cut`` that header fields past ``_MAX_FIELDS``
    were dropped.
    """

    params_cut = False
    fields_cut = False

    def set_raw(self, name: str, value: str) -> None:
        """Add a header as the parser does, up to ``_MAX_FIELDS`` of them."""
        if len(self) >= _MAX_FIELDS:
            self.fields_cut = True
            return
        super().set_raw(name, value)

    def _capped(self, header: str) -> _EmailMessage | None:
        """A message holding only ``header`` cut to its cap, when it is over it; else None."""
        value = self.get(header)
        if value is None or len(value) <= _MAX_PARAMS_CHARS:
            return None
        self.params_cut = True
        probe = _EmailMessage()
        probe[header] = str(value)[:_MAX_PARAMS_CHARS]
        return probe

    def get_param(self, param: str, failobj: Any = None, header: str = "content-type", unquote: bool = True) -> Any:
        """As the standard method, on the header cut to its cap."""
        probe = self._capped(header)
        if probe is None:
            return super().get_param(param, failobj, header, unquote)
        return probe.get_param(param, failobj, header, unquote)

    def get_params(self, failobj: Any = None, header: str = "content-type", unquote: bool = True) -> Any:
        """As the standard method, on the header cut to its cap."""
        probe = self._capped(header)
        if probe is None:
            return super().get_params(failobj, header, unquote)
        return probe.get_params(failobj, header, unquote)


def _walk(msg: _EmailMessage) -> Iterable[_EmailMessage]:
    for i, part in enumerate(msg.walk()):
        if i >= _MAX_PARTS:
            break
        yield part


def parse_message(raw: bytes, *, source: str | None = None, label: str | None = None) -> Message:
    """Parse raw mail bytes into a :class:`Message`; never raises.

    A message that cannot be read at all comes back with ``error`` set (and
    whatever could be salvaged), so the caller can route it to human review.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raw = str(raw).encode("utf-8", "surrogateescape")
    try:
        return _parse(bytes(raw), source, label)
    except Exception as exc:  # last line of defence: bad mail must reach a human, not crash the run
        return Message(
            key=_key(bytes(raw)), source=source, label=label,
            error=tr(f"message illisible ({type(exc).__name__} : {exc})",
                     f"unreadable message ({type(exc).__name__}: {exc})"),
        )


# Files that sit beside saved mail but are not mail: read as text they would teach the model noise.
_NOT_MAIL_MAGIC = (
    (b"%PDF-", "PDF"), (b"PK\x03\x04", "ZIP / Office"), (b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"),
    (b"GIF8", "GIF"),
)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _not_mail(raw: bytes) -> str | None:
    """Why these bytes are not an e-mail (an Outlook .msg, a PDF, an image...), or None."""
    if raw.startswith(_OLE_MAGIC):
        return tr("fichier Outlook .msg, pas un e-mail standard : exportez ce courrier en .eml ou en mbox "
                  "(Thunderbird le fait), ou lisez la boîte directement avec le connecteur IMAP ou Microsoft 365",
                  "Outlook .msg file, not a standard e-mail: export this mail as .eml or mbox (Thunderbird does), "
                  "or read the mailbox directly with the IMAP or Microsoft 365 connector")
    for magic, kind in _NOT_MAIL_MAGIC:
        if raw.startswith(magic):
            return tr(f"document {kind}, pas un e-mail : sortez-le du dossier de courrier",
                      f"{kind} document, not an e-mail: move it out of the mail folder")
    if b"\x00" in raw[:512]:  # none of 40,000 real messages of the shared corpora has one there
        return tr("fichier binaire, pas un e-mail : sortez-le du dossier de courrier",
                  "binary file, not an e-mail: move it out of the mail folder")
    return None


@dataclass
class _Headers:
    """The headers a :class:`Message` keeps, read in one pass over the header list."""

    first: dict[str, str]  # first value of each header, by lower-case name
    kept: dict[str, str]  # KEPT_HEADERS, decoded
    cut: set[str]  # names of the headers cut to their cap
    sender_name: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    defects: list[str] = field(default_factory=list)


def _capped(text: str, limit: int, defect: str, defects: list[str]) -> str:
    if len(text) <= limit:
        return text
    defects.append(defect)
    return text[:limit]


def _read_headers(msg: _EmailMessage) -> _Headers:
    # One pass over the header list: Message.get() scans it again for every name.
    first: dict[str, str] = {}
    tos: list[str] = []
    ccs: list[str] = []
    defects: list[str] = []
    cut: set[str] = set()
    for hname, hvalue in msg.raw_items():
        hvalue = str(hvalue)
        low = hname.lower()
        if len(hvalue) > _SHORT_HEADER:  # a shorter one cannot be over either cap: no call
            hvalue, was_cut = bound_header(hvalue)
        else:
            was_cut = False
        if was_cut:
            defects.append(TRUNCATED_HEADER)
            cut.add(low)
        hvalue = _repair_8bit(hvalue)
        first.setdefault(low, hvalue)
        if low == "to":
            tos.append(hvalue)
        elif low == "cc":
            ccs.append(hvalue)
    kept: dict[str, str] = {}
    for name in KEPT_HEADERS:
        value = first.get(name)
        if value is not None:
            kept[name] = decode_header(value) if name != "content-type" else " ".join(str(value).split())
    sender_name, sender = _sender(decode_header(first.get("from", "")))
    return _Headers(
        first=first, kept=kept, cut=cut, sender_name=_capped(sender_name, MAX_NAME_CHARS, TRUNCATED_HEADER, defects),
        sender=sender.lower() if len(sender) <= MAX_ADDRESS_CHARS else "",
        to=_addresses([decode_header(v) for v in tos]), cc=_addresses([decode_header(v) for v in ccs]),
        subject=_capped(decode_header(first.get("subject", "")), MAX_SUBJECT_CHARS, TRUNCATED_SUBJECT, defects),
        defects=defects,
    )


@dataclass
class _Body:
    """The text parts of a message, its attachments, and the parser's complaints met on the way."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def text(self) -> tuple[str, bool]:
        """The body as text (cut to MAX_TEXT_CHARS), and whether it came from HTML (only when no plain text)."""
        text = "\n\n".join(t for t in self.plain if t.strip())
        is_html = not text.strip() and bool(self.html)
        if is_html:
            texts = []
            for html in self.html:
                html_text, defects = read_html(html)
                texts.append(html_text)
                self.defects.extend(defects)
            text = "\n\n".join(texts)
        return _capped(text, MAX_TEXT_CHARS, TRUNCATED_TEXT, self.defects), is_html


def _filename(part: _EmailMessage) -> str | None:
    disposition = str(part.get("content-disposition") or "").lower()
    # A file name is a "filename" or "name" parameter: without that word, skip the parameter parsing.
    named = "name" in disposition or "name" in str(part.get("content-type") or "").lower()
    filename = part.get_filename() if named else None
    if filename:
        return decode_header(filename) if isinstance(filename, str) else str(filename)
    return filename


def _cut_bytes(data: bytes, limit: int) -> bytes:
    """``data`` cut to ``limit`` bytes, not inside a UTF-8 character (so it still decodes as UTF-8)."""
    cut = limit
    while cut > limit - 3 and 0x80 <= data[cut] <= 0xBF:  # data[cut] would start the cut-off part
        cut -= 1
    return data[:cut]


def _read_part(part: _EmailMessage, body: _Body) -> None:
    """Add one leaf part to ``body``: as text when it is text, else as an attachment."""
    ctype = part.get_content_type()
    filename = _filename(part)
    disposition = str(part.get("content-disposition") or "").lower()
    if filename or disposition.startswith("attachment") or not ctype.startswith(("text/", "message/")):
        if not ctype.startswith("multipart/"):
            body.attachments.append(Attachment(filename or "", ctype, len(_part_bytes(part))))
        return
    if ctype in ("text/plain", "text/html") or ctype.startswith("message/"):
        data = _part_bytes(part)
        # Four bytes a character at most: more than the cap cannot be read, so it is not decoded.
        limit = 4 * (MAX_HTML_CHARS if ctype == "text/html" else MAX_TEXT_CHARS)
        if len(data) > limit:
            data = _cut_bytes(data, limit)
            body.defects.append(TRUNCATED_HTML if ctype == "text/html" else TRUNCATED_TEXT)
        text, defect = decode_bytes(data, part.get_content_charset())
        if defect:
            body.defects.append(defect)
        # delivery-status and similar message/* parts are kept as text: they explain bounces
        (body.html if ctype == "text/html" else body.plain).append(text)
    else:
        body.attachments.append(Attachment(filename or "", ctype, len(_part_bytes(part))))


def _read_body(msg: _EmailMessage) -> _Body:
    body = _Body(defects=[type(d).__name__ for d in msg.defects])
    for part in _walk(msg):
        if part.is_multipart():
            body.defects.extend(type(d).__name__ for d in part.defects)
        else:
            _read_part(part, body)
        if getattr(part, "params_cut", False) or getattr(part, "fields_cut", False):
            body.defects.append(TRUNCATED_HEADER)
    return body


def _key(raw: bytes, head: _Headers | None = None) -> str:
    """The audit key, always the one connectors read with ``ext.subject.message_key``.

    When the whole message is within the header reader's limit and its
    Message-ID was not cut, the headers read here are the ones
    ``message_key`` would read (same parser, same 8-bit repair), so they give
    the key without a second parse, which would cost a third of the parsing.
    """
    if head is not None and len(raw) <= HEAD_LIMIT and "message-id" not in head.cut:
        return stable_key(head.kept.get("message-id", ""), raw)
    try:
        return message_key(raw)
    except Exception:  # reading the headers failed: the digest of the bytes is still a key
        return stable_key("", raw)


def _parse(raw: bytes, source: str | None, label: str | None) -> Message:
    if not raw.strip():
        key = _key(raw)
        return Message(key=key, source=source, label=label, error=tr("message vide", "empty message"))
    not_mail = _not_mail(raw)
    if not_mail:
        return Message(key=_key(raw), source=source, label=label, error=not_mail)
    msg = email.message_from_bytes(raw, _class=_BoundedMessage, policy=compat32)
    head = _read_headers(msg)
    if getattr(msg, "fields_cut", False):  # the Message-ID may be among the dropped fields:
        head.cut.add("message-id")  # the key is then read as connectors read it
    body = _read_body(msg)
    text, is_html = body.text()
    body.defects.extend(head.defects)
    key = _key(raw, head)
    if not text.strip() and not head.subject:
        error = "no readable text" if msg.get_payload() or body.attachments else "no body and no subject"
        if not msg.keys():
            error = "not an e-mail (no headers found)"
        return Message(
            key=key, subject=head.subject, sender=head.sender, sender_name=head.sender_name, to=head.to,
            headers=head.kept, source=source, label=label, attachments=tuple(body.attachments),
            defects=tuple(body.defects), error=error,
        )
    return Message(
        key=key, subject=head.subject, sender=head.sender, sender_name=head.sender_name, to=head.to, cc=head.cc,
        date=_parse_date(head.first.get("date")), text=text, html=is_html, attachments=tuple(body.attachments),
        headers=head.kept, label=label, source=source, defects=tuple(dict.fromkeys(body.defects)),
    )


def message_from_text(text: str, *, subject: str = "", label: str | None = None, key: str | None = None) -> Message:
    """Wrap a plain string (CSV cell, survey answer) as a :class:`Message`."""
    digest = hashlib.sha256((subject + "\x00" + text).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Message(key=key or f"text:{digest}", subject=subject, text=text, label=label)
