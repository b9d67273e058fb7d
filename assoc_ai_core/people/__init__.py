"""People data: donors, members, volunteers — canonical records, CRM contract, cleaning, features, models.

Importing this package is cheap: pandas, dask, fairlearn and openpyxl are
imported only inside the functions that need them (``pip install
assoc-ai-core[people]``).
"""

from __future__ import annotations

from assoc_ai_core.ext.crm import CrmConnector, advance_cursor, is_after_cursor, plan_score_writes
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
    "CrmConnector", "advance_cursor", "is_after_cursor", "plan_score_writes",
    "RECORD_TYPES", "FieldSpec", "Gift", "Membership", "Participation", "Person", "RecordDiff", "RecordPage",
    "RecurringPlan", "Score", "VolunteerHours", "VolunteerMission", "WriteReport", "score_field_names",
    "score_field_specs",
]
