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
completed by the next one; a forward whose intent has no *done* is never
re-sent (a message is forwarded at most once).  The folder cursor is stored
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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from assoc_ai_core.errors import AssocAIError, AuthError, ConfigError, ConnectorError, DataError, TransientError
from assoc_ai_core.ext.config import build_config, load_config
from assoc_ai_core.ext.connectors import Capability, FetchedMail, MailboxConnector, MailRef
from assoc_ai_core.files import try_lock, unlock
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.state import MessageRecord, SenderPrivacy, StateStore
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.records.mail import Message

log = logging.getLogger(__name__)

DEFAULT_REVIEW_FOLDER = "À vérifier"
_TRIAGE_KEYS = {"folders", "review_folder", "dry_run", "state", "instance", "page_size", "poll_interval",
                "correction_window_days"}
_MODEL_KEYS = {"path", "target_precision", "registry"}
_CATEGORY_KEYS = {"folder", "label", "tag", "forward"}
_PRIVACY_KEYS = {"store_raw_sender", "key_file", "keep_correction_text",
                 # read by assoc_ai_core.trust.privacy (retention, raw text, people files)
                 "retention_days_text", "retention_action", "store_raw_text", "people_files"}
_TRAINING_KEYS = {"data", "min_corrections", "holdout_share"}


# ============================================================================ settings
@dataclass(frozen=True)
class CategorySettings:
    """What to do with mail the model files under one category (``[categories.<Name>]``)."""

    name: str
    folder: str | None = None
    label: str | None = None
    tag: str | None = None
    forward: tuple[str, ...] = ()


@dataclass(frozen=True)
class TriageSettings:
    """Everything the job reads from the configuration file (see ``docs/configuration.md``)."""

    connector: str
    mailbox: Mapping[str, Any]
    state_path: Path
    instance: str = ""
    folders: tuple[str, ...] = ("INBOX",)
    review_folder: str = DEFAULT_REVIEW_FOLDER
    dry_run: bool = False
    page_size: int = 100
    poll_interval: float = 60.0
    correction_window_days: int = 60
    categories: Mapping[str, CategorySettings] = field(default_factory=dict)
    model_path: Path | None = None
    registry_dir: Path | None = None
    target_precision: float = 0.95
    smtp: Mapping[str, Any] | None = None
    store_raw_sender: bool = False
    privacy_key_file: Path | None = None
    keep_correction_text: bool = True
    training_data: Path | None = None
    min_corrections: int = 3
    holdout_share: float = 0.2
    config_path: Path | None = None

    @property
    def models_dir(self) -> Path:
        """Where model versions live (``[model] registry``, default ``models/`` next to the state)."""
        return self.registry_dir or self.state_path.parent / "models"

    @property
    def key_file(self) -> Path:
        """The secret key of the sender hashes (``[privacy] key_file``, default next to the state)."""
        return self.privacy_key_file or self.state_path.with_name(self.state_path.stem + ".key")

    def folder_categories(self) -> dict[str, str]:
        """Category folder -> category name."""
        return {c.folder: c.name for c in self.categories.values() if c.folder}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TriageSettings:
        """Read and check a configuration file."""
        data = load_config(path)
        return cls.from_mapping(data, base_dir=Path(path).resolve().parent, config_path=Path(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".",
                     config_path: Path | None = None) -> TriageSettings:
        """Check a loaded configuration and turn it into settings; errors name the key and the fix."""
        base = Path(base_dir)

        def path_of(value: Any, where: str) -> Path:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(tr(f"{where} doit être un chemin (texte).", f"{where} must be a path (text)."))
            p = Path(value).expanduser()
            return p if p.is_absolute() else base / p

        def section(name: str, allowed: set[str]) -> dict[str, Any]:
            value = data.get(name, {})
            if not isinstance(value, Mapping):
                raise ConfigError(tr(f"[{name}] doit être une section.", f"[{name}] must be a section."))
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ConfigError(tr(
                    f"[{name}] : clé(s) inconnue(s) {', '.join(unknown)}. Clés possibles : {', '.join(sorted(allowed))}.",
                    f"[{name}]: unknown key(s) {', '.join(unknown)}. Allowed keys: {', '.join(sorted(allowed))}.",
                ))
            return dict(value)

        def typed(value: Any, kind: type | tuple[type, ...], where: str, hint: str) -> Any:
            if isinstance(value, bool) and kind in (int, float, (int, float)):
                raise ConfigError(tr(f"{where} doit être {hint}.", f"{where} must be {hint}."))
            if not isinstance(value, kind):
                raise ConfigError(tr(f"{where} doit être {hint}.", f"{where} must be {hint}."))
            return value

        mailbox = data.get("mailbox")
        if not isinstance(mailbox, Mapping) or not mailbox.get("connector"):
            raise ConfigError(tr(
                '[mailbox] connector est obligatoire (par exemple connector = "imap" ou "local").',
                '[mailbox] connector is required (for example connector = "imap" or "local").',
            ))
        connector = str(mailbox["connector"])
        mailbox_keys = {k: v for k, v in mailbox.items() if k != "connector"}

        triage = section("triage", _TRIAGE_KEYS)
        folders = triage.get("folders", ["INBOX"])
        if isinstance(folders, str):
            folders = [folders]
        if not isinstance(folders, list) or not folders or not all(isinstance(f, str) and f for f in folders):
            raise ConfigError(tr('[triage] folders doit être une liste de dossiers, ex. ["INBOX"].',
                                 '[triage] folders must be a list of folders, e.g. ["INBOX"].'))
        review = typed(triage.get("review_folder", DEFAULT_REVIEW_FOLDER), str, "[triage] review_folder", "du texte / text")
        if review in folders:
            raise ConfigError(tr("[triage] review_folder ne peut pas être un dossier surveillé (boucle).",
                                 "[triage] review_folder cannot be a watched folder (loop)."))
        home = os.environ.get("ASSOC_AI_HOME")
        if "state" in triage:
            state_path = path_of(triage["state"], "[triage] state")
        elif home:
            state_path = Path(home) / "state.sqlite"
        else:
            from platformdirs import user_data_dir

            state_path = Path(user_data_dir("assoc-ai")) / "state.sqlite"

        model = section("model", _MODEL_KEYS)
        target_precision = float(typed(model.get("target_precision", 0.95), (int, float), "[model] target_precision",
                                       "un nombre entre 0,5 et 0,999 / a number between 0.5 and 0.999"))
        if not 0.5 <= target_precision < 1.0:
            raise ConfigError(tr("[model] target_precision doit être entre 0,5 et 0,999.",
                                 "[model] target_precision must be between 0.5 and 0.999."))

        raw_categories = data.get("categories", {})
        if not isinstance(raw_categories, Mapping):
            raise ConfigError(tr("[categories] doit contenir des sections [categories.<Nom>].",
                                 "[categories] must hold [categories.<Name>] sections."))
        categories: dict[str, CategorySettings] = {}
        for name, spec in raw_categories.items():
            where = f"[categories.{name}]"
            if not isinstance(spec, Mapping):
                raise ConfigError(tr(f"{where} doit être une section.", f"{where} must be a section."))
            unknown = sorted(set(spec) - _CATEGORY_KEYS)
            if unknown:
                raise ConfigError(tr(
                    f"{where} : clé(s) inconnue(s) {', '.join(unknown)}. Clés possibles : folder, label, tag, forward.",
                    f"{where}: unknown key(s) {', '.join(unknown)}. Allowed keys: folder, label, tag, forward.",
                ))
            tag = spec.get("tag", False)
            if tag is True:
                from assoc_ai_core.ext.subject import subject_tag

                tag_text: str | None = subject_tag(name)
            elif tag is False:
                tag_text = None
            elif isinstance(tag, str) and tag.strip():
                tag_text = tag.strip()
            else:
                raise ConfigError(tr(f"{where} tag : true, false ou le texte du tag.",
                                     f"{where} tag: true, false or the tag text."))
            forward = spec.get("forward", [])
            forward = [forward] if isinstance(forward, str) else forward
            if not isinstance(forward, list) or not all(isinstance(a, str) and "@" in a for a in forward):
                raise ConfigError(tr(f"{where} forward : une adresse ou une liste d'adresses.",
                                     f"{where} forward: an address or a list of addresses."))
            folder = spec.get("folder")
            if folder is not None and (not isinstance(folder, str) or not folder):
                raise ConfigError(tr(f"{where} folder doit être un nom de dossier.", f"{where} folder must be a folder name."))
            if folder in folders or folder == review:
                raise ConfigError(tr(f"{where} folder ne peut pas être un dossier surveillé ni le dossier de revue.",
                                     f"{where} folder cannot be a watched folder nor the review folder."))
            label = spec.get("label")
            if label is not None and (not isinstance(label, str) or not label):
                raise ConfigError(tr(f"{where} label doit être du texte.", f"{where} label must be text."))
            categories[str(name)] = CategorySettings(str(name), folder, label, tag_text, tuple(forward))
        seen_folders: dict[str, str] = {}
        for c in categories.values():
            if c.folder and c.folder in seen_folders:
                raise ConfigError(tr(
                    f"Les catégories {seen_folders[c.folder]} et {c.name} ont le même dossier « {c.folder} ».",
                    f"Categories {seen_folders[c.folder]} and {c.name} share folder '{c.folder}'.",
                ))
            if c.folder:
                seen_folders[c.folder] = c.name

        smtp = data.get("smtp")
        if smtp is not None and not isinstance(smtp, Mapping):
            raise ConfigError(tr("[smtp] doit être une section.", "[smtp] must be a section."))
        privacy = section("privacy", _PRIVACY_KEYS)
        training = section("training", _TRAINING_KEYS)
        holdout = float(typed(training.get("holdout_share", 0.2), (int, float), "[training] holdout_share",
                              "un nombre entre 0 et 0,5 / a number between 0 and 0.5"))
        if not 0 < holdout <= 0.5:
            raise ConfigError(tr("[training] holdout_share doit être entre 0 et 0,5.",
                                 "[training] holdout_share must be between 0 and 0.5."))
        return cls(
            connector=connector,
            mailbox=mailbox_keys,
            state_path=state_path,
            instance=str(triage.get("instance") or connector),
            folders=tuple(folders),
            review_folder=review,
            dry_run=bool(typed(triage.get("dry_run", False), bool, "[triage] dry_run", "true / false")),
            page_size=int(typed(triage.get("page_size", 100), int, "[triage] page_size", "un entier / an integer")),
            poll_interval=float(typed(triage.get("poll_interval", 60), (int, float), "[triage] poll_interval",
                                      "un nombre de secondes / a number of seconds")),
            correction_window_days=int(typed(triage.get("correction_window_days", 60), int,
                                             "[triage] correction_window_days", "un entier / an integer")),
            categories=categories,
            model_path=path_of(model["path"], "[model] path") if "path" in model else None,
            registry_dir=path_of(model["registry"], "[model] registry") if "registry" in model else None,
            target_precision=target_precision,
            smtp=dict(smtp) if smtp is not None else None,
            store_raw_sender=bool(typed(privacy.get("store_raw_sender", False), bool, "[privacy] store_raw_sender",
                                        "true / false")),
            privacy_key_file=path_of(privacy["key_file"], "[privacy] key_file") if "key_file" in privacy else None,
            keep_correction_text=bool(typed(privacy.get("keep_correction_text", True), bool,
                                            "[privacy] keep_correction_text", "true / false")),
            training_data=path_of(training["data"], "[training] data") if "data" in training else None,
            min_corrections=int(typed(training.get("min_corrections", 3), int, "[training] min_corrections",
                                      "un entier / an integer")),
            holdout_share=holdout,
            config_path=config_path,
        )


def as_settings(config: TriageSettings | str | os.PathLike[str] | Mapping[str, Any]) -> TriageSettings:
    """Accept settings, a configuration file path or an already-loaded mapping."""
    if isinstance(config, TriageSettings):
        return config
    if isinstance(config, Mapping):
        return TriageSettings.from_mapping(config)
    return TriageSettings.load(config)


def build_connector(settings: TriageSettings) -> MailboxConnector:
    """Build (without connecting) the mailbox connector named by ``[mailbox] connector``."""
    from assoc_ai_core.ext.plugins import get_connector_class

    cls = get_connector_class(settings.connector)
    if not issubclass(cls, MailboxConnector):
        raise ConfigError(tr(f"« {settings.connector} » n'est pas un connecteur de boîte mail.",
                             f"'{settings.connector}' is not a mailbox connector."))
    mailbox = dict(settings.mailbox)
    if settings.connector == "local" and isinstance(mailbox.get("path"), str) and settings.config_path is not None:
        p = Path(mailbox["path"]).expanduser()
        if not p.is_absolute():  # relative to the configuration file, like every other path
            mailbox["path"] = str(settings.config_path.resolve().parent / p)
    return cls(build_config(cls.Config, mailbox, where="mailbox"))


def load_current_model(settings: TriageSettings) -> tuple[Any, str]:
    """The live model: the registry's current version, else ``[model] path``; returns (model, version)."""
    from assoc_ai_core.jobs.registry import ModelRegistry, file_digest

    registry = ModelRegistry(settings.models_dir)
    if registry.current():
        return registry.load()
    if settings.model_path is None:
        raise ConfigError(tr(
            "Aucun modèle : indiquez [model] path, ou entraînez-en un avec "
            "assoc-ai train --from-mailbox --config FICHIER -o modele.skops.",
            "No model: set [model] path, or train one with "
            "assoc-ai train --from-mailbox --config FILE -o model.skops.",
        ))
    if not settings.model_path.is_file():
        raise ConfigError(tr(f"Modèle introuvable : {settings.model_path} ([model] path).",
                             f"Model not found: {settings.model_path} ([model] path)."))
    from assoc_ai_core.persistence import load_model

    return load_model(settings.model_path), f"file:{settings.model_path.name}@{file_digest(settings.model_path)}"


# ============================================================================ run support
class Forwarder(Protocol):
    """Sends one forward; :class:`~assoc_ai_core.jobs.forwarding.SmtpForwarder` is the default."""

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Send ``raw`` wrapped in a forward to ``to``; return the forward's Message-ID."""
        ...


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
        previous: dict[int, Any] = {}

        def handler(signum: int, _frame: Any) -> None:
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


@dataclass
class Decision:
    """What the job decided for one fetched message, and the plan of mailbox actions."""

    fetched: FetchedMail
    message: Message
    decision: str
    category: str | None = None
    probability: float | None = None
    runner_up: str | None = None
    runner_up_probability: float | None = None
    explanation: Any = None
    reason: str | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)


class _Interrupted(Exception):
    """Internal: the stop flag was raised between two messages."""


_BATCHED_KINDS = frozenset({"label", "move"})


def _batchable(plan: Sequence[Mapping[str, Any]]) -> bool:
    """Plans made only of labels and moves are carried out a page at a time; tags and forwards one by one."""
    return all(step["kind"] in _BATCHED_KINDS and not step.get("skip") for step in plan)


@dataclass
class _InFlight:
    """Internal: one message of a batch, where it is now and its open intent."""

    decision: Decision
    ref: MailRef
    intent: int | None = None

    @property
    def key(self) -> str:
        """The message's stable key."""
        return self.decision.fetched.ref.key

    @property
    def plan(self) -> list[dict[str, Any]]:
        """The message's plan of actions."""
        return self.decision.plan


# ============================================================================ the job
class TriageJob:
    """One configured triage job.  ``with TriageJob(settings) as job: job.run_once()``.

    ``connector``, ``model`` and ``forwarder`` may be given (tests, embedding);
    otherwise they are built from the settings.  ``checkpoint(stage, n, kind)``
    is called after each journal step (``"intent"``, ``"act"``, ``"done"``) with
    the number of mailbox actions performed so far and the action's kind
    (``label``, ``tag``, ``forward``, ``move``); the conformance kit uses it to
    kill the job at chosen instants.  In a batch each message still gets its
    three calls: ``intent`` before the batched connector call, ``act`` after
    it, ``done`` after the step's commit.
    """

    def __init__(self, settings: TriageSettings | str | os.PathLike[str], *, connector: MailboxConnector | None = None,
                 model: Any = None, model_version: str | None = None, forwarder: Forwarder | None = None,
                 dry_run: bool | None = None, stop: StopFlag | None = None,
                 checkpoint: Callable[[str, int, str], None] | None = None) -> None:
        self.settings = as_settings(settings)
        self.dry_run = self.settings.dry_run if dry_run is None else bool(dry_run)
        self.stop = stop if stop is not None else StopFlag()
        self._connector = connector
        self._own_connector = connector is None
        self._model = model
        self._model_version = model_version or ("in-memory" if model is not None else None)
        self._forwarder = forwarder
        self._checkpoint = checkpoint
        self._actions = 0
        self._state: StateStore | None = None
        self._lock_fd: int | None = None
        self._privacy: SenderPrivacy | None = None
        self._ack: Any = None  # acknowledgement sender, when [acknowledgement] enabled
        self._explanations: dict[int, Any] = {}  # the current page's explanations, by message object id
        self._prepared = False
        self._hook_warned = False
        self._run_id = 0
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
        s.state_path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = s.state_path.with_name(s.state_path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        if not try_lock(fd):
            os.close(fd)
            raise TransientError(tr(
                f"Une autre exécution utilise déjà {s.state_path} ; celle-ci s'arrête (réessai au prochain passage).",
                f"Another run is already using {s.state_path}; this one stops (retry on the next run).",
            )) from None
        self._lock_fd = fd
        try:
            self._state = StateStore(s.state_path)
            self._state.mark_abandoned_runs()  # we hold the lock: a run still 'running' was killed
            self._privacy = SenderPrivacy.from_key_file(s.key_file, store_raw=s.store_raw_sender)
            from assoc_ai_core.jobs.acknowledgement import acknowledger_for_job

            self._ack = None if self.dry_run else acknowledger_for_job(s, self._state, self._privacy)
            if self._model is None:
                self._model, self._model_version = load_current_model(s)
            self._check_model_categories()
            if self._connector is None:
                self._connector = build_connector(s)
            self._connector.open()
            self._check_capabilities()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the mailbox, the state and the lock; safe to call twice."""
        if self._connector is not None and self._own_connector:
            with contextlib.suppress(Exception):
                self._connector.close()
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                unlock(self._lock_fd)
            os.close(self._lock_fd)
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
    def model_version(self) -> str | None:
        """Version of the model in use."""
        return self._model_version

    def _has(self, capability: Capability) -> bool:
        return capability in self.connector.capabilities

    def _check_model_categories(self) -> None:
        labels = [str(c) for c in getattr(self._model, "classes_", [])]
        missing = [c for c in labels if c not in self.settings.categories]
        if missing:
            log.warning(tr(
                f"Catégories du modèle sans section [categories.…] : {', '.join(missing)}. "
                "Leur courrier ira au dossier de revue.",
                f"Model categories without a [categories.…] section: {', '.join(missing)}. "
                "Their mail will go to the review folder.",
            ))

    def _check_capabilities(self) -> None:
        s = self.settings
        cid = self.connector.id
        if not self._has(Capability.MOVE):
            log.warning(tr(f"Le connecteur {cid} ne sait pas déplacer : les messages restent en place.",
                           f"Connector {cid} cannot move: messages stay where they are."))
        if any(c.forward for c in s.categories.values()) and not self._has(Capability.FORWARD) \
                and self._forwarder is None:
            if s.smtp is None:
                raise ConfigError(tr(
                    "Des catégories ont « forward » mais il n'y a pas de section [smtp] pour envoyer les transferts.",
                    "Some categories have 'forward' but there is no [smtp] section to send forwards.",
                ))
            if not self.dry_run:
                from assoc_ai_core.jobs.forwarding import SmtpForwarder, SmtpSettings

                self._forwarder = SmtpForwarder(SmtpSettings.from_section(s.smtp))

    def _tick(self, stage: str, kind: str) -> None:
        if self._checkpoint is not None:
            self._checkpoint(stage, self._actions, kind)

    # ------------------------------------------------------------------ passes
    def run_once(self) -> RunReport:
        """One pass: recover, detect corrections, triage new mail. Returns what was done."""
        state = self.state
        report = RunReport(dry_run=self.dry_run)
        report.run_id = state.start_run(self.settings.instance, dry_run=self.dry_run, model_version=self._model_version)
        self._run_id = report.run_id
        status, code, message = "ok", 0, ""
        try:
            if not self.dry_run:
                self._prepare_folders()
                self._recover(report)
                if time.monotonic() - self._corrections_checked >= self.correction_interval:
                    self._detect_corrections(report)
                    self._corrections_checked = time.monotonic()
                from assoc_ai_core.jobs.retention import retention_for_job

                retention_for_job(self.settings, self.state)  # stored text past its retention period
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
        if not (self._has(Capability.WATCH) and callable(waiter)):
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
        if self._prepared or not self._has(Capability.CREATE_FOLDER):
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
        cursor = None if self.dry_run else state.get_cursor(s.instance, folder)
        for page in self.connector.fetch_new(folder, cursor, page_size=s.page_size):
            if page.resync:
                log.info(tr(f"{folder} : relecture complète (le serveur a changé d'identifiants) ; "
                            "les messages déjà traités sont ignorés.",
                            f"{folder}: full replay (the server changed its ids); already handled messages are skipped."))
            todo: list[tuple[FetchedMail, Message]] = []
            in_page: set[str] = set()
            known = state.get_messages(s.instance, [f.ref.key for f in page.messages])
            for fetched in page.messages:
                report.fetched += 1
                if fetched.ref.key in in_page:  # the same message delivered twice: handled once
                    report.skipped += 1
                    continue
                in_page.add(fetched.ref.key)
                record = known.get(fetched.ref.key)
                if record is not None and not record.dry_run:
                    if record.status == "pending" and not self.dry_run:
                        self._resume(record, report, fetched=fetched)
                    else:
                        report.skipped += 1
                    continue
                todo.append((fetched, parse_message(fetched.raw, source=f"{folder}/{fetched.ref.uid}")))
            try:
                self._handle_page(todo, report)
            except _Interrupted:
                return  # the page's cursor is not stored: the next run fetches it again and skips what is done
            if self.stop:
                return
            if not self.dry_run:
                state.set_cursor(s.instance, folder, page.cursor)

    # ------------------------------------------------------------------ deciding
    def _decide(self, todo: Sequence[tuple[FetchedMail, Message]]) -> Iterator[Decision]:
        readable = [(f, m) for f, m in todo if m.error is None]
        predictions: dict[int, Any] = {}
        failures: dict[int, str] = {}
        if readable:
            from assoc_ai_core.api import predict

            msgs = [m for _, m in readable]
            try:
                cleaned = self._model.transform_clean(msgs)  # once for the page: predictions and explanations
            except Exception:  # one odd message must not stop the page: the fallback below goes one by one
                cleaned = None
            self._explanations = self._explain_page(msgs, cleaned)
            try:
                for i, p in enumerate(predict(self._model, msgs, cleaned=cleaned)):
                    predictions[i] = p
            except Exception:  # one bad message must not stop the page: retry one by one
                for i, m in enumerate(msgs):
                    try:
                        predictions[i] = predict(self._model, [m])[0]
                    except Exception as exc:
                        failures[i] = f"{type(exc).__name__}: {exc}"
        index = {id(m): i for i, (_, m) in enumerate(readable)}
        for fetched, msg in todo:
            if msg.error is not None:
                yield Decision(fetched, msg, "error", reason=tr(f"message illisible : {msg.error}",
                                                                f"unreadable message: {msg.error}"),
                               plan=self._review_plan())
                continue
            i = index[id(msg)]
            if i in failures:
                yield Decision(fetched, msg, "error", reason=tr(f"classement impossible : {failures[i]}",
                                                                f"cannot classify: {failures[i]}"),
                               plan=self._review_plan())
                continue
            yield self._decision_from(fetched, msg, predictions[i])

    def _decision_from(self, fetched: FetchedMail, msg: Message, pred: Any) -> Decision:
        d = Decision(fetched, msg, pred.decision, category=pred.label, probability=float(pred.probability),
                     runner_up=pred.runner_up, runner_up_probability=float(pred.runner_up_probability),
                     reason=pred.reason or None)
        d.explanation = self._explain(msg)
        category = self.settings.categories.get(pred.label or "")
        if pred.decision == "auto" and category is None:
            d.decision = "review"
            d.reason = tr(f"la catégorie « {pred.label} » n'a pas de section [categories] dans la configuration",
                          f"category '{pred.label}' has no [categories] section in the configuration")
        if d.decision == "auto" and category is not None:
            d.plan = self._category_plan(category, msg)
        else:
            d.decision = "review"
            d.reason = d.reason or tr("confiance insuffisante", "confidence too low")
            d.plan = self._review_plan()
        return d

    def _explain_page(self, msgs: Sequence[Message], cleaned: Any = None) -> dict[int, Any]:
        """Explanations of a page of messages, computed as one batch (keyed by message object id)."""
        try:
            from assoc_ai_core.mail.explain import explain_many

            exps = explain_many(self._model, msgs, cleaned=cleaned)
            return {id(m): exp.to_dict() for m, exp in zip(msgs, exps)}
        except Exception:  # fall back to one by one below, so one odd message cannot cost the page's reasons
            return {}

    def _explain(self, msg: Message) -> Any:
        known = self._explanations.get(id(msg))
        if known is not None:
            return known
        try:
            from assoc_ai_core.api import explain

            exp = explain(self._model, msg)
            return exp.to_dict() if hasattr(exp, "to_dict") else dataclasses.asdict(exp)
        except Exception as exc:  # an explanation is a courtesy: its failure must not block triage
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _review_plan(self) -> list[dict[str, Any]]:
        if self._has(Capability.MOVE):
            return [{"kind": "move", "target": self.settings.review_folder}]
        if self._has(Capability.LABEL):
            return [{"kind": "label", "target": self.settings.review_folder}]
        return []

    def _category_plan(self, c: CategorySettings, msg: Message) -> list[dict[str, Any]]:
        plan: list[dict[str, Any]] = []
        if c.label and self._has(Capability.LABEL):
            plan.append({"kind": "label", "target": c.label})
        if c.tag and self._has(Capability.TAG_SUBJECT):
            plan.append({"kind": "tag", "target": c.tag})
        if c.forward:
            from assoc_ai_core.jobs.forwarding import should_forward

            ok, why = should_forward(msg)
            for address in c.forward:
                step = {"kind": "forward", "target": address, "category": c.name}
                if not ok:
                    step["skip"] = why
                plan.append(step)
        if c.folder and self._has(Capability.MOVE):
            plan.append({"kind": "move", "target": c.folder})
        return plan

    # ------------------------------------------------------------------ acting
    def _handle_page(self, todo: Sequence[tuple[FetchedMail, Message]], report: RunReport) -> None:
        """Decide and act on one page: label/move-only plans as a batch, the others one message at a time."""
        decisions = self._decide(todo)
        if self.dry_run:
            for d in decisions:
                if self.stop:
                    raise _Interrupted
                self._handle(d, report)
            return
        batch: list[Decision] = []
        single: list[Decision] = []
        for d in decisions:
            (batch if _batchable(d.plan) else single).append(d)
        if batch:
            if self.stop:
                raise _Interrupted
            self._handle_batch(batch, report)
        for d in single:
            if self.stop:
                raise _Interrupted
            self._handle(d, report)

    def _count(self, d: Decision, report: RunReport) -> None:
        """Add one decision to the report's counters."""
        if d.decision == "auto":
            report.auto += 1
        elif d.decision == "review":
            report.review += 1
        else:
            report.errors += 1
        if d.category is not None and d.probability is not None:
            report.category_mix[d.category] = report.category_mix.get(d.category, 0) + 1
            report.confidences.append(d.probability)

    def _record(self, d: Decision, report: RunReport) -> None:
        """Store the decision (call inside a transaction); a former simulation's "would do" rows make way."""
        s, state = self.settings, self.state
        key = d.fetched.ref.key
        state.clear_would(s.instance, key)
        state.record_decision(
            instance=s.instance, key=key, run_id=report.run_id or 0, dry_run=self.dry_run,
            status="would" if self.dry_run else "pending", folder=d.fetched.ref.folder, uid=d.fetched.ref.uid,
            sender=d.message.sender, privacy=self._privacy, decision=d.decision, category=d.category,
            probability=d.probability, runner_up=d.runner_up, runner_up_probability=d.runner_up_probability,
            explanation=d.explanation, model_version=self._model_version, reason=d.reason, plan=d.plan,
        )

    def _log_decision(self, key: str, d: Decision) -> None:
        """One line per decision: key, decision, category, confidence and planned actions (never the text)."""
        log.info(tr(
            f"{'[simulation] ' if self.dry_run else ''}{key} : {d.decision} {d.category or '-'} "
            f"({(d.probability or 0):.0%}) → {', '.join(p['kind'] + ':' + p['target'] for p in d.plan) or '-'}",
            f"{'[dry run] ' if self.dry_run else ''}{key}: {d.decision} {d.category or '-'} "
            f"({(d.probability or 0):.0%}) → {', '.join(p['kind'] + ':' + p['target'] for p in d.plan) or '-'}",
        ))

    def _acknowledge(self, d: Decision) -> None:
        """Acknowledge mail whose plan is complete and that the model routed on its own (when enabled)."""
        if d.decision != "auto" or d.category is None or self._ack is None:
            return
        try:  # an acknowledgement that cannot be sent must not undo the triage
            self._ack.acknowledge(d.message, d.category)
        except ConnectorError as exc:
            log.warning(tr(f"{d.fetched.ref.key} : accusé de réception non envoyé ({exc})",
                           f"{d.fetched.ref.key}: acknowledgement not sent ({exc})"))

    def _handle(self, d: Decision, report: RunReport) -> None:
        s, state = self.settings, self.state
        key = d.fetched.ref.key
        self._count(d, report)
        with state.transaction():
            self._record(d, report)
            first_intent = None if self.dry_run else self._journal_next(key, d.plan, 0, d.fetched.ref)
            if self.dry_run:
                for i, step in enumerate(d.plan):
                    state.add_intent(instance=s.instance, key=key, run_id=report.run_id or 0, step=i,
                                     kind=step["kind"], target=step["target"], folder=d.fetched.ref.folder,
                                     uid=d.fetched.ref.uid, status="would",
                                     detail=step.get("skip"))
        self._log_decision(key, d)
        self._notify(key, d)
        if self.dry_run:
            report.would.append({"key": key, "decision": d.decision, "category": d.category,
                                 "probability": d.probability, "reason": d.reason,
                                 "actions": [{"kind": p["kind"], "target": p["target"]} for p in d.plan]})
            return
        done = self._execute(key, d.plan, d.fetched.ref, d.fetched.raw, report, subject=d.message.subject,
                             journaled=first_intent)
        if done:
            self._acknowledge(d)

    def _handle_batch(self, decisions: Sequence[Decision], report: RunReport) -> None:
        """Carry out label/move-only plans of a page together, step by step, through the journal.

        The journal is the same as one message at a time — one intent row per
        message and step, committed before the action starts, marked done
        after it — only written for the whole batch in one transaction per
        step: (a) every decision with its first step's intent; (b) the
        connector acts once per (kind, target) group (``add_label_many``,
        ``move_many``); (c) the group's steps are marked done with the new
        locations and the next steps' intents; then (b) again for the next
        step.  A run killed anywhere leaves each message ``pending`` with one
        open intent, which the next run resumes like any interrupted message
        (actions are idempotent, so an intent carried out for part of a group
        only is simply done again).  A group whose batch call fails is handed
        back to the one-message path, which reports each failure on its own.
        """
        s, state = self.settings, self.state
        live: list[_InFlight] = []
        alone: list[_InFlight] = []  # journal not as expected (cannot happen for a fresh decision): one by one
        with state.transaction():
            for d in decisions:
                key = d.fetched.ref.key
                self._record(d, report)
                item = _InFlight(d, d.fetched.ref)
                if not d.plan:
                    state.set_message_status(s.instance, key, "done")
                    continue
                item.intent = self._journal_next(key, d.plan, 0, d.fetched.ref)
                (live if item.intent is not None else alone).append(item)
        finished = [d for d in decisions if not d.plan]
        for d in decisions:
            self._count(d, report)
            self._log_decision(d.fetched.ref.key, d)
            self._notify(d.fetched.ref.key, d)
        for d in finished:
            self._acknowledge(d)
        step = 0
        while live:
            groups: dict[tuple[str, str], list[_InFlight]] = {}
            for item in live:
                groups.setdefault((item.plan[step]["kind"], item.plan[step]["target"]), []).append(item)
            acted: list[tuple[_InFlight, MailRef]] = []
            for (kind, target), items in groups.items():
                for _ in items:
                    self._tick("intent", kind)
                try:
                    moved = self._act_many(kind, target, [item.ref for item in items])
                except Exception as exc:  # one bad message must not fail the group: retried one by one below
                    log.warning(tr(
                        f"Action groupée {kind} sur {len(items)} message(s) impossible ({type(exc).__name__}) : "
                        "reprise message par message.",
                        f"Batched {kind} of {len(items)} message(s) failed ({type(exc).__name__}): "
                        "retrying message by message."))
                    alone.extend(items)
                    continue
                for item in items:
                    new_ref = moved.get(item.key)
                    if new_ref is None:
                        alone.append(item)
                        continue
                    self._actions += 1
                    self._tick("act", kind)
                    acted.append((item, new_ref))
            following: list[_InFlight] = []
            with state.transaction():
                for item, new_ref in acted:
                    state.finish_action(item.intent, "done", folder=new_ref.folder, uid=new_ref.uid)
                    state.set_location(s.instance, item.key, new_ref.folder, new_ref.uid)
                    item.ref = new_ref
                    if step + 1 == len(item.plan):
                        state.set_message_status(s.instance, item.key, "done")
                        continue
                    item.intent = self._journal_next(item.key, item.plan, step + 1, new_ref)
                    (following if item.intent is not None else alone).append(item)
            for item, _ in acted:
                self._tick("done", item.plan[step]["kind"])
            for item, _ in acted:
                if step + 1 == len(item.plan):
                    self._acknowledge(item.decision)
            live, step = following, step + 1
        for item in alone:
            # the journal knows which steps are done: _execute carries on from the open intent
            if self._execute(item.key, item.plan, item.ref, item.decision.fetched.raw, report,
                             subject=item.decision.message.subject, journaled=item.intent):
                self._acknowledge(item.decision)

    def _act_many(self, kind: str, target: str, refs: Sequence[MailRef]) -> dict[str, MailRef]:
        """One batched connector call; key -> where each message is now (a message left out is retried alone)."""
        if kind == "label":
            self.connector.add_label_many(refs, target)
            return {ref.key: ref for ref in refs}
        if kind == "move":
            moved = self.connector.move_many(refs, target)
            if not isinstance(moved, Mapping):  # a plugin's own move_many from before the contract had one
                moved = {ref.key: ref for ref in moved}
            return moved
        raise ConfigError(f"unknown batched action {kind!r}")

    def _notify(self, key: str, d: Decision) -> None:
        record = {"instance": self.settings.instance, "key": key, "decision": d.decision, "category": d.category,
                  "probability": d.probability, "runner_up": d.runner_up, "reason": d.reason,
                  "model_version": self._model_version, "dry_run": self.dry_run,
                  "actions": [p["kind"] for p in d.plan]}
        try:
            from assoc_ai_core.ext.plugins import pm

            pm.hook.decision_recorded(record=record)
        except Exception as exc:  # an observer plugin must not stop the triage
            if not self._hook_warned:
                log.warning(tr(f"Un plugin a échoué sur decision_recorded : {type(exc).__name__}",
                               f"A plugin failed in decision_recorded: {type(exc).__name__}"))
                self._hook_warned = True

    def _resume(self, record: MessageRecord, report: RunReport, *, found: Sequence[MailRef] | None = None,
                fetched: FetchedMail | None = None) -> None:
        """Finish a message whose handling was interrupted, from where it really is now."""
        if found is None:
            ref = MailRef(record.current_folder or record.source_folder or "",
                          record.current_uid or record.source_uid or "", record.key)
            found = self.connector.locate([ref]).get(record.key, [])
        if not found:
            self.state.set_message_status(self.settings.instance, record.key, "lost", reason=tr(
                "introuvable à la reprise (supprimé entre-temps ?)", "not found when resuming (deleted meanwhile?)"))
            log.warning(tr(f"{record.key} : introuvable à la reprise.", f"{record.key}: not found when resuming."))
            return
        report.recovered += 1
        log.info(tr(f"{record.key} : reprise d'un traitement interrompu.", f"{record.key}: resuming interrupted handling."))
        ref = self._choose_ref(record, found)
        raw = fetched.raw if fetched is not None and fetched.ref == ref else None
        subject = parse_message(raw).subject if raw is not None else ""
        self._execute(record.key, record.plan, ref, raw, report, subject=subject)

    def _journal_next(self, key: str, plan: Sequence[Mapping[str, Any]], i: int, ref: MailRef) -> int | None:
        """Journal the intent of step ``i`` when it has never been started (call inside a transaction)."""
        if i >= len(plan) or plan[i].get("skip"):
            return None
        s = self.settings
        if self.state.last_action(s.instance, key, i) is not None:
            return None
        return self.state.add_intent(instance=s.instance, key=key, run_id=self._run_id, step=i, kind=plan[i]["kind"],
                                     target=plan[i]["target"], folder=ref.folder, uid=ref.uid)

    def _execute(self, key: str, plan: Sequence[Mapping[str, Any]], ref: MailRef, raw: bytes | None,
                 report: RunReport, *, subject: str = "", journaled: int | None = None) -> bool:
        """Carry out a message's plan step by step through the journal; True when complete.

        ``journaled`` is the id of step 0's intent when the caller committed it
        with the decision.  Each *done* is committed together with the next
        step's *intent* (one disk flush instead of two); the order on disk is
        unchanged: an intent is always durable before its action starts.
        """
        s, state = self.settings, self.state
        fresh: set[int] = {journaled} if journaled is not None else set()
        finished = False
        for i, step in enumerate(plan):
            kind, target = step["kind"], step["target"]
            last = state.last_action(s.instance, key, i)
            if last is not None and last.status in ("done", "skipped", "uncertain", "refused"):
                if last.result_folder and last.result_uid:
                    ref = MailRef(last.result_folder, last.result_uid, key)
                continue
            interrupted = last is not None and last.status == "intent" and last.id not in fresh
            if interrupted and kind == "forward":
                state.finish_action(last.id, "uncertain", detail=tr(
                    "exécution interrompue pendant l'envoi : le transfert a pu partir, il n'est pas renvoyé",
                    "run interrupted while sending: the forward may have gone out, it is not sent again"))
                log.warning(tr(f"{key} : transfert peut-être déjà envoyé, pas de nouvel envoi.",
                               f"{key}: forward may already have been sent, not sending again."))
                continue
            if step.get("skip"):
                state.add_intent(instance=s.instance, key=key, run_id=self._run_id, step=i, kind=kind, target=target,
                                 folder=ref.folder, uid=ref.uid, status="skipped", detail=step["skip"])
                continue
            if last is not None and last.status == "intent":
                action_id = last.id
            else:
                action_id = state.add_intent(instance=s.instance, key=key, run_id=self._run_id, step=i, kind=kind,
                                             target=target, folder=ref.folder, uid=ref.uid)
            self._tick("intent", kind)
            try:
                new_ref = self._act(kind, target, ref, raw, key, step, subject)
            except TransientError:
                state.finish_action(action_id, "failed", detail="transient")
                raise
            except AuthError:
                state.finish_action(action_id, "failed", detail="auth")
                raise
            except ConnectorError as exc:
                from assoc_ai_core.jobs.forwarding import ForwardError

                if isinstance(exc, ForwardError):
                    status = "uncertain" if exc.maybe_sent else "refused"
                    state.finish_action(action_id, status, detail=str(exc))
                    report.failed += 1
                    log.warning(tr(f"{key} : transfert non fait ({status}).", f"{key}: forward not done ({status})."))
                    continue
                state.finish_action(action_id, "failed", detail=str(exc))
                report.failed += 1
                log.warning(tr(f"{key} : action {kind} impossible, nouvel essai au prochain passage : {exc}",
                               f"{key}: action {kind} failed, will retry on the next run: {exc}"))
                return False
            self._actions += 1
            self._tick("act", kind)
            with state.transaction():
                state.finish_action(action_id, "done", folder=new_ref.folder, uid=new_ref.uid)
                state.set_location(s.instance, key, new_ref.folder, new_ref.uid)
                nxt = self._journal_next(key, plan, i + 1, new_ref)
                if nxt is not None:
                    fresh.add(nxt)
                if i == len(plan) - 1:
                    state.set_message_status(s.instance, key, "done")
                    finished = True
            self._tick("done", kind)
            if kind == "forward":
                report.forwarded += 1
            ref = new_ref
        if not finished:
            state.set_message_status(s.instance, key, "done")
        return True

    def _act(self, kind: str, target: str, ref: MailRef, raw: bytes | None, key: str, step: Mapping[str, Any],
             subject: str) -> MailRef:
        conn = self.connector
        if kind == "label":
            conn.add_label(ref, target)
            return ref
        if kind == "tag":
            return conn.tag_subject(ref, target)
        if kind == "move":
            return conn.move(ref, target)
        if kind == "forward":
            if raw is None:
                raw = self._fetch_raw(ref)
                subject = parse_message(raw).subject
            if self._has(Capability.FORWARD):
                conn.forward(ref, raw, target)
            else:
                if self._forwarder is None:
                    raise ConfigError(tr("Aucun moyen d'envoyer les transferts : ajoutez une section [smtp].",
                                         "No way to send forwards: add an [smtp] section."))
                self._forwarder.send(raw, target, category=str(step.get("category", "")), key=key, subject=subject)
            return ref
        raise ConfigError(f"unknown action {kind!r}")

    def _fetch_raw(self, ref: MailRef) -> bytes:
        for fetched in self.connector.fetch_all(ref.folder):
            if fetched.ref.key == ref.key:
                return fetched.raw
        raise ConnectorError(tr(f"Message {ref.key} introuvable dans « {ref.folder} ».",
                                f"Message {ref.key} not found in '{ref.folder}'."), connector_id=self.connector.id)

    # ------------------------------------------------------------------ recovery
    def _recover(self, report: RunReport) -> None:
        s, state = self.settings, self.state
        pending = state.messages_with_status(s.instance, "pending")
        if not pending:
            return
        log.info(tr(f"{len(pending)} message(s) laissé(s) en cours par une exécution interrompue : reprise.",
                    f"{len(pending)} message(s) left in progress by an interrupted run: resuming."))
        refs = [MailRef(r.current_folder or r.source_folder or "", r.current_uid or r.source_uid or "", r.key)
                for r in pending]
        located = self.connector.locate(refs)
        for record in pending:
            if self.stop:
                return
            self._resume(record, report, found=located.get(record.key, []))

    def _choose_ref(self, record: MessageRecord, found: Sequence[MailRef]) -> MailRef:
        for action in reversed(self.state.actions_for(record.instance, record.key)):
            if action.status == "intent":
                for ref in found:
                    if ref.folder == action.ref_folder and ref.uid == action.ref_uid:
                        return ref  # finish the interrupted action on the very message it started on
                break
        for ref in found:
            if ref.folder == record.current_folder:
                return ref
        return found[0]

    # ------------------------------------------------------------------ corrections
    def _detect_corrections(self, report: RunReport) -> None:
        s, state = self.settings, self.state
        since = (datetime.now(UTC) - timedelta(days=s.correction_window_days)).isoformat(timespec="seconds")
        records = state.decided_since(s.instance, since)
        if not records:
            return
        by_folder = s.folder_categories()
        located: dict[str, list[MailRef]] = {}
        for start in range(0, len(records), 200):
            chunk = records[start:start + 200]
            located.update(self.connector.locate([MailRef(r.current_folder or "", r.current_uid or "", r.key)
                                                  for r in chunk]))
        fresh: list[tuple[int, MailRef]] = []
        for r in records:
            found = located.get(r.key, [])
            if not found:
                state.mark_gone(s.instance, r.key)
                continue
            same = next((x for x in found if x.folder == r.current_folder), None)
            if same is not None:
                if same.uid != r.current_uid:
                    state.set_location(s.instance, r.key, same.folder, same.uid)
                continue
            where = next((x for x in found if x.folder in by_folder), found[0])
            to_category = by_folder.get(where.folder)
            if to_category is not None and to_category != r.effective_category:
                from_category = r.effective_category or r.category
                with state.transaction():
                    cid = state.record_correction(
                        instance=s.instance, key=r.key, from_category=from_category, from_folder=r.current_folder,
                        to_category=to_category, to_folder=where.folder, model_version=r.model_version, text=None)
                    state.set_location(s.instance, r.key, where.folder, where.uid, effective_category=to_category,
                                       change_category=True)
                fresh.append((cid, where))
                report.corrections += 1
                log.info(tr(f"{r.key} : correction {from_category or '-'} → {to_category}.",
                            f"{r.key}: correction {from_category or '-'} → {to_category}."))
            else:
                state.set_location(s.instance, r.key, where.folder, where.uid)
        if fresh and s.keep_correction_text:
            self._store_correction_texts(fresh)

    def _store_correction_texts(self, fresh: Sequence[tuple[int, MailRef]]) -> None:
        from assoc_ai_core.mail.pseudonymise import pseudonymise

        wanted: dict[str, dict[str, int]] = {}
        for cid, ref in fresh:
            wanted.setdefault(ref.folder, {})[ref.key] = cid
        for folder, keys in wanted.items():
            try:
                for fetched in self.connector.fetch_all(folder):
                    cid = keys.pop(fetched.ref.key, None)
                    if cid is None:
                        continue
                    msg = parse_message(fetched.raw)
                    if msg.error is None:
                        names = [msg.sender_name] if msg.sender_name else []
                        text = json.dumps({"subject": pseudonymise(msg.subject, names=names),
                                           "text": pseudonymise(msg.text, names=names)}, ensure_ascii=False)
                        self.state.set_correction_text(cid, text)
                    if not keys:
                        break
            except ConnectorError as exc:
                log.warning(tr(f"Texte des corrections de « {folder} » non relu : {exc}",
                               f"Text of corrections in '{folder}' not read: {exc}"))


# ============================================================================ training
def collect_mailbox_examples(settings: TriageSettings, connector: MailboxConnector,
                             *, exclude: set[str] | None = None) -> list[Message]:
    """Labelled messages from the category folders volunteers sorted (label = category name).

    ``exclude`` holds keys not to learn from (mail the model itself routed and
    nobody confirmed — learning from its own decisions would only reinforce them).
    """
    examples: list[Message] = []
    folders = [(c.name, c.folder) for c in settings.categories.values() if c.folder]
    if len(folders) < 2:
        raise ConfigError(tr(
            "Il faut au moins deux catégories avec un dossier ([categories.<Nom>] folder = …) pour apprendre.",
            "At least two categories with a folder ([categories.<Name>] folder = …) are needed to learn.",
        ))
    existing = set(connector.list_folders())
    for name, folder in folders:
        if folder not in existing:
            log.warning(tr(f"Dossier « {folder} » (catégorie {name}) absent de la boîte : ignoré.",
                           f"Folder '{folder}' (category {name}) is missing from the mailbox: skipped."))
            continue
        for fetched in connector.fetch_all(folder):
            if exclude and fetched.ref.key in exclude:
                continue
            msg = parse_message(fetched.raw, source=f"{folder}/{fetched.ref.uid}", label=name)
            if msg.error is None:
                examples.append(msg)
    return examples


def _excluded_keys(settings: TriageSettings) -> set[str]:
    if not settings.state_path.exists():
        return set()
    with StateStore(settings.state_path) as state:
        return state.auto_keys(settings.instance)


def train_from_mailbox(config: TriageSettings | str | os.PathLike[str], *,
                       connector: MailboxConnector | None = None) -> Any:
    """Train a :class:`~assoc_ai_core.mail.model.MailClassifier` on the category folders of the mailbox."""
    settings = as_settings(config)
    own = connector is None
    conn = connector or build_connector(settings)
    conn.open()
    try:
        examples = collect_mailbox_examples(settings, conn, exclude=_excluded_keys(settings))
    finally:
        if own:
            conn.close()
    from assoc_ai_core.jobs.retention import drop_erased

    examples = drop_erased(examples, settings)  # people who asked to be forgotten are not learnt again
    if not examples:
        raise DataError(tr("Aucun message lisible dans les dossiers de catégories.",
                           "No readable message in the category folders."))
    from assoc_ai_core.api import train

    log.info(tr(f"Apprentissage sur {len(examples)} messages de la boîte.", f"Training on {len(examples)} mailbox messages."))
    return train(examples, target_precision=settings.target_precision)


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
