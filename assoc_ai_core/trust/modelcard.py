"""Model card: what a mail model is for, what it learnt from, how well it does, where it is weak.

Written in Markdown and HTML from the model's own metadata (categories and
their example counts, data period, cross-validation figures, coverage at
precision) plus, when labelled mail newer than the training data is given, an
evaluation with :func:`assoc_ai_core.mail.evaluate.evaluate` (the chronological
protocol: train on older mail, measure on newer) split by language (French vs
English mail, found with :func:`assoc_ai_core.mail.cleaning.detect_language`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import decimal, percent, tr

WEAK_F1 = 0.7
FEW_EXAMPLES = 5
# Under this macro-F1 the average category misses or misfiles more than one message in five, and some categories
# are then usually under WEAK_F1 even when none was measured on its own.
WEAK_MACRO_F1 = 0.8


@dataclass
class ModelCard:
    """The card's content: a title and sections of paragraphs and tables, rendered to Markdown or HTML."""

    title: str
    sections: list[tuple[str, list[Any]]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        """The card as Markdown."""
        out = [f"# {self.title}", ""]
        for heading, blocks in self.sections:
            out += [f"## {heading}", ""]
            for block in blocks:
                if isinstance(block, Table):
                    out.append("| " + " | ".join(block.header) + " |")
                    out.append("|" + "---|" * len(block.header))
                    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in block.rows]
                else:
                    out.append(str(block))
                out.append("")
        return "\n".join(out)

    def html(self, lang: str | None = None) -> str:
        """The card as a self-contained HTML page."""
        from jinja2 import Environment, select_autoescape

        env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
        return env.from_string(_HTML).render(card=self, lang=lang or "fr", is_table=lambda b: isinstance(b, Table))


@dataclass
class Table:
    """A small table of a card."""

    header: list[str]
    rows: list[list[Any]]


_HTML = """<!doctype html><html lang="{{ lang }}"><head><meta charset="utf-8"><title>{{ card.title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:55rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}</style></head><body>
<h1>{{ card.title }}</h1>
{% for heading, blocks in card.sections %}<h2>{{ heading }}</h2>
{% for b in blocks %}{% if is_table(b) %}<table><tr>{% for h in b.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in b.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>{{ b }}</p>{% endif %}{% endfor %}{% endfor %}
</body></html>
"""


def language_of(message: Any) -> str:
    """``fr``, ``en`` or another code for a message (subject and text)."""
    from assoc_ai_core.mail.cleaning import detect_language

    return detect_language(f"{getattr(message, 'subject', '')}\n{getattr(message, 'text', message)}")


def per_language(model: Any, messages: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Accuracy of ``model`` on French and on English mail separately (``n`` = how many of each)."""
    from assoc_ai_core.mail.evaluate import evaluate

    groups: dict[str, list[Any]] = {"fr": [], "en": []}
    for m in messages:
        lang = language_of(m)
        if lang in groups:
            groups[lang].append(m)
    out: dict[str, dict[str, Any]] = {}
    for lang, group in groups.items():
        if group:
            result = evaluate(model, group, mistakes=0)
            out[lang] = {"n": result["n"], "accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
        else:
            out[lang] = {"n": 0, "accuracy": None, "macro_f1": None}
    return out


Say = Callable[[str, str], str]
Section = tuple[str, list[Any]]


def _share(value: Any, lang: str | None) -> str:
    return percent(value, lang) if isinstance(value, (int, float)) else "—"


def build_card(model: Any, *, evaluation: Mapping[str, Any] | None = None, messages: Sequence[Any] | None = None,
               version: str | None = None, contact: str | None = None, lang: str | None = None) -> ModelCard:
    """The card of ``model``; ``messages`` (labelled, newer than training) adds measured metrics per language."""
    from assoc_ai_core.mail.evaluate import evaluate

    md = dict(getattr(model, "metadata_", {}) or {})
    if not md:
        raise DataError(tr("Ce modèle n'a pas de métadonnées : ré-entraînez-le avec assoc-ai train.",
                           "This model has no metadata: retrain it with assoc-ai train.", lang))
    t: Say = partial(tr, lang=lang)
    pct = partial(_share, lang=lang)
    if messages and evaluation is None:
        evaluation = evaluate(model, list(messages), mistakes=0)
    languages = per_language(model, messages) if messages else None
    name = version or md.get("trained_at", "?")
    card = ModelCard(t(f"Fiche du modèle {name}", f"Model card {name}"))
    card.data = {"version": version, "metadata": md, "evaluation": evaluation, "per_language": languages}
    card.sections += [
        _intended_use(t),
        _training_data(md, t),
        _metrics(md, evaluation, t, pct),
        _coverage(md, evaluation, t, pct),
        _weak_categories(md, evaluation or {}, t),
        _per_language(languages, t, pct),
        (t("Contact", "Contact"), [contact or t(
            "Non renseigné : indiquez --contact (la personne de l'association qui répond des tris).",
            "Not given: pass --contact (the person in the association accountable for the sorting).")]),
    ]
    return card


def _intended_use(t: Say) -> Section:
    return (t("Usage prévu", "Intended use"), [t(
        "Trier le courrier reçu par la boîte partagée de l'association dans les catégories ci-dessous. Le courrier "
        "dont la confiance est sous le seuil va au dossier « À vérifier » pour une personne. Ce modèle ne doit pas "
        "servir à juger des personnes, ni à trier le courrier d'une autre organisation sans ré-entraînement.",
        "Sort mail received by the association's shared mailbox into the categories below. Mail whose confidence "
        "is below the threshold goes to the 'to check' folder for a person. This model must not be used to judge "
        "people, nor to sort another organisation's mail without retraining.")])


def _training_data(md: Mapping[str, Any], t: Say) -> Section:
    per_class = md.get("per_class", {})
    rows = [[lab, per_class.get(lab, {}).get("examples", "?")] for lab in md.get("labels", [])]
    period = md.get("data_period")
    blocks: list[Any] = [
        Table([t("Catégorie", "Category"), t("Exemples", "Examples")], rows),
        t(f"{md.get('n_train', '?')} messages ; période : "
          f"{period[0][:10] + ' → ' + period[1][:10] if period else 'inconnue'} ; entraîné le {md.get('trained_at', '?')}.",
          f"{md.get('n_train', '?')} messages; period: "
          f"{period[0][:10] + ' → ' + period[1][:10] if period else 'unknown'}; trained on {md.get('trained_at', '?')}."),
    ]
    if md.get("label_names"):
        blocks.append(t("Le nom de chaque catégorie a aussi servi d'exemple d'apprentissage (une ligne courte par "
                        "catégorie, jamais comptée dans les mesures).",
                        "Each category's name was also used as a training example (one short row per category, "
                        "never counted in the metrics)."))
    return (t("Catégories et données d'entraînement", "Categories and training data"), blocks)


def _metrics(md: Mapping[str, Any], evaluation: Mapping[str, Any] | None, t: Say,
             pct: Callable[[Any], str]) -> Section:
    blocks: list[Any] = [t(
        f"Validation croisée à l'entraînement ({md.get('cv_folds', '?')} plis, messages mélangés dans le temps, donc "
        f"plutôt optimiste) : exactitude {pct(md.get('cv_accuracy'))}, F1 macro {decimal(md.get('cv_macro_f1', 0), 3, 'fr')}.",
        f"Cross-validation at training ({md.get('cv_folds', '?')} folds, mail mixed in time, so rather optimistic): "
        f"accuracy {pct(md.get('cv_accuracy'))}, macro-F1 {md.get('cv_macro_f1', 0):.3f}.")]
    if evaluation:
        blocks.append(t(
            f"Protocole chronologique (entraîné sur le courrier ancien, mesuré sur {evaluation.get('n', '?')} messages "
            f"plus récents) : exactitude {pct(evaluation.get('accuracy'))}, F1 macro {decimal(evaluation.get('macro_f1', 0), 3, 'fr')}.",
            f"Chronological protocol (trained on older mail, measured on {evaluation.get('n', '?')} newer messages): "
            f"accuracy {pct(evaluation.get('accuracy'))}, macro-F1 {evaluation.get('macro_f1', 0):.3f}."))
    else:
        blocks.append(t("Pas encore de mesure chronologique : donnez --data avec du courrier étiqueté plus récent.",
                        "No chronological measurement yet: pass --data with newer labelled mail."))
    return (t("Mesures", "Metrics"), blocks)


def _coverage(md: Mapping[str, Any], evaluation: Mapping[str, Any] | None, t: Say,
              pct: Callable[[Any], str]) -> Section:
    cov = (evaluation or {}).get("coverage_at_precision") or md.get("coverage_at_precision", {})
    return (t("Part triée automatiquement selon la précision visée", "Coverage at precision"), [
        Table([t("Précision", "Precision"), t("Part triée automatiquement", "Share routed automatically")],
              [[pct(float(k)), pct(v)] for k, v in sorted(cov.items())]),
        t(f"Seuil de ce modèle : {decimal(md.get('threshold', 0), 2, 'fr')} pour une précision visée de "
          f"{pct(md.get('target_precision'))} ; part attendue en automatique : {pct(md.get('expected_auto_share'))}.",
          f"This model's threshold: {md.get('threshold', 0):.2f} for a target precision of "
          f"{pct(md.get('target_precision'))}; expected automatic share: {pct(md.get('expected_auto_share'))}."),
    ])


def _weak_categories(md: Mapping[str, Any], evaluation: Mapping[str, Any], t: Say) -> Section:
    """Categories with too few examples or a low F1 on recent mail, and a model that is weak as a whole.

    A category is fragile under ``FEW_EXAMPLES`` examples or under ``WEAK_F1`` on the recent mail it appears in.
    The whole model is called weak under ``WEAK_MACRO_F1`` macro-F1 (the chronological one when measured, else
    cross-validation): the card then never says that no category is fragile.
    """
    per_class = md.get("per_class", {})
    measured = evaluation.get("per_class", {})
    weak = []
    for lab in md.get("labels", []):
        n = per_class.get(lab, {}).get("examples", 0)
        f1 = measured.get(lab, {}).get("f1")
        if isinstance(n, int) and n < FEW_EXAMPLES:
            weak.append([lab, t(f"seulement {n} exemple(s)", f"only {n} example(s)")])
        elif isinstance(f1, float) and f1 < WEAK_F1 and measured.get(lab, {}).get("support"):
            weak.append([lab, t(f"F1 {decimal(f1, 2, 'fr')} sur le courrier récent", f"F1 {f1:.2f} on recent mail")])
    blocks: list[Any] = [Table([t("Catégorie", "Category"), t("Pourquoi", "Why")], weak)] if weak else []
    overall = _weak_model(md, evaluation, t)
    if overall:
        blocks.append(overall)
    elif not weak:
        blocks.append(t(
            f"Aucune repérée (chaque catégorie a au moins {FEW_EXAMPLES} exemples"
            + (f" et un F1 d'au moins {decimal(WEAK_F1, 2, 'fr')} sur le courrier récent)." if measured else
               " ; pas encore de mesure par catégorie sur du courrier récent)."),
            f"None found (every category has at least {FEW_EXAMPLES} examples"
            + (f" and an F1 of at least {WEAK_F1:.2f} on recent mail)." if measured else
               "; no per-category measurement on recent mail yet).")))
    return (t("Catégories fragiles connues", "Known weak categories"), blocks)


def _weak_model(md: Mapping[str, Any], evaluation: Mapping[str, Any], t: Say) -> str | None:
    """A sentence when the model's macro-F1 is under ``WEAK_MACRO_F1``; None otherwise or when not measured."""
    chrono = isinstance(evaluation.get("macro_f1"), (int, float))
    f1 = evaluation.get("macro_f1") if chrono else md.get("cv_macro_f1")
    if not isinstance(f1, (int, float)) or f1 >= WEAK_MACRO_F1:
        return None
    where_fr, where_en = ("sur le courrier récent", "on recent mail") if chrono else (
        "en validation croisée", "in cross-validation")
    return t(
        f"Le modèle entier est fragile : F1 macro {decimal(f1, 2, 'fr')} {where_fr}, sous le seuil de "
        f"{decimal(WEAK_MACRO_F1, 2, 'fr')} ; toutes les catégories sont à surveiller, même celles qui ne sont pas "
        "listées. Ajoutez des exemples aux catégories qui se confondent (voir la matrice de confusion du rapport).",
        f"The whole model is weak: macro-F1 {f1:.2f} {where_en}, under the {WEAK_MACRO_F1:.2f} threshold; watch "
        "every category, listed or not. Add examples to the categories that get confused (see the report's "
        "confusion matrix).")


def _per_language(languages: Mapping[str, Mapping[str, Any]] | None, t: Say, pct: Callable[[Any], str]) -> Section:
    heading = t("Exactitude par langue", "Accuracy per language")
    if not languages:
        return (heading, [t("Non mesurée (donnez --data).", "Not measured (pass --data).")])
    return (heading, [Table(
        [t("Langue", "Language"), t("Messages", "Messages"), t("Exactitude", "Accuracy")],
        [[t("français", "French"), languages["fr"]["n"], pct(languages["fr"]["accuracy"])],
         [t("anglais", "English"), languages["en"]["n"], pct(languages["en"]["accuracy"])]])])


def write_model_card(card: ModelCard, directory: str | os.PathLike[str], stem: str,
                     *, lang: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.card.md`` and ``<stem>.card.html`` in ``directory``; returns both paths."""
    out = private_dir(directory)
    md_path, html_path = out / f"{stem}.card.md", out / f"{stem}.card.html"
    # aggregate figures and category names only, no personal data: readable by others, to be published
    atomic_write(md_path, card.markdown(), mode=0o644)
    atomic_write(html_path, card.html(lang), mode=0o644)
    return md_path, html_path


def card_beside_model(model: Any, model_path: str | os.PathLike[str], *, evaluation: Mapping[str, Any] | None = None,
                      version: str | None = None, contact: str | None = None,
                      lang: str | None = None) -> tuple[Path, Path]:
    """Write the card next to a saved model (``v0002.skops`` → ``v0002.card.md``/``.html``)."""
    p = Path(model_path)
    card = build_card(model, evaluation=evaluation, version=version or p.stem, contact=contact, lang=lang)
    return write_model_card(card, p.parent, p.stem, lang=lang)


def card_for_reference(ref: str, *, config_path: str | None = None, data: str | None = None,
                       contact: str | None = None, output: str | os.PathLike[str] = ".",
                       lang: str | None = None) -> tuple[Path, Path]:
    """Card of a model file, or of a registry version (``v0002``) of the configured job."""
    from assoc_ai_core.persistence import load_model

    path = Path(ref)
    version = None
    if path.is_file():
        model = load_model(path)
        version = path.stem
    else:
        if not config_path:
            raise ConfigError(tr(f"Modèle introuvable : {ref}. Donnez un fichier .skops, ou --config pour une "
                                 "version du registre (ex. v0002).",
                                 f"Model not found: {ref}. Give a .skops file, or --config for a registry "
                                 "version (e.g. v0002).", lang))
        from assoc_ai_core.jobs.registry import ModelRegistry
        from assoc_ai_core.trust.privacy import load_trust_config

        settings = load_trust_config(config_path).settings
        model, version = ModelRegistry(settings.models_dir).load(ref)
    messages = None
    if data:
        from assoc_ai_core.mail.sources import load_dataset

        messages = load_dataset(data).labelled()
        if not messages:
            raise DataError(tr(f"Aucun message étiqueté dans {data}.", f"No labelled message in {data}.", lang))
    card = build_card(model, messages=messages, version=version, contact=contact, lang=lang)
    return write_model_card(card, output, version or "model", lang=lang)


__all__ = ["ModelCard", "Table", "build_card", "per_language", "language_of", "write_model_card",
           "card_beside_model", "card_for_reference"]
