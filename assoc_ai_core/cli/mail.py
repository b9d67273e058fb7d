"""The mail commands: ``train``, ``evaluate``, ``explain`` and ``demo`` (``predict`` lives in its own module).

They reach the mail layer only through :mod:`assoc_ai_core.api`, imported
inside each command so that ``assoc-ai --help`` stays fast.  ``train``,
``evaluate``, ``predict`` and ``explain`` also serve the people models, by
handing over to :mod:`assoc_ai_core.cli.people` when its extra is installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from assoc_ai_core.cli.common import lang_option, option
from assoc_ai_core.cli.handover import load_mail_model, people_commands
from assoc_ai_core.cli.predict import (
    NAME_WIDTH,
    classify_paths,
    format_table,
    key_file_option,
    predict,
    sender_key_from,
    warnings_as_lines,
)
from assoc_ai_core.errors import DataError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import count, current_lang, decimal, percent, signed, tr

__all__ = ["add_commands", "train", "evaluate", "predict", "explain", "demo", "classify_paths", "format_table",
           "SEMANTIC_TIP_UP_TO", "BoundedProgress", "NAME_WIDTH"]

# Up to this many training messages, words alone leave much to sentence embeddings (devA, 210 messages:
# macro-F1 0.71 -> 0.81, automatic share 25 % -> 47 %); a large mailbox has words enough.
SEMANTIC_TIP_UP_TO = 2000

_LANG = lang_option


def add_commands(group: click.Group) -> None:
    """Add the mail commands to ``group`` (the root ``assoc-ai`` group)."""
    for command in (train, evaluate, predict, explain, demo):
        group.add_command(command)


class BoundedProgress:
    """A progress bar that never counts past 100 %: training may take more steps than planned (more folds).

    Each step beyond the plan pushes the total one further, so the bar stays short of its end until
    :meth:`close` fills it.
    """

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, n: int = 1) -> None:
        """``n`` steps done."""
        if self.bar.total is not None and self.bar.n + n >= self.bar.total:
            self.bar.total = self.bar.n + n + 1
        self.bar.update(n)

    def close(self) -> None:
        """All done: the bar at 100 %, then gone."""
        if self.bar.total is not None and self.bar.n < self.bar.total:
            self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()

    def __enter__(self) -> BoundedProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:  # interrupted or failed: no 100 % shown
            self.bar.close()


def _progress(total: int, desc: str) -> BoundedProgress:
    from tqdm import tqdm

    return BoundedProgress(tqdm(total=total, desc=desc, unit=tr(" étape", " step"), leave=False,
                                disable=not sys.stderr.isatty()))


def _report_problems(problems: Sequence[tuple[str, str]]) -> None:
    if not problems:
        return
    click.echo(tr(f"{len(problems)} message(s) illisible(s), laissé(s) pour vérification humaine :",
                  f"{len(problems)} unreadable message(s), left for human review:"), err=True)
    for source, reason in problems[:20]:
        click.echo(f"  - {source}: {reason}", err=True)
    if len(problems) > 20:
        click.echo(f"  … (+{len(problems) - 20})", err=True)


# --------------------------------------------------------------------- train
@click.command(help=tr(
    "Entraîner un modèle sur DATA, du courrier déjà trié (un dossier par catégorie, Maildir, mbox, CSV ou JSONL) ; "
    "sans DATA avec --from-mailbox.",
    "Train a model on DATA, mail already sorted (one folder per category, Maildir, mbox, CSV or JSONL); "
    "no DATA with --from-mailbox.",
))
@click.argument("data", metavar="DATA", required=False, type=click.Path(exists=True))  # not with --from-mailbox
@option("-o", "--output", "output", type=click.Path(), required=True,
        help=tr("Fichier du modèle (.skops).", "Model file (.skops)."))
@option("--target-precision", type=float, default=0.95, show_default=True,
              help=tr("Précision visée pour le courrier classé automatiquement.", "Precision wanted on automatically routed mail."))
@option("--semantic/--no-semantic", default=None,
              help=tr("Sens des phrases (plongements multilingues, extra « semantic ») ; par défaut : oui jusqu'à "
                      "2 000 messages quand l'extra est installé.",
                      "Sentence meaning (multilingual embeddings, the 'semantic' extra); default: on up to "
                      "2,000 messages when the extra is installed."))
@option("--pseudonymize/--raw-text", "pseudonymize", default=True, show_default=True,
              help=tr("Pseudonymiser le texte avant apprentissage (défaut) ou garder le texte brut.",
                      "Pseudonymise text before learning (default) or keep raw text."))
@option("--label-names/--no-label-names", "label_names", default=None,
              help=tr("Apprendre aussi des noms des catégories (par défaut : jusqu'à 5 000 messages).",
                      "Also learn from the category names (default: up to 5,000 messages)."))
@option("--task", default="mail", show_default=True,
              help=tr("mail, ou une tâche « personnes » (donor-propensity, churn, ...).",
                      "mail, or a people task (donor-propensity, churn, ...)."))
@option("--from-mailbox", is_flag=True, help=tr("Apprendre des dossiers de la boîte configurée.", "Learn from the configured mailbox's folders."))
@option("--config", "config_path", type=click.Path(), help=tr("Fichier de configuration TOML.", "TOML configuration file."))
@option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False),
        help=tr("CSV des étiquettes données avec « assoc-ai label » (clé, chemin, catégorie).",
                "CSV of the labels given with 'assoc-ai label' (key, path, category)."))
@key_file_option
@_LANG
def train(data: str | None, output: str | None, target_precision: float, semantic: bool | None, pseudonymize: bool,
          label_names: bool | None, task: str, from_mailbox: bool, config_path: str | None, labels_path: str | None,
          key_file: str | None, lang: str | None) -> None:
    """Train a model and save it.

    With ``--key-file`` the model learns who writes and to whom as tokens keyed
    with that secret (created when missing; only its fingerprint enters the
    model, so give the same file to predict, evaluate and explain); without it,
    from the text and the other meta tokens only.
    """
    if task != "mail":
        _train_people(task, data, output, lang)
        return
    if from_mailbox:
        if not config_path or not output:
            raise click.UsageError(tr("--from-mailbox demande --config FICHIER et -o MODÈLE.",
                                      "--from-mailbox needs --config FILE and -o MODEL."))
        from assoc_ai_core.cli.triage import train_from_mailbox_command

        train_from_mailbox_command(config_path, output)
        return
    if not data or not output:
        raise click.UsageError(tr("Usage : assoc-ai train DONNÉES -o MODÈLE", "Usage: assoc-ai train DATA -o MODEL"))
    from assoc_ai_core.api import load_dataset
    from assoc_ai_core.api import train as train_model
    from assoc_ai_core.persistence import save_model
    from assoc_ai_core.trust.modelcard import card_beside_model

    ds = load_dataset(data, progress=sys.stderr.isatty())
    if labels_path:  # the labels given on the labelling page, beside the mail they name
        from assoc_ai_core.api import apply_labels, read_labels_csv

        rows = read_labels_csv(Path(labels_path).read_text(encoding="utf-8-sig"))
        ds.messages = apply_labels(ds.messages, data, rows)
    _report_problems(ds.problems)
    labelled = ds.labelled()
    n_labels = len({m.label for m in labelled})
    click.echo(count(len(labelled), ("message étiqueté", "messages étiquetés"), ("labelled message", "labelled messages"))
               + ", " + count(n_labels, ("catégorie.", "catégories."), ("category.", "categories.")), err=True)
    loose = [m for m in ds.messages if m.error is None and not m.label]
    if loose and labelled:  # mail beside the category folders: not learnt from, and the user should know
        click.echo(tr(f"{len(loose)} message(s) hors de tout dossier de catégorie, non appris (ex. : {loose[0].source}).",
                      f"{len(loose)} message(s) outside any category folder, not learnt from "
                      f"(e.g. {loose[0].source})."), err=True)
    params: dict[str, Any] = {"pseudonymize": pseudonymize, "label_names": label_names}
    from assoc_ai_core.api import default_embeddings

    chosen = default_embeddings(len(labelled)) if semantic is None else ("use-multilingual" if semantic else None)
    if chosen:
        params["embeddings"] = chosen
    if semantic is None and chosen:
        click.echo(tr("Sens des phrases activé (petite boîte, extra installé) ; --no-semantic pour s'en passer.",
                      "Sentence meaning on (small mailbox, extra installed); --no-semantic to do without."), err=True)
    sender_key = sender_key_from(key_file, create=True)
    with warnings_as_lines(), _progress(5, tr("Apprentissage", "Training")) as bar:
        model = train_model(labelled, target_precision=target_precision, progress=bar, sender_key=sender_key, **params)
    save_model(model, output)
    card_md, _ = card_beside_model(model, output)
    click.echo(_trained_summary(model.metadata_, output, target_precision))
    click.echo(tr(f"Fiche du modèle : {card_md}", f"Model card: {card_md}"))
    if semantic is None and not chosen and len(labelled) <= SEMANTIC_TIP_UP_TO:
        click.echo(_semantic_tip(), err=True)


def _train_people(task: str, data: str | None, output: str | None, lang: str | None) -> None:
    people = people_commands()
    if people is None:
        raise click.UsageError(tr(
            "Les tâches « personnes » demandent l'extra : pip install 'assoc-ai-core[people]'.",
            "People tasks need the extra: pip install 'assoc-ai-core[people]'."))
    if not data or not output:
        raise click.UsageError(tr("DATA et -o MODEL sont requis.", "DATA and -o MODEL are required."))
    people.train_task(task, data, output, lang=lang)


def _trained_summary(md: dict[str, Any], output: str, target_precision: float) -> str:
    return tr(
        f"Modèle écrit : {output}\n"
        f"Validation croisée : exactitude {percent(md['cv_accuracy'])}, F1 macro {decimal(md['cv_macro_f1'], 3)}.\n"
        f"À {percent(target_precision)} de précision, {percent(md['expected_auto_share'])} du courrier serait "
        f"classé automatiquement (seuil de confiance {percent(md['threshold'])}) ; le reste va « À vérifier ».",
        f"Model written: {output}\n"
        f"Cross-validation: accuracy {percent(md['cv_accuracy'])}, macro-F1 {decimal(md['cv_macro_f1'], 3)}.\n"
        f"At {percent(target_precision)} precision, {percent(md['expected_auto_share'])} of mail would be routed "
        f"automatically (confidence threshold {percent(md['threshold'])}); the rest goes to review.",
    )


def _semantic_tip() -> str:
    """One line telling a small mailbox how to get sentence meaning (shown only when the extra is missing)."""
    return tr("Conseil : avec peu de courrier, l'extra « semantic » (pip install 'assoc-ai-core[semantic]', 32 Mo) "
              "reconnaît mieux les demandes formulées autrement ou dans une autre langue ; il sert alors par défaut.",
              "Tip: with little mail, the 'semantic' extra (pip install \"assoc-ai-core[semantic]\", 32 MB) better "
              "recognises requests worded differently or in another language; it is then used by default.")


# ------------------------------------------------------------------ evaluate
@click.command(help=tr(
    "Évaluer un modèle sur du courrier trié qu'il n'a pas vu (JSON et rapport HTML).",
    "Evaluate a model on sorted mail it has not seen (JSON and HTML report).",
))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@click.argument("data", type=click.Path(exists=True))
@option("--json", "json_out", type=click.Path(), help=tr("Écrire les mesures en JSON.", "Write the metrics as JSON."))
@option("--html", "html_out", type=click.Path(), help=tr("Écrire le rapport HTML.", "Write the HTML report."))
@option("--chronological", "chrono", type=float, default=None, metavar="FRACTION",
              help=tr("Ré-entraîner sur le plus ancien courrier de DATA et tester sur la FRACTION la plus récente.",
                      "Retrain on the oldest mail of DATA and test on the newest FRACTION."))
@_LANG
@option("--config", "config_path", type=click.Path(exists=True), default=None,
              help=tr("Configuration du tri : ajoute au rapport la surveillance du modèle (exécutions, dérive).",
                      "Triage configuration: adds model monitoring (runs, drift) to the report."))
@key_file_option
@option("--fiscal-year-start", "fiscal_year_start", default=None, metavar="MM-JJ",
        help=tr("Modèle « personnes » : premier jour de l'exercice pour le tableau de fidélisation (MM-JJ, ex. 07-01).",
                "People model: first day of the fiscal year for the retention table (MM-DD, e.g. 07-01)."))
def evaluate(model_path: str, data: str, json_out: str | None, html_out: str | None, chrono: float | None,
             lang: str | None, config_path: str | None, key_file: str | None, fiscal_year_start: str | None) -> None:
    """Evaluate a model on labelled data (``--key-file``: the key it was trained with)."""
    people = people_commands()
    if people is not None and people.is_people_model(model_path):
        people.evaluate_task(model_path, data, json_out, html_out, lang=lang, fiscal_year_start=fiscal_year_start)
        return
    if fiscal_year_start:
        raise click.UsageError(tr("--fiscal-year-start ne vaut que pour un modèle « personnes ».",
                                  "--fiscal-year-start only applies to a people model."))
    from assoc_ai_core.api import chronological_split, load_dataset
    from assoc_ai_core.api import evaluate as run_eval
    from assoc_ai_core.api import train as train_model

    lang = lang or current_lang()
    model = load_mail_model(model_path)
    sender_key = sender_key_from(key_file)
    ds = load_dataset(data, progress=sys.stderr.isatty())
    _report_problems(ds.problems)
    test = ds.labelled()
    protocol = "held-out"
    if chrono:
        older, test = chronological_split(test, chrono)
        with warnings_as_lines():
            model = train_model(older, sender_key=sender_key, **dict(model.get_params()))
        protocol = f"chronological {1 - chrono:.0%}/{chrono:.0%}"
    with warnings_as_lines():
        result = run_eval(model, test, lang=lang, sender_key=sender_key)
    result["protocol"] = protocol
    click.echo(_summary(result, lang))
    if json_out:  # whole or not at all: never a 0-byte file after a crash (the worst mistakes quote mail)
        atomic_write(json_out, json.dumps(result, ensure_ascii=False, indent=1))
    if html_out:
        _write_html(result, html_out, model, lang, config_path)
        click.echo(tr(f"Rapport : {html_out}", f"Report: {html_out}"))


def _write_html(result: dict[str, Any], html_out: str, model: Any, lang: str, config_path: str | None) -> None:
    """The HTML report, with the triage job's monitoring when its configuration is given."""
    from assoc_ai_core.api import write_report

    section = None
    if config_path:
        from assoc_ai_core.jobs.monitoring import monitor_from_config, monitoring_html
        from assoc_ai_core.trust.privacy import load_trust_config

        section = monitoring_html(monitor_from_config(load_trust_config(config_path)))
    write_report(result, html_out, model=model, lang=lang, monitoring=section)


def _summary(result: dict[str, Any], lang: str) -> str:
    """The console summary of ``evaluate``: what the mail was, the headline figures, then each category."""
    lines = [line for line in (_evaluated_on(result, lang),) if line]
    lines.append(tr(f"{result['n']} messages — exactitude {percent(result['accuracy'], lang)}, "
                    f"F1 macro {decimal(result['macro_f1'], 3, lang)}",
                    f"{result['n']} messages — accuracy {percent(result['accuracy'], lang)}, "
                    f"macro-F1 {decimal(result['macro_f1'], 3, lang)}", lang))
    at = result["at_threshold"]
    precision = (tr(", précision ", ", precision ", lang) + percent(at["auto_precision"], lang)
                 if at["auto_precision"] is not None else "")
    lines.append(tr(f"Au seuil du modèle : {percent(at['auto_share'], lang)} classé automatiquement{precision}",
                    f"At the model's threshold: {percent(at['auto_share'], lang)} routed automatically{precision}",
                    lang))
    colon = " : " if lang == "fr" else ": "
    cov = ", ".join(f"{decimal(float(k), 2, lang)}{colon}{percent(v, lang)}"
                    for k, v in result["coverage_at_precision"].items())
    lines.append(tr(f"Part automatisable par précision : {cov}", f"Share automatable by precision: {cov}", lang))
    width = max(len(k) for k in result["per_class"])
    lines.append(f"{'':{width}}  " + tr("précision  rappel  F1     n", "precision  recall  f1     n", lang))
    for label, m in result["per_class"].items():
        p, r, f = (decimal(m[k], 3, lang) for k in ("precision", "recall", "f1"))
        lines.append(f"{label:{width}}  {p}      {r}   {f}  {m['support']}")
    return "\n".join(lines)


def _evaluated_on(result: dict[str, Any], lang: str) -> str:
    """Whether the mail was seen at training (absent for models saved before the check existed)."""
    where = result.get("evaluated_on")
    share = percent(float((result.get("training_overlap") or {}).get("share") or 0.0), lang)
    if where == "held_out":
        return tr("Évalué sur du courrier non vu à l'entraînement.", "Evaluated on held-out mail.", lang)
    if where in ("training_data", "partly_training_data"):
        partly = where == "partly_training_data"
        return tr(f"Attention : évalué sur {'en partie ' if partly else ''}des données d'entraînement ({share}) : "
                  "les chiffres surestiment ce que le modèle fera sur du courrier nouveau.",
                  f"Warning: evaluated on {'partly ' if partly else ''}training data ({share}): the figures overstate "
                  "what the model will do on new mail.", lang)
    return ""


# ------------------------------------------------------------------- explain
@click.command(help=tr("Expliquer la décision du modèle pour un message, ou le modèle entier.",
                       "Explain the model's decision on one message, or the whole model."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@click.argument("path", required=False, type=click.Path(exists=True))
@_LANG
@option("--top", "top_k", type=click.IntRange(min=1), default=8, show_default=True,
        help=tr("Nombre de raisons montrées de chaque côté.", "Number of reasons shown on each side."))
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON au lieu du texte.", "JSON output instead of text."))
@option("--person", "person_id", default=None, help=tr("Identifiant d'une personne (modèles « personnes »).", "A person's id (people models)."))
@key_file_option
def explain(model_path: str, path: str | None, lang: str | None, top_k: int, as_json: bool, person_id: str | None,
            key_file: str | None) -> None:
    """Per-message reasons with signed weights, or the top terms of each category (``--key-file``: training key)."""
    people = people_commands()
    if people is not None and people.is_people_model(model_path):
        people.explain_task(model_path, path, person_id, lang or current_lang())
        return
    lang = lang or current_lang()
    model = load_mail_model(model_path)
    if path is None:
        _explain_whole_model(model, top_k, lang, as_json)
    else:
        with warnings_as_lines():
            _explain_messages(model, path, top_k, lang, as_json, sender_key_from(key_file))


def _explain_whole_model(model: Any, top_k: int, lang: str, as_json: bool) -> None:
    from assoc_ai_core.api import explain_model

    top = explain_model(model, top_k=top_k, lang=lang)
    if as_json:
        click.echo(json.dumps(top, ensure_ascii=False, indent=1))
        return
    for label, terms in top.items():
        click.echo(f"{label}: " + _weights(terms, lang))


def _explain_messages(model: Any, path: str, top_k: int, lang: str, as_json: bool, sender_key: Any = None) -> None:
    from assoc_ai_core.api import explain as run_explain
    from assoc_ai_core.api import iter_messages, reason_lines

    for msg in iter_messages(path, labelled=False):
        if msg.error:
            click.echo(tr(f"{msg.source} : illisible ({msg.error}) → à vérifier par une personne.",
                          f"{msg.source}: unreadable ({msg.error}) → to be checked by a person.", lang))
            continue
        exp = run_explain(model, msg, top_k=top_k, lang=lang, sender_key=sender_key)
        if as_json:
            click.echo(json.dumps({"source": msg.source, **exp.to_dict()}, ensure_ascii=False))
            continue
        click.echo(f"{msg.source}\n  {exp.sentence}")
        # each signed list under a heading that says what its sign means (negative: toward the runner-up)
        for line in reason_lines(exp, lang=lang):
            click.echo("  " + line)


def _weights(terms: Sequence[tuple[str, float]], lang: str) -> str:
    """Terms with their signed weights, in the language's number format (``adhésion (+1,34)``)."""
    return ", ".join(f"{t} ({signed(w, 2, lang)})" for t, w in terms)


# ---------------------------------------------------------------------- demo
@click.command(help=tr(
    "Démonstration de bout en bout sur la boîte d'exemple : apprendre, classer, expliquer, rapport HTML.",
    "End-to-end demo on the example mailbox: learn, classify, explain, HTML report.",
))
@click.argument("mailbox", type=click.Path(exists=True, file_okay=False), default="examples/mailbox")
@option("--out", "out_dir", type=click.Path(file_okay=False), default="assoc-ai-demo", show_default=True,
        help=tr("Dossier où écrire le modèle, les prédictions et le rapport.",
                "Folder to write the model, predictions and report to."))
@_LANG
def demo(mailbox: str, out_dir: str, lang: str | None) -> None:
    """Train on MAILBOX/train, classify MAILBOX/new, write the model and report in --out."""
    from assoc_ai_core.api import load_dataset, write_report
    from assoc_ai_core.api import train as train_model
    from assoc_ai_core.persistence import load_model, save_model

    lang = lang or current_lang()
    root = Path(mailbox)
    train_dir, new_dir = root / "train", root / "new"
    if not train_dir.is_dir() or not new_dir.is_dir():
        raise DataError(tr(f"{root} doit contenir train/ (un dossier par catégorie) et new/.",
                           f"{root} must hold train/ (one folder per category) and new/.", lang))
    out = private_dir(out_dir)  # the model and the predictions hold the mailbox's words
    ds = load_dataset(train_dir)
    _report_problems(ds.problems)
    labelled = ds.labelled()
    click.echo(tr(f"1. Apprentissage sur {len(labelled)} messages triés ({train_dir})…",
                  f"1. Learning from {len(labelled)} sorted messages ({train_dir})…", lang))
    model_path = save_model(train_model(labelled), out / "model.skops")
    model = load_model(model_path)  # what a scheduled job would do: the saved file, not the object in memory
    md = model.metadata_
    click.echo(tr(
        f"   validation croisée : F1 macro {decimal(md['cv_macro_f1'], 2, lang)} ; à 95 % de précision, "
        f"{percent(md['expected_auto_share'], lang)} classé automatiquement.",
        f"   cross-validation: macro-F1 {decimal(md['cv_macro_f1'], 2, lang)}; at 95% precision, "
        f"{percent(md['expected_auto_share'], lang)} routed automatically.", lang))
    click.echo(tr(f"2. Classement du nouveau courrier ({new_dir}) :", f"2. Classifying new mail ({new_dir}):", lang))
    rows = classify_paths(model, [str(new_dir)], lang=lang)
    click.echo(format_table(rows, lang))
    atomic_write(out / "predictions.json", json.dumps(rows, ensure_ascii=False, indent=1))
    result = _score_against_expected(model, new_dir, rows, lang) or {"n": 0}
    report = out / "report.html"
    write_report(result, report, model=model, lang=lang, predictions=rows)
    click.echo(tr(f"3. Rapport HTML : {report}", f"3. HTML report: {report}", lang))


def _score_against_expected(model: Any, new_dir: Path, rows: Sequence[dict[str, Any]], lang: str) -> dict[str, Any] | None:
    """How the demo did against ``new/EXPECTED.csv`` (a line, and the evaluation for the report), if present."""
    import csv
    from dataclasses import replace

    from assoc_ai_core.api import evaluate as run_eval
    from assoc_ai_core.api import load_dataset

    expected = new_dir / "EXPECTED.csv"
    if not expected.is_file():
        return None
    with expected.open(encoding="utf-8") as fh:
        truth = {r["file"]: r["category"] for r in csv.DictReader(fh)}
    scored = [(Path(str(r["source"])).name, r) for r in rows]
    known = [(n, r) for n, r in scored if truth.get(n) not in (None, "review")]
    right = sum(1 for n, r in known if r["category"] == truth[n])
    click.echo(tr(f"   {right}/{len(known)} corrects par rapport à EXPECTED.csv.",
                  f"   {right}/{len(known)} correct against EXPECTED.csv.", lang))
    msgs = load_dataset(new_dir, labelled=False).messages
    labelled_new = [replace(m, label=truth[Path(str(m.source)).name]) for m in msgs
                    if truth.get(Path(str(m.source)).name) not in (None, "review") and m.error is None]
    if not labelled_new:
        return None
    result = run_eval(model, labelled_new, lang=lang)
    result["protocol"] = "examples/mailbox/new"
    return result
