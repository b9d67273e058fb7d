"""Subject tags and audit keys on raw RFC 822 bytes, for any mailbox connector.

A ``[#Catégorie]`` tag is added by rewriting the ``Subject`` header only: the
body, its MIME structure and its line endings stay byte for byte as they were,
so attachments and signed parts (S/MIME, PGP) survive.  A message whose audit
key is a digest of its bytes (no usable Message-ID) gets a ``Message-ID``
equal to that key while it is rewritten, so its key — and with it the audit
trail — stays the same after tagging.

A connector that cannot edit a message in place (IMAP appends a copy) asks
for a *marker*: an ``X-Assoc-AI: tagged; original=<key>`` header naming the
original's key, by which it finds the copy after a crash and by which a later
tag replaces ours instead of stacking on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.header import Header
from email.parser import BytesHeaderParser
from email.policy import compat32

from assoc_ai_core.ext.headers import decode_bytes, decode_header, stable_key

__all__ = [
    "MARKER_HEADER", "subject_tag", "split_head", "header_value", "message_key", "key_from_head", "read_subject",
    "is_tagged", "original_key", "HEAD_LIMIT", "marker_search_value", "encode_subject", "tag_subject_bytes", "with_tag",
    "with_subject_bytes", "without_tag_bytes", "without_tag_subject", "strip_tags",
]

MARKER_HEADER = "X-Assoc-AI"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
HEAD_LIMIT = 256 * 1024  # header blocks are far smaller; never parse a whole attachment looking for one
_MARKER_ORIGINAL = re.compile(r"original=<([^<>\s]+)>")
_OWN_TAG = re.compile(r"^\s*\[#[^\]]*\]\s*")
_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def subject_tag(category: str) -> str:
    """The tag written in front of a subject for ``category``: ``[#Adhésion]``."""
    return f"[#{category}]"


def split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Split raw mail into (header block with its last line break, rest from the blank line, line ending).

    A message without a blank line is all headers (a line break is added to
    the last one); its rest is empty.
    """
    match = _HEADER_END.search(raw)
    if match is None:
        eol = b"\r\n" if b"\r\n" in raw else b"\n"
        return (raw if not raw or raw.endswith(eol) else raw + eol), b"", eol
    cut = match.start() + (2 if raw[match.start():match.start() + 1] == b"\r" else 1)
    eol = b"\r\n" if raw[match.end() - 2:match.end()] == b"\r\n" else b"\n"
    return raw[:cut], raw[cut:], eol


def header_value(raw_or_head: bytes, name: str, *, repair_8bit: bool = False) -> str | None:
    """Decoded text of the first ``name`` header (RFC 2047 words decoded), or None.

    Without ``repair_8bit`` the text is decoded exactly as
    ``assoc_ai_core.mail.parsing`` does, so keys computed here match the core's;
    with it, raw 8-bit bytes (UTF-8 or Windows-1252, common though not
    allowed in headers) are decoded too.
    """
    head = split_head(raw_or_head[:HEAD_LIMIT])[0]
    try:
        parsed = _HEADER_PARSER.parsebytes(head)
    except Exception:  # unreadable headers: the caller falls back as parse_message does
        return None
    if not repair_8bit:
        value = parsed.get(name)
        return None if value is None else decode_header(str(value))
    # raw_items() gives the text before compat32 turns 8-bit bytes into U+FFFD
    raw_value = next((v for k, v in parsed.raw_items() if k.lower() == name.lower()), None)
    if raw_value is None:
        return None
    text = str(raw_value)
    if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), "utf-8")[0]
    return decode_header(text)


def message_key(raw: bytes) -> str:
    """The audit key of raw mail, read from its headers; equal to ``parse_message(raw).key``.

    A copy made by :func:`tag_subject_bytes` has the same key as its original
    (for mail without a usable Message-ID, the copy carries the key as one).
    Raw 8-bit bytes in the Message-ID are decoded as the parser decodes them.
    """
    return stable_key(header_value(raw, "message-id", repair_8bit=True) or "", raw)


def key_from_head(head: bytes) -> str | None:
    """The key when the header block alone tells it, or None when the full bytes are needed."""
    mid = header_value(head, "message-id") or ""
    key = stable_key(mid, b"a")
    return key if key == stable_key(mid, b"b") else None  # a digest depends on the bytes: not usable


def read_subject(raw: bytes) -> str:
    """The decoded subject of raw mail (``""`` when there is none); 8-bit header bytes are read too."""
    return header_value(raw, "subject", repair_8bit=True) or ""


def is_tagged(raw: bytes, tag: str) -> bool:
    """True when the subject already carries ``tag`` (also after ``Re:``, as in replies to tagged mail)."""
    return tag.strip() in read_subject(raw)


def original_key(raw_or_head: bytes) -> str | None:
    """The key named by the marker header of an earlier marked tagging, if any."""
    marker = header_value(raw_or_head, MARKER_HEADER)
    if not marker:
        return None
    match = _MARKER_ORIGINAL.search(marker)
    return match.group(1) if match else None


def marker_search_value(key: str) -> str:
    """The marker text naming ``key`` (what an IMAP ``SEARCH HEADER X-Assoc-AI`` looks for)."""
    return f"original=<{key}>"


def encode_subject(text: str, eol: bytes = b"\r\n") -> bytes:
    """A complete ``Subject:`` field for ``text``, RFC 2047-encoded (UTF-8) when not ASCII."""
    charset = "us-ascii" if text.isascii() else "utf-8"
    encoded = Header(text, charset=charset, header_name="Subject").encode(linesep=eol.decode("ascii"))
    return b"Subject: " + encoded.encode("ascii") + eol


def _fields(head: bytes) -> list[bytes]:
    """Header fields of a header block, each with its continuation lines and line breaks."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _field_name(field: bytes) -> str:
    name, colon, _ = field.partition(b":")
    return name.strip().decode("ascii", "replace").lower() if colon else ""


def tag_subject_bytes(raw: bytes, tag: str, key: str | None = None, *, mark: bool = False) -> bytes:
    """Return ``raw`` with its subject prefixed by ``tag``; every other header and the body kept byte for byte.

    ``key`` is the message's audit key (read from ``raw`` when not given).
    When it is a digest (no usable Message-ID), the copy gets
    ``Message-ID: <key>`` so that its key, hence its audit trail, stays the
    same.  With ``mark``, a marker header naming ``key`` is written, and a tag
    we put before (the message already has our marker) is replaced rather than
    stacked.  Duplicate ``Subject`` fields are dropped: readers disagree on
    which one counts.
    """
    head = split_head(raw)[0]
    current = read_subject(head)
    if mark and original_key(head) is not None:
        current = _OWN_TAG.sub("", current, count=1)
    return with_subject_bytes(raw, f"{tag.strip()} {current}".strip(), key, mark=mark)


def without_tag_subject(subject: str, tag: str) -> str:
    """``subject`` with the job's ``tag`` taken out once (at the start, or after ``Re:``); spaces tidied."""
    tag = tag.strip()
    at = subject.find(tag) if tag else -1
    if at < 0:
        return subject
    return " ".join((subject[:at] + subject[at + len(tag):]).split())


def strip_tags(subject: str, tags: Iterable[str]) -> str:
    """``subject`` without any of the job's ``tags`` (what a person wrote, e.g. before learning from it)."""
    for tag in tags:
        subject = without_tag_subject(subject, tag)
    return subject


def without_tag_bytes(raw: bytes, tag: str, key: str | None = None, *, mark: bool = False) -> bytes:
    """``raw`` with ``tag`` taken out of its subject; unchanged (same bytes) when the subject does not carry it."""
    current = read_subject(raw)
    if tag.strip() not in current:
        return raw
    return with_subject_bytes(raw, without_tag_subject(current, tag), key, mark=mark)


def with_subject_bytes(raw: bytes, subject: str, key: str | None = None, *, mark: bool = False) -> bytes:
    """Return ``raw`` with ``subject`` as its subject; every other header and the body kept byte for byte.

    See :func:`tag_subject_bytes` for ``key`` and ``mark``.
    """
    key = message_key(raw) if key is None else key
    head, rest, eol = split_head(raw)
    subject_field = encode_subject(subject, eol)
    keyless = key.startswith("sha256:")
    out: list[bytes] = []
    placed = False
    for field in _fields(head):
        name = _field_name(field)
        if (keyless and name == "message-id") or (mark and name == MARKER_HEADER.lower()):
            continue  # replaced below: an unusable Message-ID by one carrying the key, an old marker by ours
        if name == "subject":
            if not placed:
                out.append(subject_field)
                placed = True
            continue
        out.append(field if field.endswith((b"\n", b"\r")) else field + eol)
    if not placed:
        out.append(subject_field)
    if keyless:
        out.append(f"Message-ID: <{key}>".encode("ascii") + eol)
    if mark:
        out.append(f"{MARKER_HEADER}: tagged; {marker_search_value(key)}".encode() + eol)
    return b"".join(out) + (rest or eol)


def with_tag(raw: bytes, tag: str) -> bytes:
    """Return ``raw`` with ``tag`` in front of its subject; unchanged when already tagged (no marker)."""
    if is_tagged(raw, tag):
        return raw
    return tag_subject_bytes(raw, tag)
