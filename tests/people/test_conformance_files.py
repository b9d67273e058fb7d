"""The CRM conformance kit, run on the embedded files connector (and shown to catch a broken connector)."""

from __future__ import annotations

import shutil

import pytest

from assoc_ai_core.people.files_connector import FilesConfig, FilesConnector
from assoc_ai_core.records.people import RecordDiff, RecordPage, WriteReport
from assoc_ai_core.testing.crm import (
    check_crm_connector,
    check_reads_people_and_resumes,
    check_write_scores_respects_do_not_profile,
    parametrize_crm_checks,
)


@pytest.fixture
def export_copy(exports, tmp_path):
    folder = tmp_path / "exports"
    shutil.copytree(exports, folder)
    return folder


@parametrize_crm_checks()
def test_files_connector_conformance(check, export_copy, tmp_path):
    check(lambda: FilesConnector(FilesConfig(path=str(export_copy), output=str(tmp_path / "scores.csv"))))


class _Forgetful(FilesConnector):
    """Ignores the cursor: reads everything every time."""

    id = "forgetful"

    def iter_records(self, record_type, cursor=None, *, page_size=100):
        for page in super().iter_records(record_type, None, page_size=page_size):
            yield RecordPage(page.record_type, page.records, {})


def test_kit_catches_a_connector_that_ignores_its_cursor(export_copy):
    with pytest.raises(AssertionError, match="must not yield the same people again"):
        check_reads_people_and_resumes(lambda: _Forgetful(FilesConfig(path=str(export_copy))))


def test_core_import_stays_light(tmp_path):
    """The core and the people modules import, and the files connector reads a CSV, without the heavy extras."""
    import subprocess
    import sys

    (tmp_path / "personnes.csv").write_text("Identifiant;Nom\n1;Durand\n", encoding="utf-8")
    code = ("import sys\n"
            "for m in ('pandas', 'dask', 'distributed', 'fairlearn', 'openpyxl', 'recordlinkage'): sys.modules[m] = None\n"
            "import assoc_ai_core, assoc_ai_core.people, assoc_ai_core.cli.people, assoc_ai_core.people.tasks\n"
            "from assoc_ai_core.default_plugins import people_files\n"
            "from assoc_ai_core.people.files_connector import FilesConfig, FilesConnector\n"
            f"print([p.last_name for p in FilesConnector(FilesConfig(path={str(tmp_path)!r})).read_all('person')])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "['Durand']"


class _Careless(FilesConnector):
    """Writes every score it is given: the do-not-profile filter of the template is bypassed."""

    id = "careless"

    def write_scores(self, scores, *, dry_run=True):
        report = super().write_scores(scores, dry_run=dry_run)
        return WriteReport(dry_run, tuple(report.diffs) + tuple(RecordDiff(pid, "create", {}, {}) for pid, _ in report.skipped),
                           (), report.target)


def test_kit_catches_a_connector_that_scores_people_who_object(export_copy, tmp_path):
    with pytest.raises(AssertionError, match="objects to profiling"):
        check_write_scores_respects_do_not_profile(
            lambda: _Careless(FilesConfig(path=str(export_copy), output=str(tmp_path / "s.csv"))))


def test_kit_skips_with_the_reason_what_does_not_apply(export_copy, tmp_path):
    outcome = check_crm_connector(lambda: FilesConnector(FilesConfig(path=str(export_copy), output=str(tmp_path / "s.csv"))))
    assert outcome["check_write_scores_respects_do_not_profile"] == "passed"
    assert outcome["check_write_scores_dry_run_and_idempotent"] == "passed"
    assert outcome["check_unknown_record_type_is_refused"].startswith("skipped: the connector reads every record type")
