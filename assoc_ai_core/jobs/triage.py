"""The triage job: what an association runs every few minutes on its shared mailbox.

One pass (``assoc-ai triage run``):

1. finish what a killed run left half-done (the journal's pending intents);
2. look where previously decided messages are now: a person who moved one to
   another category made a *correction*, recorded for retraining;
3. for each watched folder, fetch new mail page by page, parse it, skip what
   was already handled, predict, and act:

   * ``auto`` — the category's actions, in this order: label, subject tag,
     forward, move (the move comes last, so until it is done the message is
     still where the next run will find it);
   * ``review`` — move to the review folder (default « À vérifier ») with the
     two best categories and the explanation recorded;
   * unreadable or unclassifiable mail — review folder, with the reason.

Every mailbox action is journalled: *intent* committed before, *done* after.
Actions are idempotent, so a run killed at any instant (even ``SIGKILL``) is
completed by the next one; SMTP forwards go through an outbox (jobs/outbox.py) that
retries temporary failures and re-sends an interrupted forward at most once, with
the same Message-ID.  The folder cursor is stored
only after its page is fully handled, and keys already handled are skipped,
so each message is handled exactly once.

Plans made only of labels and moves are carried out a page at a time: one
connector call per label and per target folder (``add_label_many``,
``move_many``) and one journal transaction per step for the whole page.  The
journal itself stays per message (each message's intent is durable before the
batched call starts), so a run killed in the middle of a batch is finished like
any other interrupted run.  Plans with a subject tag or a forward are carried
out one message at a time.

The job speaks only the :class:`~assoc_ai_core.ext.connectors.MailboxConnector`
contract, so it runs unchanged on IMAP, Gmail, Microsoft 365 or a local Maildir.

This module holds the job's life cycle and passes; its parts: ``settings``,
``preflight`` (built and checked before a run), ``plan`` (decisions, steps),
``deciding``, ``execute`` and ``batch`` (the journal), ``corrections``, ``examples``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from pluggy import HookRelay

from assoc_ai_core.errors import AssocAIError, ConnectorError, TransientError
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef, Page
from assoc_ai_core.ext.plugins import load_plugins, notify_observers
from assoc_ai_core.files import acquire_lock, private_dir, release_lock
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.acknowledgement import Acknowledger
from assoc_ai_core.jobs.audit import participant_addresses
from assoc_ai_core.jobs.batch import InFlight, carry_out
from assoc_ai_core.jobs.budget import OverBudget, ReadingBudget
from assoc_ai_core.jobs.corrections import detect_corrections
from assoc_ai_core.jobs.deciding import decide_page, unconfigured_categories
from assoc_ai_core.jobs.examples import collect_mailbox_examples, train_from_mailbox
from assoc_ai_core.jobs.execute import Checkpoint, Executor
from assoc_ai_core.jobs.outbox import ForwardPolicy
from assoc_ai_core.jobs.plan import Decision, DecisionKind, MessageKey, MessageStatus, StepStatus, log_key, reused_key
from assoc_ai_core.jobs.preflight import Forwarder, acknowledger, build_connector, load_current_model, smtp_forwarder
from assoc_ai_core.jobs.report import RunReport, StopFlag
from assoc_ai_core.jobs.retention import model_sender_key
from assoc_ai_core.jobs.settings import DEFAULT_REVIEW_FOLDER, CategorySettings, TriageSettings, as_settings
from assoc_ai_core.jobs.state import MessageRecord, SenderPrivacy, StateStore
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.records.mail import Message

log = logging.getLogger(__name__)


class _Interrupted(Exception):
    """Internal: the stop flag was raised between two messages."""


class TriageJob:
    """One configured triage job.  ``with TriageJob(settings) as job: job.run_once()``.

    ``connector``, ``model`` and ``forwarder`` may be given (tests, embedding);
    otherwise they are built from the settings.  ``checkpoint(stage, n, kind)``
    is called after each journal step (``"intent"``, ``"act"``, ``"done"``) with
    the number of mailbox actions performed so far and the action's kind
    (``label``, ``tag``, ``forward``, ``move``); the conformance kit uses it to
    kill the job at chosen instants.  In a batch each message still gets its
    three calls: ``intent`` before the batched connector call, ``act`` after
    it, ``done`` after the step's commit.  Every decision recorded is also
    announced to the plugins' ``decision_recorded`` hook.
    """

    def __init__(self, settings: TriageSettings | str | os.PathLike[str], *, connector: MailboxConnector | None = None,
                 model: Any = None, model_version: str | None = None, forwarder: Forwarder | None = None,
                 dry_run: bool | None = None, stop: StopFlag | None = None,
                 checkpoint: Checkpoint | None = None) -> None:
        self.settings = as_settings(settings)
        self.dry_run = self.settings.dry_run if dry_run is None else bool(dry_run)
        self.stop = stop if stop is not None else StopFlag()
        self._connector = connector
        self._own_connector = connector is None
        self._model = model
        self._model_version = model_version or ("in-memory" if model is not None else None)
        self._forwarder = forwarder
        self._checkpoint = checkpoint
        self._state: StateStore | None = None
        self._executor: Executor | None = None
        self._lock_fd: int | None = None
        self._privacy: SenderPrivacy | None = None
        self._ack: Acknowledger | None = None  # when [acknowledgement] enabled
        self._hooks: HookRelay | None = None  # the plugin manager's hooks
        self._prepared = False
        self._budget: ReadingBudget | None = None
        self._sender_key: Any = None
        self._hook_warned: set[str] = set()
        # Seconds between two correction checks; watch mode raises it, since locating every recent
        # decision on each short pass would load an IMAP server for nothing.
        self.correction_interval = 0.0
        self._corrections_checked = -math.inf

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> TriageJob:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Take the job lock, open the state, the model and the mailbox."""
        s = self.settings
        private_dir(s.state_path.parent)
        fd = acquire_lock(s.state_path.with_name(s.state_path.name + ".lock"))
        if fd is None:
            raise TransientError(tr(
                f"Une autre exécution utilise déjà {s.state_path} ; celle-ci s'arrête (réessai au prochain passage).",
                f"Another run is already using {s.state_path}; this one stops (retry on the next run).",
            ))
        self._lock_fd = fd
        try:
            self._open_parts()
        except BaseException:
            self.close()
            raise

    def _open_parts(self) -> None:
        """Everything but the lock, built by the functions :func:`~.preflight.check_config` checks with."""
        s = self.settings
        self._hooks = load_plugins().hook  # also when the connector is given: observers must hear every decision
        self._state = StateStore(s.state_path, key_file=s.key_file)  # key: erased mail's tombstones are keyed
        self._state.mark_abandoned_runs()  # we hold the lock: a run still 'running' was killed
        self._privacy = SenderPrivacy.from_key_file(s.key_file, store_raw=s.store_raw_sender)
        self._sender_key = model_sender_key(s)  # the model's sender tokens are keyed; the key never enters it
        self._ack = acknowledger(s, self._state, self._privacy, dry_run=self.dry_run)
        if self._model is None:
            self._model, self._model_version = load_current_model(s)
        self._check_model_categories()
        if self._connector is None:
            self._connector = build_connector(s)
        self._connector.open()
        self._check_capabilities()
        # the marker lives beside the state (one job per state file, under its lock); a dry run reads it too
        self._budget = ReadingBudget(s.state_path.with_name(s.state_path.name + ".reading"),
                                     seconds=s.message_seconds, max_bytes=int(s.message_max_mb * 1e6))
        if self._budget.stalled:
            log.warning(tr("Une exécution précédente s'est arrêtée en lisant un message : il ira à vérifier.",
                           "A previous run stopped while reading a message: it will go to review."))
        self._executor = Executor(instance=s.instance, state=self._state, connector=self._connector,
                                  forwarder=self._forwarder, checkpoint=self._checkpoint,
                                  forwarding=ForwardPolicy.from_settings(s))

    def close(self) -> None:
        """Release the mailbox, the state and the lock; safe to call twice."""
        if self._connector is not None and self._own_connector:
            with contextlib.suppress(Exception):
                self._connector.close()
        if self._state is not None:
            self._state.close()
            self._state = None
        self._executor = None
        close_forwarder = getattr(self._forwarder, "close", None)
        if callable(close_forwarder):  # the SMTP connection kept open for the run's forwards
            with contextlib.suppress(Exception):
                close_forwarder()
        if self._budget is not None:
            self._budget.close()
            self._budget = None
        if self._lock_fd is not None:
            release_lock(self._lock_fd)
            self._lock_fd = None

    @property
    def state(self) -> StateStore:
        """The open state store."""
        if self._state is None:
            raise RuntimeError("TriageJob is not open")
        return self._state

    @property
    def connector(self) -> MailboxConnector:
        """The open mailbox connector."""
        if self._connector is None:
            raise RuntimeError("TriageJob is not open")
        return self._connector

    @property
    def executor(self) -> Executor:
        """The open job's journal executor."""
        if self._executor is None:
            raise RuntimeError("TriageJob is not open")
        return self._executor

    @property
    def privacy(self) -> SenderPrivacy:
        """How the open job stores senders (keyed hash, pseudonym, raw address when opted in)."""
        if self._privacy is None:
            raise RuntimeError("TriageJob is not open")
        return self._privacy

    @property
    def model_version(self) -> str | None:
        """Version of the model in use."""
        return self._model_version

    def _check_model_categories(self) -> None:
        missing = unconfigured_categories(self._model, self.settings)
        if missing:
            log.warning(tr(
                f"Catégories du modèle sans section [categories.…] : {', '.join(missing)}. "
                "Leur courrier ira au dossier de revue.",
                f"Model categories without a [categories.…] section: {', '.join(missing)}. "
                "Their mail will go to the review folder.",
            ))

    def _check_capabilities(self) -> None:
        capabilities = self.connector.capabilities
        if Capability.MOVE not in capabilities:
            log.warning(tr(f"Le connecteur {self.connector.id} ne sait pas déplacer : les messages restent en place.",
                           f"Connector {self.connector.id} cannot move: messages stay where they are."))
        self._forwarder = smtp_forwarder(self.settings, capabilities, dry_run=self.dry_run, given=self._forwarder)

    # ------------------------------------------------------------------ passes
    def run_once(self) -> RunReport:
        """One pass: recover, detect corrections, triage new mail. Returns what was done."""
        state = self.state
        report = RunReport(dry_run=self.dry_run)
        report.run_id = state.start_run(self.settings.instance, dry_run=self.dry_run, model_version=self._model_version)
        self.executor.run_id = report.run_id
        status, code, message = "ok", 0, ""
        try:
            if not self.dry_run:
                self.upkeep(report)
            for folder in self.settings.folders:
                if self.stop:
                    break
                self._process_folder(folder, report)
            report.stopped = bool(self.stop)
            code = report.exit_code
            status = "stopped" if report.stopped else ("partial" if code else "ok")
        except BaseException as exc:
            status = "error"
            code = exc.exit_code if isinstance(exc, AssocAIError) else 1
            message = type(exc).__name__
            raise
        finally:
            with contextlib.suppress(Exception):
                state.finish_run(report.run_id, status=status, exit_code=code, stats=report.stats(), message=message)
            log.info(report.summary())
        return report

    def upkeep(self, report: RunReport) -> None:
        """Before new mail (real runs only): folders, interrupted messages, corrections, retention."""
        self._prepare_folders()
        self.executor.recover(report, self.stop)
        if time.monotonic() - self._corrections_checked >= self.correction_interval:
            detect_corrections(self.settings, self.state, self.connector, report)
            self._corrections_checked = time.monotonic()
        from assoc_ai_core.jobs.retention import retention_for_job

        retention_for_job(self.settings, self.state)  # stored text past its retention period

    def watch(self, *, max_passes: int | None = None) -> RunReport:
        """Triage, wait for mail (or poll), again — until SIGTERM/SIGINT; returns the accumulated report."""
        total = RunReport(dry_run=self.dry_run)
        passes = 0
        self.correction_interval = max(self.correction_interval, 300.0, self.settings.poll_interval)
        while not self.stop:
            try:
                total.add(self.run_once())
            except TransientError as exc:
                log.warning(tr(f"Incident passager : {exc}. Nouvel essai dans {self.settings.poll_interval:.0f} s.",
                               f"Transient problem: {exc}. Retrying in {self.settings.poll_interval:.0f} s."))
                self._sleep(self.settings.poll_interval)
                self._reconnect()
                continue
            passes += 1
            if max_passes is not None and passes >= max_passes:
                break
            try:
                self._wait()
            except TransientError as exc:  # e.g. the server dropped an IDLE connection
                log.warning(tr(f"Attente interrompue : {exc}. Reconnexion.", f"Waiting interrupted: {exc}. Reconnecting."))
                self._reconnect()
        total.stopped = bool(self.stop)
        return total

    def _reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.connector.close()
        with contextlib.suppress(TransientError):
            self.connector.open()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _wait(self) -> None:
        waiter = getattr(self.connector, "wait_for_changes", None)
        if not (Capability.WATCH in self.connector.capabilities and callable(waiter)):
            self._sleep(self.settings.poll_interval)
            return
        deadline = time.monotonic() + self.settings.poll_interval
        while not self.stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # short waits so a SIGTERM is honoured within seconds even while the server is idle
            if waiter(list(self.settings.folders), min(remaining, 5.0)):
                return

    # ------------------------------------------------------------------ folders
    def _prepare_folders(self) -> None:
        if self._prepared or Capability.CREATE_FOLDER not in self.connector.capabilities:
            self._prepared = True
            return
        wanted = [self.settings.review_folder] + [c.folder for c in self.settings.categories.values() if c.folder]
        existing = set(self.connector.list_folders())
        for name in wanted:
            if name not in existing:
                self.connector.ensure_folder(name)
        self._prepared = True

    def _process_folder(self, folder: str, report: RunReport) -> None:
        state, s = self.state, self.settings
        cursor = self._start_cursor(folder)
        for page in self.connector.fetch_new(folder, cursor, page_size=s.page_size):
            if page.resync:
                log.info(tr(f"{folder} : relecture complète (le serveur a changé d'identifiants) ; "
                            "les messages déjà traités sont ignorés.",
                            f"{folder}: full replay (the server changed its ids); already handled messages are skipped."))
            if not self.handle_messages(folder, page.messages, report):
                return  # the page's cursor is not stored: the next run fetches it again and skips what is done
            if not self.dry_run:
                state.set_cursor(s.instance, folder, page.cursor)

    def handle_messages(self, folder: str, messages: Sequence[FetchedMail], report: RunReport) -> bool:
        """Decide and act on fetched messages of ``folder`` (those already handled are skipped).

        Returns False when the run was asked to stop before all were handled.
        The backlog command (:mod:`.backlog`) feeds old mail through here too.
        """
        todo = self._new_in_page(folder, Page(list(messages), {}), report)
        try:
            self._handle_page(todo, report)
        except _Interrupted:
            return False
        return not self.stop

    def _start_cursor(self, folder: str) -> Any:
        """Where to read ``folder`` from: the stored cursor; on a job's first run, now (``first_run = "new"``).

        A new job must not act on years of backlog (moves, forwards to the
        treasurer): the first run stores a cursor placed after the mail
        already there and leaves that mail alone; ``triage backlog`` sorts it
        on purpose.  A dry run reads from the stored cursor too, so it shows
        what the next real run would do; with ``first_run = "all"`` it reads
        the whole folder, as the first real run would.
        """
        state, s = self.state, self.settings
        cursor = state.get_cursor(s.instance, folder)
        if s.first_run == "all":
            return None if self.dry_run else cursor
        if cursor is not None:
            return cursor
        cursor, left = self._cursor_at_now(folder)
        state.set_cursor(s.instance, folder, cursor)
        count = "" if left is None else f" ({left})"
        log.warning(tr(
            f"Premier passage sur {folder} : le courrier déjà présent{count} n'est pas touché ; seul celui qui arrive "
            "désormais sera trié. Pour trier l'ancien : assoc-ai triage backlog --since AAAA-MM-JJ --dry-run.",
            f"First run on {folder}: the mail already there{count} is left alone; only mail arriving from now on "
            "will be sorted. To sort older mail: assoc-ai triage backlog --since YYYY-MM-DD --dry-run."))
        return cursor

    def _cursor_at_now(self, folder: str) -> tuple[Any, int | None]:
        """A cursor after the mail ``folder`` holds now, and how many messages were passed (None: not counted)."""
        cursor = self.connector.cursor_at_now(folder)
        if cursor is not None:
            return dict(cursor), None
        # the connector cannot place a cursor: read the folder to its end, acting on nothing
        left, last = 0, None
        for page in self.connector.fetch_new(folder, None, page_size=self.settings.page_size):
            left += len(page.messages)
            last = page.cursor
        if last is None:  # an empty folder yields no page: its cursor from nothing is "from the start"
            return {}, 0
        return dict(last), left

    def _new_in_page(self, folder: str, page: Page, report: RunReport) -> list[tuple[FetchedMail, Message]]:
        """The page's messages to decide, parsed; those already handled are skipped (or resumed when pending)."""
        todo: list[tuple[FetchedMail, Message]] = []
        in_page: set[str] = set()
        known = self.state.get_messages(self.settings.instance, [f.ref.key for f in page.messages])
        for fetched in page.messages:
            report.fetched += 1
            if fetched.ref.key in in_page:  # the same message delivered twice: handled once
                report.skipped += 1
                continue
            in_page.add(fetched.ref.key)
            record = known.get(fetched.ref.key)
            parsed: Message | None = None
            if record is not None and not record.dry_run and record.identity:
                parsed = self._parse(folder, fetched)
                fetched, record = self._told_apart(fetched, parsed, record)
            if record is not None and not record.dry_run:
                if record.status == MessageStatus.PENDING and not self.dry_run:
                    self.executor.resume(record, report, fetched=fetched)
                else:
                    report.skipped += 1
                continue
            todo.append((fetched, parsed or self._parse(folder, fetched)))
        return todo

    def _told_apart(self, fetched: FetchedMail, msg: Message, record: MessageRecord,
                    ) -> tuple[FetchedMail, MessageRecord | None]:
        """A message whose Message-ID was already decided: the same one (skipped), or another that reuses the id.

        Another message (sender or date differ) gets a state key of its own
        and is decided like any new mail, instead of staying in the inbox for
        ever as "already handled".
        """
        identity = self.privacy.identity(msg.sender, msg.date)
        if identity is None or identity == record.identity:
            return fetched, record
        key = reused_key(fetched.ref.key, identity)
        log.info(tr(f"{log_key(fetched.ref.key)} : un autre message reprend ce Message-ID ; il est traité à part ({log_key(key)}).",
                    f"{log_key(fetched.ref.key)}: another message reuses this Message-ID; it is handled on its own ({log_key(key)})."))
        own = FetchedMail(MailRef(fetched.ref.folder, fetched.ref.uid, key), fetched.raw)
        return own, self.state.get_messages(self.settings.instance, [key]).get(key)

    def _parse(self, folder: str, fetched: FetchedMail) -> Message:
        """Parse one message within its budget; one that cannot be read within it carries the reason as its error."""
        budget, key = self._budget, fetched.ref.key
        if budget is None:
            return parse_message(fetched.raw, source=f"{folder}/{fetched.ref.uid}")
        reason = budget.stalled_reason() if key == budget.stalled else budget.too_large(len(fetched.raw))
        if reason is None:
            try:
                with budget.reading(key):
                    return parse_message(fetched.raw, source=f"{folder}/{fetched.ref.uid}")
            except OverBudget:
                reason = budget.over_reason()
        log.warning(tr(f"{log_key(key)} : à vérifier sans être lu ({reason}).", f"{log_key(key)}: to review, not read ({reason})."))
        return Message(key=key, source=f"{folder}/{fetched.ref.uid}", error=reason)

    # ------------------------------------------------------------------ deciding and acting
    def _handle_page(self, todo: Sequence[tuple[FetchedMail, Message]], report: RunReport) -> None:
        """Decide and act on one page: label/move-only plans as a batch, the others one message at a time."""
        memory = None
        if self.settings.threads and self._state is not None:
            from assoc_ai_core.jobs.corrections import job_tags
            from assoc_ai_core.jobs.threads import ThreadMemory

            # The job's own state connection, and its --dry-run (not only the configuration's).
            memory = ThreadMemory(self._state, self.settings.instance, privacy=self._privacy, dry_run=self.dry_run,
                                  tags=job_tags(self.settings))
        decisions = decide_page(self._model, todo, settings=self.settings, capabilities=self.connector.capabilities,
                                budget=self._budget, sender_key=self._sender_key, memory=memory)
        if self._budget is not None:
            self._budget.done()  # every message of the page was read: none of them stalls the next run
        if self.dry_run:
            for d in decisions:
                if self.stop:
                    raise _Interrupted
                self._record([d], report)
                report.would.append(d.would())
            return
        batch = [d for d in decisions if d.plan.batchable]
        if batch:
            if self.stop:
                raise _Interrupted
            self._handle_batch(batch, report)
        for d in decisions:
            if not d.plan.batchable:
                if self.stop:
                    raise _Interrupted
                self._handle_one(d, report)

    def _handle_one(self, d: Decision, report: RunReport) -> None:
        """Record a decision with its first intent, carry out its plan (tags, forwards), acknowledge."""
        intents = self._record([d], report)
        if self.executor.execute(d.key, d.plan, d.fetched.ref, d.fetched.raw, report, subject=d.message.subject,
                                 journaled=intents[d.key]):
            self._acknowledge(d)

    def _handle_batch(self, decisions: Sequence[Decision], report: RunReport) -> None:
        """Record label/move-only plans of a page together, carry them out as batches (see :mod:`.batch`)."""
        intents = self._record(decisions, report)
        live: list[InFlight] = []
        alone: list[InFlight] = []  # journal not as expected (cannot happen for a fresh decision): one by one
        for d in decisions:
            if not d.plan:
                self._acknowledge(d)
                continue
            item = InFlight(d, d.fetched.ref, intents[d.key])
            (live if item.intent is not None else alone).append(item)
        alone += carry_out(self.executor, live, self._acknowledge)
        for item in alone:
            # the journal knows which steps are done: execute() carries on from the open intent
            if self.executor.execute(item.key, item.plan, item.ref, item.decision.fetched.raw, report,
                                     subject=item.decision.message.subject, journaled=item.intent):
                self._acknowledge(item.decision)

    def _record(self, decisions: Sequence[Decision], report: RunReport) -> dict[MessageKey, int | None]:
        """Store decisions with their first journal rows in one transaction; then count, log and announce each.

        The one place a decision is recorded — one message, a batch or a dry
        run — so ``decision_recorded`` fires for every decision.  Returns each
        message's step 0 intent (None in a dry run, for an empty plan, or
        when step 0 is skipped).
        """
        s, state = self.settings, self.state
        intents: dict[MessageKey, int | None] = {}
        with state.transaction():
            for d in decisions:
                state.clear_would(s.instance, d.key)  # a former simulation's "would do" rows make way
                state.record_decision(
                    instance=s.instance, key=d.key, run_id=report.run_id or 0, dry_run=self.dry_run,
                    status=MessageStatus.WOULD if self.dry_run else MessageStatus.PENDING,
                    folder=d.fetched.ref.folder, uid=d.fetched.ref.uid, sender=d.message.sender,
                    privacy=self.privacy, decision=d.decision.value, category=d.category,
                    probability=d.probability, runner_up=d.runner_up, runner_up_probability=d.runner_up_probability,
                    explanation=d.explanation, model_version=self._model_version, reason=d.reason,
                    plan=d.plan.to_records(), identity=self.privacy.identity(d.message.sender, d.message.date))
                # who else the message is about (Reply-To, Cc, a contact form's address), as keyed hashes only:
                # an access request or an erasure must find them too
                state.record_participants(s.instance, d.key, self.privacy, participant_addresses(d.message))
                intents[d.key] = self._journal_start(d)
        for d in decisions:
            report.count(d)
            self._log_decision(d)
            self._announce(d)
        return intents

    def _journal_start(self, d: Decision) -> int | None:
        """A dry run's "would" rows; else step 0's intent (an empty plan is done at once)."""
        if self.dry_run:
            for i, step in enumerate(d.plan):
                self.executor.add_intent(d.key, i, step, d.fetched.ref, status=StepStatus.WOULD, detail=step.skip)
            return None
        if not d.plan:
            self.state.set_message_status(self.settings.instance, d.key, MessageStatus.DONE)
            return None
        return self.executor.journal_next(d.key, d.plan, 0, d.fetched.ref)

    def _log_decision(self, d: Decision) -> None:
        """One line per decision: key, decision, category, confidence and planned actions (never the text)."""
        what = f"{d.decision} {d.category or '-'} ({(d.probability or 0):.0%}) → {d.plan.describe()}"
        log.info(tr(f"{'[simulation] ' if self.dry_run else ''}{log_key(d.key)} : {what}",
                    f"{'[dry run] ' if self.dry_run else ''}{log_key(d.key)}: {what}"))

    def _announce(self, d: Decision) -> None:
        """Tell the plugins' ``decision_recorded`` observers (a failing observer never stops the triage)."""
        if self._hooks is None:
            return
        record = d.audit_record(instance=self.settings.instance, model_version=self._model_version,
                                dry_run=self.dry_run)
        for plugin, exc in notify_observers("decision_recorded", record=record):
            if plugin not in self._hook_warned:  # once per plugin and run: the log is not flooded
                log.warning(tr(f"Le plugin {plugin} a échoué sur decision_recorded : {type(exc).__name__}",
                               f"Plugin {plugin} failed in decision_recorded: {type(exc).__name__}"))
                self._hook_warned.add(plugin)

    def _acknowledge(self, d: Decision) -> None:
        """Acknowledge mail whose plan is complete and that the model routed on its own (when enabled)."""
        if d.decision is not DecisionKind.AUTO or d.category is None or self._ack is None:
            return
        try:  # an acknowledgement that cannot be sent must not undo the triage
            self._ack.acknowledge(d.message, d.category)
        except ConnectorError as exc:
            log.warning(tr(f"{log_key(d.key)} : accusé de réception non envoyé ({exc})",
                           f"{log_key(d.key)}: acknowledgement not sent ({exc})"))


def run_triage(config: TriageSettings | str | os.PathLike[str], *, dry_run: bool | None = None, watch: bool = False,
               handle_signals: bool = True) -> RunReport:
    """Run the job as the command line does (one pass, or watch until a signal)."""
    stop = StopFlag()
    with TriageJob(config, dry_run=dry_run, stop=stop) as job:
        ctx = stop.handle_signals() if handle_signals else contextlib.nullcontext()
        with ctx:
            return job.watch() if watch else job.run_once()


__all__ = [
    "CategorySettings", "TriageSettings", "TriageJob", "RunReport", "StopFlag", "Decision", "Forwarder",
    "build_connector", "load_current_model", "train_from_mailbox", "collect_mailbox_examples", "run_triage",
    "as_settings", "DEFAULT_REVIEW_FOLDER",
]
