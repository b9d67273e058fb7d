"""The HTML report a board member can read: one self-contained file, charts in inline SVG.

No JavaScript and no external resource, so the file can be mailed, archived
and opened offline.  Text is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from assoc_ai_core.i18n import current_lang, decimal, percent, tr

__all__ = ["write_report", "confusion_svg", "per_class_svg", "coverage_svg"]

_PALETTE = ("#2b6cb0", "#dd6b20", "#38a169")


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def confusion_svg(labels: Sequence[str], matrix: Sequence[Sequence[int]], lang: str) -> Markup:
    """Heatmap of true (rows) vs predicted (columns) categories, counts in the cells."""
    n = len(labels)
    if n == 0:
        return Markup("")
    cell, left, top = 44, 150, 130
    width, height = left + cell * n + 20, top + cell * n + 40
    row_tot = [max(1, sum(r)) for r in matrix]
    parts = [f'<svg role="img" aria-label="{_esc(tr("Matrice de confusion", "Confusion matrix", lang))}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="sans-serif" font-size="12">']
    for j, lab in enumerate(labels):
        x = left + j * cell + cell / 2
        parts.append(f'<text transform="translate({x},{top - 8}) rotate(-45)">{_esc(lab)}</text>')
    for i, lab in enumerate(labels):
        y = top + i * cell
        parts.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4}" text-anchor="end">{_esc(lab)}</text>')
        for j in range(n):
            v = matrix[i][j]
            share = v / row_tot[i]
            color = f"rgba(43,108,176,{0.08 + 0.92 * share:.3f})" if i == j else f"rgba(221,107,32,{min(1.0, 0.1 + 2.0 * share):.3f})"
            if v == 0:
                color = "#f7fafc"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{color}">'
                         f'<title>{_esc(lab)} → {_esc(labels[j])}: {v}</title></rect>')
            fg = "#fff" if share > 0.55 else "#1a202c"
            parts.append(f'<text x="{left + j * cell + cell / 2 - 1}" y="{y + cell / 2 + 4}" text-anchor="middle" fill="{fg}">{v}</text>')
    parts.append(f'<text x="{left + cell * n / 2}" y="{height - 10}" text-anchor="middle" font-style="italic">'
                 f'{_esc(tr("catégorie prédite →", "predicted category →", lang))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def per_class_svg(per_class: dict[str, dict[str, float]], lang: str) -> Markup:
    """Grouped horizontal bars: precision, recall and F1 of each category."""
    labels = list(per_class)
    if not labels:
        return Markup("")
    bar, gap, left, scale = 9, 10, 150, 320
    group = 3 * bar + gap
    height = 40 + group * len(labels)
    width = left + scale + 60
    names = [tr("précision", "precision", lang), tr("rappel", "recall", lang), "F1"]
    parts = [f'<svg role="img" aria-label="{_esc(tr("Qualité par catégorie", "Quality per category", lang))}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="sans-serif" font-size="12">']
    for k, name in enumerate(names):
        parts.append(f'<rect x="{left + k * 110}" y="4" width="10" height="10" fill="{_PALETTE[k]}"/>'
                     f'<text x="{left + k * 110 + 14}" y="13">{_esc(name)}</text>')
    for i, lab in enumerate(labels):
        y0 = 26 + i * group
        parts.append(f'<text x="{left - 8}" y="{y0 + 1.5 * bar + 4}" text-anchor="end">{_esc(lab)}</text>')
        for k, key in enumerate(("precision", "recall", "f1")):
            v = float(per_class[lab].get(key, 0.0))
            parts.append(f'<rect x="{left}" y="{y0 + k * bar}" width="{scale * v:.1f}" height="{bar - 1}" fill="{_PALETTE[k]}">'
                         f'<title>{_esc(lab)} — {_esc(names[k])} {decimal(v, 2, lang)}</title></rect>')
            parts.append(f'<text x="{left + scale * v + 4:.1f}" y="{y0 + k * bar + bar - 1}" font-size="9">'
                         f'{decimal(v, 2, lang)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def coverage_svg(curve: Sequence[dict[str, float]], target: float | None, threshold: float | None, lang: str) -> Markup:
    """Precision (y) against the share of mail routed automatically (x)."""
    if not curve:
        return Markup("")
    w, h, left, bottom, top = 420, 260, 50, 40, 16
    pw, ph = w - left - 16, h - bottom - top
    ymin = max(0.0, min(p["precision"] for p in curve) - 0.05)

    def xy(cov: float, prec: float) -> tuple[float, float]:
        return left + pw * cov, top + ph * (1 - (prec - ymin) / max(1e-9, 1 - ymin))

    pts = sorted((p["coverage"], p["precision"]) for p in curve)
    path = " ".join(f"{'M' if i == 0 else 'L'}{xy(c, p)[0]:.1f},{xy(c, p)[1]:.1f}" for i, (c, p) in enumerate(pts))
    parts = [f'<svg role="img" aria-label="{_esc(tr("Courbe couverture / précision", "Coverage / precision curve", lang))}" '
             f'viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#f7fafc" stroke="#cbd5e0"/>']
    for k in range(0, 6):
        x = left + pw * k / 5
        parts.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle">{k * 20}%</text>')
        yv = ymin + (1 - ymin) * k / 5
        parts.append(f'<text x="{left - 4}" y="{xy(0, yv)[1] + 4:.1f}" text-anchor="end">{yv * 100:.0f}%</text>')
    if target is not None and ymin <= target <= 1:
        ty = xy(0, target)[1]
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e53e3e" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{left + pw - 2}" y="{ty - 4:.1f}" text-anchor="end" fill="#e53e3e">'
                     f'{_esc(tr("précision visée", "target precision", lang))} {target * 100:.0f}%</text>')
    parts.append(f'<path d="{path}" fill="none" stroke="#2b6cb0" stroke-width="2"/>')
    if threshold is not None:
        best = min(curve, key=lambda p: abs(p["threshold"] - threshold))
        cx, cy = xy(best["coverage"], best["precision"])
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#dd6b20"><title>'
                     f'{_esc(tr("seuil du modèle", "model threshold", lang))}</title></circle>')
    parts.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle">'
                 f'{_esc(tr("part du courrier classée automatiquement", "share of mail routed automatically", lang))}</text>')
    parts.append(f'<text transform="translate(12,{top + ph / 2}) rotate(-90)" text-anchor="middle">'
                 f'{_esc(tr("précision", "precision", lang))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


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
    charts: dict[str, Markup | str] = {}
    if has_eval:
        charts = {
            "confusion": confusion_svg(result["confusion"]["labels"], result["confusion"]["matrix"], lang),
            "per_class": per_class_svg(result["per_class"], lang),
            "coverage": coverage_svg(result.get("coverage_curve", []), result["at_threshold"]["target_precision"],
                                     result["at_threshold"]["threshold"], lang),
        }
    cv_curve = meta.get("coverage_curve") or []
    charts["cv_coverage"] = coverage_svg(cv_curve, meta.get("target_precision"), meta.get("threshold"), lang) if cv_curve else ""
    page = env.get_template("report.html").render(
        lang=lang, result=result, has_eval=has_eval, meta=meta, charts=charts, top_terms=top_terms,
        predictions=list(predictions or []), monitoring=Markup(monitoring) if monitoring else "",
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
