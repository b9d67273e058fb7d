"""Old mail, sorted on purpose: ``assoc-ai triage backlog --since DATE [--dry-run]``.

A new job leaves the mail already in its folders alone (``[triage] first_run``).
This command is the explicit way to sort it: it reads the watched folders'
mail received since a date (the connector's ``fetch_since``), skips what the
job already handled, and decides and acts exactly as a run does — journal,
exactly-once actions, review folder — without touching the cursors.  A dry
run records and prints what it would do, counted per category and action,
so the association sees the effect before anything moves.  Forwards of mail
older than ``forward_max_age_days`` are never sent (the count says so).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assoc_ai_core.errors import AssocAIError
from assoc_ai_core.ext.connectors import FetchedMail
from assoc_ai_core.i18n import count, tr
from assoc_ai_core.jobs.report import RunReport

if TYPE_CHECKING:
    from assoc_ai_core.jobs.triage import TriageJob


def run_backlog(job: TriageJob, since: datetime) -> RunReport:
    """Decide (and, unless the job is a dry run, act on) the watched folders' mail received since ``since``."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    state, s = job.state, job.settings
    report = RunReport(dry_run=job.dry_run)
    report.run_id = state.start_run(s.instance, dry_run=job.dry_run, model_version=job.model_version)
    job.executor.run_id = report.run_id
    status, code, message = "ok", 0, ""
    try:
        if not job.dry_run:
            job.upkeep(report)
        for folder in s.folders:
            if job.stop or not _sort_folder(job, folder, since, report):
                break
        report.stopped = bool(job.stop)
        code = report.exit_code
        status = "stopped" if report.stopped else ("partial" if code else "ok")
    except BaseException as exc:
        status, message = "error", type(exc).__name__
        code = exc.exit_code if isinstance(exc, AssocAIError) else 1
        raise
    finally:
        state.finish_run(report.run_id, status=status, exit_code=code, stats=report.stats(), message=message)
    return report


def _sort_folder(job: TriageJob, folder: str, since: datetime, report: RunReport) -> bool:
    """One folder's old mail, a page at a time; False when the run was asked to stop."""
    page: list[FetchedMail] = []
    for fetched in job.connector.fetch_since(folder, since):
        page.append(fetched)
        if len(page) >= job.settings.page_size:
            if not job.handle_messages(folder, page, report):
                return False
            page = []
    return not page or job.handle_messages(folder, page, report)


def plan_table(would: list[dict[str, Any]], *, max_age_days: int, now: datetime | None = None
               ) -> list[tuple[str, str, int]]:
    """What a dry run would do, as (category or decision, action, number of messages), most frequent first.

    A forward of mail older than ``max_age_days`` is counted as not sent, as
    the job will record it.
    """
    now = now or datetime.now(UTC)
    table: Counter[tuple[str, str]] = Counter()
    for w in would:
        who = w.get("category") if w.get("decision") == "auto" else tr("à vérifier", "to review")
        old = _older_than(w.get("date"), max_age_days, now)
        actions = w.get("actions") or []
        if not actions:
            table[(str(who), tr("rien", "nothing"))] += 1
        for a in actions:
            label = f"{a['kind']} → {a['target']}"
            if a["kind"] == "forward" and old:
                label += tr(" (non envoyé : trop ancien)", " (not sent: too old)")
            table[(str(who), label)] += 1
    return [(who, action, n) for (who, action), n in table.most_common()]


def _older_than(date: str | None, days: int, now: datetime) -> bool:
    if not date or not days:
        return False
    try:
        when = datetime.fromisoformat(date)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (now - when).days >= days


def describe_table(rows: list[tuple[str, str, int]]) -> str:
    """The dry run's table as text, one line per category and action."""
    if not rows:
        return tr("Aucun message à trier depuis cette date.", "No message to sort since that date.")
    width = max(len(r[0]) for r in rows)
    lines = [f"  {who:<{width}}  {action:<40}  {count(n, ('message', 'messages'), ('message', 'messages'))}" for who, action, n in rows]
    return "\n".join(lines)


__all__ = ["run_backlog", "plan_table", "describe_table"]
