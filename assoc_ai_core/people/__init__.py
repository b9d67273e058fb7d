"""People data: donors, members, volunteers — cleaning, features, models, retention, fairness, matching.

Importing this package is cheap: pandas, dask, fairlearn and openpyxl are
imported only inside the functions that need them (``pip install
assoc-ai-core[people]``).

The canonical records live in :mod:`assoc_ai_core.records.people` and the CRM
contract in :mod:`assoc_ai_core.ext.crm`; both are re-exported here, so
``from assoc_ai_core.people import Person, CrmConnector`` keeps working.
"""

from __future__ import annotations

from assoc_ai_core.ext.crm import CrmConnector, advance_cursor, is_after_cursor, plan_score_writes
from assoc_ai_core.records import people as _records

# The record names are listed once, in records.people.__all__; the star import brings exactly those.
from assoc_ai_core.records.people import *  # noqa: F403

__all__ = ["CrmConnector", "advance_cursor", "is_after_cursor", "plan_score_writes"]
__all__ += _records.__all__
