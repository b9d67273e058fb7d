"""Reading ``users.history.list`` answers: which messages entered a label, and safe resume points.

Gmail history records come in increasing ``id`` order; ids have random gaps,
so a resume point must be an id Gmail actually returned.  A page of messages
gets as cursor the last record id *all* of whose arrivals are in this page or
an earlier one: a run killed after that page re-reads from there and loses
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Arrivals:
    """Messages that entered one label, in order of first arrival, and the record ids seen."""

    order: list[str] = field(default_factory=list)
    first_record: dict[str, int] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)  # last event for the label was a removal
    record_ids: list[int] = field(default_factory=list)

    def add_records(self, records: Iterable[Mapping[str, Any]], label_id: str) -> None:
        """Fold one page of history records into the arrival list."""
        for record in records:
            try:
                rid = int(record["id"])
            except (KeyError, TypeError, ValueError):
                continue
            self.record_ids.append(rid)
            for added in record.get("messagesAdded") or []:
                msg = added.get("message") or {}
                labels = msg.get("labelIds")
                if labels is not None and label_id not in labels:
                    continue  # a sent copy, a draft, mail filtered elsewhere
                self._arrive(msg.get("id"), rid)
            for added in record.get("labelsAdded") or []:
                if label_id in (added.get("labelIds") or []):
                    self._arrive((added.get("message") or {}).get("id"), rid)
            for removed in record.get("labelsRemoved") or []:
                if label_id in (removed.get("labelIds") or []):
                    mid = (removed.get("message") or {}).get("id")
                    if mid:
                        self.left.add(str(mid))

    def _arrive(self, mid: Any, rid: int) -> None:
        if not mid:
            return
        mid = str(mid)
        self.left.discard(mid)  # back in the label after having left it
        if mid not in self.first_record:
            self.first_record[mid] = rid
            self.order.append(mid)

    def pending(self) -> list[str]:
        """Ids still (as far as history says) in the label, oldest arrival first."""
        return [m for m in self.order if m not in self.left]

    def resume_point(self, next_message: str, start: int) -> int:
        """Largest returned record id strictly before ``next_message``'s first arrival (else ``start``)."""
        limit = self.first_record[next_message]
        earlier = [r for r in self.record_ids if r < limit]
        return max(earlier, default=start)
