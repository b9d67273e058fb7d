"""What one pass of the job reports, and how a pass is asked to stop."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.plan import Decision, DecisionKind

log = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGTERM / SIGINT: the job finishes the current message, commits and stops."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Ask the job to stop after the current message."""
        self._set = True

    def __bool__(self) -> bool:
        return self._set

    @contextlib.contextmanager
    def handle_signals(self) -> Iterator[StopFlag]:
        """Install SIGTERM/SIGINT handlers for the duration (a second signal stops at once)."""
        previous: dict[signal.Signals, Any] = {}

        def handler(signum: int, _frame: Any) -> None:
            """First signal: stop after the current message; second: stop now."""
            if self._set:
                for sig, old in previous.items():
                    signal.signal(sig, old)
                raise KeyboardInterrupt
            log.info(tr("Signal reçu : arrêt après le message en cours.", "Signal received: stopping after the current message."))
            self._set = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


@dataclass
class RunReport:
    """What one pass did (also stored in the ``runs`` table)."""

    run_id: int | None = None
    dry_run: bool = False
    fetched: int = 0
    auto: int = 0
    review: int = 0
    errors: int = 0
    skipped: int = 0
    failed: int = 0
    forwarded: int = 0
    recovered: int = 0
    corrections: int = 0
    stopped: bool = False
    category_mix: dict[str, int] = field(default_factory=dict)
    confidences: list[float] = field(default_factory=list)
    would: list[dict[str, Any]] = field(default_factory=list)

    @property
    def decided(self) -> int:
        """Messages decided in this pass."""
        return self.auto + self.review + self.errors

    @property
    def review_share(self) -> float | None:
        """Share of decided messages sent to human review (errors included)."""
        return (self.review + self.errors) / self.decided if self.decided else None

    @property
    def mean_confidence(self) -> float | None:
        """Mean probability of the predicted category."""
        return sum(self.confidences) / len(self.confidences) if self.confidences else None

    @property
    def exit_code(self) -> int:
        """0 when every message was handled, 1 when some action failed (retried next run)."""
        return 1 if self.failed else 0

    def stats(self) -> dict[str, Any]:
        """Counts and figures for the ``runs`` table."""
        return {k: getattr(self, k) for k in ("fetched", "auto", "review", "errors", "skipped", "failed",
                                               "forwarded", "recovered", "corrections", "review_share",
                                               "mean_confidence", "category_mix")}

    def summary(self) -> str:
        """One line for people."""
        mode = tr("simulation", "dry run") if self.dry_run else tr("tri", "triage")
        return tr(
            f"{mode} : {self.fetched} lus, {self.auto} classés, {self.review} à vérifier, {self.errors} illisibles, "
            f"{self.skipped} déjà traités, {self.failed} en échec, {self.forwarded} transférés, "
            f"{self.recovered} repris, {self.corrections} corrections.",
            f"{mode}: {self.fetched} read, {self.auto} sorted, {self.review} to review, {self.errors} unreadable, "
            f"{self.skipped} already handled, {self.failed} failed, {self.forwarded} forwarded, "
            f"{self.recovered} resumed, {self.corrections} corrections.",
        )

    def count(self, d: Decision) -> None:
        """Add one decision to the counters."""
        if d.decision is DecisionKind.AUTO:
            self.auto += 1
        elif d.decision is DecisionKind.REVIEW:
            self.review += 1
        else:
            self.errors += 1
        if d.category is not None and d.probability is not None:
            self.category_mix[d.category] = self.category_mix.get(d.category, 0) + 1
            self.confidences.append(d.probability)

    def add(self, other: RunReport) -> None:
        """Accumulate another pass (watch mode)."""
        for name in ("fetched", "auto", "review", "errors", "skipped", "failed", "forwarded", "recovered", "corrections"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.category_mix.items():
            self.category_mix[k] = self.category_mix.get(k, 0) + v
        self.confidences.extend(other.confidences)
        self.would.extend(other.would)
        self.stopped = self.stopped or other.stopped
        self.run_id = other.run_id


__all__ = ["StopFlag", "RunReport"]
