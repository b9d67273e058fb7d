"""Reading and editing the header block of raw RFC 822 bytes.

Only the header block is touched when a subject is tagged: the body, its MIME
structure and its line endings stay byte for byte as they were, so attachments,
signed parts (S/MIME, PGP) and the message's rendering do not change.
"""

from __future__ import annotations

import re
from email.header import Header
from email.parser import BytesHeaderParser
from email.policy import compat32

from assoc_ai_core.mail.parsing import decode_bytes, decode_header, stable_key

from .settings import MARKER_HEADER

_MARKER_ORIGINAL = re.compile(r"original=<([^<>\s]+)>")
_OWN_TAG = re.compile(r"^\s*\[#[^\]]*\]\s*")
_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Split ``raw`` into (header block, rest starting at the blank line, line ending used).

    A message without a blank line is all headers; its rest is empty.
    """
    positions = [(raw.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n")]
    found = [(i, sep) for i, sep in positions if i >= 0]
    if not found:
        eol = b"\r\n" if b"\r\n" in raw else b"\n"
        head = raw if raw.endswith(eol) or not raw else raw + eol
        return head, b"", eol
    index, sep = min(found)
    eol = sep[: len(sep) // 2]
    return raw[: index + len(eol)], raw[index + len(eol):], eol


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


def header_value(raw_or_head: bytes, name: str, *, repair_8bit: bool = False) -> str | None:
    """Decoded text of the first ``name`` header (RFC 2047 words decoded), or None.

    Without ``repair_8bit`` the text is decoded exactly as
    ``assoc_ai_core.mail.parsing`` does, so keys computed here match the core's;
    with it, raw 8-bit bytes (UTF-8 or Windows-1252, common though not
    allowed in headers) are decoded too.
    """
    head = split_head(raw_or_head)[0]
    parsed = _HEADER_PARSER.parsebytes(head)
    if repair_8bit:
        # raw_items() gives the text before compat32 turns 8-bit bytes into U+FFFD
        raw_value = next((v for k, v in parsed.raw_items() if k.lower() == name.lower()), None)
        if raw_value is None:
            return None
        text = str(raw_value)
        if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in text):
            text = decode_bytes(text.encode("ascii", "surrogateescape"), "utf-8")[0]
        return decode_header(text)
    value = parsed.get(name)
    return None if value is None else decode_header(str(value))


def original_key(raw_or_head: bytes) -> str | None:
    """The key written in our marker header by a previous subject tagging, if any."""
    marker = header_value(raw_or_head, MARKER_HEADER)
    if not marker:
        return None
    match = _MARKER_ORIGINAL.search(marker)
    return match.group(1) if match else None


def message_key(raw: bytes) -> str:
    """The stable key of a message, equal to ``assoc_ai_core.mail.parsing.parse_message(raw).key``.

    A copy made by :func:`tag_subject_bytes` has the same key as its original
    (for mail without a usable Message-ID, the copy carries the key as one).
    """
    return stable_key(header_value(raw, "message-id") or "", raw)


def key_from_head(head: bytes) -> str | None:
    """The key when the header block alone tells it, or None when the full bytes are needed."""
    mid = header_value(head, "message-id") or ""
    key = stable_key(mid, b"a")
    return key if key == stable_key(mid, b"b") else None  # a digest depends on the bytes: not usable


def subject(raw: bytes) -> str:
    """The decoded subject of a message (empty when there is none)."""
    return header_value(raw, "subject", repair_8bit=True) or ""


def has_tag(raw: bytes, tag: str) -> bool:
    """True when the subject already carries ``tag`` (tagging twice must do nothing)."""
    return tag.strip() in subject(raw)


def encode_subject(text: str, eol: bytes = b"\r\n") -> bytes:
    """A complete ``Subject:`` field for ``text``, RFC 2047-encoded (UTF-8) when not ASCII."""
    charset = "us-ascii" if text.isascii() else "utf-8"
    encoded = Header(text, charset=charset, header_name="Subject").encode(linesep=eol.decode("ascii"))
    return b"Subject: " + encoded.encode("ascii") + eol


def marker_field(key: str, eol: bytes = b"\r\n") -> bytes:
    """Our marker header naming the original message's key."""
    return f"{MARKER_HEADER}: tagged; original=<{key}>".encode() + eol


def marker_search_value(key: str) -> str:
    """The text to look for with ``SEARCH HEADER X-Assoc-AI`` to find copies of ``key``."""
    return f"original=<{key}>"


def tag_subject_bytes(raw: bytes, tag: str, key: str) -> bytes:
    """Return ``raw`` with its subject prefixed by ``tag`` and a marker naming ``key``.

    A tag we put before (the message already has our marker) is replaced rather
    than stacked; every other header and the body are kept byte for byte.
    When ``key`` is a digest (no usable Message-ID), the copy gets
    ``Message-ID: <key>`` so that its key, hence its audit trail, stays the same.
    """
    head, rest, eol = split_head(raw)
    previously_tagged = original_key(head) is not None
    current = subject(head)
    if previously_tagged:
        current = _OWN_TAG.sub("", current, count=1)
    new_subject = f"{tag.strip()} {current}".strip()
    subject_field = encode_subject(new_subject, eol)
    keyless = key.startswith("sha256:")
    out: list[bytes] = []
    placed = False
    for field in _fields(head):
        name = _field_name(field)
        if keyless and name == "message-id":
            continue  # unusable as a key: replaced below by one that carries the key
        if name == "subject":
            if not placed:
                out.append(subject_field)
                placed = True
            continue
        if name == MARKER_HEADER.lower():
            continue
        out.append(field if field.endswith((b"\n", b"\r")) else field + eol)
    if not placed:
        out.append(subject_field)
    if keyless:
        out.append(f"Message-ID: <{key}>".encode("ascii") + eol)
    out.append(marker_field(key, eol))
    return b"".join(out) + (rest or eol)
