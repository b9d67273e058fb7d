"""Behavioural checks every :class:`~assoc_ai_core.ext.connectors.MailboxConnector` must pass.

Third-party plugins run them in their own tests, against their real server::

    from assoc_ai_core.testing.mailbox import MailboxHarness
    from assoc_ai_core.testing import parametrize_mailbox_checks

    @parametrize_mailbox_checks()
    def test_conformance(check, tmp_path, dovecot):
        harness = MailboxHarness(
            make=lambda: ImapConnector(ImapConfig(host=..., password=Secret("s3cret"))),
            deliver=dovecot.deliver,                 # (folder, raw bytes) -> None, as the MTA would
            section={"connector": "imap", "host": ..., "password": {"env": "IMAP_PW"}},
            env={"IMAP_PW": "s3cret"},               # for the SIGKILL check's subprocess
            secret_values=("s3cret",),
        )
        check(harness, tmp_path)

Each check takes a *fresh, empty* mailbox (``harness``) and a scratch folder;
a check that needs a capability the connector does not declare raises
``CheckSkipped`` (pytest shows it as skipped with the reason).  The triage
checks run the real :class:`~assoc_ai_core.jobs.triage.TriageJob` with a tiny model
trained on the kit's own sample mail.

This module gathers the kit; its parts live in
:mod:`~assoc_ai_core.testing.mailbox_harness` (harness, skips, helpers),
:mod:`~assoc_ai_core.testing.mail_samples` (sample mail and the kit's model),
:mod:`~assoc_ai_core.testing.mailbox_checks` (contract checks),
:mod:`~assoc_ai_core.testing.triage_checks` (the job on the connector) and
:mod:`~assoc_ai_core.testing.kill9` (the job SIGKILLed in a subprocess).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assoc_ai_core.testing.kill9 import check_triage_survives_sigkill, run_kit_driver
from assoc_ai_core.testing.mail_samples import (
    CATEGORY_A,
    CATEGORY_B,
    FOLDER_A,
    FOLDER_B,
    REVIEW,
    kit_messages,
    kit_model,
    sample_mail,
)
from assoc_ai_core.testing.mailbox_checks import (
    check_add_label_is_idempotent,
    check_batch_actions_are_idempotent,
    check_capabilities_are_declared,
    check_close_is_safe_twice,
    check_config_is_frozen_and_hides_secrets,
    check_construct_does_no_io,
    check_cursor_resumes_after_restart,
    check_ensure_folder_nested,
    check_fetch_all,
    check_fetch_new_yields_pages,
    check_id_is_slug,
    check_list_folders_has_inbox,
    check_locate_sees_moves_by_another_instance,
    check_move_is_idempotent,
    check_tag_subject_is_idempotent,
)
from assoc_ai_core.testing.mailbox_harness import CheckSkipped, MailboxHarness, RecordingForwarder, mailbox_census
from assoc_ai_core.testing.triage_checks import (
    SimulatedCrash,
    assert_exactly_once,
    check_triage_detects_human_correction,
    check_triage_killed_mid_batch_is_exactly_once,
    kit_batch,
    kit_config,
    kit_job,
)

__all__ = [
    "CATEGORY_A", "CATEGORY_B", "FOLDER_A", "FOLDER_B", "REVIEW", "MAILBOX_CHECKS",
    "CheckSkipped", "MailboxHarness", "RecordingForwarder", "SimulatedCrash",
    "assert_exactly_once", "check_mailbox_connector", "kit_batch", "kit_config", "kit_job", "kit_messages",
    "kit_model", "mailbox_census", "mailbox_checks", "run_kit_driver", "sample_mail",
    "check_id_is_slug", "check_config_is_frozen_and_hides_secrets", "check_construct_does_no_io",
    "check_capabilities_are_declared", "check_close_is_safe_twice", "check_list_folders_has_inbox",
    "check_ensure_folder_nested", "check_fetch_new_yields_pages", "check_cursor_resumes_after_restart",
    "check_fetch_all", "check_move_is_idempotent", "check_locate_sees_moves_by_another_instance",
    "check_tag_subject_is_idempotent", "check_add_label_is_idempotent", "check_batch_actions_are_idempotent",
    "check_triage_detects_human_correction", "check_triage_killed_mid_batch_is_exactly_once",
    "check_triage_survives_sigkill",
]

MAILBOX_CHECKS: tuple[Callable[[MailboxHarness, Path], None], ...] = (
    check_id_is_slug,
    check_config_is_frozen_and_hides_secrets,
    check_construct_does_no_io,
    check_capabilities_are_declared,
    check_close_is_safe_twice,
    check_list_folders_has_inbox,
    check_ensure_folder_nested,
    check_fetch_new_yields_pages,
    check_cursor_resumes_after_restart,
    check_fetch_all,
    check_move_is_idempotent,
    check_locate_sees_moves_by_another_instance,
    check_tag_subject_is_idempotent,
    check_add_label_is_idempotent,
    check_batch_actions_are_idempotent,
    check_triage_detects_human_correction,
    check_triage_killed_mid_batch_is_exactly_once,
    check_triage_survives_sigkill,
)


def mailbox_checks(*, triage: bool = True, subprocess: bool = True) -> list[Callable[[MailboxHarness, Path], None]]:
    """The checks to run; ``triage=False`` leaves out the job-level ones, ``subprocess=False`` the SIGKILL one."""
    out = []
    for check in MAILBOX_CHECKS:
        if not triage and check.__name__.startswith("check_triage"):
            continue
        if not subprocess and check is check_triage_survives_sigkill:
            continue
        out.append(check)
    return out


def check_mailbox_connector(harness_factory: Callable[[Path], MailboxHarness], tmp_path: Path, *,
                            triage: bool = True, subprocess: bool = True) -> dict[str, str]:
    """Run every check, each on a fresh harness in its own sub-folder; raise on the first failure.

    Returns ``{check name: "ok" | "skipped: why"}``.
    """
    results: dict[str, str] = {}
    for check in mailbox_checks(triage=triage, subprocess=subprocess):
        where = tmp_path / check.__name__
        where.mkdir(parents=True, exist_ok=True)
        try:
            check(harness_factory(where), where)
        except CheckSkipped as why:
            results[check.__name__] = f"skipped: {why}"
        else:
            results[check.__name__] = "ok"
    return results


# Earlier private names, kept because plugin test suites already import them.
_job, _kit_batch, _run_driver = kit_job, kit_batch, run_kit_driver
