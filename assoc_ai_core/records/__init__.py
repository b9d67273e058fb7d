"""Plain data that flows between the layers: mail records and people records.

Both halves sit at the bottom of the package so that the connector contracts
(:mod:`assoc_ai_core.ext`), the mail model and the people models can share
them without importing each other.
"""

from __future__ import annotations

from assoc_ai_core.records import people as _people
from assoc_ai_core.records.mail import Attachment, Message, Prediction

# The people names are listed once, in records.people.__all__; the star import brings exactly those.
from assoc_ai_core.records.people import *  # noqa: F403

__all__ = ["Attachment", "Message", "Prediction"]
__all__ += _people.__all__
