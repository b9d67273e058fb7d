"""The HTML report a board member can read: one self-contained file, charts in inline SVG.

No JavaScript and no external resource, so the file can be mailed, archived
and opened offline.  Text is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import current_lang, decimal, percent, tr

__all__ = [
    "write_report", "confusion_svg", "per_class_svg", "coverage_svg", "evaluated_on_text", "at_a_glance", "text_width",
]

_PALETTE = ("#2b6cb0", "#dd6b20", "#38a169")


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def evaluated_on_text(result: dict[str, Any], lang: str) -> str:
    """What the evaluated mail was, in words: never "held-out" for mail the model was trained on."""
    where = result.get("evaluated_on")
    overlap = result.get("training_overlap") or {}
    share, k, n = float(overlap.get("share") or 0.0), overlap.get("n"), result.get("n")
    if where == "training_data":
        return tr(f"données d'entraînement ({percent(share, lang)} des messages déjà vus à l'entraînement)",
                  f"training data ({percent(share, lang)} of the messages seen at training)", lang)
    if where == "partly_training_data":
        return tr(f"en partie des données d'entraînement ({percent(share, lang)} des messages, {k} sur {n}, "
                  "déjà vus à l'entraînement)",
                  f"partly training data ({percent(share, lang)} of the messages, {k} of {n}, seen at training)", lang)
    if where == "held_out":
        return tr("courrier non vu à l'entraînement", "held-out mail (not seen at training)", lang)
    if where == "unknown":
        return tr("recouvrement avec les données d'entraînement inconnu (modèle enregistré sans empreinte par message)",
                  "overlap with the training data unknown (model saved without per-message digests)", lang)
    return ""


def _protocol_text(result: dict[str, Any], lang: str) -> str:
    """The test protocol in the report's language, with what the mail was (training data or not)."""
    protocol = str(result.get("protocol") or "")
    if protocol in ("held-out", "held_out"):  # the words of older callers; evaluated_on says it truthfully
        protocol = ""
    elif protocol.startswith("chronological"):
        protocol = tr("chronologique", "chronological", lang) + protocol[len("chronological"):]
    return " — ".join(part for part in (protocol, evaluated_on_text(result, lang)) if part)


# Average advance of DejaVu Sans / Arial glyphs, in ems: enough to size a chart around its labels without a
# browser (a little generous, so that a label is never cut; a few pixels of margin cost nothing).
_NARROW, _WIDE = set("iljtfrI.,;:!'|()[]/- "), set("mwMW@%")


def text_width(text: str, size: float) -> float:
    """Estimated width in pixels of ``text`` drawn in a sans-serif font of ``size`` pixels."""
    ems = sum(0.34 if ch in _NARROW else 0.92 if ch in _WIDE else 0.72 if ch.isupper() else 0.6 for ch in text)
    return ems * size


def _svg_open(label: str, width: float, height: float, font_size: int) -> str:
    return (f'<svg role="img" aria-label="{_esc(label)}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'height="{height:.0f}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="{font_size}">')


def confusion_svg(labels: Sequence[str], matrix: Sequence[Sequence[int]], lang: str) -> Markup:
    """Heatmap of true (rows) vs predicted (columns) categories, counts in the cells.

    The margins are sized from the labels themselves: a long category name is never cut, and short ones
    leave no empty band above the matrix.
    """
    n = len(labels)
    if n == 0:
        return Markup("")
    cell, size, slant = 44, 12, 0.7072  # column labels are rotated by 45 degrees
    widths = [text_width(lab, size) for lab in labels]
    left = max(widths) + 16
    top = max(widths) * slant + size + 12
    right = max(left + (j + 0.5) * cell + w * slant + size for j, w in enumerate(widths))
    width, height = max(left + cell * n + 20, right + 8), top + cell * n + 40
    row_tot = [max(1, sum(r)) for r in matrix]
    parts = [_svg_open(tr("Matrice de confusion", "Confusion matrix", lang), width, height, size)]
    for j, lab in enumerate(labels):
        x = left + j * cell + cell / 2
        parts.append(f'<text transform="translate({x:.1f},{top - 8:.1f}) rotate(-45)">{_esc(lab)}</text>')
    for i, lab in enumerate(labels):
        y = top + i * cell
        parts.append(f'<text x="{left - 8:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{_esc(lab)}</text>')
        for j in range(n):
            v = matrix[i][j]
            share = v / row_tot[i]
            color = f"rgba(43,108,176,{0.08 + 0.92 * share:.3f})" if i == j else f"rgba(221,107,32,{min(1.0, 0.1 + 2.0 * share):.3f})"
            if v == 0:
                color = "#f7fafc"
            cx = left + j * cell
            parts.append(f'<rect x="{cx:.1f}" y="{y:.1f}" width="{cell - 2}" height="{cell - 2}" fill="{color}">'
                         f'<title>{_esc(lab)} → {_esc(labels[j])}: {v}</title></rect>')
            fg = "#fff" if share > 0.55 else "#1a202c"
            parts.append(f'<text x="{cx + cell / 2 - 1:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" fill="{fg}">{v}</text>')
    parts.append(f'<text x="{left + cell * n / 2:.1f}" y="{height - 10:.1f}" text-anchor="middle" font-style="italic">'
                 f'{_esc(tr("catégorie prédite →", "predicted category →", lang))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _bar_count(scores: dict[str, Any], key: str) -> int | None:
    """How many messages a rate rests on: those put in the category for precision, those in it otherwise."""
    count = scores.get("predicted") if key == "precision" else scores.get("support")
    return int(count) if count is not None else None


def per_class_svg(per_class: dict[str, dict[str, Any]], lang: str) -> Markup:
    """Grouped horizontal bars: precision, recall and F1 of each category, with the counts they rest on."""
    labels = list(per_class)
    if not labels:
        return Markup("")
    bar, gap, scale = 9, 10, 320
    left = max(text_width(lab, 12) for lab in labels) + 16
    group = 3 * bar + gap
    height = 40 + group * len(labels)
    width = left + scale + 90
    names = [tr("précision", "precision", lang), tr("rappel", "recall", lang), "F1"]
    parts = [_svg_open(tr("Qualité par catégorie", "Quality per category", lang), width, height, 12)]
    for k, name in enumerate(names):
        parts.append(f'<rect x="{left + k * 110:.1f}" y="4" width="10" height="10" fill="{_PALETTE[k]}"/>'
                     f'<text x="{left + k * 110 + 14:.1f}" y="13">{_esc(name)}</text>')
    for i, lab in enumerate(labels):
        y0 = 26 + i * group
        parts.append(f'<text x="{left - 8:.1f}" y="{y0 + 1.5 * bar + 4}" text-anchor="end">{_esc(lab)}</text>')
        for k, key in enumerate(("precision", "recall", "f1")):
            v = float(per_class[lab].get(key, 0.0))
            count = _bar_count(per_class[lab], key)
            shown = decimal(v, 2, lang) + (f" ({count})" if count is not None else "")
            on = tr(f" sur {count} messages", f" over {count} messages", lang) if count is not None else ""
            parts.append(f'<rect x="{left:.1f}" y="{y0 + k * bar}" width="{scale * v:.1f}" height="{bar - 1}" fill="{_PALETTE[k]}">'
                         f'<title>{_esc(lab)} — {_esc(names[k])} {decimal(v, 2, lang)}{_esc(on)}</title></rect>')
            parts.append(f'<text x="{left + scale * v + 4:.1f}" y="{y0 + k * bar + bar - 1}" font-size="9">{shown}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _precision_ticks(lowest: float) -> list[float]:
    """Round steps (1, 2, 5, 10 or 20 points) from below ``lowest`` up to 100 %, at most six of them."""
    for step in (0.01, 0.02, 0.05, 0.10, 0.20):
        start = math.floor(round(lowest / step, 6)) * step
        if (1 - start) / step <= 5.0001:
            return [start + k * step for k in range(round((1 - start) / step) + 1)]
    return [k * 0.2 for k in range(6)]


def coverage_svg(curve: Sequence[dict[str, float]], target: float | None, point: tuple[float, float] | None,
                 lang: str, *, counts: tuple[int, int] | None = None) -> Markup:
    """Precision (y) against the share of mail routed automatically (x).

    ``point`` is the (share routed automatically, precision) the model's threshold really gives: the dot is
    drawn there and the curve passes through it (its other points are on a grid of thresholds).  The figures
    it stands for (and ``counts``, messages routed automatically of those measured) are written in the legend
    below the chart, where no line can cross them.
    """
    if not curve:
        return Markup("")
    w, h, left, bottom, top = 440, 298, 54, 78, 12
    pw, ph = w - left - 16, h - bottom - top
    pts = sorted({(p["coverage"], p["precision"]) for p in curve} | ({point} if point else set()))
    ticks = _precision_ticks(max(0.0, min([p for _, p in pts] + ([target] if target else [])) - 0.02))
    ymin = ticks[0]

    def xy(cov: float, prec: float) -> tuple[float, float]:
        return left + pw * cov, top + ph * (1 - (prec - ymin) / max(1e-9, 1 - ymin))

    path = " ".join(f"{'M' if i == 0 else 'L'}{xy(c, p)[0]:.1f},{xy(c, p)[1]:.1f}" for i, (c, p) in enumerate(pts))
    parts = [_svg_open(tr("Courbe couverture / précision", "Coverage / precision curve", lang), w, h, 11),
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#f7fafc" stroke="#cbd5e0"/>']
    for k in range(0, 6):
        x = left + pw * k / 5
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle">{percent(k / 5, lang)}</text>')
    parts += [f'<text x="{left - 4}" y="{xy(0, yv)[1] + 4:.1f}" text-anchor="end">{percent(yv, lang)}</text>'
              for yv in ticks]
    legend_y = h - 24  # two legend lines: the target, then the threshold
    if target is not None:
        ty = xy(0, target)[1]
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e53e3e" stroke-dasharray="4 3"/>')
        parts.append(f'<line x1="{left}" x2="{left + 18}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#e53e3e" '
                     f'stroke-dasharray="4 3"/><text class="target" x="{left + 22}" y="{legend_y}" fill="#c53030">'
                     f'{_esc(tr("précision visée", "target precision", lang))} {percent(target, lang)}</text>')
    parts.append(f'<path d="{path}" fill="none" stroke="#2b6cb0" stroke-width="2"/>')
    if point is not None:
        parts.append(_threshold_dot(point, xy(*point), (left + 9, legend_y + 16), lang, counts))
    parts.append(f'<text x="{left + pw / 2}" y="{top + ph + 30}" text-anchor="middle">'
                 f'{_esc(tr("part du courrier classée automatiquement", "share of mail routed automatically", lang))}</text>')
    parts.append(f'<text transform="translate(12,{top + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'{_esc(tr("précision", "precision", lang))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _threshold_dot(point: tuple[float, float], at: tuple[float, float], legend: tuple[float, float], lang: str,
                   counts: tuple[int, int] | None) -> str:
    """The orange dot of the model's threshold, and in the legend the two figures it stands for."""
    (cov, prec), (cx, cy), (lx, ly) = point, at, legend
    of = tr(f" ({counts[0]} sur {counts[1]})", f" ({counts[0]} of {counts[1]})", lang) if counts else ""
    words = tr(f"seuil du modèle : {percent(cov, lang)} automatique{of}, précision {percent(prec, lang)}",
               f"model threshold: {percent(cov, lang)} automatic{of}, precision {percent(prec, lang)}", lang)
    return (f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#dd6b20"><title>{_esc(words)}</title></circle>'
            f'<circle cx="{lx:.1f}" cy="{ly - 4:.1f}" r="5" fill="#dd6b20"/>'
            f'<text class="threshold" x="{lx + 9:.1f}" y="{ly:.1f}" fill="#9c4221">{_esc(words)}</text>')


def _point(share: Any, precision: Any) -> tuple[float, float] | None:
    """The threshold's (share routed automatically, precision), when something was routed automatically."""
    if share is None or precision is None or not share:
        return None
    return float(share), float(precision)


def _count(numbers: dict[str, Any], key: str, share: Any, total: Any) -> int:
    """A count of the result, or (from a result saved before counts were added) its share of ``total``."""
    if numbers.get(key) is not None:
        return int(numbers[key])
    return int(round(float(share or 0) * int(total or 0)))


def at_a_glance(result: dict[str, Any], predictions: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The figures of the report's cards, each with the counts it rests on.

    With the classified mail at hand the automatic share is counted over every message classified (those
    left "to check" included), so the card agrees with the table and the console.
    """
    n = int(result.get("n") or 0)
    at = result.get("at_threshold") or {}
    n_auto = _count(at, "n_auto", at.get("auto_share"), n)
    cards: dict[str, Any] = {
        "n": n, "n_correct": _count(result, "n_correct", result.get("accuracy"), n),
        "auto_share": at.get("auto_share"), "n_auto": n_auto, "auto_total": n,
        "auto_precision": at.get("auto_precision"),
        "n_auto_correct": _count(at, "n_auto_correct", at.get("auto_precision"), n_auto),
        "n_auto_scored": n_auto,
    }
    if predictions:
        decided = sum(1 for p in predictions if p.get("decision") == "auto")
        cards.update(auto_share=decided / len(predictions), n_auto=decided, auto_total=len(predictions),
                     unlabelled=len(predictions) - n)
    return cards


def write_report(
    result: dict[str, Any],
    path: str | os.PathLike[str],
    *,
    model: Any = None,
    lang: str | None = None,
    predictions: Sequence[dict[str, Any]] | None = None,
    monitoring: str | None = None,
) -> Path:
    """Render an evaluation result (from :func:`assoc_ai_core.mail.evaluate.evaluate`) to an HTML file.

    ``monitoring`` is the HTML section of :func:`assoc_ai_core.jobs.monitoring.monitoring_html`
    (the triage job's runs over time and drift flags), already escaped.
    """
    lang = lang or current_lang()
    env = Environment(loader=PackageLoader("assoc_ai_core.mail", "templates"), autoescape=select_autoescape(["html"]))
    env.globals.update(tr=lambda fr, en: tr(fr, en, lang), pct=lambda v: percent(v, lang) if v is not None else "—",
                       num=lambda v, digits=2: decimal(v, digits, lang) if v is not None else "—")
    meta = dict(getattr(model, "metadata_", {}) or {})
    top_terms = {}
    if model is not None:
        from assoc_ai_core.mail.explain import explain_model

        top_terms = {k: [t for t, _ in v[:10]] for k, v in explain_model(model, top_k=10, lang=lang).items()}
    has_eval = bool(result.get("n"))
    glance = at_a_glance(result, predictions or []) if has_eval else {}
    charts: dict[str, Markup | str] = {}
    if has_eval:
        charts = {
            "confusion": confusion_svg(result["confusion"]["labels"], result["confusion"]["matrix"], lang),
            "per_class": per_class_svg(result["per_class"], lang),
            "coverage": coverage_svg(result.get("coverage_curve", []), result["at_threshold"]["target_precision"],
                                     _point(result["at_threshold"]["auto_share"], result["at_threshold"]["auto_precision"]),
                                     lang, counts=(glance["n_auto_scored"], glance["n"])),
        }
    cv_curve = meta.get("coverage_curve") or []
    cv_point = _point(meta.get("expected_auto_share"), meta.get("cv_auto_precision"))
    cv_counts = (_count({}, "", meta.get("expected_auto_share"), meta.get("n_train")), int(meta.get("n_train") or 0))
    charts["cv_coverage"] = coverage_svg(cv_curve, meta.get("target_precision"), cv_point, lang,
                                         counts=cv_counts) if cv_curve else ""
    page = env.get_template("report.html").render(
        lang=lang, result=result, has_eval=has_eval, protocol=_protocol_text(result, lang),
        seen_at_training=result.get("evaluated_on") in ("training_data", "partly_training_data"), meta=meta, charts=charts, top_terms=top_terms,
        predictions=list(predictions or []), glance=glance,
        monitoring=Markup(monitoring) if monitoring else "",
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = Path(path)
    private_dir(out.parent)
    # The report quotes words of the mail (explanations, pseudonymised subjects): private, like the model.
    return atomic_write(out, page, mode=0o600)
