"""Learning from the mailbox: the category folders volunteers sorted are labelled examples.

Mail the model itself routed and nobody confirmed is left out (learning from
its own decisions would only reinforce them), and so is mail from people who
asked to be forgotten.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    return mailbox_census(settings, connector, exclude=exclude).examples


@dataclass
class MailboxCensus:
    """The examples found in the category folders, and how many were left out as the model's own filing."""

    examples: list[Message] = field(default_factory=list)
    left_out: int = 0


def mailbox_census(settings: TriageSettings, connector: MailboxConnector,
                   *, exclude: set[str] | None = None) -> MailboxCensus:
    """Like :func:`collect_mailbox_examples`, also counting the messages ``exclude`` left out (to explain a refusal)."""
    census = MailboxCensus()
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
                census.left_out += 1
                continue
            msg = parse_message(fetched.raw, source=f"{folder}/{fetched.ref.uid}", label=name)
            if msg.error is None:
                census.examples.append(msg)
    return census


def held_out_sample(examples: Sequence[Message], size: int, *, seed: int,
                    keep: int = 2) -> tuple[list[Message], list[Message]]:
    """Split ``examples`` into (held out, rest): a fixed, seeded sample of about ``size`` messages.

    The sample is stratified: in each category, the messages whose seeded hash
    of their key is smallest, in proportion to the category's size, leaving at
    least ``keep`` of each category to learn from.  The same data and seed
    always give the same sample, so successive retrainings are compared on the
    same mail, which a candidate trained with the same rule has never seen.
    """
    if not examples or size <= 0:
        return [], list(examples)
    share = min(1.0, size / len(examples))
    by_label: dict[str, list[Message]] = {}
    for m in examples:
        by_label.setdefault(str(m.label), []).append(m)
    chosen: set[int] = set()
    for members in by_label.values():
        ranked = sorted(members, key=lambda m: _seeded_rank(m, seed))
        take = min(round(len(members) * share), max(0, len(members) - keep))
        chosen.update(id(m) for m in ranked[:take])
    return ([m for m in examples if id(m) in chosen], [m for m in examples if id(m) not in chosen])


def _seeded_rank(message: Message, seed: int) -> str:
    return hashlib.sha256(f"{seed}\x00{message.key}\x00{message.subject}".encode("utf-8", "surrogatepass")).hexdigest()


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
    from assoc_ai_core.api import default_embeddings, train

    log.info(tr(f"Apprentissage sur {len(examples)} messages de la boîte.", f"Training on {len(examples)} mailbox messages."))
    from assoc_ai_core.jobs.retention import model_sender_key

    # The same default as `assoc-ai train`: sentence meaning for a small mailbox when the extra is installed.
    return train(examples, target_precision=settings.target_precision, sender_key=model_sender_key(settings),
                 embeddings=default_embeddings(len(examples)))


__all__ = ["MailboxCensus", "collect_mailbox_examples", "held_out_sample", "mailbox_census", "routed_keys",
           "train_from_mailbox"]
