"""The triage job's settings: one declared section per ``[table]`` of the configuration file.

``[triage]``, ``[model]``, ``[categories.<Name>]``, ``[privacy]`` and
``[training]`` are dataclasses of :mod:`~assoc_ai_core.jobs.schema` (type,
default, allowed values and help of every key, one validator);
:meth:`TriageSettings.from_mapping` reads them in named steps and adds the
checks that span keys (a review or category folder that is also watched, two
categories sharing a folder).  ``[mailbox]`` keys other than ``connector`` belong
to the connector's own ``Config`` and ``[smtp]`` to
:class:`~assoc_ai_core.jobs.forwarding.SmtpSettings`: both are checked when the
job builds them (see :func:`~assoc_ai_core.jobs.preflight.check_config`).
See ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import load_config, resolve_relative_paths
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.retention import PRIVACY_KEYS
from assoc_ai_core.jobs.schema import Between, Kind, read_section, section_of, setting

DEFAULT_REVIEW_FOLDER = "À vérifier"


# ============================================================================ sections
@dataclass(frozen=True)
class TriageSection:
    """``[triage]``: what the job watches and how it runs."""

    delegated: ClassVar[frozenset[str]] = frozenset()

    folders: tuple[str, ...] = setting(
        ("INBOX",), Kind.TEXT_LIST, "dossiers où le tri lit le nouveau courrier",
        "folders the job reads new mail from", expect=('une liste de dossiers, ex. ["INBOX"]',
                                                       'a list of folders, e.g. ["INBOX"]'), min_items=1)
    review_folder: str = setting(
        DEFAULT_REVIEW_FOLDER, Kind.TEXT, "où va le courrier incertain, illisible ou sans règle, avec la raison",
        "where uncertain, unreadable or unclassifiable mail goes, with the reason")
    dry_run: bool = setting(False, Kind.FLAG, "décider et noter ce qui serait fait, sans toucher la boîte",
                            "decide and record what would be done, touch nothing in the mailbox")
    state: Path | None = setting(None, Kind.PATH, "le fichier d'état SQLite (curseurs, journal, audit, corrections)",
                                 "the SQLite state file (cursors, journal, audit trail, corrections)")
    instance: str = setting("", Kind.TEXT, "nom de cette boîte dans le fichier d'état (défaut : le connecteur)",
                            "name of this mailbox in the state file (default: the connector id)")
    page_size: int = setting(100, Kind.INTEGER, "messages lus, décidés et enregistrés ensemble",
                             "messages fetched, decided and committed together")
    poll_interval: float = setting(60.0, Kind.NUMBER, "triage watch : secondes entre deux passages",
                                   "triage watch: seconds between two passes",
                                   expect=("un nombre de secondes", "a number of seconds"))
    correction_window_days: int = setting(
        60, Kind.INTEGER, "jours pendant lesquels un déplacement par une personne compte comme correction",
        "days after a decision during which a move by a person counts as a correction")
    forward_max_age_days: int = setting(
        7, Kind.INTEGER, "ne jamais transférer un courrier plus vieux que ce nombre de jours (0 : pas de limite)",
        "never forward mail older than this many days (0: no limit)",
        between=Between(0, 36500, ("entre 0 et 36500 jours", "between 0 and 36500 days")))
    forward_attempts: int = setting(
        10, Kind.INTEGER, "essais d'un transfert refusé pour un temps (4xx, coupure) avant de l'abandonner",
        "tries of a forward that fails for a while (4xx, lost connection) before giving up",
        between=Between(1, 100, ("entre 1 et 100", "between 1 and 100")))
    review_labels: bool = setting(
        True, Kind.FLAG, "montrer dans la messagerie pourquoi un message est à vérifier (étiquette « Doute : X ? »)",
        "show in the mail client why a message waits for review (a label such as 'Unsure: X?')")
    first_run: str = setting(
        "new", Kind.TEXT, "premier passage : « new » laisse le courrier déjà là (voir triage backlog), « all » le trie",
        "first run: 'new' leaves the mail already there alone (see triage backlog), 'all' sorts it",
        expect=("« new » ou « all »", "'new' or 'all'"), item=lambda v: v in ("new", "all"))
    message_seconds: float = setting(
        20.0, Kind.NUMBER, "secondes au plus pour lire et classer un message ; au-delà il va à vérifier",
        "at most this many seconds to read and classify one message; past it, the message goes to review",
        between=Between(0.5, 600.0, ("entre 0,5 et 600 secondes", "between 0.5 and 600 seconds")))
    message_max_mb: float = setting(
        50.0, Kind.NUMBER, "taille maximale d'un message lu (Mo) ; plus gros, il va à vérifier sans être lu",
        "largest message read (MB); a larger one goes to review unread",
        between=Between(0.1, 1000.0, ("entre 0,1 et 1000 Mo", "between 0.1 and 1000 MB")))
    threads: bool = setting(
        False, Kind.FLAG, "une réponse suit le classement du message auquel elle répond, si le modèle ne s'y oppose pas",
        "a reply follows where the message it answers was sorted, unless the model disagrees")
    forward_retry_days: float = setting(
        2.0, Kind.NUMBER, "jours sur lesquels ces essais s'étalent (chaque attente double la précédente)",
        "days those tries are spread over (each wait twice the one before)",
        between=Between(0.0, 30.0, ("entre 0 et 30 jours", "between 0 and 30 days"), low_open=True))


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: where the classifier is and what precision training aims at."""

    delegated: ClassVar[frozenset[str]] = frozenset()

    path: Path | None = setting(None, Kind.PATH, "le fichier du modèle (.skops), tant que le registre est vide",
                                "the model file (.skops), used while the registry is empty")
    target_precision: float = setting(
        0.95, Kind.NUMBER, "précision voulue sur le courrier classé automatiquement (entraînement)",
        "precision wanted on automatically routed mail (training)",
        between=Between(0.5, 1.0, ("entre 0,5 et 0,999", "between 0.5 and 0.999"), high_open=True))
    registry: Path | None = setting(None, Kind.PATH, "dossier des versions du modèle (défaut : models/ près de l'état)",
                                    "folder of model versions (default: models/ next to the state)")


@dataclass(frozen=True)
class CategorySection:
    """``[categories.<Name>]``: what to do with mail the model files under one category."""

    delegated: ClassVar[frozenset[str]] = frozenset()

    folder: str | None = setting(None, Kind.TEXT, "déplacer le message dans ce dossier", "move the message there",
                                 expect=("un nom de dossier", "a folder name"))
    label: str | None = setting(None, Kind.TEXT, "ajouter cette étiquette / ce mot-clé", "add this label / keyword")
    tag: bool | str = setting(False, Kind.TAG, "true : préfixer le sujet par [#<Nom>] ; un texte : ce tag",
                              "true: prefix the subject with [#<Name>]; a text: that tag",
                              expect=("true, false ou le texte du tag", "true, false or the tag text"))
    forward: tuple[str, ...] = setting((), Kind.TEXT_LIST, "transférer le message à ces adresses",
                                       "forward the message to these addresses", item=lambda a: "@" in a,
                                       expect=("une adresse ou une liste d'adresses", "an address or a list of addresses"))


@dataclass(frozen=True)
class PrivacySection:
    """``[privacy]`` keys of the job; the retention keys are checked by :mod:`~assoc_ai_core.jobs.retention`."""

    delegated: ClassVar[frozenset[str]] = frozenset(PRIVACY_KEYS)

    store_raw_sender: bool = setting(False, Kind.FLAG, "garder aussi l'adresse de l'expéditeur en clair",
                                     "also store the sender's address in clear")
    key_file: Path | None = setting(None, Kind.PATH, "la clé secrète des empreintes d'expéditeurs (défaut : <état>.key)",
                                    "the secret key of the sender hashes (default: <state>.key)")
    keep_correction_text: bool = setting(True, Kind.FLAG, "garder le texte pseudonymisé des messages corrigés",
                                         "keep the pseudonymised text of corrected messages")


@dataclass(frozen=True)
class TrainingSection:
    """``[training]``: what retraining learns from and how it compares."""

    delegated: ClassVar[frozenset[str]] = frozenset()

    data: Path | None = setting(None, Kind.PATH, "les données d'entraînement d'origine",
                                "the original training data")
    min_corrections: int = setting(3, Kind.INTEGER, "en dessous de ce nombre de corrections, retrain ne fait rien (sauf après un effacement)",
                                   "retrain does nothing below this many corrections (except after an erasure)")
    holdout_share: float = setting(
        0.2, Kind.NUMBER, "part des corrections récentes et des données d'origine mise de côté pour comparer "
        "(au moins 30 messages)",
        "share of the most recent corrections and of the original data held out to compare (at least 30 messages)",
        between=Between(0.0, 0.5, ("entre 0 et 0,5", "between 0 and 0.5"), low_open=True))


#: the declared sections, by the name the configuration file gives them
SECTIONS: dict[str, type[Any]] = {"triage": TriageSection, "model": ModelSection, "categories.<Name>": CategorySection,
                                  "privacy": PrivacySection, "training": TrainingSection}


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
    forward_max_age_days: int = 7
    forward_attempts: int = 10
    forward_retry_days: float = 2.0
    first_run: str = "new"
    review_labels: bool = True
    threads: bool = False
    message_seconds: float = 20.0
    message_max_mb: float = 50.0
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
        connector, mailbox = _read_mailbox(data)
        triage = read_section(TriageSection, section_of(data, "triage"), where="[triage]", base=base)
        _check_watched_folders(triage)
        model = read_section(ModelSection, section_of(data, "model"), where="[model]", base=base)
        categories = _read_categories(data, triage, base)
        # its keys: SmtpSettings, when used; a password file or CA file beside the configuration is found from anywhere
        smtp = resolve_relative_paths(section_of(data, "smtp"), base) if "smtp" in data else None
        privacy = read_section(PrivacySection, section_of(data, "privacy"), where="[privacy]", base=base)
        training = read_section(TrainingSection, section_of(data, "training"), where="[training]", base=base)
        return cls(
            connector=connector, mailbox=mailbox, state_path=triage.state or _default_state_path(),
            instance=triage.instance or connector, folders=triage.folders, review_folder=triage.review_folder,
            dry_run=triage.dry_run, page_size=triage.page_size, poll_interval=triage.poll_interval,
            correction_window_days=triage.correction_window_days, forward_max_age_days=triage.forward_max_age_days,
            forward_attempts=triage.forward_attempts, forward_retry_days=triage.forward_retry_days,
            first_run=triage.first_run, review_labels=triage.review_labels, threads=triage.threads, message_seconds=triage.message_seconds, message_max_mb=triage.message_max_mb,
            categories=categories,
            model_path=model.path, registry_dir=model.registry, target_precision=model.target_precision,
            smtp=smtp, store_raw_sender=privacy.store_raw_sender,
            privacy_key_file=privacy.key_file, keep_correction_text=privacy.keep_correction_text,
            training_data=training.data, min_corrections=training.min_corrections,
            holdout_share=training.holdout_share, config_path=config_path,
        )


# ============================================================================ reading steps
def _read_mailbox(data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The connector id, and the other ``[mailbox]`` keys (the connector's own settings)."""
    mailbox = data.get("mailbox")
    if not isinstance(mailbox, Mapping) or not mailbox.get("connector"):
        raise ConfigError(tr(
            '[mailbox] connector est obligatoire (par exemple connector = "imap" ou "local").',
            '[mailbox] connector is required (for example connector = "imap" or "local").',
        ))
    return str(mailbox["connector"]), {k: v for k, v in mailbox.items() if k != "connector"}


def _check_watched_folders(triage: TriageSection) -> None:
    if triage.review_folder in triage.folders:
        raise ConfigError(tr("[triage] review_folder ne peut pas être un dossier surveillé (boucle).",
                             "[triage] review_folder cannot be a watched folder (loop)."))


def _default_state_path() -> Path:
    """``$ASSOC_AI_HOME/state.sqlite``, else the user data folder."""
    home = os.environ.get("ASSOC_AI_HOME")
    if home:
        return Path(home) / "state.sqlite"
    from platformdirs import user_data_dir

    return Path(user_data_dir("assoc-ai")) / "state.sqlite"


def _read_categories(data: Mapping[str, Any], triage: TriageSection, base: Path) -> dict[str, CategorySettings]:
    """Every ``[categories.<Name>]`` section; a category folder is never watched nor shared."""
    raw = data.get("categories", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(tr("[categories] doit contenir des sections [categories.<Nom>].",
                             "[categories] must hold [categories.<Name>] sections."))
    categories: dict[str, CategorySettings] = {}
    owner: dict[str, str] = {}  # folder -> the category that has it
    for name, spec in raw.items():
        where = f"[categories.{name}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(tr(f"{where} doit être une section.", f"{where} must be a section."))
        category = _category(str(name), read_section(CategorySection, spec, where=where, base=base))
        _check_category_folder(category, triage, owner, where)
        categories[category.name] = category
    return categories


def _check_category_folder(category: CategorySettings, triage: TriageSection, owner: dict[str, str],
                           where: str) -> None:
    """A category folder is neither watched, nor the review folder, nor another category's; records it in ``owner``."""
    folder = category.folder
    if folder is None:
        return
    if folder in triage.folders or folder == triage.review_folder:
        raise ConfigError(tr(f"{where} folder ne peut pas être un dossier surveillé ni le dossier de revue.",
                             f"{where} folder cannot be a watched folder nor the review folder."))
    if folder in owner:
        raise ConfigError(tr(
            f"Les catégories {owner[folder]} et {category.name} ont le même dossier « {folder} ».",
            f"Categories {owner[folder]} and {category.name} share folder '{folder}'.",
        ))
    owner[folder] = category.name


def _category(name: str, section: CategorySection) -> CategorySettings:
    """A checked category section as settings (``tag = true`` becomes the default tag ``[#<Name>]``)."""
    if section.tag is True:
        from assoc_ai_core.ext.subject import subject_tag

        tag: str | None = subject_tag(name)
    else:
        tag = section.tag or None
    return CategorySettings(name, section.folder, section.label, tag, section.forward)


def as_settings(config: TriageSettings | str | os.PathLike[str] | Mapping[str, Any]) -> TriageSettings:
    """Accept settings, a configuration file path or an already-loaded mapping."""
    if isinstance(config, TriageSettings):
        return config
    if isinstance(config, Mapping):
        return TriageSettings.from_mapping(config)
    return TriageSettings.load(config)


__all__ = ["DEFAULT_REVIEW_FOLDER", "TriageSection", "ModelSection", "CategorySection", "PrivacySection",
           "TrainingSection", "SECTIONS", "CategorySettings", "TriageSettings", "as_settings"]
