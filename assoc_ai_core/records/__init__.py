"""Plain data that flows between the layers: mail records and people records.

Both halves sit at the bottom of the package so that the connector contracts
(:mod:`assoc_ai_core.ext`), the mail model and the people models can share
them without importing each other.
"""

from __future__ import annotations

from assoc_ai_core.records.mail import Attachment, Message, Prediction
from assoc_ai_core.records.people import (
    RECORD_TYPES,
    FieldSpec,
    Gift,
    Membership,
    Participation,
    Person,
    RecordDiff,
    RecordPage,
    RecurringPlan,
    Score,
    VolunteerHours,
    VolunteerMission,
    WriteReport,
    score_field_names,
    score_field_specs,
)

__all__ = [
    "Attachment", "Message", "Prediction",
    "RECORD_TYPES", "FieldSpec", "Gift", "Membership", "Participation", "Person", "RecordDiff", "RecordPage",
    "RecurringPlan", "Score", "VolunteerHours", "VolunteerMission", "WriteReport", "score_field_names",
    "score_field_specs",
]
