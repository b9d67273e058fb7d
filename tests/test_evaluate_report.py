"""Evaluation metrics, the chronological split, and the HTML report rendered in a real browser."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from assoc_ai_core import evaluate
from assoc_ai_core.mail.evaluate import chronological_split
from assoc_ai_core.mail.report import write_report
from assoc_ai_core.mail.sources import load_dataset


@pytest.fixture(scope="module")
def result(trained_model, example_mailbox):
    import csv
    from dataclasses import replace

    truth = {r["file"]: r["category"] for r in csv.DictReader((example_mailbox / "new" / "EXPECTED.csv").open())}
    msgs = [replace(m, label=truth[m.source.rsplit("/", 1)[-1]])
            for m in load_dataset(example_mailbox / "new", labelled=False).readable()
            if truth[m.source.rsplit("/", 1)[-1]] != "review"]
    return evaluate(trained_model, msgs)


def test_evaluation_keys(result):
    for key in ("accuracy", "macro_f1", "per_class", "confusion", "coverage_at_precision", "at_threshold", "mistakes"):
        assert key in result
    assert set(result["coverage_at_precision"]) == {"0.90", "0.95", "0.98"}
    labels = result["confusion"]["labels"]
    assert len(result["confusion"]["matrix"]) == len(labels)
    assert sum(map(sum, result["confusion"]["matrix"])) == result["n"] == 12
    assert 0 <= result["accuracy"] <= 1


def test_chronological_split_orders_by_date(example_mailbox):
    msgs = load_dataset(example_mailbox / "train").labelled()
    older, newer = chronological_split(msgs, 0.25)
    assert len(newer) == round(len(msgs) * 0.25)
    assert max(m.date for m in older) <= min(m.date for m in newer)


def test_report_renders_in_headless_chromium(result, trained_model, tmp_path):
    html = write_report(result, tmp_path / "report.html", model=trained_model, lang="fr")
    text = html.read_text(encoding="utf-8")
    assert "<svg" in text and "Matrice de confusion" in text and "http" not in text.split("</style>")[0]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian chromium is installed by .ci/run for this test"
    png = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chrome'}", "--window-size=1100,1800", f"--screenshot={png}", html.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 30_000  # a blank page compresses to a few kB; charts and tables do not


def test_report_in_english(result, trained_model, tmp_path):
    text = write_report(result, tmp_path / "r.html", model=trained_model, lang="en").read_text(encoding="utf-8")
    assert "Confusion matrix" in text and "Matrice" not in text
    assert f'<div class="v">{result["macro_f1"]:.2f}</div>' in text


def test_report_numbers_have_a_decimal_comma_in_french(result, trained_model, tmp_path):
    text = write_report(result, tmp_path / "r.html", model=trained_model, lang="fr").read_text(encoding="utf-8")
    comma = f"{result['macro_f1']:.2f}".replace(".", ",")
    assert f'<div class="v">{comma}</div>' in text
    f1 = next(iter(result["per_class"].values()))["f1"]
    assert f'font-size="9">{f1:.2f}'.replace(".", ",") in text
