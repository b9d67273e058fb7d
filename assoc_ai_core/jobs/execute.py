"""Carrying out plans through the journal: an *intent* committed before each action, *done* after it.

Actions are idempotent, so a run killed at any instant (even ``SIGKILL``) is
completed by the next one: a step whose intent has no *done* is carried out
again, on the very message it started on.  A forward sent by SMTP is handed to
the outbox (:mod:`assoc_ai_core.jobs.outbox`), which is idempotent too (one row
per message and destination) and sends it, retries it on later runs, and sends
a forward interrupted by a kill again at most once, with the same Message-ID.
A forward the connector makes itself (Gmail, Microsoft 365) is the exception:
an intent without *done* is marked ``uncertain`` and never sent again.  A
forward that fails affects that message only: its plan goes on.  This module
also finishes the messages an interrupted run left ``pending`` and the forwards
that are due (:meth:`Executor.recover`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, ForwardError, TransientError
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.outbox import ForwardPolicy, Outbox, OutboxStatus, mail_date
from assoc_ai_core.jobs.plan import (
    SETTLED,
    Action,
    MessageStatus,
    Plan,
    Step,
    StepStatus,
    for_mailbox,
    from_mailbox,
    log_key,
    mailbox_key,
)
from assoc_ai_core.jobs.preflight import Forwarder
from assoc_ai_core.jobs.report import RunReport, StopFlag
from assoc_ai_core.jobs.state import ActionRecord, MessageRecord, StateStore
from assoc_ai_core.mail.parsing import parse_message

log = logging.getLogger(__name__)

#: ``checkpoint(stage, actions_so_far, kind)`` after each journal stage: ``intent``, ``act``, ``done``
Checkpoint = Callable[[str, int, str], None]


class _RetryLater(Exception):
    """Internal: a step failed; the message stays pending and the next run tries again."""


class _TooOld(Exception):
    """Internal: a forward of mail older than ``forward_max_age_days``: recorded as skipped."""


#: how a forward handed to the outbox ends its journal step, by the outbox's status after the first try
_JOURNAL_OF = {OutboxStatus.REFUSED: StepStatus.REFUSED, OutboxStatus.UNCERTAIN: StepStatus.UNCERTAIN,
               OutboxStatus.SKIPPED: StepStatus.SKIPPED}


class Executor:
    """Carries out plans of one job's messages through its journal (see the module docstring)."""

    def __init__(self, *, instance: str, state: StateStore, connector: MailboxConnector,
                 forwarder: Forwarder | None = None, checkpoint: Checkpoint | None = None,
                 forwarding: ForwardPolicy | None = None) -> None:
        self.instance = instance
        self.state = state
        self.connector = connector
        self.forwarder = forwarder
        self.checkpoint = checkpoint
        # the job passes its [triage] forward_* settings; without them: no age limit, the default retries
        self.outbox = Outbox(state, instance, forwarding)
        self.run_id = 0
        self.actions = 0  # mailbox actions performed so far (what the checkpoint receives)

    def tick(self, stage: str, kind: Action) -> None:
        """Tell the checkpoint a journal stage is reached (the conformance kit kills the job there)."""
        if self.checkpoint is not None:
            self.checkpoint(stage, self.actions, kind.value)

    # ------------------------------------------------------------------ journal
    def add_intent(self, key: str, i: int, step: Step, ref: MailRef, *, status: StepStatus = StepStatus.INTENT,
                   detail: str | None = None) -> int:
        """Journal step ``i`` of ``key``'s plan (call inside a transaction); returns the row id."""
        return self.state.add_intent(instance=self.instance, key=key, run_id=self.run_id, step=i,
                                     kind=step.kind.value, target=step.target, folder=ref.folder, uid=ref.uid,
                                     status=status.value, detail=detail)

    def journal_next(self, key: str, plan: Plan, i: int, ref: MailRef) -> int | None:
        """Journal the intent of step ``i`` when it has never been started (call inside a transaction)."""
        if i >= len(plan) or plan[i].skip is not None:
            return None
        if self.state.last_action(self.instance, key, i) is not None:
            return None
        return self.add_intent(key, i, plan[i], ref)

    # ------------------------------------------------------------------ one message
    def execute(self, key: str, plan: Plan, ref: MailRef, raw: bytes | None, report: RunReport, *,
                subject: str = "", journaled: int | None = None) -> bool:
        """Carry out a message's plan step by step through the journal; True when complete.

        ``journaled`` is the id of step 0's intent when the caller committed it
        with the decision.  Each *done* is committed together with the next
        step's *intent* (one disk flush instead of two); the order on disk is
        unchanged: an intent is always durable before its action starts.
        """
        fresh: set[int] = {journaled} if journaled is not None else set()
        finished = False
        for i, step in enumerate(plan):
            last = self.state.last_action(self.instance, key, i)
            if last is not None and last.status in SETTLED:
                if last.result_folder and last.result_uid:
                    ref = MailRef(last.result_folder, last.result_uid, key)
                continue
            if self._open_step(key, i, step, last, fresh, ref):
                continue
            if last is not None and last.status == StepStatus.INTENT:
                action_id = last.id  # the interrupted action itself, carried out again
            else:
                action_id = self.add_intent(key, i, step, ref)
            try:
                outcome = self._attempt(action_id, key, step, ref, raw, subject, report)
            except _RetryLater:
                return False
            if outcome is None:
                continue
            new_ref, detail = outcome
            finished = self._finish_step(action_id, key, plan, i, new_ref, fresh, detail=detail)
            ref = new_ref
        if not finished:
            self.state.set_message_status(self.instance, key, MessageStatus.DONE)
        return True

    def _open_step(self, key: str, i: int, step: Step, last: ActionRecord | None, fresh: set[int],
                   ref: MailRef) -> bool:
        """Settle a step that must not be carried out now; True when it was (the plan goes on)."""
        interrupted = last is not None and last.status == StepStatus.INTENT and last.id not in fresh
        # an outbox forward is handed over again (idempotent): the outbox knows whether it went out
        if last is not None and interrupted and step.kind is Action.FORWARD and not self.uses_outbox:
            self.state.finish_action(last.id, StepStatus.UNCERTAIN, detail=tr(
                "exécution interrompue pendant l'envoi : le transfert a pu partir, il n'est pas renvoyé",
                "run interrupted while sending: the forward may have gone out, it is not sent again"))
            log.warning(tr(f"{log_key(key)} : transfert peut-être déjà envoyé, pas de nouvel envoi.",
                           f"{log_key(key)}: forward may already have been sent, not sending again."))
            return True
        if step.skip is not None:
            self.add_intent(key, i, step, ref, status=StepStatus.SKIPPED, detail=step.skip)
            return True
        return False

    def _attempt(self, action_id: int, key: str, step: Step, ref: MailRef, raw: bytes | None, subject: str,
                 report: RunReport) -> tuple[MailRef, str | None] | None:
        """Do one journalled action: where the message is after it and a note for the journal; None when a
        forward was settled otherwise (refused, skipped, uncertain).

        Transient and login failures stop the run (the journal says ``failed``);
        another connector failure leaves the message pending (:class:`_RetryLater`).
        """
        self.tick("intent", step.kind)
        try:
            if step.kind is Action.FORWARD and self.uses_outbox:
                return self._hand_over(action_id, key, step, ref, raw, subject, report)
            new_ref = self.act(step, ref, raw, key, subject)
            if step.kind is Action.FORWARD:
                report.forwarded += 1
            return new_ref, None
        except _TooOld as exc:
            self.state.finish_action(action_id, StepStatus.SKIPPED, detail=str(exc))
            return None
        except (TransientError, AuthError) as exc:
            self.state.finish_action(action_id, StepStatus.FAILED,
                                     detail="transient" if isinstance(exc, TransientError) else "auth")
            raise
        except ForwardError as exc:
            status = StepStatus.UNCERTAIN if exc.maybe_sent else StepStatus.REFUSED
            self.state.finish_action(action_id, status, detail=str(exc))
            report.failed += 1
            log.warning(tr(f"{log_key(key)} : transfert non fait ({status}).", f"{log_key(key)}: forward not done ({status})."))
            return None
        except ConnectorError as exc:
            self.state.finish_action(action_id, StepStatus.FAILED, detail=str(exc))
            report.failed += 1
            log.warning(tr(f"{log_key(key)} : action {step.kind} impossible, nouvel essai au prochain passage : {exc}",
                           f"{log_key(key)}: action {step.kind} failed, will retry on the next run: {exc}"))
            raise _RetryLater from exc

    def _finish_step(self, action_id: int, key: str, plan: Plan, i: int, new_ref: MailRef, fresh: set[int], *,
                     detail: str | None = None) -> bool:
        """Commit a step done with the next step's intent; True when it was the last step."""
        self.actions += 1
        self.tick("act", plan[i].kind)
        last = i == len(plan) - 1
        with self.state.transaction():
            self.state.finish_action(action_id, StepStatus.DONE, folder=new_ref.folder, uid=new_ref.uid, detail=detail)
            self.state.set_location(self.instance, key, new_ref.folder, new_ref.uid)
            nxt = self.journal_next(key, plan, i + 1, new_ref)
            if nxt is not None:
                fresh.add(nxt)
            if last:
                self.state.set_message_status(self.instance, key, MessageStatus.DONE)
        self.tick("done", plan[i].kind)
        return last

    # ------------------------------------------------------------------ mailbox actions
    def act(self, step: Step, ref: MailRef, raw: bytes | None, key: str, subject: str) -> MailRef:
        """One mailbox action; returns where the message is after it."""
        if step.kind is Action.LABEL:
            self.connector.add_label(for_mailbox(ref), step.target)
            return ref
        if step.kind is Action.TAG:
            return from_mailbox(self.connector.tag_subject(for_mailbox(ref), step.target), ref.key)
        if step.kind is Action.MOVE:
            return from_mailbox(self.connector.move(for_mailbox(ref), step.target), ref.key)
        return self._forward(step, ref, raw, key, subject)

    def _forward(self, step: Step, ref: MailRef, raw: bytes | None, key: str, subject: str) -> MailRef:
        """A forward sent directly (the connector's own, or SMTP without the outbox)."""
        conn = self.connector
        if raw is None:
            raw = self.fetch_raw(ref)
            subject = parse_message(raw).subject
        self.check_age(raw)
        if Capability.FORWARD in conn.capabilities:
            conn.forward(for_mailbox(ref), raw, step.target)
        elif self.forwarder is None:
            raise ConfigError(tr("Aucun moyen d'envoyer les transferts : ajoutez une section [smtp].",
                                 "No way to send forwards: add an [smtp] section."))
        else:
            self.forwarder.send(raw, step.target, category=step.category or "", key=key, subject=subject)
        return ref

    # ------------------------------------------------------------------ forwards
    @property
    def uses_outbox(self) -> bool:
        """Forwards go through the outbox (SMTP), not through the connector's own forward."""
        return self.forwarder is not None and Capability.FORWARD not in self.connector.capabilities

    def check_age(self, raw: bytes) -> None:
        """Refuse (:class:`_TooOld`) to forward mail older than ``forward_max_age_days``."""
        policy = self.outbox.policy
        if policy.too_old(mail_date(raw), datetime.now(UTC)):
            raise _TooOld(policy.too_old_reason())

    def _hand_over(self, action_id: int, key: str, step: Step, ref: MailRef, raw: bytes | None, subject: str,
                   report: RunReport) -> tuple[MailRef, str | None] | None:
        """Give a forward to the outbox (once) and let it try now; the journal step ends as the try did."""
        assert self.forwarder is not None  # uses_outbox
        if self.outbox.get(key, step.target) is None:
            if raw is None:
                raw = self.fetch_raw(ref)
                subject = parse_message(raw).subject
            self.check_age(raw)
            self.outbox.enqueue(key, step.target, raw, category=step.category or "", subject=subject)
        status = self.outbox.send(key, step.target, self.forwarder)
        row = self.outbox.get(key, step.target)
        reason = (row.reason if row is not None else None) or ""
        self._count_forward(status, report)
        if status in _JOURNAL_OF:
            self.state.finish_action(action_id, _JOURNAL_OF[status], detail=reason or None)
            return None
        if status is OutboxStatus.SENT:
            return ref, tr(f"envoyé {row.message_id if row else ''}".strip(), f"sent {row.message_id if row else ''}".strip())
        log.warning(tr(f"{log_key(key)} : transfert à {step.target} dans la file d'envoi ({status}) : {reason}",
                       f"{log_key(key)}: forward to {step.target} left in the outbox ({status}): {reason}"))
        return ref, tr(f"dans la file d'envoi ({status}) : {reason}", f"in the outbox ({status}): {reason}")

    @staticmethod
    def _count_forward(status: OutboxStatus | None, report: RunReport) -> None:
        """A forward sent counts as forwarded; one not sent (yet) as failed (exit 1: tried again on a later run)."""
        if status is OutboxStatus.SENT:
            report.forwarded += 1
        elif status is not None and status not in (OutboxStatus.SKIPPED, OutboxStatus.SENDING):
            report.failed += 1

    def flush_outbox(self, report: RunReport, stop: StopFlag) -> None:
        """Try every forward that is due (failed for a while, or interrupted by a kill)."""
        if not self.uses_outbox:
            return
        assert self.forwarder is not None
        self.outbox.unreachable = None  # a new run: the server gets another chance
        counts = self.outbox.flush(self.forwarder, lambda: bool(stop))
        for status, n in counts.items():
            for _ in range(n):
                self._count_forward(status, report)
        if counts:
            summary = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
            log.info(tr(f"File d'envoi des transferts : {summary}.", f"Forward outbox: {summary}."))

    def act_many(self, kind: Action, target: str, refs: Sequence[MailRef]) -> dict[str, MailRef]:
        """One batched connector call; key -> where each message is now (a message left out is retried alone)."""
        if kind is Action.LABEL:
            self.connector.add_label_many([for_mailbox(r) for r in refs], target)
            return {ref.key: ref for ref in refs}
        if kind is Action.MOVE:
            ours = {mailbox_key(r.key): r.key for r in refs}
            moved = self.connector.move_many([for_mailbox(r) for r in refs], target)
            if not isinstance(moved, Mapping):  # a plugin's own move_many from before the contract had one
                moved = {ref.key: ref for ref in moved}
            return {ours.get(k, k): from_mailbox(r, ours.get(k, k)) for k, r in moved.items()}
        raise ConfigError(f"unknown batched action {kind!r}")

    def fetch_raw(self, ref: MailRef) -> bytes:
        """The raw bytes of a message (a resumed forward whose page is gone)."""
        for fetched in self.connector.fetch_all(ref.folder):
            if fetched.ref.key == mailbox_key(ref.key) and (fetched.ref.uid == ref.uid or ref.key == fetched.ref.key):
                return fetched.raw
        raise ConnectorError(tr(f"Message {ref.key} introuvable dans « {ref.folder} ».",
                                f"Message {ref.key} not found in '{ref.folder}'."), connector_id=self.connector.id)

    # ------------------------------------------------------------------ recovery
    def recover(self, report: RunReport, stop: StopFlag) -> None:
        """Finish every message an interrupted run left pending, from where it really is now; then due forwards."""
        self._recover_messages(report, stop)
        if not stop:
            self.flush_outbox(report, stop)

    def _recover_messages(self, report: RunReport, stop: StopFlag) -> None:
        pending = self.state.messages_with_status(self.instance, MessageStatus.PENDING)
        if not pending:
            return
        log.info(tr(f"{len(pending)} message(s) laissé(s) en cours par une exécution interrompue : reprise.",
                    f"{len(pending)} message(s) left in progress by an interrupted run: resuming."))
        located = self.connector.locate([for_mailbox(_last_known(r)) for r in pending])
        for record in pending:
            if stop:
                return
            found = [from_mailbox(ref, record.key) for ref in located.get(mailbox_key(record.key), [])]
            self.resume(record, report, found=found)

    def resume(self, record: MessageRecord, report: RunReport, *, found: Sequence[MailRef] | None = None,
               fetched: FetchedMail | None = None) -> None:
        """Finish a message whose handling was interrupted, from where it really is now."""
        if found is None:
            found = [from_mailbox(ref, record.key) for ref in
                     self.connector.locate([for_mailbox(_last_known(record))]).get(mailbox_key(record.key), [])]
        if not found:
            self.state.set_message_status(self.instance, record.key, MessageStatus.LOST, reason=tr(
                "introuvable à la reprise (supprimé entre-temps ?)", "not found when resuming (deleted meanwhile?)"))
            log.warning(tr(f"{log_key(record.key)} : introuvable à la reprise.", f"{log_key(record.key)}: not found when resuming."))
            return
        plan = Plan.from_records(record.plan)
        if self.moved_by_a_person(record, plan, found):
            self._leave_to_person(record, found)
            return
        report.recovered += 1
        log.info(tr(f"{log_key(record.key)} : reprise d'un traitement interrompu.", f"{log_key(record.key)}: resuming interrupted handling."))
        ref = self.choose_ref(record, found)
        raw = fetched.raw if fetched is not None and fetched.ref == ref else None
        subject = parse_message(raw).subject if raw is not None else ""
        self.execute(record.key, plan, ref, raw, report, subject=subject)

    def moved_by_a_person(self, record: MessageRecord, plan: Plan, found: Sequence[MailRef]) -> bool:
        """Whether someone else put the message where the job never would: in none of the folders of its plan."""
        ours = {record.source_folder, record.current_folder}
        ours |= {step.target for step in plan if step.kind is Action.MOVE}
        ours |= {a.result_folder for a in self.state.actions_for(record.instance, record.key) if a.result_folder}
        return not any(ref.folder in ours for ref in found)

    def _leave_to_person(self, record: MessageRecord, found: Sequence[MailRef]) -> None:
        """A person filed the message while the job was interrupted: the job stops its plan and never moves it back.

        The record keeps the job's last known folder, so the correction pass
        that follows recovery sees the move and records it as a correction
        when the folder is another category's.
        """
        reason = tr("classé par une personne pendant l'interruption : le tri s'arrête là",
                    "filed by a person during the interruption: the job stops there")
        with self.state.transaction():
            for action in self.state.actions_for(record.instance, record.key):
                if action.status in (StepStatus.INTENT, StepStatus.FAILED):
                    self.state.finish_action(action.id, StepStatus.SKIPPED, detail=reason)
            self.state.set_message_status(self.instance, record.key, MessageStatus.DONE)
        log.info(tr(f"{log_key(record.key)} : déplacé par une personne ({found[0].folder}) ; le tri ne le reprend pas.",
                    f"{log_key(record.key)}: moved by a person ({found[0].folder}); the job leaves it there."))

    def choose_ref(self, record: MessageRecord, found: Sequence[MailRef]) -> MailRef:
        """Which copy to carry on with: the one the interrupted action started on, else the known folder."""
        for action in reversed(self.state.actions_for(record.instance, record.key)):
            if action.status == StepStatus.INTENT:
                for ref in found:
                    if ref.folder == action.ref_folder and ref.uid == action.ref_uid:
                        return ref  # finish the interrupted action on the very message it started on
                break
        for ref in found:
            if ref.folder == record.current_folder:
                return ref
        return found[0]


def _last_known(record: MessageRecord) -> MailRef:
    """Where the state last saw a message."""
    return MailRef(record.current_folder or record.source_folder or "", record.current_uid or record.source_uid or "",
                   record.key)


__all__ = ["Checkpoint", "Executor"]
