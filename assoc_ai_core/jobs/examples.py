"""Learning from the mailbox: the category folders volunteers sorted are labelled examples.

Mail the model itself routed and nobody confirmed is left out (learning from
its own decisions would only reinforce them), and so is mail from people who
asked to be forgotten.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.ext.connectors import MailboxConnector
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.preflight import build_connector
from assoc_ai_core.jobs.settings import TriageSettings, as_settings
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.mail.parsing import parse_message
from assoc_ai_core.records.mail import Message

log = logging.getLogger(__name__)


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


def routed_keys(settings: TriageSettings) -> set[str]:
    """Keys of the mail the model routed on its own (not learnt from)."""
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
        examples = collect_mailbox_examples(settings, conn, exclude=routed_keys(settings))
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


__all__ = ["collect_mailbox_examples", "routed_keys", "train_from_mailbox"]
