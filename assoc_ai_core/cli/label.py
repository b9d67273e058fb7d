"""``assoc-ai label``: sort the first mails on a local page, the ones the model most needs first.

For a volunteer with unsorted mail and few or no sorted examples.  The mail
comes from a folder of ``.eml`` files (labels go to a CSV beside the mail),
from a Maildir (each mail moved into its category's sub-folder through the
``local`` connector), or from the mailbox of a configuration file (moved
through its connector).  The page itself is :mod:`assoc_ai_core.cli.label_page`.
"""

from __future__ import annotations

import shlex
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from assoc_ai_core.cli.common import lang_option, option
from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.i18n import current_lang, tr, use_lang

__all__ = ["label", "Setup", "prepare", "parse_categories"]


def parse_categories(text: str | None) -> list[str]:
    """Category names of ``--categories`` (comma-separated), in order, without blanks or repeats."""
    out: list[str] = []
    for part in (text or "").split(","):
        name = part.strip()
        if name and name not in out:
            out.append(name)
    return out


@dataclass
class Setup:
    """What a run of the page needs: the mail to ask about, what was sorted before, where labels go."""

    items: list[Any]
    known: list[tuple[Any, str]]
    store: Any
    categories: list[str]
    train_hint: list[str]
    close: Callable[[], None] = field(default=lambda: None)
    unreadable: int = 0


def _folder_setup(source: Path, labels_path: Path, categories: list[str]) -> Setup:
    """A folder of mail files: loose files are asked about, sub-folders are sorted examples, labels go to a CSV."""
    from assoc_ai_core.api import load_dataset
    from assoc_ai_core.cli.label_page import CsvLabels, Item

    ds = load_dataset(source)
    store = CsvLabels(labels_path)
    given = store.given()
    items: list[Any] = []
    known: list[tuple[Any, str]] = [(m, str(m.label)) for m in ds.labelled()]
    for msg in ds.messages:
        if msg.label or msg.error is not None:
            continue
        rel = _relative(msg.source, source)
        category = given.get(msg.key) or given.get(rel)
        if category:
            known.append((msg, category))
        else:
            items.append(Item(message=msg, path=rel))
    hint = [f"assoc-ai train {shlex.quote(str(source))} --labels {shlex.quote(str(labels_path))} -o model.skops"]
    return Setup(items, known, store, categories, hint,
                 unreadable=sum(1 for m in ds.messages if m.error is not None))


def _relative(source: str | None, root: Path) -> str:
    try:
        return Path(source or "").resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return source or ""


def _mailbox_setup(connector: Any, folder: str, folder_of: Callable[[str], str], categories: list[str],
                   hint: list[str]) -> Setup:
    """A mailbox through its connector: mail of ``folder`` is asked about; each category's folder holds examples."""
    from assoc_ai_core.api import parse_message
    from assoc_ai_core.cli.label_page import Item, MailboxLabels
    from assoc_ai_core.ext.connectors import Capability

    connector.open()
    try:
        if Capability.MOVE not in connector.capabilities:
            raise ConfigError(tr(
                f"Le connecteur « {connector.id} » ne sait pas déplacer un message : impossible d'y ranger le tri.",
                f"Connector '{connector.id}' cannot move a message: the sorting cannot be kept there."))
        folders = set(connector.list_folders())
        items: list[Any] = []
        unreadable = 0
        for fetched in connector.fetch_all(folder):
            msg = parse_message(fetched.raw, source=f"{fetched.ref.folder}/{fetched.ref.uid}")
            if msg.error is not None:
                unreadable += 1
                continue
            items.append(Item(message=msg, ref=fetched.ref))
        known: list[tuple[Any, str]] = []
        for category in categories:
            target = folder_of(category)
            if target in folders and target != folder:
                known.extend((parse_message(f.raw), category) for f in connector.fetch_all(target))
        known = [(m, c) for m, c in known if m.error is None]
    except BaseException:
        connector.close()
        raise
    return Setup(items, known, MailboxLabels(connector, folder_of), categories, hint, close=connector.close,
                 unreadable=unreadable)


def prepare(source: str | None, categories: list[str], *, labels_path: str | None = None,
            config_path: str | None = None, folder: str | None = None) -> Setup:
    """Read the mail to sort from ``source`` (a folder or a Maildir) or the mailbox of ``config_path``."""
    if config_path:
        from assoc_ai_core.jobs.preflight import build_connector
        from assoc_ai_core.jobs.settings import as_settings

        settings = as_settings(config_path)
        cats = categories or list(settings.categories)
        configured = settings.categories

        def folder_of(category: str) -> str:
            chosen = configured.get(category)
            return chosen.folder if chosen is not None and chosen.folder else category

        hint = [f"assoc-ai train --from-mailbox --config {shlex.quote(config_path)} -o model.skops"]
        return _mailbox_setup(build_connector(settings), folder or settings.folders[0], folder_of, cats, hint)
    if not source:
        raise click.UsageError(tr("Donnez le dossier du courrier à trier, ou --config FICHIER.",
                                  "Give the folder of mail to sort, or --config FILE."))
    root = Path(source)
    if (root / "cur").is_dir() and (root / "new").is_dir():
        from assoc_ai_core.default_plugins.local_mailbox import LocalMailConfig, LocalMailConnector

        hint = [f"assoc-ai train {shlex.quote(source)} -o model.skops"]
        return _mailbox_setup(LocalMailConnector(LocalMailConfig(path=source)), folder or "INBOX",
                              lambda c: c, categories, hint)
    if not root.is_dir():
        raise DataError(tr(f"{source} n'est pas un dossier de courrier.", f"{source} is not a mail folder."))
    return _folder_setup(root, Path(labels_path) if labels_path else root / "labels.csv", categories)


@click.command(help=tr(
    "Trier les premiers messages sur une page locale : un message à la fois, ceux dont le modèle a le plus besoin "
    "d'abord. SOURCE : un dossier de .eml (étiquettes dans un CSV) ou une Maildir (messages rangés dans le dossier "
    "de leur catégorie).",
    "Sort the first messages on a local page: one message at a time, those the model most needs first. SOURCE: a "
    "folder of .eml files (labels in a CSV) or a Maildir (each message moved to its category's folder).",
))
@click.argument("source", required=False, type=click.Path(exists=True))
@option("--categories", help=tr("Les catégories, séparées par des virgules : « Adhésion,Partenariat,… ».",
                                "The categories, comma-separated: 'Membership,Partnership,…'."))
@option("--model", "model_path", type=click.Path(dir_okay=False),
        help=tr("Un modèle pour commencer (.skops), s'il existe.", "A model to start from (.skops), if it exists."))
@option("--labels", "labels_path", type=click.Path(dir_okay=False),
        help=tr("Fichier CSV des étiquettes (défaut : SOURCE/labels.csv).",
                "CSV file of the labels (default: SOURCE/labels.csv)."))
@option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
        help=tr("Port local de la page (0 : un port libre).", "Local port of the page (0: any free port)."))
@option("--no-browser", is_flag=True, help=tr("Ne pas ouvrir le navigateur.", "Do not open the browser."))
@option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
        help=tr("Trier la boîte mail de ce fichier de configuration (au lieu de SOURCE).",
                "Sort the mailbox of this configuration file (instead of SOURCE)."))
@option("--folder", default=None, help=tr("Dossier de la boîte à trier (défaut : INBOX, ou celui de la configuration).",
                                          "Mailbox folder to sort (default: INBOX, or the configuration's)."))
@lang_option
def label(source: str | None, categories: str | None, model_path: str | None, labels_path: str | None, port: int,
          no_browser: bool, config_path: str | None, folder: str | None, lang: str | None) -> None:
    """Serve the labelling page until "Done" or Ctrl-C, then say how many were sorted and how to train."""
    lang = lang or current_lang()
    previous = use_lang(lang)
    try:
        _run(source, categories, model_path, labels_path, port, no_browser, config_path, folder, lang)
    finally:
        use_lang(previous)


def _run(source: str | None, categories: str | None, model_path: str | None, labels_path: str | None, port: int,
         no_browser: bool, config_path: str | None, folder: str | None, lang: str) -> None:
    from assoc_ai_core.cli.label_page import LabelSession, serve, summary_lines

    model = None
    if model_path and Path(model_path).is_file():
        from assoc_ai_core.cli.handover import load_mail_model

        model = load_mail_model(model_path)
    cats = parse_categories(categories)
    if not cats and model is not None:
        cats = [str(c) for c in model.classes_]
    setup = prepare(source, cats, labels_path=labels_path, config_path=config_path, folder=folder)
    try:
        if not setup.categories:
            raise click.UsageError(tr("Donnez les catégories : --categories \"Adhésion,Partenariat,…\".",
                                      "Give the categories: --categories \"Membership,Partnership,…\"."))
        click.echo(tr(f"{len(setup.items)} message(s) à trier, {len(setup.known)} déjà trié(s).",
                      f"{len(setup.items)} message(s) to sort, {len(setup.known)} already sorted."), err=True)
        if setup.unreadable:
            click.echo(tr(f"{setup.unreadable} message(s) illisible(s) laissé(s) de côté.",
                          f"{setup.unreadable} unreadable message(s) left aside."), err=True)
        if not setup.items:  # a page with nothing to ask would wait for nothing
            raise DataError(tr(
                f"Rien à trier dans {source or folder or 'la boîte'} : aucun message lisible qui ne soit déjà trié. "
                "Vérifiez le dossier (des fichiers .eml, ou un Maildir avec cur/ et new/).",
                f"Nothing to sort in {source or folder or 'the mailbox'}: no readable message that is not already "
                "sorted. Check the folder (.eml files, or a Maildir with cur/ and new/)."))
        session = LabelSession(items=setup.items, categories=setup.categories, store=setup.store, lang=lang,
                               known=setup.known, model=model)
        server = serve(session, port=port)
        try:
            click.echo(tr(f"Page de tri (gardez cette adresse pour vous) : {server.url}",
                          f"Sorting page (keep this address to yourself): {server.url}"))
            click.echo(tr("Terminez avec le bouton « Terminé » ou Ctrl-C.", "Finish with the 'Done' button or Ctrl-C."))
            if not no_browser:
                webbrowser.open(server.url)
            try:
                while not session.done.wait(0.5):
                    pass
            except KeyboardInterrupt:
                click.echo("")
        finally:
            server.shutdown()
            server.server_close()
        for line in summary_lines(session, setup.train_hint):
            click.echo(line)
    finally:
        setup.close()


if __name__ == "__main__":  # pragma: no cover - `python -m assoc_ai_core.cli.label`, before the command is wired
    label()
