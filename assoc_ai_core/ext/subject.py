"""Subject tags and audit keys on raw RFC 822 bytes, for any mailbox connector.

A ``[#Catégorie]`` tag is added by rewriting the ``Subject`` header only: the
body bytes are kept as they are, so attachments and signatures survive.  A
message whose audit key is a digest of its bytes (no usable Message-ID) gets a
``Message-ID`` equal to that key while it is rewritten, so its key — and with
it the audit trail — stays the same after tagging.
"""

from __future__ import annotations

import email.header
import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from assoc_ai_core.ext.headers import decode_header, stable_key

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_HEAD_LIMIT = 256 * 1024


def subject_tag(category: str) -> str:
    """The tag written in front of a subject for ``category``: ``[#Adhésion]``."""
    return f"[#{category}]"


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw mail into (header block, rest starting with the blank line)."""
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start()], raw[match.start():]


def message_key(raw: bytes) -> str:
    """The audit key of raw mail, read from its headers; equal to ``parse_message(raw).key``."""
    head, _ = split_head(raw[:_HEAD_LIMIT])
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n")
        mid = headers.get("message-id")
    except Exception:  # unreadable headers: the digest of the bytes is the key, as in parse_message
        mid = None
    return stable_key(decode_header(mid) if mid is not None else "", raw)


def read_subject(raw: bytes) -> str:
    """The decoded subject of raw mail (``""`` when there is none)."""
    head, _ = split_head(raw[:_HEAD_LIMIT])
    try:
        value = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n").get("subject")
    except Exception:
        return ""
    return _clean_text(decode_header(value)) if value is not None else ""


def is_tagged(raw: bytes, tag: str) -> bool:
    """True when the subject already carries ``tag`` (also after ``Re:``, as in replies to tagged mail)."""
    return tag in read_subject(raw)


def _clean_text(text: str) -> str:
    # 8-bit header bytes come back from compat32 as surrogates; they are nearly always UTF-8.
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        return text.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")
    return text


def _header_groups(head: bytes) -> list[bytes]:
    """Header lines with their continuation lines attached (one entry per header field)."""
    groups: list[bytes] = []
    for line in _LINE.findall(head):
        if line[:1] in (b" ", b"\t") and groups:
            groups[-1] += line
        else:
            groups.append(line)
    return groups


def _field_name(group: bytes) -> bytes:
    return group.split(b":", 1)[0].strip().lower() if b":" in group else b""


def _encode_field(name: str, value: str, eol: bytes) -> bytes:
    if value.isascii():
        text = f"{name}: {value}"
        return text.encode("ascii") + eol
    encoded = email.header.Header(value, "utf-8", header_name=name).encode(linesep="\n")
    return f"{name}: ".encode("ascii") + encoded.encode("ascii").replace(b"\n", eol) + eol


def with_tag(raw: bytes, tag: str) -> bytes:
    """Return ``raw`` with ``tag`` in front of its subject; unchanged when already tagged.

    Only the header block changes.  When the audit key is a digest of the
    bytes, a ``Message-ID`` carrying that key is written so the key survives.
    """
    if is_tagged(raw, tag):
        return raw
    key = message_key(raw)
    head, rest = split_head(raw)
    eol = b"\r\n" if b"\r\n" in head[:2000] else b"\n"
    groups = _header_groups(head)
    if groups and not groups[-1].endswith(b"\n"):
        groups[-1] += eol
    subject = read_subject(raw)
    new_subject = _encode_field("Subject", f"{tag} {subject}".strip(), eol)
    out: list[bytes] = []
    replaced = False
    for group in groups:
        name = _field_name(group)
        if name == b"subject" and not replaced:
            out.append(new_subject)
            replaced = True
        elif name == b"message-id" and key.startswith("sha256:"):
            continue  # an unusable Message-ID is replaced below by one that carries the key
        else:
            out.append(group)
    if not replaced:
        out.append(new_subject)
    if key.startswith("sha256:"):
        out.append(f"Message-ID: <{key}>".encode("ascii") + eol)
    new_head = b"".join(out)
    if new_head.endswith(eol) and rest.startswith(eol):
        new_head = new_head[: -len(eol)]
    elif not rest:
        rest = b""
        new_head = new_head.rstrip(b"\r\n") + eol + eol
    return new_head + rest
