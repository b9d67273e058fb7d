"""Corrections: a person who moved a decided message to another category's folder taught the job something.

Each pass looks where the messages decided within ``[triage]
correction_window_days`` are now.  One found in another category's folder is
a correction, recorded once (with the pseudonymised subject and text, unless
``[privacy] keep_correction_text = false``) for ``assoc-ai retrain``; one moved
elsewhere only has its location updated; one gone is marked gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from assoc_ai_core.errors import ConnectorError
from assoc_ai_core.ext.connectors import MailboxConnector, MailRef
from assoc_ai_core.ext.subject import strip_tags
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.plan import for_mailbox, from_mailbox, log_key, mailbox_key
from assoc_ai_core.jobs.report import RunReport
from assoc_ai_core.jobs.settings import TriageSettings
from assoc_ai_core.jobs.state import MessageRecord, StateStore
from assoc_ai_core.mail.parsing import parse_message

log = logging.getLogger(__name__)

LOCATE_CHUNK = 200  # messages asked about in one locate() call


def detect_corrections(settings: TriageSettings, state: StateStore, connector: MailboxConnector,
                       report: RunReport) -> None:
    """Record the corrections made since the last pass (see the module docstring)."""
    since = (datetime.now(UTC) - timedelta(days=settings.correction_window_days)).isoformat(timespec="seconds")
    records = state.decided_since(settings.instance, since)
    if not records:
        return
    located = _locate_all(connector, records)
    fresh: list[tuple[int, MailRef]] = []
    corrected: list[tuple[MessageRecord, MailRef]] = []
    for record in records:
        found = [from_mailbox(ref, record.key) for ref in located.get(mailbox_key(record.key), [])]
        if not found:
            state.mark_gone(settings.instance, record.key)
            continue
        correction = _reconcile(settings, state, record, found)
        if correction is not None:
            fresh.append(correction)
            corrected.append((record, correction[1]))
            report.corrections += 1
    if fresh and settings.keep_correction_text:
        store_correction_texts(state, connector, fresh, tags=job_tags(settings))
    for record, where in corrected:
        _undo_job_marks(settings, state, connector, record, where)


def job_tags(settings: TriageSettings) -> list[str]:
    """Every ``[#Tag]`` the job may have put in a subject."""
    return [c.tag for c in settings.categories.values() if c.tag]


def _undo_job_marks(settings: TriageSettings, state: StateStore, connector: MailboxConnector,
                    record: MessageRecord, where: MailRef) -> None:
    """After a correction, take off the label and ``[#Tag]`` the job put on the message for the wrong category.

    Left on, they would tell the volunteers (and a later retraining) the old
    category.  A failure is only logged: the correction itself is recorded.
    """
    ref = where
    try:
        for step in record.plan:
            if step.get("kind") == "label" and step.get("target"):
                connector.remove_label(for_mailbox(ref), str(step["target"]))
            elif step.get("kind") == "tag" and step.get("target"):
                ref = from_mailbox(connector.untag_subject(for_mailbox(ref), str(step["target"])), record.key)
    except ConnectorError as exc:
        log.warning(tr(f"{log_key(record.key)} : étiquette ou tag de l'ancienne catégorie non retiré ({exc}).",
                       f"{log_key(record.key)}: the old category's label or tag was not removed ({exc})."))
    if ref != where:
        state.set_location(settings.instance, record.key, ref.folder, ref.uid)


def _locate_all(connector: MailboxConnector, records: Sequence[MessageRecord]) -> dict[str, list[MailRef]]:
    """Where each record's message is now, asked a chunk at a time."""
    located: dict[str, list[MailRef]] = {}
    for start in range(0, len(records), LOCATE_CHUNK):
        chunk = records[start:start + LOCATE_CHUNK]
        located.update(connector.locate([MailRef(r.current_folder or "", r.current_uid or "", mailbox_key(r.key))
                                         for r in chunk]))
    return located


def _reconcile(settings: TriageSettings, state: StateStore, record: MessageRecord, found: Sequence[MailRef],
               ) -> tuple[int, MailRef] | None:
    """Update where a message is; (correction id, where it is) when a person moved it to another category."""
    instance = settings.instance
    same = next((x for x in found if x.folder == record.current_folder), None)
    if same is not None:
        if same.uid != record.current_uid:
            state.set_location(instance, record.key, same.folder, same.uid)
        return None
    by_folder = settings.folder_categories()
    where = next((x for x in found if x.folder in by_folder), found[0])
    to_category = by_folder.get(where.folder)
    if to_category is None or to_category == record.effective_category:
        state.set_location(instance, record.key, where.folder, where.uid)
        return None
    from_category = record.effective_category or record.category
    with state.transaction():
        cid = state.record_correction(
            instance=instance, key=record.key, from_category=from_category, from_folder=record.current_folder,
            to_category=to_category, to_folder=where.folder, model_version=record.model_version, text=None)
        state.set_location(instance, record.key, where.folder, where.uid, effective_category=to_category,
                           change_category=True)
    log.info(tr(f"{log_key(record.key)} : correction {from_category or '-'} → {to_category}.",
                f"{log_key(record.key)}: correction {from_category or '-'} → {to_category}."))
    return cid, where


def store_correction_texts(state: StateStore, connector: MailboxConnector, fresh: Sequence[tuple[int, MailRef]],
                           *, tags: Sequence[str] = ()) -> None:
    """Keep the pseudonymised subject and text of newly corrected messages (for retraining).

    The job's own ``tags`` are taken out of the subject: the old category's
    ``[#Tag]`` must not teach the model the very mistake being corrected.
    """
    wanted: dict[str, dict[str, int]] = {}
    for cid, ref in fresh:
        wanted.setdefault(ref.folder, {})[mailbox_key(ref.key)] = cid
    for folder, keys in wanted.items():
        try:
            _store_folder_texts(state, connector, folder, keys, tags)
        except ConnectorError as exc:
            log.warning(tr(f"Texte des corrections de « {folder} » non relu : {exc}",
                           f"Text of corrections in '{folder}' not read: {exc}"))


def _store_folder_texts(state: StateStore, connector: MailboxConnector, folder: str, keys: Mapping[str, int],
                        tags: Sequence[str] = ()) -> None:
    from assoc_ai_core.mail.pseudonymise import pseudonymise

    left = dict(keys)
    for fetched in connector.fetch_all(folder):
        cid = left.pop(fetched.ref.key, None)
        if cid is None:
            continue
        msg = parse_message(fetched.raw)
        if msg.error is None:
            names = [msg.sender_name] if msg.sender_name else []
            text = json.dumps({"subject": pseudonymise(strip_tags(msg.subject, tags), names=names),
                               "text": pseudonymise(msg.text, names=names)}, ensure_ascii=False)
            state.set_correction_text(cid, text)
        if not left:
            break


__all__ = ["detect_corrections", "store_correction_texts", "job_tags"]
