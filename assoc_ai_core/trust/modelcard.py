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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, DataError
from assoc_ai_core.i18n import decimal, percent, tr

WEAK_F1 = 0.7
FEW_EXAMPLES = 5


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


def build_card(model: Any, *, evaluation: Mapping[str, Any] | None = None, messages: Sequence[Any] | None = None,
               version: str | None = None, contact: str | None = None, lang: str | None = None) -> ModelCard:
    """The card of ``model``; ``messages`` (labelled, newer than training) adds measured metrics per language."""
    from assoc_ai_core.mail.evaluate import evaluate

    md = dict(getattr(model, "metadata_", {}) or {})
    if not md:
        raise DataError(tr("Ce modèle n'a pas de métadonnées : ré-entraînez-le avec assoc-ai train.",
                           "This model has no metadata: retrain it with assoc-ai train.", lang))
    t = lambda fr, en: tr(fr, en, lang)  # noqa: E731 - local shorthand
    pct = lambda v: percent(v, lang) if isinstance(v, (int, float)) else "—"  # noqa: E731
    if messages and evaluation is None:
        evaluation = evaluate(model, list(messages), mistakes=0)
    languages = per_language(model, messages) if messages else None
    name = version or md.get("trained_at", "?")
    card = ModelCard(t(f"Fiche du modèle {name}", f"Model card {name}"))
    card.data = {"version": version, "metadata": md, "evaluation": evaluation, "per_language": languages}

    card.sections.append((t("Usage prévu", "Intended use"), [t(
        "Trier le courrier reçu par la boîte partagée de l'association dans les catégories ci-dessous. Le courrier "
        "dont la confiance est sous le seuil va au dossier « À vérifier » pour une personne. Ce modèle ne doit pas "
        "servir à juger des personnes, ni à trier le courrier d'une autre organisation sans ré-entraînement.",
        "Sort mail received by the association's shared mailbox into the categories below. Mail whose confidence "
        "is below the threshold goes to the 'to check' folder for a person. This model must not be used to judge "
        "people, nor to sort another organisation's mail without retraining.")]))

    per_class = md.get("per_class", {})
    rows = [[lab, per_class.get(lab, {}).get("examples", "?")] for lab in md.get("labels", [])]
    period = md.get("data_period")
    card.sections.append((t("Catégories et données d'entraînement", "Categories and training data"), [
        Table([t("Catégorie", "Category"), t("Exemples", "Examples")], rows),
        t(f"{md.get('n_train', '?')} messages ; période : "
          f"{period[0][:10] + ' → ' + period[1][:10] if period else 'inconnue'} ; entraîné le {md.get('trained_at', '?')}.",
          f"{md.get('n_train', '?')} messages; period: "
          f"{period[0][:10] + ' → ' + period[1][:10] if period else 'unknown'}; trained on {md.get('trained_at', '?')}."),
    ] + ([t("Le nom de chaque catégorie a aussi servi d'exemple d'apprentissage (une ligne courte par catégorie, "
            "jamais comptée dans les mesures).",
            "Each category's name was also used as a training example (one short row per category, never counted "
            "in the metrics).")] if md.get("label_names") else [])))

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
    card.sections.append((t("Mesures", "Metrics"), blocks))

    cov = (evaluation or {}).get("coverage_at_precision") or md.get("coverage_at_precision", {})
    card.sections.append((t("Part triée automatiquement selon la précision visée", "Coverage at precision"), [
        Table([t("Précision", "Precision"), t("Part triée automatiquement", "Share routed automatically")],
              [[pct(float(k)), pct(v)] for k, v in sorted(cov.items())]),
        t(f"Seuil de ce modèle : {decimal(md.get('threshold', 0), 2, 'fr')} pour une précision visée de "
          f"{pct(md.get('target_precision'))} ; part attendue en automatique : {pct(md.get('expected_auto_share'))}.",
          f"This model's threshold: {md.get('threshold', 0):.2f} for a target precision of "
          f"{pct(md.get('target_precision'))}; expected automatic share: {pct(md.get('expected_auto_share'))}."),
    ]))

    weak = []
    for lab in md.get("labels", []):
        n = per_class.get(lab, {}).get("examples", 0)
        f1 = (evaluation or {}).get("per_class", {}).get(lab, {}).get("f1")
        if isinstance(n, int) and n < FEW_EXAMPLES:
            weak.append([lab, t(f"seulement {n} exemple(s)", f"only {n} example(s)")])
        elif isinstance(f1, float) and f1 < WEAK_F1 and evaluation.get("per_class", {}).get(lab, {}).get("support"):
            weak.append([lab, t(f"F1 {f1:.2f} sur le courrier récent", f"F1 {f1:.2f} on recent mail")])
    card.sections.append((t("Catégories fragiles connues", "Known weak categories"), [
        Table([t("Catégorie", "Category"), t("Pourquoi", "Why")], weak) if weak else
        t("Aucune repérée.", "None found.")]))

    if languages:
        card.sections.append((t("Exactitude par langue", "Accuracy per language"), [Table(
            [t("Langue", "Language"), t("Messages", "Messages"), t("Exactitude", "Accuracy")],
            [[t("français", "French"), languages["fr"]["n"], pct(languages["fr"]["accuracy"])],
             [t("anglais", "English"), languages["en"]["n"], pct(languages["en"]["accuracy"])]])]))
    else:
        card.sections.append((t("Exactitude par langue", "Accuracy per language"), [
            t("Non mesurée (donnez --data).", "Not measured (pass --data).")]))

    card.sections.append((t("Contact", "Contact"), [contact or t(
        "Non renseigné : indiquez --contact (la personne de l'association qui répond des tris).",
        "Not given: pass --contact (the person in the association accountable for the sorting).")]))
    return card


def write_model_card(card: ModelCard, directory: str | os.PathLike[str], stem: str,
                     *, lang: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.card.md`` and ``<stem>.card.html`` in ``directory``; returns both paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / f"{stem}.card.md", out / f"{stem}.card.html"
    md_path.write_text(card.markdown(), encoding="utf-8")
    html_path.write_text(card.html(lang), encoding="utf-8")
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
