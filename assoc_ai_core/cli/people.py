"""Command-line glue for people data: the ``assoc-ai people ...`` group and the functions behind
``assoc-ai train/evaluate/predict/explain`` when the task or the model is a people one.

Importing this module needs only click; pandas, scikit-learn and friends are
imported when a command runs.  ``DATA`` is a folder of CSV/Excel exports, one
export file, or a TOML configuration with a ``[crm]`` section.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from assoc_ai_core.cli.common import ErrorReportingGroup, lang_option, option
from assoc_ai_core.cli.people_files import input_files, write_csv, write_json, write_rows
from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import current_lang, decimal, percent, signed, tr

__all__ = ["people", "train_task", "evaluate_task", "predict_task", "explain_task", "is_people_model"]


def is_people_model(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a people model file (so ``assoc-ai evaluate/predict/explain`` route here)."""
    from assoc_ai_core.people.store import is_people_model as check

    return check(path)


def _say(text: str) -> None:
    click.echo(text, err=True)


def _problems(people: Any) -> None:
    if people.problems:
        _say(tr(f"{len(people.problems)} ligne(s) illisible(s) ignorée(s) (voir « assoc-ai people clean »).",
                f"{len(people.problems)} unreadable row(s) skipped (see 'assoc-ai people clean')."))


# ------------------------------------------------------------------ train
def train_task(
    task: str,
    data: str,
    output: str,
    *,
    horizon: int = 12,
    kind: str = "logistic",
    json_out: str | None = None,
    html_out: str | None = None,
    lang: str | None = None,
    as_of: str | None = None,
) -> Any:
    """Train a people model for ``task`` on ``data``, save it to ``output``, print the chronological check.

    ``as_of`` (a campaign's date) learns the response to that one campaign, checked out of fold.
    """
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.matching import TASK as MATCHING_TASK
    from assoc_ai_core.people.matching import train_matching
    from assoc_ai_core.people.store import save_people_model
    from assoc_ai_core.people.tasks import get_task, train_people_model

    lang = lang or current_lang()
    people = load_people(data)
    _problems(people)
    if task in (MATCHING_TASK, "matching", "volunteers"):
        model = train_matching(people)
    else:
        spec = get_task(task)
        model = train_people_model(people, spec.name, horizon_months=horizon, kind=kind, as_of=as_of)
    save_people_model(model, output)
    ev = model.metadata_.get("evaluation", {})
    m = ev.get("metrics") or {}
    click.echo(tr(f"Modèle écrit : {output} ({model.metadata_['model_version']})",
                  f"Model written: {output} ({model.metadata_['model_version']})", lang))
    campaign = (ev.get("protocol") or {}).get("kind") == "campaign"
    check_fr = "Vérification hors échantillon (validation croisée)" if campaign else "Vérification chronologique"
    check_en = "Out-of-fold check (cross-validation)" if campaign else "Chronological check"
    if m.get("roc_auc") is not None:
        click.echo(tr(
            f"{check_fr} sur {m['n']} personnes : AUC {decimal(m['roc_auc'], 3, 'fr')}, "
            f"Brier {decimal(m['brier'], 3, 'fr')}, "
            f"taux réel {percent(m['base_rate'], lang)}, probabilité moyenne {percent(m['mean_prediction'], lang)}.",
            f"{check_en} on {m['n']} people: AUC {decimal(m['roc_auc'], 3, lang)}, "
            f"Brier {decimal(m['brier'], 3, lang)}, "
            f"actual rate {percent(m['base_rate'], lang)}, mean probability {percent(m['mean_prediction'], lang)}.", lang))
    for warning in (ev.get("fairness") or {}).get("warnings", []):
        _say(warning)
    if json_out:
        write_json(json_out, ev)
    if html_out:
        from assoc_ai_core.people.report import write_people_report

        write_people_report(html_out, ev, lang=lang)
        click.echo(tr(f"Rapport : {html_out}", f"Report: {html_out}", lang))
    return model


# --------------------------------------------------------------- evaluate
def evaluate_task(model_path: str, data: str, json_out: str | None = None, html_out: str | None = None,
                  lang: str | None = None, *, fiscal_year_start: str | None = None) -> dict[str, Any]:
    """Measure a people model on ``data`` (latest complete period) and write JSON / HTML if asked.

    ``fiscal_year_start`` (``"MM-DD"``) places the years of the retention table.
    """
    from assoc_ai_core.people.matching import TASK as MATCHING_TASK
    from assoc_ai_core.people.retention import retention_history
    from assoc_ai_core.people.store import load_people_model
    from assoc_ai_core.people.tasks import evaluate_people_model

    lang = lang or current_lang()
    model = load_people_model(model_path)
    if model.task == MATCHING_TASK:
        result = dict(model.metadata_.get("evaluation", {}))
    else:
        result = evaluate_people_model(model, data, lang=lang)
    m = result.get("metrics") or {}
    if m.get("roc_auc") is not None:
        click.echo(tr(f"{m['n']} personnes : AUC {decimal(m['roc_auc'], 3, 'fr')}, Brier {decimal(m['brier'], 3, 'fr')}, "
                      f"précision moyenne {decimal(m['average_precision'], 3, 'fr')}.",
                      f"{m['n']} people: AUC {decimal(m['roc_auc'], 3, lang)}, Brier {decimal(m['brier'], 3, lang)}, "
                      f"average precision {decimal(m['average_precision'], 3, lang)}.", lang))
    if result.get("in_sample"):
        _say(tr("Attention : cette période a servi à l'apprentissage ; les chiffres honnêtes sont ceux de la "
                "vérification chronologique (clé « chronological »).",
                "Warning: this period was used in training; the honest figures are the chronological check "
                "(key 'chronological').", lang))
    for warning in (result.get("fairness") or {}).get("warnings", []):
        _say(warning)
    retention: list[Any] = []
    try:
        retention = retention_history(data, fiscal_year_start=fiscal_year_start)
        result["retention"] = [r.to_dict() for r in retention]
    except DataError:
        pass
    if json_out:
        write_json(json_out, result)
    if html_out:
        from assoc_ai_core.people.report import write_people_report

        write_people_report(html_out, result, retention=retention, lang=lang)
        click.echo(tr(f"Rapport : {html_out}", f"Report: {html_out}", lang))
    return result


# ---------------------------------------------------------------- predict
def predict_task(model_path: str, data: str, output: str | None = None, *, as_of: str | None = None,
                 top: int | None = None, lang: str | None = None, as_json: bool = False) -> Any:
    """Score ``data`` with a people model; write every row to ``output`` (CSV), else print them (the best ``top``).

    ``as_json`` prints one JSON object per person instead of the plain lines.
    """
    from assoc_ai_core.people.matching import TASK as MATCHING_TASK
    from assoc_ai_core.people.store import load_people_model
    from assoc_ai_core.people.tasks import predict_people

    lang = lang or current_lang()
    model = load_people_model(model_path)
    if model.task == MATCHING_TASK:
        raise DataError(tr("Pour un modèle d'appariement, utilisez « assoc-ai people match DONNÉES --mission ID --model MODÈLE ».",
                           "For a matching model, use 'assoc-ai people match DATA --mission ID --model MODEL'.", lang))
    frame = predict_people(model, data, as_of=as_of, lang=lang)
    excluded = frame.attrs.get("excluded_do_not_profile", 0)
    _say(tr(f"{len(frame)} personnes notées au {frame.attrs.get('as_of', '?')} ; {excluded} exclue(s) (opposition au profilage).",
            f"{len(frame)} people scored as of {frame.attrs.get('as_of', '?')}; {excluded} left out (objected to profiling).", lang))
    if output:
        write_csv(frame, output, lang)
        click.echo(tr(f"Scores écrits : {output}", f"Scores written: {output}", lang))
        return frame
    shown = frame if top is None else frame.head(top)
    if as_json:
        for record in json.loads(shown.to_json(orient="records", force_ascii=False)):  # numpy values as JSON's
            click.echo(json.dumps(record, ensure_ascii=False))
    else:
        for row in shown.itertuples(index=False):
            click.echo(f"{row.person_id:<12} {row.explanation}")
    if top is not None and len(frame) > top:
        _say(tr(f"… {len(frame) - top} autre(s) : sans --top, toutes les personnes sont affichées.",
                f"… {len(frame) - top} more: without --top, everyone is shown.", lang))
    return frame


# ---------------------------------------------------------------- explain
def explain_task(model_path: str, data: str | None, person_id: str | None, lang: str | None = None) -> Any:
    """Explain one person's score (``person_id``), or the model as a whole when no person is given."""
    from assoc_ai_core.people.store import load_people_model
    from assoc_ai_core.people.tasks import explain_person

    lang = lang or current_lang()
    model = load_people_model(model_path)
    if person_id is None:
        md = model.metadata_
        click.echo(tr(f"Modèle {md.get('model_version')} — ce qui compte (effet d'un écart-type, en log-cotes) :",
                      f"Model {md.get('model_version')} — what matters (effect of one standard deviation, log-odds):", lang))
        for name, w in (md.get("weights") or model.global_weights()).items():
            click.echo(f"  {'+' if w > 0 else '−'} {name:<28} {signed(w, 3, lang)}")
        perm = (md.get("evaluation") or {}).get("permutation_importance") or {}
        if perm:
            click.echo(tr("Importance par permutation (perte d'AUC) :", "Permutation importance (AUC drop):", lang))
            for name, v in list(perm.items())[:8]:
                click.echo(f"  {name:<30} {signed(v, 4, lang)}")
        return md.get("weights")
    if not data:
        raise DataError(tr("Indiquez les DONNÉES pour expliquer le score d'une personne.",
                           "Give the DATA to explain a person's score.", lang))
    exp = explain_person(model, data, person_id, lang=lang)
    click.echo(f"{exp.person_id}: {exp.sentence}")
    click.echo(tr(f"  point de départ (personne moyenne) : {percent(exp.baseline, lang)}",
                  f"  starting point (average person): {percent(exp.baseline, lang)}", lang))
    for f in exp.factors:
        click.echo(f"  {f.sign} {f.text:<50} {signed(f.contribution, 3, lang)}")
    if not exp.exact:
        click.echo(tr("  (modèle à arbres : effets « et si » approchés, non additifs)",
                      "  (tree model: approximate what-if effects, not additive)", lang))
    return exp


# ------------------------------------------------------------------ group
class _PeopleGroup(ErrorReportingGroup):
    """The ``people`` group: same error handling as the main command line (also when used on its own)."""


_LANG = lang_option
_DATA = click.argument("data", type=click.Path(exists=True))
_FISCAL = option(
    "--fiscal-year-start", "fiscal_year_start", default=None, metavar="MM-JJ",
    help=tr("Premier jour de l'exercice (MM-JJ, ex. 07-01, ou numéro du mois ; défaut : 01-01, année civile).",
            "First day of the fiscal year (MM-DD, e.g. 07-01, or the month number; default: 01-01, calendar year)."))
_EXPORTED = option(
    "--exported", default=None, metavar="AAAA-MM-JJ",
    help=tr("Date de l'export : une année n'est complète que si elle finit avant (défaut : le lendemain de la "
            "dernière date des données).",
            "Date of the export: a year is complete only if it ends before it (default: the day after the data's "
            "last date)."))


_SCHEDULER = option(
    "--scheduler", default=None, metavar="ADRESSE",
    help=tr("Lire les dons par morceaux avec Dask : « threads » (ce poste), « synchronous », ou l'adresse d'un "
            "cluster (tcp://...). Sans cette option, les gros exports (et les dons en Parquet) sont lus par morceaux "
            "sur ce poste.",
            "Read the gifts in partitions with Dask: 'threads' (this machine), 'synchronous', or a cluster's address "
            "(tcp://...). Without it, large exports (and gifts in Parquet) are read in partitions on this machine."))


def _out_of_core(data: str, scheduler: str | None, lang: str | None) -> bool:
    """Whether to read the gifts in partitions (asked for, or the export is large); says so on stderr."""
    from assoc_ai_core.people.outofcore import use_out_of_core

    if not scheduler and not use_out_of_core(data):
        return False
    where = scheduler or "threads"
    _say(tr(f"Dons lus par morceaux avec Dask ({where}).", f"Gifts read in partitions with Dask ({where}).", lang))
    return True


@click.group(cls=_PeopleGroup, help=tr(
    "Données de personnes (donateurs, adhérents, bénévoles) : nettoyer, dédoublonner, fidélisation, équité, notation.",
    "People data (donors, members, volunteers): clean, de-duplicate, retention, fairness, scoring.",
))
def people() -> None:
    """The ``assoc-ai people`` command group."""


@people.command("train", help=tr("Entraîner un modèle pour une tâche (donor-propensity, membership-churn, "
                                 "lapsed-reactivation, volunteer-matching).",
                                 "Train a model for a task (donor-propensity, membership-churn, lapsed-reactivation, "
                                 "volunteer-matching)."))
@option("--task", required=True, help=tr("La tâche à apprendre.", "The task to learn."))
@_DATA
@option("-o", "--output", required=True, type=click.Path(), help=tr("Fichier du modèle (.skops).", "Model file (.skops)."))
@option("--horizon", type=int, default=12, show_default=True, help=tr("Horizon en mois.", "Horizon in months."))
@option("--kind", type=click.Choice(["logistic", "boosting"]), default="logistic", show_default=True,
        help=tr("Modèle linéaire (explications exactes) ou à arbres.", "Linear model (exact explanations) or trees."))
@option("--as-of", default=None, metavar="AAAA-MM-JJ",
        help=tr("Date d'une campagne : apprendre qui y a répondu dans l'horizon (vérifié par validation croisée).",
                "Date of a campaign: learn who answered it within the horizon (checked by cross-validation)."))
@option("--json", "json_out", type=click.Path(), help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))
@option("--html", "html_out", type=click.Path(), help=tr("Écrire aussi un rapport HTML dans ce fichier.", "Also write an HTML report to this file."))
@_LANG
def train_cmd(task: str, data: str, output: str, horizon: int, kind: str, as_of: str | None, json_out: str | None,
              html_out: str | None, lang: str | None) -> None:
    """Train and save a people model."""
    train_task(task, data, output, horizon=horizon, kind=kind, json_out=json_out, html_out=html_out, lang=lang,
               as_of=as_of)


@people.command("evaluate", help=tr("Mesurer un modèle sur la dernière période complète des données (JSON, rapport HTML).",
                                    "Measure a model on the latest complete period of the data (JSON, HTML report)."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@_DATA
@option("--json", "json_out", type=click.Path(), help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))
@option("--html", "html_out", type=click.Path(), help=tr("Écrire aussi un rapport HTML dans ce fichier.", "Also write an HTML report to this file."))
@_FISCAL
@_LANG
def evaluate_cmd(model_path: str, data: str, json_out: str | None, html_out: str | None, fiscal_year_start: str | None,
                 lang: str | None) -> None:
    """Evaluate a people model; ``--fiscal-year-start`` places the years of the retention table."""
    evaluate_task(model_path, data, json_out, html_out, lang=lang, fiscal_year_start=fiscal_year_start)


@people.command("clean", help=tr("Rapport de qualité des données ; avec -o, écrit une copie nettoyée des personnes.",
                                 "Data-quality report; with -o, writes a cleaned copy of the people."))
@_DATA
@option("-o", "--output", type=click.Path(), help=tr("CSV des personnes nettoyées (jamais l'export d'origine).",
                                                           "CSV of cleaned people (never the original export)."))
@option("--json", "json_out", type=click.Path(), help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))
@_LANG
def clean_cmd(data: str, output: str | None, json_out: str | None, lang: str | None) -> None:
    """Quality report and cleaned people."""
    from assoc_ai_core.people.cleaning import clean_people
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.quality import quality_report

    lang = lang or current_lang()
    ppl = load_people(data)
    report = quality_report(ppl, lang=lang)
    click.echo(report.to_text(lang))
    if json_out:
        write_json(json_out, report.to_dict())
    if output:
        out = Path(output).resolve()
        if out in input_files(data):
            raise DataError(tr("-o ne peut pas être un des exports d'origine : choisissez un autre nom de fichier.",
                               "-o cannot be one of the original exports: choose another file name.", lang))
        cleaned, issues = clean_people(ppl.persons)
        fields = ["source", "source_id", "first_name", "last_name", "email", "phone", "postcode", "city", "birth_year",
                  "gender", "do_not_profile"]
        write_rows(out, [*fields, "issues"],
                    ([getattr(p, f) for f in fields] + [" ".join(issues.get(p.key, []))] for p in cleaned))
        click.echo(tr(f"Personnes nettoyées : {out}", f"Cleaned people: {out}", lang))


@people.command("dedupe", help=tr("Proposer des fusions de doublons probables (rien n'est fusionné).",
                                  "Propose merges of probable duplicates (nothing is merged)."))
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True))
@option("--threshold", type=float, default=0.8, show_default=True,
        help=tr("Ressemblance minimale pour proposer une fusion (0 à 1).", "Least likeness to propose a merge (0 to 1)."))
@option("-o", "--output", type=click.Path(), help=tr("CSV des propositions.", "CSV of the proposals."))
@_LANG
def dedupe_cmd(data: tuple[str, ...], threshold: float, output: str | None, lang: str | None) -> None:
    """Probable duplicates across one or more sources."""
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.dedupe import find_duplicates

    lang = lang or current_lang()
    persons = []
    for i, source in enumerate(data):
        ppl = load_people(source)
        # two exports both read by the files connector would share the source name: tell them apart
        persons += [dataclasses.replace(p, source=f"{p.source}{i + 1}" if len(data) > 1 else p.source) for p in ppl.persons]
    proposals = find_duplicates(persons, threshold=threshold)
    click.echo(tr(f"{len(proposals)} fusion(s) proposée(s) sur {len(persons)} personnes — à confirmer par une personne.",
                  f"{len(proposals)} merge(s) proposed among {len(persons)} people — for a person to confirm.", lang))
    for m in proposals[:30]:
        click.echo(f"  {m.left} ≈ {m.right}  {percent(m.score, lang)}  ({', '.join(m.reasons)})")
    from assoc_ai_core.people.dedupe import NAME_ONLY_CAP

    capped = sum(m.name_only for m in proposals)
    if capped:
        _say(tr(f"{capped} proposition(s) « name_only » : seul le nom concorde, score plafonné à "
                f"{percent(NAME_ONLY_CAP, lang)} (homonymes possibles) ; vérifiez avant de fusionner.",
                f"{capped} 'name_only' proposal(s): only the name agrees, score capped at "
                f"{percent(NAME_ONLY_CAP, lang)} (possible namesakes); check before merging.", lang))
    if output:
        write_rows(output, ["left", "right", "score", "reasons", "decision"],
                    ([m.left, m.right, f"{m.score:.3f}", " ".join(m.reasons), ""] for m in proposals))
        click.echo(tr(f"Propositions : {output} (colonne « decision » à remplir : fusionner / distinct).",
                      f"Proposals: {output} (fill in the 'decision' column: merge / distinct).", lang))


@people.command("retention", help=tr("Rapport de fidélisation des donateurs (définitions FEP).",
                                     "Donor retention report (FEP definitions)."))
@_DATA
@option("--year", type=int, default=None,
        help=tr("Exercice étudié, nommé par l'année où il commence (défaut : le dernier exercice complet).",
                "Fiscal year studied, named by the year it starts in (default: the last complete one)."))
@option("--history", type=int, default=0, help=tr("Nombre d'années à tabuler.", "Number of years to tabulate."))
@_FISCAL
@_EXPORTED
@option("--json", "json_out", type=click.Path(), help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))
@option("--html", "html_out", type=click.Path(), help=tr("Écrire aussi un rapport HTML dans ce fichier.", "Also write an HTML report to this file."))
@_LANG
@_SCHEDULER
def retention_cmd(data: str, year: int | None, history: int, fiscal_year_start: str | None, exported: str | None,
                  json_out: str | None, html_out: str | None, lang: str | None, scheduler: str | None) -> None:
    """FEP retention and gain/loss."""
    lang = lang or current_lang()
    if _out_of_core(data, scheduler, lang):
        from assoc_ai_core.people.outofcore import retention_reports_out_of_core

        report, history_reports = retention_reports_out_of_core(
            data, year=year, history=history, fiscal_year_start=fiscal_year_start, exported=exported,
            scheduler=scheduler)
        click.echo(report.to_text(lang))
        reports = history_reports if history else [report]
    else:
        from assoc_ai_core.people.dataset import load_people
        from assoc_ai_core.people.retention import retention_history, retention_report

        ppl = load_people(data)
        report = retention_report(ppl, year=year, fiscal_year_start=fiscal_year_start, exported=exported)
        click.echo(report.to_text(lang))
        reports = (retention_history(ppl, years=history, fiscal_year_start=fiscal_year_start, exported=exported)
                   if history else [report])
    if json_out:
        write_json(json_out, [r.to_dict() for r in reports])
    if html_out:
        from assoc_ai_core.people.report import write_people_report

        write_people_report(html_out, None, retention=reports, lang=lang)
        click.echo(tr(f"Rapport : {html_out}", f"Report: {html_out}", lang))


@people.command("fairness", help=tr("Taux par groupe (genre déclaré, âge, département) au seuil du modèle.",
                                    "Rates by group (declared gender, age, département) at the model's threshold."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@_DATA
@option("--attribute", "attributes", multiple=True, default=("gender", "age_band", "department"), show_default=True,
        help=tr("Attribut comparé entre groupes (répétable).", "Attribute compared between groups (repeatable)."))
@option("--bound", type=float, default=0.1, show_default=True, help=tr("Écart toléré.", "Gap tolerated."))
@option("--min-group", type=int, default=20, show_default=True,
        help=tr("Taille minimale d'un groupe comparé.", "Smallest group compared."))
@option("--json", "json_out", type=click.Path(), help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))
@_LANG
def fairness_cmd(model_path: str, data: str, attributes: tuple[str, ...], bound: float, min_group: int,
                 json_out: str | None, lang: str | None) -> None:
    """Fairness of a people model on the latest complete period of DATA."""
    from assoc_ai_core.people.fairness import fairness_report, sensitive_attributes
    from assoc_ai_core.people.store import load_people_model
    from assoc_ai_core.people.tasks import latest_period_examples

    lang = lang or current_lang()
    model = load_people_model(model_path)
    ppl, X, y, when = latest_period_examples(model, data)
    if not len(X):
        raise DataError(tr("Personne à évaluer à cette date.", "Nobody to evaluate at this date.", lang))
    attrs = sensitive_attributes(ppl, X.index.get_level_values("person_id"), when, attributes)
    report = fairness_report(y.to_numpy(), model.predict_proba(X)[:, 1], attrs, threshold=float(model.threshold_),
                             bound=bound, min_group_size=min_group, lang=lang)
    for a in report.attributes:
        click.echo(f"{a.attribute}:")
        for g in a.groups:
            flag = "" if g["compared"] else tr("  (trop petit, non comparé)", "  (too small, not compared)", lang)
            click.echo(f"  {g['group']:<12} n={g['n']:<5} " + "  ".join(
                f"{short}={percent(g[k], lang) if g[k] is not None else '—'}" for short, k in
                (("sel", "selection_rate"), ("tpr", "true_positive_rate"), ("fpr", "false_positive_rate"),
                 ("err", "error_rate"))) + flag)
    for w in report.warnings:
        _say(w)
    if json_out:
        write_json(json_out, report.to_dict())


@people.command("features", help=tr("Écrire la table des caractéristiques (une ligne par personne) à une date.",
                                    "Write the feature table (one row per person) as of a date."))
@_DATA
@option("-o", "--output", required=True, type=click.Path(), help=tr("Fichier de la table.", "Table file."))
@option("--as-of", default=None, help=tr("Date de référence (AAAA-MM-JJ ; défaut : la fin des données).",
                                         "Reference date (YYYY-MM-DD; default: the end of the data)."))
@_FISCAL
@_SCHEDULER
def features_cmd(data: str, output: str, as_of: str | None, fiscal_year_start: str | None,
                 scheduler: str | None) -> None:
    """Feature table for large-scale scoring."""
    from assoc_ai_core.people.features import parse_fiscal_year_start

    if _out_of_core(data, scheduler, None):
        from assoc_ai_core.people.outofcore import write_feature_table_out_of_core

        path = write_feature_table_out_of_core(data, output, as_of=as_of, scheduler=scheduler,
                                               fiscal_year_start=parse_fiscal_year_start(fiscal_year_start))
    else:
        from assoc_ai_core.people.scoring import write_feature_table

        path = write_feature_table(data, output, as_of=as_of,
                                   fiscal_year_start=parse_fiscal_year_start(fiscal_year_start))
    click.echo(tr(f"Table écrite : {path}", f"Table written: {path}"))


@people.command("score", help=tr("Noter une grande table de caractéristiques en parallèle (Dask).",
                                 "Score a large feature table in parallel (Dask)."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@click.argument("table", type=click.Path(exists=True))
@option("-o", "--output", required=True, type=click.Path(), help=tr("Fichier des scores.", "Scores file."))
@option("--scheduler", default="local", show_default=True,
              help=tr("local, synchronous ou l'adresse d'un cluster (tcp://...).", "local, synchronous or a cluster address (tcp://...)."))
@option("--workers", type=int, default=2, show_default=True, help=tr("Processus en parallèle.", "Parallel processes."))
@option("--blocksize", default="32MB", show_default=True, help=tr("Taille d'un bloc lu.", "Size of a block read."))
def score_cmd(model_path: str, table: str, output: str, scheduler: str, workers: int, blocksize: str) -> None:
    """Out-of-core scoring."""
    from assoc_ai_core.people.scoring import score_table

    result = score_table(model_path, table, output, scheduler=scheduler, n_workers=workers, blocksize=blocksize)
    rate = f"{result.rows_per_second:,.0f}"
    click.echo(tr(f"{result.rows} lignes notées en {decimal(result.seconds, 1)} s ({rate.replace(',', ' ')} lignes/s) → {result.output}",
                  f"{result.rows} rows scored in {result.seconds:.1f} s ({rate} rows/s) → {result.output}"))


@people.command("match", help=tr("Classer les bénévoles pour une mission, avec les raisons.",
                                 "Rank volunteers for a mission, with the reasons."))
@_DATA
@option("--mission", required=True, help=tr("Identifiant de la mission.", "The mission's id."))
@option("--model", "model_path", type=click.Path(exists=True), default=None,
        help=tr("Modèle d'appariement appris (sinon : règles simples).", "Trained matching model (else: simple rules)."))
@option("--top", type=click.IntRange(min=1), default=10, show_default=True,
        help=tr("Nombre de bénévoles proposés.", "Number of volunteers proposed."))
@option("--as-of", default=None, help=tr("Date de référence (AAAA-MM-JJ).", "Reference date (YYYY-MM-DD)."))
@_LANG
def match_cmd(data: str, mission: str, model_path: str | None, top: int, as_of: str | None, lang: str | None) -> None:
    """Volunteer–mission matching."""
    from assoc_ai_core.people.matching import rank_volunteers
    from assoc_ai_core.people.store import load_people_model

    lang = lang or current_lang()
    model = load_people_model(model_path) if model_path else None
    ranked = rank_volunteers(data, mission, model=model, top_k=top, as_of=as_of, lang=lang)
    if not ranked:
        click.echo(tr("Aucun bénévole connu à cette date.", "No volunteer known at this date.", lang))
    for e in ranked:
        click.echo(f"{e.person_id:<12} {e.sentence}")


@people.command("write-scores", help=tr("Noter les personnes du CRM et y écrire les scores (simulation par défaut).",
                                        "Score the CRM's people and write the scores back (dry run by default)."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True))
@option("--apply", "apply_", is_flag=True, help=tr("Écrire vraiment (sinon : seulement le différentiel).",
                                                          "Really write (otherwise: only the diff)."))
@option("--json", "json_out", type=click.Path(), help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))
@_LANG
def write_scores_cmd(model_path: str, config_path: str, apply_: bool, json_out: str | None, lang: str | None) -> None:
    """Predict from the CRM configured in CONFIG and write the scores through its connector."""
    from assoc_ai_core.people.dataset import connector_from_config, load_people
    from assoc_ai_core.people.store import load_people_model
    from assoc_ai_core.people.tasks import predict_people, scores_from_predictions

    lang = lang or current_lang()
    model = load_people_model(model_path)
    connector = connector_from_config(config_path)
    ppl = load_people(connector)
    frame = predict_people(model, ppl, lang=lang)
    scores = scores_from_predictions(model, frame, source=connector.id)
    with connector:
        connector.ensure_fields(task=model.task, dry_run=not apply_)
        report = connector.write_scores(scores, dry_run=not apply_)
    c = report.counts
    verb = tr("écrits", "written", lang) if apply_ else tr("à écrire (simulation)", "to write (dry run)", lang)
    click.echo(tr(f"Scores {verb} : {c['create']} nouveaux, {c['update']} modifiés, {c['unchanged']} inchangés, "
                  f"{c['skipped']} ignorés → {report.target}",
                  f"Scores {verb}: {c['create']} new, {c['update']} changed, {c['unchanged']} unchanged, "
                  f"{c['skipped']} skipped → {report.target}", lang))
    if not apply_ and report.changed:
        click.echo(tr("Relancez avec --apply pour écrire.", "Run again with --apply to write.", lang))
    if json_out:
        write_json(json_out, report.to_dict())


from assoc_ai_core.cli.people_value import register_value_commands  # noqa: E402  (the group must exist first)

register_value_commands(people)

if __name__ == "__main__":  # pragma: no cover - python -m assoc_ai_core.cli.people
    people(sys.argv[1:])
