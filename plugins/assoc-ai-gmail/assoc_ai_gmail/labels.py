"""Gmail labels seen as folders: names, nesting, which labels count as "where a message is filed"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.i18n import tr

from .settings import INBOX, NON_FOLDER_PREFIXES, NON_FOLDER_SYSTEM_LABELS

MAX_LABEL_NAME = 225  # Gmail refuses longer label names


def check_label_name(name: str) -> str:
    """Return ``name`` tidied (no spaces around ``/`` parts) or raise ConfigError saying what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(tr("Nom de libellé Gmail vide.", "Empty Gmail label name."))
    parts = [p.strip() for p in name.strip().split("/")]
    if any(not p for p in parts):
        raise ConfigError(
            tr(f"Nom de libellé Gmail invalide « {name} » : une partie entre « / » est vide.",
               f"Invalid Gmail label name '{name}': a part between '/' is empty.")
        )
    tidy = "/".join(parts)
    if len(tidy) > MAX_LABEL_NAME:
        raise ConfigError(
            tr(f"Nom de libellé Gmail trop long ({len(tidy)} caractères, {MAX_LABEL_NAME} au plus).",
               f"Gmail label name too long ({len(tidy)} characters, at most {MAX_LABEL_NAME}).")
        )
    return tidy


def parents_first(name: str) -> list[str]:
    """``"IA/Dons/Reçus"`` -> ``["IA", "IA/Dons", "IA/Dons/Reçus"]`` (Gmail nests by name)."""
    parts = name.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def is_folder_label(label: Mapping[str, Any]) -> bool:
    """True for the labels that say where a message is filed: INBOX, SPAM and user labels."""
    lid = str(label.get("id", ""))
    if label.get("type") == "user":
        return True
    return lid not in NON_FOLDER_SYSTEM_LABELS and not lid.startswith(NON_FOLDER_PREFIXES) and lid in (INBOX, "SPAM")


class LabelBook:
    """Name <-> id index of a mailbox's labels (exact match first, then case-insensitive like Gmail).

    Labels whose name starts with ``tag_prefix`` are *tags* (what ``add_label``
    attaches, like an IMAP keyword): they never count as the folder a message
    is filed in.

    Gmail label names are unique regardless of case: with « adhésion » in the
    account, « Adhésion » cannot be created.  When the configuration asks for
    a name that only matches with other capitals, the existing label is used
    and *reported under the configuration's spelling* (:meth:`adopt_spelling`),
    because the job compares folder names exactly: reported as « adhésion »,
    a message a person moved there would not count as a correction.
    """

    def __init__(self, labels: Iterable[Mapping[str, Any]] = (), *, tag_prefix: str = "") -> None:
        self.tag_prefix = tag_prefix
        self.by_id: dict[str, dict[str, Any]] = {}
        self._by_name: dict[str, str] = {}
        self._by_folded: dict[str, str] = {}
        self._spelling: dict[str, str] = {}  # label id -> the configuration's spelling, kept across reloads
        self.reset(labels)

    def reset(self, labels: Iterable[Mapping[str, Any]]) -> None:
        """Replace the index with a fresh ``labels.list`` answer."""
        self.by_id.clear()
        self._by_name.clear()
        self._by_folded.clear()
        for label in labels:
            self.add(label)

    def add(self, label: Mapping[str, Any]) -> None:
        """Index one label resource."""
        lid, name = str(label["id"]), str(label.get("name") or label["id"])
        self.by_id[lid] = dict(label)
        self._by_name[name] = lid
        self._by_folded.setdefault(name.casefold(), lid)

    def adopt_spelling(self, label_id: str, name: str) -> bool:
        """Report ``label_id`` as ``name`` from now on when only capitals differ; True the first time."""
        real = self.real_name(label_id)
        if real == name or real.casefold() != name.casefold() or self._spelling.get(label_id) == name:
            return False
        self._spelling[label_id] = name
        return True

    def real_name(self, label_id: str) -> str:
        """The label's name as Gmail spells it (the id itself when unknown)."""
        label = self.by_id.get(label_id)
        return str(label.get("name") or label_id) if label else label_id

    def id_for(self, name: str) -> str | None:
        """The id of the label called ``name`` (system labels answer to their id too)."""
        for lid, spelled in self._spelling.items():
            if spelled == name and self.real_name(lid).casefold() == name.casefold():
                return lid
        if name in self._by_name:
            return self._by_name[name]
        if name in self.by_id and self.by_id[name].get("type") == "system":
            return name
        return self._by_folded.get(name.casefold())

    def name_for(self, label_id: str) -> str:
        """Name of a label id as assoc-ai reports it: the configuration's spelling when adopted, else Gmail's."""
        real, spelled = self.real_name(label_id), self._spelling.get(label_id)
        # a label renamed since in the web interface is reported as it is now
        return spelled if spelled and spelled.casefold() == real.casefold() else real

    def is_tag(self, name: str) -> bool:
        """True for a tag label (name under ``tag_prefix``)."""
        return bool(self.tag_prefix) and name.startswith(self.tag_prefix)

    def folder_names(self, label_ids: Iterable[str]) -> list[str]:
        """Names of the folder-like labels among ``label_ids`` (tags left out), inbox first."""
        names = []
        for lid in label_ids:
            label = self.by_id.get(lid, {"id": lid, "type": "user" if lid.startswith("Label_") else "system"})
            if is_folder_label(label) and not self.is_tag(self.name_for(lid)):
                names.append(self.name_for(lid))
        return sorted(names, key=lambda n: (n != INBOX, n))

    def folders(self) -> list[str]:
        """Every folder-like label name (tags left out): INBOX first, then user labels sorted."""
        names = [self.name_for(lid) for lid, lab in self.by_id.items()
                 if is_folder_label(lab) and lid != "SPAM" and not self.is_tag(self.name_for(lid))]
        return sorted(set(names), key=lambda n: (n != INBOX, n))
