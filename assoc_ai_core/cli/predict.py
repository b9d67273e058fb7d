"""The ``predict`` command: classify messages and print a table a volunteer can read, or JSON.

Files are named relative to the folder given, so the messages of a tree stay apart; a people model
hands over to :mod:`assoc_ai_core.cli.people`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from assoc_ai_core.cli.common import lang_option, option
from assoc_ai_core.cli.handover import load_mail_model, people_commands
from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import current_lang, percent, tr

__all__ = ["predict", "classify_paths", "format_table", "NAME_WIDTH", "key_file_option", "sender_key_from",
           "warnings_as_lines", "echo_warnings"]

NAME_WIDTH = 40  # widest file column of the table; longer names are cut in the middle with "…"

# Shared by train, predict, evaluate and explain: who wrote and to whom are learnt only as tokens keyed with
# this file's secret, which never enters the model.
key_file_option = option(
    "--key-file", "key_file", type=click.Path(dir_okay=False), default=None,
    help=tr("Clé secrète de l'installation (celle du tri, [privacy] key_file) : sans elle, les expéditeurs et "
            "destinataires ne sont pas pris en compte. « train » la crée si elle manque.",
            "The installation's secret key (the triage job's [privacy] key_file): without it, senders and "
            "recipients are not used. 'train' creates it when missing."))


def echo_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    """Our own warnings as one plain line each (no file and line number); others as Python shows them."""
    seen: set[str] = set()
    for w in caught:
        if "assoc_ai_core" in str(w.filename):
            if str(w.message) not in seen:
                seen.add(str(w.message))
                click.echo(tr("Attention : ", "Warning: ") + str(w.message), err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Collect the warnings of the block (a category with one example...) and show them as plain lines after it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    echo_warnings(caught)


def sender_key_from(key_file: str | None, *, create: bool = False) -> Any:
    """The :class:`~assoc_ai_core.api.SenderKey` of ``--key-file`` (None without the option)."""
    if key_file is None:
        return None
    from assoc_ai_core.api import load_sender_key

    if not create and not Path(key_file).is_file():
        raise click.BadParameter(tr(f"fichier de clé introuvable : {key_file}", f"key file not found: {key_file}"),
                                 param_hint="--key-file")
    try:
        return load_sender_key(key_file, create=create)
    except (OSError, ValueError) as exc:  # the message names the file, never its content
        raise click.BadParameter(tr(f"clé illisible dans {key_file} ({type(exc).__name__})",
                                    f"unreadable key in {key_file} ({type(exc).__name__})"),
                                 param_hint="--key-file") from None


@click.command(help=tr(
    "Classer des messages (fichiers .eml, dossiers, mbox...). Sans aucun message à classer : code de sortie 4.",
    "Classify messages (.eml files, folders, mbox...). With no message to classify: exit code 4."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(exists=True))
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON (une ligne par message ou par personne).",
                                                   "JSON output (one line per message or per person)."))
@option("--explain/--no-explain", "with_explain", default=True, help=tr("Ajouter l'explication.", "Add the explanation."))
@option("--top", "top", type=click.IntRange(min=1), default=None,
        help=tr("Modèles « personnes » : n'afficher que les N meilleurs scores (défaut : tous).",
                "People models: show only the N best scores (default: all)."))
@key_file_option
@lang_option
def predict(model_path: str, paths: tuple[str, ...], as_json: bool, with_explain: bool, top: int | None,
            key_file: str | None, lang: str | None) -> None:
    """Classify messages and print the category, confidence, decision and why."""
    lang = lang or current_lang()
    people = people_commands()
    if people is not None and people.is_people_model(model_path):
        for p in paths:
            people.predict_task(model_path, p, None, top=top, lang=lang, as_json=as_json)
        return
    model = load_mail_model(model_path)
    with warnings_as_lines():  # a key that does not fit the model is said once, as a plain line
        rows = classify_paths(model, paths, with_explain=with_explain, lang=lang, sender_key=sender_key_from(key_file))
    if not rows:
        raise DataError(tr(f"Aucun message à classer dans : {', '.join(paths)}.",
                           f"No message to classify in: {', '.join(paths)}.", lang))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        click.echo(format_table(rows, lang))


def classify_paths(model: Any, paths: Sequence[str], *, with_explain: bool = True, lang: str | None = None,
                   sender_key: Any = None) -> list[dict[str, Any]]:
    """Read, classify and (optionally) explain every message under ``paths``.

    Each row's ``file`` is where the message is, relative to the folder given (its name for a file given).
    ``sender_key`` is the model's training key (see :mod:`assoc_ai_core.api`), None without ``--key-file``.
    """
    from assoc_ai_core.api import explain_prediction, iter_messages
    from assoc_ai_core.api import predict as run_predict

    found = [(m, p) for p in paths for m in iter_messages(p, labelled=False)]
    msgs = [m for m, _ in found]
    preds = run_predict(model, msgs, sender_key=sender_key)
    rows = []
    for (m, given), p in zip(found, preds, strict=True):
        row: dict[str, Any] = {
            "source": m.source, "file": _shown_name(str(m.source or m.key), given), "key": m.key,
            "category": p.label, "probability": round(p.probability, 4),
            "runner_up": p.runner_up, "runner_up_probability": round(p.runner_up_probability, 4),
            "decision": p.decision, "reason": p.reason,
        }
        if with_explain and m.error is None:
            exp = explain_prediction(model, m, p, lang=lang, sender_key=sender_key)
            row["explanation"] = exp.sentence
            row["toward"] = [[t, round(w, 3)] for t, w in exp.toward]
            row["against"] = [[t, round(w, 3)] for t, w in exp.against]
        elif m.error is not None:
            row["explanation"] = tr(f"Illisible : {m.error} → à vérifier par une personne.",
                                    f"Unreadable: {m.error} → to be checked by a person.", lang)
        rows.append(row)
    return rows


def _shown_name(source: str, given: str) -> str:
    """``source`` relative to the folder the user gave, so two "0001.eml" of a tree stay apart."""
    root = Path(given)
    if not root.is_dir():
        return Path(source).name
    for path, folder in ((Path(source), root), (Path(source).resolve(), root.resolve())):
        if path.is_relative_to(folder):
            return path.relative_to(folder).as_posix()
    return source  # named otherwise (a CSV row, say): as read


def _cut(text: str, width: int) -> str:
    """``text`` within ``width`` characters, its middle replaced by "…" (the end of a path tells files apart)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def format_table(rows: Sequence[dict[str, Any]], lang: str | None = None) -> str:
    """A plain-text table a volunteer can read in a terminal."""
    head = (tr("fichier", "file", lang), tr("catégorie", "category", lang), tr("confiance", "confidence", lang),
            tr("décision", "decision", lang))
    names = [_cut(str(r.get("file") or Path(str(r["source"] or r["key"])).name), NAME_WIDTH) for r in rows]
    width = max([len(head[0]), *map(len, names)])
    out = [f"{head[0]:<{width}} {head[1]:<18} {head[2]:>9}  {head[3]}"]
    for name, r in zip(names, rows, strict=True):
        decision = {"auto": tr("auto", "auto", lang), "review": tr("à vérifier", "review", lang)}[r["decision"]]
        conf = percent(r["probability"], lang) if r["category"] else "—"
        out.append(f"{name:<{width}} {str(r['category'] or '—'):<18} {conf:>9}  {decision}")
        if r.get("explanation"):
            out.append(f"    {r['explanation']}")
    return "\n".join(out)
