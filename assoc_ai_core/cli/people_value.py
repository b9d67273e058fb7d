"""The money side of the people commands: ``people value``, ``people select`` and ``people bgbb``.

``value`` fits the gift-value (gamma-gamma) model, ``select`` picks who to
contact for an appeal by expected net (probability × expected gift − cost),
``bgbb`` fits the BG/BB repeat-giving model on yearly opportunities and
checks it on later years.  Registered on the ``people`` group by
:func:`register_value_commands`; importing this module needs only click.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from assoc_ai_core.cli.common import ErrorReportingGroup, lang_option, option
from assoc_ai_core.cli.people_files import input_files, write_csv, write_json
from assoc_ai_core.errors import DataError
from assoc_ai_core.i18n import current_lang, decimal, tr

__all__ = ["register_value_commands", "value_cmd", "select_cmd", "bgbb_cmd", "value_group"]

_DATA = click.argument("data", type=click.Path(exists=True))
_FISCAL = option(
    "--fiscal-year-start", "fiscal_year_start", default=None, metavar="MM-JJ",
    help=tr("Premier jour de l'exercice (MM-JJ, ex. 07-01 ; défaut : 01-01, année civile).",
            "First day of the fiscal year (MM-DD, e.g. 07-01; default: 01-01, calendar year)."))
_AS_OF = option("--as-of", default=None, help=tr("Date de référence (AAAA-MM-JJ ; défaut : la fin des données).",
                                                 "Reference date (YYYY-MM-DD; default: the end of the data)."))
_JSON = option("--json", "json_out", type=click.Path(),
               help=tr("Écrire aussi le résultat en JSON dans ce fichier.", "Also write the result as JSON to this file."))


def register_value_commands(group: click.Group) -> None:
    """Add ``value``, ``select`` and ``bgbb`` to the ``people`` group."""
    for command in (value_cmd, select_cmd, bgbb_cmd):
        group.add_command(command)


def _not_an_export(output: str, data: str, lang: str) -> None:
    from pathlib import Path

    if Path(output).resolve() in input_files(data):
        raise DataError(tr("-o ne peut pas être un des exports d'origine : choisissez un autre nom de fichier.",
                           "-o cannot be one of the original exports: choose another file name.", lang))


@click.command("value", help=tr("Apprendre le montant attendu d'un don (modèle gamma-gamma) et l'enregistrer.",
                                "Learn the expected amount of a gift (gamma-gamma model) and save it."))
@_DATA
@option("-o", "--output", required=True, type=click.Path(), help=tr("Fichier du modèle (.skops).", "Model file (.skops)."))
@_AS_OF
@_FISCAL
@lang_option
def value_cmd(data: str, output: str, as_of: str | None, fiscal_year_start: str | None, lang: str | None) -> None:
    """Fit and save a gift-value model on the gifts made before the reference date."""
    from assoc_ai_core.people.dataset import load_people
    from assoc_ai_core.people.features import as_timestamp, build_features
    from assoc_ai_core.people.tasks import data_end
    from assoc_ai_core.people.value import GiftValueModel, save_value_model

    lang = lang or current_lang()
    frames = load_people(data).frames()
    t = as_timestamp(as_of) if as_of else data_end(frames)
    model = GiftValueModel().fit(build_features(frames, t, fiscal_year_start=fiscal_year_start))
    save_value_model(model, output)
    params = model.params()
    click.echo(tr(f"Modèle de montant écrit : {output} ({model.n_donors_} donateurs ; don attendu d'un donateur inconnu "
                  f"{decimal(params['population_mean'], 2, lang)} ; p={decimal(params['p'], 3, lang)}, "
                  f"q={decimal(params['q'], 3, lang)}, gamma={decimal(params['gamma'], 3, lang)}).",
                  f"Gift-value model written: {output} ({model.n_donors_} donors; expected gift of an unknown donor "
                  f"{params['population_mean']:.2f}; p={params['p']:.3f}, q={params['q']:.3f}, "
                  f"gamma={params['gamma']:.3f}).", lang))


@click.command("select", help=tr("Choisir qui solliciter : probabilité × don attendu − coût du contact > 0.",
                                 "Choose who to contact: probability × expected gift − contact cost > 0."))
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True))
@_DATA
@option("--cost", type=click.FloatRange(min=0), required=True,
        help=tr("Coût d'un contact (courrier, appel...).", "Cost of one contact (letter, call...)."))
@option("--value-model", "value_path", type=click.Path(exists=True), default=None,
        help=tr("Modèle de montant (assoc-ai people value) ; sinon appris sur l'historique des dons.",
                "Gift-value model (assoc-ai people value); else learned from the gift history."))
@option("--budget", type=click.IntRange(min=0), default=None,
        help=tr("Nombre maximal de contacts.", "Largest number of contacts."))
@option("-o", "--output", type=click.Path(), default=None, help=tr("CSV de la sélection.", "CSV of the selection."))
@_AS_OF
@_FISCAL
@_JSON
@lang_option
def select_cmd(model_path: str, data: str, cost: float, value_path: str | None, budget: int | None,
               output: str | None, as_of: str | None, fiscal_year_start: str | None, json_out: str | None,
               lang: str | None) -> None:
    """Select people by expected net and compare with contacting everyone."""
    from assoc_ai_core.people.selection import select_people
    from assoc_ai_core.people.store import load_people_model
    from assoc_ai_core.people.value import load_value_model

    lang = lang or current_lang()
    if output:
        _not_an_export(output, data, lang)
    model = load_people_model(model_path)
    value_model = load_value_model(value_path) if value_path else None
    selection = select_people(model, data, cost=cost, value_model=value_model, budget=budget, as_of=as_of,
                              fiscal_year_start=fiscal_year_start)
    click.echo(selection.summary(lang))
    for note in selection.notes:
        click.echo(note, err=True)
    if output:
        write_csv(selection.frame, output, lang)
        click.echo(tr(f"Sélection écrite : {output}", f"Selection written: {output}", lang))
    if json_out:
        write_json(json_out, {**selection.to_dict(), "as_of": selection.frame.attrs.get("as_of")})


@click.command("bgbb", help=tr("Modèle BG/BB des dons répétés (par exercice) : paramètres, prévision, vérification.",
                               "BG/BB model of repeat giving (by fiscal year): parameters, forecast, holdout check."))
@click.argument("data", metavar="GIFTS_OR_SUMMARY", type=click.Path(exists=True))
@option("--calibration-end", default=None, metavar="AAAA-MM-JJ",
        help=tr("Dernier jour de la période d'apprentissage (fin d'un exercice).",
                "Last day of the calibration period (the end of a fiscal year)."))
@option("--holdout-end", default=None, metavar="AAAA-MM-JJ",
        help=tr("Dernier jour de la période de vérification (fin d'un exercice).",
                "Last day of the holdout period (the end of a fiscal year)."))
@option("--holdout-periods", type=click.IntRange(min=1), default=None,
        help=tr("Années à prévoir, pour un tableau agrégé (fréquence, récence, n).",
                "Years to forecast, for an aggregated (frequency, recency, n) table."))
@_FISCAL
@option("-o", "--output", type=click.Path(), default=None,
        help=tr("CSV des dons attendus par personne (ou par ligne du tableau).",
                "CSV of the expected gifts per person (or per row of the table)."))
@_JSON
@lang_option
def bgbb_cmd(data: str, calibration_end: str | None, holdout_end: str | None, holdout_periods: int | None,
             fiscal_year_start: str | None, output: str | None, json_out: str | None, lang: str | None) -> None:
    """Fit BG/BB on a gifts export (or an aggregated table), forecast and check on the holdout."""
    from assoc_ai_core.people.bgbb import fit_table, holdout_check

    lang = lang or current_lang()
    if output:
        _not_an_export(output, data, lang)
    table = _bgbb_table(data, calibration_end, holdout_end, fiscal_year_start, lang)
    fit = fit_table(table)
    params = dict(zip(("alpha", "beta", "gamma", "delta"), fit.params, strict=True))
    click.echo(tr(f"BG/BB sur {decimal(float(table['weights'].sum()), 0, lang)} donateurs : ",
                  f"BG/BB on {table['weights'].sum():.0f} donors: ", lang)
               + ", ".join(f"{k} {decimal(v, 4, lang)}" for k, v in params.items())
               + tr(f" (log-vraisemblance {decimal(fit.log_likelihood, 2, lang)})",
                    f" (log-likelihood {fit.log_likelihood:.2f})", lang))
    result: dict[str, Any] = {"params": params, "log_likelihood": fit.log_likelihood}
    if holdout_periods is None and "holdout_periods" not in table.columns:
        click.echo(tr("Sans --holdout-end ni --holdout-periods : pas de prévision.",
                      "Without --holdout-end or --holdout-periods: no forecast.", lang), err=True)
    else:
        check = holdout_check(fit, table, holdout_periods)
        expected = check.pop("expected")
        result["holdout"] = check
        _print_check(check, lang)
        frame = table.reset_index().assign(expected_holdout_gifts=expected)
        if output:
            write_csv(frame, output, lang)
            click.echo(tr(f"Dons attendus écrits : {output}", f"Expected gifts written: {output}", lang))
    if json_out:
        write_json(json_out, result)


def _bgbb_table(data: str, calibration_end: str | None, holdout_end: str | None, fiscal_year_start: str | None,
                lang: str) -> Any:
    """The aggregated table when DATA is one, else the per-donor table built from DATA's gifts."""
    from pathlib import Path

    from assoc_ai_core.people.bgbb import read_summary_table, repeat_giving_table
    from assoc_ai_core.people.dataset import load_people, require_pandas

    p = Path(data)
    if p.is_file() and p.suffix.lower() in (".csv", ".txt"):
        pd = require_pandas()
        try:
            head = pd.read_csv(p, sep=None, engine="python", nrows=5)
        except Exception:  # not a plain table: let the exports reader say what is wrong
            head = None
        if head is not None and read_summary_table(head) is not None:
            return read_summary_table(pd.read_csv(p, sep=None, engine="python"))
    if calibration_end is None:
        raise DataError(tr("Indiquez --calibration-end (dernier jour d'un exercice) pour un export de dons.",
                           "Give --calibration-end (the last day of a fiscal year) for a gifts export.", lang))
    table = repeat_giving_table(load_people(data).frames()["gift"], calibration_end, holdout_end,
                                fiscal_year_start=fiscal_year_start)
    return table.assign(weights=1.0)


def _print_check(check: dict[str, Any], lang: str) -> None:
    years = "/".join(str(k) for k in check["holdout_periods"])
    has_actual = "actual_total" in check
    line = tr(f"Dons répétés attendus sur {years} an(s) : {decimal(check['predicted_total'], 1, lang)}",
              f"Repeat gifts expected over {years} year(s): {check['predicted_total']:.1f}", lang)
    if has_actual:
        line += tr(f" ; réels : {decimal(check['actual_total'], 0, lang)}", f"; actual: {check['actual_total']:.0f}", lang)
    click.echo(line)
    click.echo(tr("  fréquence  donateurs  attendus", "  frequency  donors     expected", lang)
               + (tr("  réels", "  actual", lang) if has_actual else ""))
    for g in check["by_frequency"]:
        row = f"  {g['frequency']:>9}  {g['donors']:>9.0f}  {decimal(g['predicted'], 1, lang):>8}"
        if has_actual:
            row += f"  {g['actual']:>6.0f}"
        click.echo(row)


@click.group(cls=ErrorReportingGroup, help=tr("Montants, sélection et BG/BB (aussi sous « assoc-ai people »).",
                                              "Amounts, selection and BG/BB (also under 'assoc-ai people')."))
def value_group() -> None:
    """These commands on their own: ``python -m assoc_ai_core.cli.people_value``."""


register_value_commands(value_group)

if __name__ == "__main__":  # pragma: no cover - python -m assoc_ai_core.cli.people_value
    value_group(sys.argv[1:])
