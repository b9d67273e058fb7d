"""The people-model report: one self-contained HTML file (inline SVG charts, no script, no web font, no CDN).

Sections: the headline figures, a calibration chart ("when the model says
30 %, does it happen 3 times in 10?"), a cumulative-gains chart ("by calling
the best-scored 20 %, which share of the givers do we reach?"), what matters
to the model, the fairness table, and the retention table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assoc_ai_core.i18n import current_lang, percent, tr

__all__ = ["render_people_report", "write_people_report", "svg_calibration", "svg_gains", "svg_bars",
           "calibration_in_the_large"]

_W, _H, _PAD = 360, 260, 40


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _axes(x_label: str, y_label: str) -> list[str]:
    parts = [f'<rect x="{_PAD}" y="10" width="{_W - _PAD - 10}" height="{_H - _PAD - 10}" fill="#fff" stroke="#999"/>']
    for k in range(0, 11, 2):
        x = _PAD + (_W - _PAD - 10) * k / 10
        y = _H - _PAD - (_H - _PAD - 10) * k / 10
        parts.append(f'<text x="{x:.1f}" y="{_H - _PAD + 14}" font-size="10" text-anchor="middle">{k * 10}</text>')
        parts.append(f'<text x="{_PAD - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{k * 10}</text>')
    parts.append(f'<text x="{(_W + _PAD) / 2:.0f}" y="{_H - 6}" font-size="11" text-anchor="middle">{_esc(x_label)}</text>')
    parts.append(f'<text x="12" y="{(_H - _PAD) / 2:.0f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(_H - _PAD) / 2:.0f})">{_esc(y_label)}</text>')
    return parts


def _xy(x: float, y: float) -> tuple[float, float]:
    return _PAD + (_W - _PAD - 10) * min(max(x, 0.0), 1.0), _H - _PAD - (_H - _PAD - 10) * min(max(y, 0.0), 1.0)


def _svg(parts: list[str], title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}">'
            f"<title>{_esc(title)}</title>" + "".join(parts) + "</svg>")


def svg_calibration(bins: Sequence[dict[str, float]], lang: str | None = None) -> str:
    """Reliability diagram: predicted (x) vs observed (y) rate per bin, with the ideal diagonal."""
    parts = _axes(tr("probabilité prédite (%)", "predicted probability (%)", lang), tr("taux observé (%)", "observed rate (%)", lang))
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4 3"/>')
    points = [_xy(b["predicted"], b["observed"]) for b in bins]
    if points:
        parts.append('<polyline fill="none" stroke="#1f5fa8" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f5fa8"/>' for x, y in points]
    return _svg(parts, tr("Calibration", "Calibration", lang))


def svg_gains(lift: Sequence[dict[str, float]], lang: str | None = None) -> str:
    """Cumulative gains: share of people contacted (x) vs share of positives reached (y), with random targeting."""
    parts = _axes(tr("personnes contactées (%)", "people contacted (%)", lang), tr("cas positifs atteints (%)", "positives reached (%)", lang))
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4 3"/>')
    points = [_xy(0, 0)] + [_xy(r["share_contacted"], r["share_of_positives"]) for r in lift]
    parts.append('<polyline fill="none" stroke="#2e7d32" stroke-width="2" points="'
                 + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
    return _svg(parts, tr("Gains cumulés", "Cumulative gains", lang))


def svg_bars(values: dict[str, float], lang: str | None = None, *, top: int = 10) -> str:
    """Horizontal bars of signed values (what pushes up in green, down in red)."""
    items = list(values.items())[:top]
    if not items:
        return ""
    height = 22 * len(items) + 10
    width = 520
    label_w = 230
    scale = max(abs(v) for _, v in items) or 1.0
    mid = label_w + (width - label_w - 10) / 2
    parts = [f'<line x1="{mid}" y1="0" x2="{mid}" y2="{height}" stroke="#999"/>']
    for k, (name, v) in enumerate(items):
        y = 6 + 22 * k
        w = (width - label_w - 10) / 2 * abs(v) / scale
        x = mid if v >= 0 else mid - w
        color = "#2e7d32" if v >= 0 else "#c62828"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">{_esc(name)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="14" fill="{color}"/>')
        parts.append(f'<text x="{(x + w + 3) if v >= 0 else (x - 3):.1f}" y="{y + 12}" font-size="10" '
                     f'text-anchor="{"start" if v >= 0 else "end"}">{v:+.3f}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><title>{_esc(tr("Poids", "Weights", lang))}</title>' + "".join(parts) + "</svg>")


_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}.warn{color:#8a4b00;background:#fff4e0;padding:.4rem .6rem;border-radius:4px}
.muted{color:#666;font-size:.9rem}.charts{display:flex;flex-wrap:wrap;gap:1.5rem}
</style></head><body>
<h1>{{ title }}</h1>
<p class="muted">{{ subtitle }}</p>
{% if metrics %}<h2>{{ t.headline }}</h2>
<table>{% for k, v in metrics %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
<p class="muted">{{ t.auc_help }}</p>{% endif %}
{% if calibration_svg %}<div class="charts"><figure>{{ calibration_svg|safe }}<figcaption>{{ t.calibration }}</figcaption></figure>
<figure>{{ gains_svg|safe }}<figcaption>{{ t.gains }}</figcaption></figure></div>{% endif %}
{% if calibration_line %}<p class="{{ 'warn' if calibration_off else 'muted' }}">{{ calibration_line }}</p>{% endif %}
{% if lift %}<h2>{{ t.lift_title }}</h2><table><tr><th>{{ t.contacted }}</th><th>{{ t.reached }}</th><th>{{ t.rate }}</th><th>lift</th></tr>
{% for r in lift %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td><td>{{ r[2] }}</td><td>{{ r[3] }}</td></tr>{% endfor %}</table>{% endif %}
{% if weights_svg %}<h2>{{ t.matters }}</h2><p class="muted">{{ t.weights_help }}</p>{{ weights_svg|safe }}{% endif %}
{% if permutation %}<p class="muted">{{ t.perm_help }}</p><table><tr><th>{{ t.feature }}</th><th>{{ t.auc_drop }}</th></tr>
{% for k, v in permutation %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% if fairness %}<h2>{{ t.fairness }}</h2><p class="muted">{{ t.fair_help }}</p>
{% for w in fairness_warnings %}<p class="warn">{{ w }}</p>{% endfor %}
{% for attr in fairness %}<h3>{{ attr.name }}</h3><table><tr><th>{{ t.group }}</th><th>n</th><th>{{ t.sel }}</th><th>{{ t.tpr }}</th><th>{{ t.fpr }}</th><th>{{ t.err }}</th></tr>
{% for g in attr.groups %}<tr><td>{{ g[0] }}</td>{% for c in g[1:] %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
<tr><th>{{ t.gap }}</th><td></td>{% for c in attr.gaps %}<td>{{ c }}</td>{% endfor %}</tr></table>{% endfor %}{% endif %}
{% if retention %}<h2>{{ t.retention }}</h2><p class="muted">{{ t.ret_help }}</p>
<table><tr>{% for h in retention_head %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in retention %}<tr>{% for c in r %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
<p class="muted">{{ footer }}</p>
</body></html>
"""


def _pc(v: Any, lang: str) -> str:
    return "—" if v is None else percent(float(v), lang)


def _num(v: Any, digits: int = 3) -> str:
    return "—" if v is None else f"{float(v):.{digits}f}"


def render_people_report(
    evaluation: dict[str, Any] | None = None,
    *,
    retention: Sequence[Any] = (),
    title: str | None = None,
    lang: str | None = None,
) -> str:
    """The report as an HTML string; ``evaluation`` is what training/evaluation returns, ``retention`` RetentionReports."""
    import jinja2

    lang = lang or current_lang()
    ev = evaluation or {}
    fair = ev.get("fairness") or {}
    calibration_line, calibration_off = calibration_in_the_large(ev.get("metrics") or {}, lang)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        lang=lang, t=_labels(lang), title=title or tr("Rapport assoc-ai — données de personnes", "assoc-ai report — people data", lang),
        subtitle=_subtitle(ev, lang), metrics=_metric_rows(ev, lang),
        calibration_svg=svg_calibration(ev["calibration"], lang) if ev.get("calibration") else "",
        gains_svg=svg_gains(ev["lift"], lang) if ev.get("lift") else "",
        calibration_line=calibration_line, calibration_off=calibration_off,
        lift=[(_pc(r["share_contacted"], lang), _pc(r["share_of_positives"], lang), _pc(r["rate"], lang), f"{r['lift']:.2f}")
              for r in ev.get("lift", [])],
        weights_svg=svg_bars(ev.get("weights") or {}, lang),
        permutation=[(k, f"{v:+.4f}") for k, v in list((ev.get("permutation_importance") or {}).items())[:10]],
        fairness=_fairness_tables(fair, lang), fairness_warnings=fair.get("warnings") or [],
        retention=[_retention_row(r, lang) for r in retention], retention_head=_retention_head(lang),
        footer=tr("Produit par assoc-ai. Aucune donnée personnelle n'est incluse dans ce rapport.",
                  "Made by assoc-ai. No personal data is included in this report.", lang),
    )


def _pc1(v: Any, lang: str) -> str:
    """A rate with one decimal: a calibration gap of a point or two must be visible."""
    text = f"{float(v) * 100:.1f}"
    return f"{text.replace('.', ',')}\u00a0%" if lang == "fr" else f"{text}%"


def calibration_in_the_large(metrics: dict[str, Any], lang: str | None = None) -> tuple[str, bool]:
    """The mean predicted probability against the actual rate, and whether the gap is beyond chance.

    The gap is flagged when it is over 2 points and over twice its standard
    error (the binomial spread of the actual rate on this many people): a
    model that predicts 10 % for a 24 % outcome must say so in its report.
    """
    import math

    n, rate, mean = metrics.get("n"), metrics.get("base_rate"), metrics.get("mean_prediction")
    if not n or rate is None or mean is None:
        return "", False
    gap = float(mean) - float(rate)
    spread = math.sqrt(max(float(rate) * (1 - float(rate)), 1e-12) / float(n))
    off = abs(gap) > 0.02 and abs(gap) > 2 * spread
    points = f"{gap * 100:+.1f}"
    text = tr(f"Calibration globale : probabilité moyenne {_pc1(mean, 'fr')} pour un taux réel "
              f"{_pc1(rate, 'fr')} ({points.replace('.', ',')} points).",
              f"Calibration in the large: mean probability {_pc1(mean, 'en')} against an actual rate of "
              f"{_pc1(rate, 'en')} ({points} points).", lang)
    if off:
        text += " " + tr("L'écart dépasse ce que le hasard explique : les probabilités ne valent pas des taux pour "
                         "cette période (le taux a changé depuis les périodes apprises ?).",
                         "The gap is beyond chance: the probabilities are not rates for this period (has the rate "
                         "changed since the periods learned from?).", lang)
    return text, off


def _labels(lang: str) -> dict[str, str]:
    """The template's headings and help texts in ``lang``."""
    return {
        "headline": tr("Chiffres clés", "Key figures", lang),
        "auc_help": tr("AUC : probabilité qu'une personne qui agit soit mieux notée qu'une qui n'agit pas (0,5 = hasard, 1 = parfait). "
                       "Brier : erreur quadratique des probabilités (plus bas = mieux).",
                       "AUC: chance that a person who acts is scored above one who does not (0.5 = chance, 1 = perfect). "
                       "Brier: squared error of the probabilities (lower is better).", lang),
        "calibration": tr("Calibration : quand le modèle annonce 30 %, cela arrive-t-il 3 fois sur 10 ? (pointillés = idéal)",
                          "Calibration: when the model says 30%, does it happen 3 times in 10? (dashed = ideal)", lang),
        "gains": tr("Gains cumulés : en contactant les mieux notés d'abord (pointillés = au hasard)",
                    "Cumulative gains: contacting the best-scored first (dashed = at random)", lang),
        "lift_title": tr("Par tranche de score", "By score band", lang),
        "contacted": tr("contactés", "contacted", lang), "reached": tr("cas atteints", "cases reached", lang),
        "rate": tr("taux dans la tranche", "rate in band", lang),
        "matters": tr("Ce qui compte pour le modèle", "What matters to the model", lang),
        "weights_help": tr("Effet d'un écart-type de chaque facteur sur les log-cotes (vert : augmente la probabilité).",
                           "Effect of one standard deviation of each factor on the log-odds (green: raises the probability).", lang),
        "perm_help": tr("Importance par permutation : perte d'AUC quand on mélange le facteur au hasard.",
                        "Permutation importance: AUC lost when the factor is shuffled at random.", lang),
        "feature": tr("facteur", "factor", lang), "auc_drop": tr("perte d'AUC", "AUC drop", lang),
        "fairness": tr("Équité entre groupes", "Fairness between groups", lang),
        "fair_help": tr("Au seuil de décision du modèle. Les groupes trop petits sont affichés mais pas comparés.",
                        "At the model's decision threshold. Groups too small are shown but not compared.", lang),
        "group": tr("groupe", "group", lang), "sel": tr("sélection", "selection", lang), "tpr": tr("vrais positifs", "true positives", lang),
        "fpr": tr("faux positifs", "false positives", lang), "err": tr("erreurs", "errors", lang), "gap": tr("écart max", "largest gap", lang),
        "retention": tr("Fidélisation des donateurs (définitions FEP)", "Donor retention (FEP definitions)", lang),
        "ret_help": tr("Fidélisation : part des donateurs de l'année précédente qui ont redonné. Reconquête : part des anciens donateurs perdus revenus.",
                       "Retention: share of the prior year's donors who gave again. Recapture: share of earlier lapsed donors who came back.", lang),
    }


def _metric_rows(ev: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    """The headline table: overall measures, then those at the decision threshold when known."""
    m = ev.get("metrics") or {}
    at = ev.get("at_threshold") or {}
    if not m:
        return []
    rows = [
        (tr("personnes évaluées", "people evaluated", lang), str(m.get("n", ""))),
        (tr("taux réel", "actual rate", lang), _pc(m.get("base_rate"), lang)),
        (tr("probabilité moyenne prédite", "mean predicted probability", lang), _pc(m.get("mean_prediction"), lang)),
        ("ROC AUC", _num(m.get("roc_auc"))), ("Brier", _num(m.get("brier"))),
        (tr("précision moyenne", "average precision", lang), _num(m.get("average_precision"))),
    ]
    if at:
        rows += [
            (tr("seuil de décision", "decision threshold", lang), _pc(at.get("threshold"), lang)),
            (tr("part sélectionnée", "share selected", lang), _pc(at.get("selection_rate"), lang)),
            (tr("précision au seuil", "precision at threshold", lang), _pc(at.get("precision"), lang)),
            (tr("rappel au seuil", "recall at threshold", lang), _pc(at.get("recall"), lang)),
        ]
    return rows


def _fairness_tables(fair: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """One table per attribute: each group's rates (``*`` when too small to compare), then the largest gaps."""
    tables = []
    for name, block in (fair.get("attributes") or {}).items():
        groups = [(g["group"] + ("" if g.get("compared", True) else " *"), g["n"], _pc(g["selection_rate"], lang),
                   _pc(g["true_positive_rate"], lang), _pc(g["false_positive_rate"], lang), _pc(g["error_rate"], lang))
                  for g in block["groups"]]
        gaps = [_pc(block["gaps"].get(k), lang) for k in ("selection_rate", "true_positive_rate", "false_positive_rate", "error_rate")]
        tables.append({"name": name, "groups": groups, "gaps": gaps})
    return tables


def _retention_row(report: Any, lang: str) -> tuple[Any, ...]:
    """One line of the retention table from a RetentionReport (or its ``to_dict()``)."""
    d = report.to_dict() if hasattr(report, "to_dict") else dict(report)
    return (
        d["current"][0][:4] if str(d["current"][0]).endswith("-01-01") else f"{d['current'][0]} → {d['current'][1]}",
        d["donors_current"], d["new"], d["recaptured"], d["lapsed"], _pc(d["overall_retention"], lang),
        _pc(d["new_donor_retention"], lang), _pc(d["repeat_retention"], lang), _pc(d["recapture_rate"], lang), _pc(d.get("amount_retention"), lang),
        f"{d['amount_current']:.0f}", f"{d['net_amount']:+.0f}",
    )


def _retention_head(lang: str) -> list[str]:
    return [tr("période", "period", lang), tr("donateurs", "donors", lang), tr("nouveaux", "new", lang),
            tr("reconquis", "recaptured", lang), tr("perdus", "lapsed", lang), tr("fidélisation", "retention", lang),
            tr("fidél. nouveaux", "new retention", lang), tr("fidél. réguliers", "repeat retention", lang),
            tr("reconquête", "recapture", lang), tr("fidél. montant", "amount retention", lang), tr("montant €", "amount €", lang), tr("solde €", "net €", lang)]


def _subtitle(ev: dict[str, Any], lang: str) -> str:
    """The task, how it was checked, and a warning when the figures come from training data."""
    protocol = ev.get("protocol") or {}
    subtitle = ""
    if ev.get("task"):
        subtitle = tr(f"Tâche : {ev['task']}. ", f"Task: {ev['task']}. ", lang)
    if protocol.get("kind") == "chronological" and protocol.get("test_as_of"):
        subtitle += tr(
            f"Protocole chronologique : appris sur les situations au {', '.join(protocol.get('train_as_of', [])[-3:])}…, "
            f"vérifié sur la situation au {protocol['test_as_of']} (horizon {protocol.get('horizon_months')} mois).",
            f"Chronological protocol: learned on snapshots at {', '.join(protocol.get('train_as_of', [])[-3:])}…, "
            f"checked on the snapshot at {protocol['test_as_of']} ({protocol.get('horizon_months')}-month horizon).", lang)
    if protocol.get("kind") == "campaign":
        subtitle += tr(
            f"Campagne du {protocol.get('as_of')} (horizon {protocol.get('horizon_months')} mois) : vérifié par "
            f"validation croisée sur {protocol.get('folds')} groupes de personnes (probabilités hors échantillon).",
            f"Campaign of {protocol.get('as_of')} ({protocol.get('horizon_months')}-month horizon): checked by "
            f"cross-validation over {protocol.get('folds')} folds of people (out-of-fold probabilities).", lang)
    if ev.get("in_sample"):
        subtitle += " " + tr("Attention : cette période a servi à l'apprentissage, les chiffres sont optimistes.",
                             "Warning: this period was used in training; the figures are optimistic.", lang)
    return subtitle


def write_people_report(path: str | Path, evaluation: dict[str, Any] | None = None, *, retention: Sequence[Any] = (),
                        lang: str | None = None) -> Path:
    """Write the report to ``path`` (UTF-8) and return it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_people_report(evaluation, retention=retention, lang=lang), encoding="utf-8")
    return p
