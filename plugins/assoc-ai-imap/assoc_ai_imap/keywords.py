"""Turning a category name into an IMAP keyword (a flag such as ``$Adhesion``)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NOT_ATOM = re.compile(r"[^A-Za-z0-9_.+-]+")
MAX_KEYWORD_LENGTH = 60  # some servers refuse long keywords; 60 leaves room under every limit seen


def to_keyword(label: str) -> str:
    """Return an IMAP keyword for ``label``: ASCII letters, digits and ``_.+-``, prefixed by ``$``.

    Accents are dropped (``Adhésion`` → ``$Adhesion``) and every other character
    becomes ``_`` so the result is a valid IMAP atom on every server; a label
    with no usable character gets a short stable digest instead.
    """
    folded = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    atom = _NOT_ATOM.sub("_", folded).strip("_")
    if not atom:
        atom = "label_" + hashlib.sha1(label.encode("utf-8")).hexdigest()[:8]
    return "$" + atom[:MAX_KEYWORD_LENGTH]
