"""Reading values as CRMs and spreadsheets write them (amounts with a decimal comma, currency signs).

In the contract layer because connectors compare and convert CRM values with
it; :mod:`assoc_ai_core.people.cleaning` builds the rest of its cleaning on it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_number"]

_SPACES = re.compile(r"[\s\u00a0\u202f']")
_CURRENCY = re.compile(r"(eur|euros?|€|\$|usd|chf|£)", re.I)


def parse_number(value: Any, decimal: str = ",") -> float | None:
    """Read an amount written the French or English way (``1 234,56 €``, ``1,234.56``); None if unreadable.

    When a value holds only one kind of separator, it is the decimal mark
    unless it is followed by exactly three digits and is not ``decimal``
    (``1.234`` in a French file is one thousand two hundred and thirty-four).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value else None  # NaN is missing
    text = _CURRENCY.sub("", str(value)).strip()
    text = _SPACES.sub("", text)
    if not text:
        return None
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()")
    if "," in text and "." in text:
        dec = "," if text.rfind(",") > text.rfind(".") else "."
    elif "," in text or "." in text:
        sep = "," if "," in text else "."
        head, _, tail = text.rpartition(sep)
        thousands = sep != decimal and len(tail) == 3 and head.lstrip("-+").isdigit() and text.count(sep) == 1
        dec = "" if thousands else sep
        if text.count(sep) > 1:  # 1.234.567
            dec = ""
    else:
        dec = ""
    other = {",": ".", ".": ",", "": ",."}[dec]
    for ch in other:
        text = text.replace(ch, "")
    if dec:
        text = text.replace(dec, ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return -number if negative else number
