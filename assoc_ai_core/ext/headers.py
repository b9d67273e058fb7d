"""Header helpers every mailbox connector needs: decode encoded-words and charsets, and the audit key.

They sit in the contract layer, below the mail model, so a connector can tag,
key and read a raw message without importing the classifier.

Hostile mail is read in bounded time: a header value is cut to
``MAX_HEADER_CHARS`` and to ``MAX_ENCODED_WORDS`` encoded-words before the
standard library decodes it (its ``decode_header`` took 85 s on 100,000 of
them), and charsets whose decoders are quadratic are refused.
"""

from __future__ import annotations

import codecs
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
from datetime import UTC, datetime

__all__ = ["stable_key", "header_date", "header_block", "decode_header", "decode_bytes", "bound_header", "MAX_HEADER_CHARS", "MAX_ENCODED_WORDS"]

# Long recipient lists and thread References stay far below; a header is read up to here.
MAX_HEADER_CHARS = 64 * 1024
MAX_ENCODED_WORDS = 1000  # a subject holds a few, a list of 300 encoded names 300
# Text codecs whose Python decoders are quadratic in the input (a 400 KB "punycode" body took 17 s).
_SLOW_CODECS = frozenset({"punycode", "idna"})

_SINGLE_BYTE = {"us-ascii", "ascii", "utf-8", "utf8", "latin-1", "latin1", "l1", "cp1252", "windows-1252"}


def stable_key(message_id: str, raw: bytes) -> str:
    """The audit key of a message: its Message-ID's msg-id, else a digest of its bytes.

    A folded field or a comment beside the id (``<a@b> (added by relay)``)
    still gives the id, so such mail keeps its Message-ID when tagged (a
    digest key would have the header rewritten to carry it).
    """
    value = message_id[:2000]
    start = value.find("<")
    end = value.find(">", start + 1) if start >= 0 else -1
    if end > start >= 0:
        mid = "".join(value[start + 1:end].split())  # folding whitespace inside an id is not part of it
    else:
        mid = value.strip().strip("<>").strip()
    if mid and len(mid) < 500 and not any(c.isspace() or c in "()<>" for c in mid):
        return mid
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def header_block(raw: bytes, limit: int = 256 * 1024) -> bytes:
    """The header block of a raw message (up to the first blank line), read no further than ``limit`` bytes."""
    head = raw[:limit]
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = head.find(sep)
        if at >= 0:
            return head[:at + len(sep)]
    return head


def header_date(raw: bytes) -> datetime | None:
    """The ``Date`` header of a raw message as an aware datetime (naive dates taken as UTC); None when absent or unreadable."""
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_block(raw))
    value = parsed.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(bound_header(str(value))[0])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def bound_header(value: str) -> tuple[str, bool]:
    """``value`` cut to :data:`MAX_HEADER_CHARS` and before its encoded-word past :data:`MAX_ENCODED_WORDS`.

    Returns the value and whether it was cut.  The cut value is cut no further.
    """
    cut = False
    if len(value) > MAX_HEADER_CHARS:
        value, cut = value[:MAX_HEADER_CHARS], True
    if value.count("=?") > MAX_ENCODED_WORDS:
        at = -1
        for _ in range(MAX_ENCODED_WORDS + 1):
            at = value.find("=?", at + 1)
        value, cut = value[:at], True
    return value, cut


def decode_header(value: str | None) -> str:
    """Decode RFC 2047 encoded-words of a header into text, tolerating broken ones; bounded by :func:`bound_header`."""
    if not value:
        return ""
    value = bound_header(str(value))[0]
    if "=?" not in value:
        return " ".join(value.split())
    try:
        parts = email.header.decode_header(value)
    except Exception:
        return " ".join(value.split())
    out = []
    for chunk, charset in parts:
        out.append(decode_bytes(chunk, charset)[0] if isinstance(chunk, bytes) else chunk)
    return " ".join("".join(out).split())


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode body bytes whatever the declared charset says; return (text, defect or None).

    Valid UTF-8 wins over a declared Western single-byte charset (a UTF-8 body
    mislabelled Latin-1 is common, the reverse almost never validates); bytes
    that are not valid in the declared charset fall back to Windows-1252,
    which also covers Latin-1 text.
    """
    cs = (declared or "").strip().strip('"').lower()
    if cs in ("", "us-ascii", "ascii") or cs in _SINGLE_BYTE or cs.startswith(("iso-8859", "windows-125")):
        try:
            text = data.decode("utf-8")
            defect = None if cs in ("", "utf-8", "utf8", "us-ascii", "ascii") or text.isascii() else f"charset {cs} but UTF-8 bytes"
            return text, defect
        except UnicodeDecodeError:
            pass
        if cs in ("", "us-ascii", "ascii", "utf-8", "utf8"):
            return data.decode("cp1252", errors="replace"), (f"charset {cs or 'undeclared'} but 8-bit bytes")
        if cs in ("iso-8859-1", "latin-1", "latin1", "l1"):
            cs = "cp1252"  # what mailers mean by Latin-1 in practice (curly quotes, euro sign)
    try:
        if codecs.lookup(cs).name not in _SLOW_CODECS:
            return data.decode(cs), None
    except (LookupError, UnicodeDecodeError):
        pass
    try:
        return data.decode("utf-8"), f"charset {cs} failed, read as UTF-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), f"charset {cs} failed, read as Windows-1252"
