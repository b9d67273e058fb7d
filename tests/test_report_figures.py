"""The report agrees with itself and with the result (issue 16, item 5): the threshold dot where the threshold
really is, the automatic share over every message with its counts, counts beside the rates, no label cut."""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
from dataclasses import replace

import pytest

from assoc_ai_core import evaluate
from assoc_ai_core.api import explain_prediction
from assoc_ai_core.i18n import decimal, percent
from assoc_ai_core.mail.report import confusion_svg, coverage_svg, per_class_svg, text_width, write_report
from assoc_ai_core.mail.sources import load_dataset

LONG = ["Adhesion", "QuestionGenerale", "Demandes-de-subvention-regionale", "Presse"]


@pytest.fixture(scope="module")
def new_mail(example_mailbox):
    with (example_mailbox / "new" / "EXPECTED.csv").open(encoding="utf-8") as fh:
        truth = {r["file"]: r["category"] for r in csv.DictReader(fh)}
    msgs = load_dataset(example_mailbox / "new", labelled=False).readable()
    return msgs, truth


@pytest.fixture(scope="module")
def demo(trained_model, new_mail):
    """What ``assoc-ai demo`` gives the report: every new message classified, the labelled ones evaluated."""
    msgs, truth = new_mail
    labelled = [replace(m, label=truth[m.source.rsplit("/", 1)[-1]]) for m in msgs
                if truth[m.source.rsplit("/", 1)[-1]] != "review"]
    return evaluate(trained_model, labelled), _rows(trained_model, msgs, "fr")


def _rows(model, msgs, lang):
    """The demo's table of new mail: one row per message, explained in ``lang``."""
    return [{"source": m.source, "key": m.key, "category": p.label, "probability": p.probability,
             "decision": p.decision, "reason": p.reason, "explanation": explain_prediction(model, m, p, lang=lang).sentence}
            for m, p in zip(msgs, model.predictions(msgs), strict=True)]


def _circles(svg: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)]


def _path_points(svg: str) -> set[tuple[float, float]]:
    path = re.search(r'<path d="([^"]+)"', svg).group(1)
    return {(float(x), float(y)) for x, y in re.findall(r"[ML]([\d.]+),([\d.]+)", path)}


def _target_y(svg: str) -> float:
    return float(re.search(r'<line x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)"', svg).group(1))


# ---------------------------------------------------------------- the threshold dot
def test_the_cv_threshold_dot_is_the_real_point_above_the_target_line(trained_model):
    md = trained_model.metadata_
    assert md["cv_auto_precision"] >= md["target_precision"]
    svg = str(coverage_svg(md["coverage_curve"], md["target_precision"],
                           (md["expected_auto_share"], md["cv_auto_precision"]), "fr"))
    dot = _circles(svg)[0]
    assert dot in _path_points(svg)  # the curve passes through the dot
    assert dot[1] <= _target_y(svg)  # a threshold that reaches 95 % is drawn on or above the 95 % line
    legend = html.unescape(re.search(r'<text class="threshold"[^>]*>([^<]+)<', svg).group(1))
    assert f"{percent(md['expected_auto_share'], 'fr')} automatique" in legend
    assert f"précision {percent(md['cv_auto_precision'], 'fr')}" in legend


def test_the_report_dots_match_the_result_and_the_metadata(trained_model, demo, tmp_path):
    result, rows = demo
    page = write_report(result, tmp_path / "r.html", model=trained_model, lang="fr", predictions=rows).read_text("utf-8")
    legends = [html.unescape(t) for t in re.findall(r'<text class="threshold"[^>]*>([^<]+)<', page)]
    at, md = result["at_threshold"], trained_model.metadata_
    assert legends[0] == (f"seuil du modèle : {percent(at['auto_share'], 'fr')} automatique "
                          f"({at['n_auto']} sur {result['n']}), précision {percent(at['auto_precision'], 'fr')}")
    assert f"{percent(md['expected_auto_share'], 'fr')} automatique" in legends[1]
    assert f"précision {percent(md['cv_auto_precision'], 'fr')}" in legends[1]


# ---------------------------------------------------------------- the cards
def test_the_automatic_share_counts_every_classified_message(trained_model, demo, tmp_path):
    result, rows = demo
    auto = sum(1 for r in rows if r["decision"] == "auto")
    assert auto < len(rows), "the example's new mail has one message left to check"
    page = html.unescape(write_report(result, tmp_path / "r.html", model=trained_model, lang="fr",
                                      predictions=rows).read_text("utf-8"))
    card = re.search(r'<div class="card" id="auto-share"><div class="v">([^<]+)</div><div class="l">([^<]+)<', page)
    assert card.group(1) == percent(auto / len(rows), "fr") != percent(1.0, "fr")
    assert f"({auto} sur {len(rows)} messages)" in card.group(2)
    assert f"messages bien classés ({result['n_correct']} sur {result['n']} dont la catégorie" in page


def test_without_predictions_the_card_counts_the_evaluated_messages(trained_model, demo, tmp_path):
    result, _ = demo
    page = html.unescape(write_report(result, tmp_path / "r.html", lang="en").read_text("utf-8"))
    at = result["at_threshold"]
    assert f'<div class="v">{percent(at["auto_share"], "en")}</div>' in page
    assert f"({at['n_auto']} of {result['n']} messages)" in page
    assert f"({at['n_auto_correct']} of {at['n_auto']})" in page


def test_counts_agree_with_the_confusion_matrix(demo):
    result, _ = demo
    matrix = result["confusion"]["matrix"]
    assert result["n_correct"] == sum(matrix[i][i] for i in range(len(matrix)))
    for j, lab in enumerate(result["confusion"]["labels"]):
        assert result["per_class"][lab]["predicted"] == sum(row[j] for row in matrix)
        assert result["per_class"][lab]["support"] == sum(matrix[j])


# ---------------------------------------------------------------- bars and matrix
def test_each_bar_shows_its_rate_and_the_count_it_rests_on(demo):
    result, _ = demo
    for lang in ("fr", "en"):
        shown = re.findall(r'font-size="9">([^<]+)<', str(per_class_svg(result["per_class"], lang)))
        expected = [f"{decimal(m[k], 2, lang)} ({m['predicted'] if k == 'precision' else m['support']})"
                    for m in result["per_class"].values() for k in ("precision", "recall", "f1")]
        assert shown == expected
        assert all(("," in s) == (lang == "fr") for s in shown)


def test_confusion_labels_are_written_whole_and_fit_the_drawing():
    matrix = [[3 if i == j else 0 for j in range(len(LONG))] for i in range(len(LONG))]
    svg = str(confusion_svg(LONG, matrix, "fr"))
    width, height = (float(v) for v in re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())
    texts = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
    for label in LONG:
        assert texts.count(label) == 2  # once as a row, once as a column, never shortened
    columns = re.findall(r'translate\(([\d.]+),([\d.]+)\) rotate\(-45\)', svg)
    for (x, y), label in zip(columns, LONG, strict=True):
        assert float(y) - text_width(label, 12) * 0.7072 >= 0
        assert float(x) + text_width(label, 12) * 0.7072 <= width
    top = min(float(y) for _, y in re.findall(r'translate\(([\d.]+),([\d.]+)\)', svg))
    assert top <= text_width(LONG[2], 12) * 0.7072 + 40  # no blank band above the longest column label
    assert height < top + 44 * len(LONG) + 60


# ---------------------------------------------------------------- in a real browser
_MEASURE = """<script>
window.addEventListener('load', () => {
  const out = [];
  document.querySelectorAll('svg').forEach((svg, i) => {
    const box = svg.getBoundingClientRect();
    svg.querySelectorAll('text').forEach(t => {
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        out.push([i, t.textContent, [r.left - box.left, r.right - box.right, r.top - box.top, r.bottom - box.bottom]]);
    });
  });
  const pre = document.createElement('pre'); pre.id = 'clipped'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian chromium is installed by .ci/run for this test"
    return browser


def _clipped_in_chromium(page: str, tmp_path) -> list:
    """Texts of the page's SVG charts that the browser draws outside their chart (so the reader sees them cut)."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        check=True, capture_output=True, timeout=120, text=True,
    ).stdout
    found = re.search(r'<pre id="clipped">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script ran"
    return json.loads(html.unescape(found.group(1)))


def test_the_browser_probe_sees_a_cut_label(tmp_path):
    """The measure below can fail: a label wider than its drawing is reported."""
    svg = '<svg viewBox="0 0 60 20" width="60" height="20"><text x="2" y="14">QuestionGenerale</text></svg>'
    clipped = _clipped_in_chromium(f"<html><body>{svg}</body></html>", tmp_path)
    assert [c[1] for c in clipped] == ["QuestionGenerale"]


def test_no_chart_text_is_cut_in_chromium(trained_model, demo, tmp_path):
    result, rows = demo
    labels = LONG + result["confusion"]["labels"]
    wide = dict(result, confusion={"labels": labels, "matrix": [[1] * len(labels) for _ in labels]},
                per_class={lab: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2}
                           for lab in labels})
    for lang in ("fr", "en"):
        page = write_report(wide, tmp_path / f"{lang}.html", model=trained_model, lang=lang,
                            predictions=rows).read_text("utf-8")
        assert _clipped_in_chromium(page, tmp_path) == []


def test_the_report_screenshot(trained_model, demo, tmp_path):
    """A full-page picture for a person to look at (kept in the test's folder); here only its size is checked."""
    result, rows = demo
    report = write_report(result, tmp_path / "report.html", model=trained_model, lang="fr", predictions=rows)
    png = tmp_path / "report.png"
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}",
         "--window-size=1100,3000", f"--screenshot={png}", report.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000


# ---------------------------------------------------------------- one number format per language
def _visible_figures(page: str) -> str:
    """The text a reader sees, without the style sheet and the footer (versions such as 1.9.1 are not figures)."""
    body = page.split("</style>", 1)[1].rsplit('<p class="muted">assoc-ai', 1)[0]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_figures_use_one_format_per_language(trained_model, demo, new_mail, tmp_path):
    result, rows = demo
    fr = _visible_figures(write_report(result, tmp_path / "fr.html", model=trained_model, lang="fr",
                                       predictions=rows).read_text("utf-8"))
    assert not re.findall(r"\d\.\d", fr), "a decimal point in the French report"
    assert not re.findall(r"\d ?%", fr), "French writes a narrow no-break space before %"
    assert "1,00 (2)" in fr
    en_rows = _rows(trained_model, new_mail[0], "en")
    en = _visible_figures(write_report(result, tmp_path / "en.html", model=trained_model, lang="en",
                                       predictions=en_rows).read_text("utf-8"))
    assert not re.findall(r"\d,\d", en) and "\u202f%" not in en
    assert "1.00 (2)" in en
