"""Reading Gmail: full listings, the incremental history pass, and finding where messages are.

New mail is read incrementally from ``users.history.list`` (the cursor is the
last ``historyId``); when Gmail has forgotten that point (HTTP 404) the folder
is listed again and pages are flagged ``resync`` so the host skips what it
already handled.

``locate`` (the job's correction check, every run, for every message decided
in the last weeks) reads what changed since its last check from the history
too, instead of asking about each message: a run where nobody touched the
mailbox costs a few quota units whatever the number of messages.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from assoc_ai_core.ext.connectors import FetchedMail, MailRef, Page
from assoc_ai_core.mail.parsing import parse_message

from . import checkpoint
from .calls import GmailBadRequest, GmailNotFound
from .history import Arrivals
from .session import GmailSession
from .settings import CHANGE_TYPES, HISTORY_TYPES, LIST_MAX_RESULTS, LOCATE_SESSION_SECONDS, TRASH

log = logging.getLogger(__name__)


class _HistoryExpired(Exception):
    """Gmail answered 404 to history.list: the stored history id is too old."""


@dataclass
class _Changes:
    """What the history says changed since the checkpoint: message id -> its labels after the last change.

    ``None`` as labels: deleted.  ``complete`` is False when there was no
    usable checkpoint: then every message is looked up.
    """

    complete: bool
    labels: dict[str, list[str] | None] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)  # changed, but the record did not carry the labels
    read_at: float = 0.0


class GmailReading(GmailSession):
    """``fetch_new``, ``fetch_all`` and ``locate``: raw messages fetched in HTTP batches."""

    _changes: _Changes | None = None

    def _get_raw_many(self, ids: Sequence[str], folder: str, label_id: str | None) -> list[FetchedMail]:
        """Fetch messages as raw bytes (HTTP batches), in the order given; vanished ones skipped and reported."""
        users = self._users()
        answers = self._call_many(
            {gid: users.messages().get(userId=self.config.user_id, id=gid, format="raw") for gid in ids},
            "users.messages.get",
        )
        out = []
        for gid in ids:
            answer = answers.get(gid)
            if isinstance(answer, (GmailNotFound, GmailBadRequest)):
                self._skip(gid, folder, "deleted before it could be read")
                continue
            if isinstance(answer, Exception):
                raise answer
            if label_id is not None and label_id not in (answer.get("labelIds") or []):
                log.info("Gmail: message %s left %s before it was read; skipped", gid, folder)
                continue
            try:
                raw = base64.urlsafe_b64decode(str(answer.get("raw", "")) + "==")
            except (ValueError, TypeError):
                raw = b""
            if not raw:
                # never dropped silently: an empty body reaches the host, whose parser flags it for review
                log.warning("Gmail: message %s came back without content", gid)
            key = parse_message(raw, source=f"gmail:{gid}").key
            out.append(FetchedMail(MailRef(folder=folder, uid=str(gid), key=key), raw))
        return out

    def _skip(self, gmail_id: str, folder: str, reason: str) -> None:
        self.skipped.append({"uid": str(gmail_id), "folder": folder, "reason": reason})
        log.warning("Gmail: message %s in %s skipped: %s", gmail_id, folder, reason)

    def _list_ids(self, label_id: str, page_size: int, page_token: str | None) -> tuple[list[str], str | None]:
        answer = self._call(
            self._users().messages().list(
                userId=self.config.user_id, labelIds=[label_id], maxResults=page_size,
                pageToken=page_token or None, includeSpamTrash=label_id in ("SPAM", TRASH),
            ),
            "users.messages.list",
        )
        ids = [str(m["id"]) for m in answer.get("messages") or [] if m.get("id")]
        return ids, answer.get("nextPageToken") or None

    def _profile_history_id(self) -> str:
        profile = self._call(self._users().getProfile(userId=self.config.user_id), "users.getProfile")
        return str(profile["historyId"])

    def fetch_all(self, folder: str) -> Iterator[FetchedMail]:
        """Every message carrying the label ``folder`` (newest first, as Gmail lists them)."""
        label_id = self._require_label(folder)
        token: str | None = None
        seen: set[str] = set()
        while True:
            ids, token = self._list_ids(label_id, LIST_MAX_RESULTS, token)
            fresh = [gid for gid in dict.fromkeys(ids) if gid not in seen]
            seen.update(fresh)
            for start in range(0, len(fresh), self.config.batch_size):
                yield from self._get_raw_many(fresh[start: start + self.config.batch_size], folder, label_id)
            if not token:
                return

    def fetch_new(self, folder: str, cursor: Mapping[str, Any] | None, *, page_size: int = 100) -> Iterator[Page]:
        """Pages of mail that entered ``folder`` since ``cursor`` (``{"history_id": ...}``); all of it when None."""
        page_size = max(1, min(int(page_size), LIST_MAX_RESULTS))
        self.skipped = []
        label_id = self._require_label(folder)
        if not cursor or not cursor.get("history_id"):
            yield from self._full_listing(folder, label_id, page_size, start=None, resync=False)
            return
        pending = cursor.get("listing")
        if isinstance(pending, Mapping):  # a full listing was interrupted: go on with it
            yield from self._full_listing(folder, label_id, page_size, start=dict(cursor), resync=bool(pending.get("resync")))
            return
        try:
            yield from self._history_pass(folder, label_id, cursor, page_size)
        except _HistoryExpired:
            log.warning("Gmail: history point %s of %s is too old; listing the folder again",
                        cursor.get("history_id"), folder)
            yield from self._full_listing(folder, label_id, page_size, start=None, resync=True)

    def _full_listing(self, folder: str, label_id: str, page_size: int, *, start: dict[str, Any] | None,
                      resync: bool) -> Iterator[Page]:
        if start is None:
            # taken *before* listing: whatever arrives during the listing shows up in the next history pass
            history_id = self._profile_history_id()
            token: str | None = None
        else:
            history_id = str(start["history_id"])
            token = str(start["listing"].get("page_token") or "") or None
        seen: set[str] = set()
        while True:
            try:
                ids, next_token = self._list_ids(label_id, page_size, token)
            except (GmailBadRequest, GmailNotFound):
                if token is None:
                    raise
                # a page token Gmail no longer accepts: start the listing over, the host skips known keys
                log.warning("Gmail: listing of %s could not resume; starting it over", folder)
                yield from self._full_listing(folder, label_id, page_size, start=None, resync=True)
                return
            fresh = [gid for gid in dict.fromkeys(ids) if gid not in seen]
            seen.update(fresh)
            messages = self._get_raw_many(fresh, folder, label_id)
            if next_token:
                cur: dict[str, Any] = {"history_id": history_id, "listing": {"page_token": next_token, "resync": resync}}
            else:
                # the next history pass may meet messages this listing already returned: flag it as a resync
                cur = {"history_id": history_id, "overlap": True}
            yield Page(messages=messages, cursor=cur, resync=resync)
            if not next_token:
                return
            token = next_token

    def _history_pass(self, folder: str, label_id: str, cursor: Mapping[str, Any], page_size: int) -> Iterator[Page]:
        start = str(cursor["history_id"])
        overlap = bool(cursor.get("overlap"))
        arrivals = Arrivals()
        token: str | None = None
        latest = start
        while True:
            try:
                answer = self._call(
                    self._users().history().list(
                        userId=self.config.user_id, startHistoryId=start, labelId=label_id,
                        historyTypes=list(HISTORY_TYPES), maxResults=LIST_MAX_RESULTS, pageToken=token,
                    ),
                    "users.history.list",
                )
            except GmailNotFound:
                raise _HistoryExpired() from None
            arrivals.add_records(answer.get("history") or [], label_id)
            latest = str(answer.get("historyId") or latest)
            token = answer.get("nextPageToken") or None
            if not token:
                break
        pending = arrivals.pending()
        if not pending:
            if latest != start:  # keep the point fresh so it never gets too old on a quiet folder
                yield Page(messages=[], cursor={"history_id": latest}, resync=False)
            return
        try:
            start_int = int(start)
        except ValueError:
            start_int = 0
        for i in range(0, len(pending), page_size):
            chunk = pending[i: i + page_size]
            messages = self._get_raw_many(chunk, folder, label_id)
            if i + page_size < len(pending):
                point = arrivals.resume_point(pending[i + page_size], start_int)
                cur: dict[str, Any] = {"history_id": str(point)}
                if overlap:
                    cur["overlap"] = True
            else:
                cur = {"history_id": latest}
            yield Page(messages=messages, cursor=cur, resync=overlap)

    def locate(self, refs: Sequence[MailRef]) -> dict[str, list[MailRef]]:
        """Where each message is now: one ref per folder-like label it carries (``[]`` if deleted or trashed).

        Tag labels (``#…``, see ``label_prefix``) are left out: like IMAP keywords they are not a place.
        A message the history shows unchanged since the last check is where ``ref`` says (no request);
        the others are looked up (see the module docstring).
        """
        changes = self._changes_since_checkpoint()
        found: dict[str, list[MailRef]] = {}
        ask: dict[str, str] = {}
        for ref in refs:
            gmail_id = ref.uid or self._find_by_key(ref.key)
            if not gmail_id:
                found[ref.key] = []
                continue
            gid = str(gmail_id)
            known = self._known_location(changes, ref, gid)
            if known is None:
                ask[ref.key] = gid
            else:
                found[ref.key] = known
        users = self._users()
        answers = self._call_many(
            {key: users.messages().get(userId=self.config.user_id, id=gid, format="minimal")
             for key, gid in ask.items()},
            "users.messages.get",
        )
        for key, gid in ask.items():
            answer = answers.get(key)
            if isinstance(answer, (GmailNotFound, GmailBadRequest)):  # deleted, or an id Gmail never issued
                found[key] = []
                continue
            if isinstance(answer, Exception):
                raise answer
            found[key] = self._places(answer.get("labelIds") or [], gid, key)
        return found

    def _places(self, label_ids: Sequence[str], gid: str, key: str) -> list[MailRef]:
        if TRASH in label_ids:
            return []
        return [MailRef(folder=name, uid=gid, key=key) for name in self._labels.folder_names(label_ids)]

    def _known_location(self, changes: _Changes, ref: MailRef, gid: str) -> list[MailRef] | None:
        """Where the history alone says the message is; None when Gmail must be asked."""
        if not changes.complete or gid in changes.unknown:
            return None
        if gid in changes.labels:
            labels = changes.labels[gid]
            return [] if labels is None else self._places(labels, gid, ref.key)
        # unchanged since the checkpoint: where the job last saw it, if that label still exists
        if not ref.folder or self._labels.id_for(ref.folder) is None:  # labels were just loaded: no reload
            return None
        return [MailRef(folder=ref.folder, uid=gid, key=ref.key)]

    def _checkpoint_path(self) -> Path:
        if self.config.checkpoint_file:
            return Path(self.config.checkpoint_file).expanduser()
        return checkpoint.default_path(self.email_address or self.config.user_id)

    def _changes_since_checkpoint(self) -> _Changes:
        """The history read once per burst of ``locate`` calls (and again after this connector changed labels)."""
        self.open()
        now = self._clock()
        cached = self._changes
        if cached is not None and now - cached.read_at < LOCATE_SESSION_SECONDS:
            cached.read_at = now  # the job's next chunk follows at once: same session
            return cached
        self._load_labels(force=True)
        path = self._checkpoint_path()
        stored = checkpoint.load(path, self.email_address)
        changes: _Changes | None = None
        if stored is not None:
            changes, latest = self._read_changes(stored.confirmed)
            if changes is not None:
                checkpoint.save(path, self.email_address, checkpoint.Checkpoint(stored.read_to, latest))
        if changes is None:
            # no usable point: every message is looked up once, and the point is taken before, so nothing is missed
            opened, when = self.opened_at
            fresh = opened.isdigit() and now - when < LOCATE_SESSION_SECONDS
            latest = opened if fresh else self._profile_history_id()
            checkpoint.save(path, self.email_address, checkpoint.Checkpoint(latest, latest))
            changes = _Changes(complete=False)
        changes.read_at = self._clock()
        self._changes = changes
        return changes

    def _read_changes(self, start: str) -> tuple[_Changes | None, str]:
        """Label changes and deletions after ``start``; (None, start) when Gmail forgot that point."""
        changes = _Changes(complete=True)
        token: str | None = None
        latest = start
        while True:
            try:
                answer = self._call(
                    self._users().history().list(
                        userId=self.config.user_id, startHistoryId=start, historyTypes=list(CHANGE_TYPES),
                        maxResults=LIST_MAX_RESULTS, pageToken=token,
                    ),
                    "users.history.list",
                )
            except GmailNotFound:
                log.warning("Gmail: correction checkpoint %s is too old; checking every message once", start)
                return None, start
            for record in answer.get("history") or []:
                self._fold_change(changes, record)
            latest = str(answer.get("historyId") or latest)
            token = answer.get("nextPageToken") or None
            if not token:
                return changes, latest

    @staticmethod
    def _fold_change(changes: _Changes, record: Mapping[str, Any]) -> None:
        for kind in ("labelsAdded", "labelsRemoved"):
            for entry in record.get(kind) or []:
                msg = entry.get("message") or {}
                mid = str(msg.get("id") or "")
                if not mid:
                    continue
                labels = msg.get("labelIds")
                if labels is None:
                    changes.unknown.add(mid)
                else:
                    changes.labels[mid] = [str(x) for x in labels]
                    changes.unknown.discard(mid)
        for entry in record.get("messagesDeleted") or []:
            mid = str((entry.get("message") or {}).get("id") or "")
            if mid:
                changes.labels[mid] = None
                changes.unknown.discard(mid)

    def _forget_changes(self) -> None:
        """This connector changed labels: the next ``locate`` reads the history again."""
        self._changes = None

    def cursor_at_now(self, folder: str) -> Mapping[str, Any] | None:
        """``{"history_id": ...}`` from the profile now: :meth:`fetch_new` from it yields only mail arriving later."""
        self._require_label(folder)
        return {"history_id": self._profile_history_id()}

    def fetch_since(self, folder: str, since: datetime) -> Iterator[FetchedMail]:
        """Messages of ``folder`` received from ``since`` on, oldest first (Gmail search ``after:<epoch>``)."""
        label_id = self._require_label(folder)
        query = f"after:{max(0, int(since.timestamp()))}"
        ids: list[str] = []
        token: str | None = None
        while True:
            answer = self._call(
                self._users().messages().list(
                    userId=self.config.user_id, labelIds=[label_id], q=query, maxResults=LIST_MAX_RESULTS,
                    pageToken=token, includeSpamTrash=label_id in ("SPAM", TRASH),
                ),
                "users.messages.list",
            )
            ids.extend(str(m["id"]) for m in answer.get("messages") or [] if m.get("id"))
            token = answer.get("nextPageToken") or None
            if not token:
                break
        ids = list(dict.fromkeys(reversed(ids)))  # Gmail lists newest first
        for start in range(0, len(ids), self.config.batch_size):
            yield from self._get_raw_many(ids[start: start + self.config.batch_size], folder, label_id)

    def _find_by_key(self, key: str) -> str | None:
        if not key or key.startswith("sha256:"):
            return None
        answer = self._call(
            self._users().messages().list(userId=self.config.user_id, q=f"rfc822msgid:{key}",
                                          includeSpamTrash=True, maxResults=1),
            "users.messages.list",
        )
        ids = [m.get("id") for m in answer.get("messages") or []]
        return str(ids[0]) if ids and ids[0] else None
