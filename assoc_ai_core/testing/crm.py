"""Conformance checks every CRM connector should pass (use them in a plugin's own tests).

::

    from assoc_ai_core.testing.crm import parametrize_crm_checks

    @parametrize_crm_checks()
    def test_conformance(check, server):
        check(lambda: MyCrmConnector(MyConfig(base_url=server.url, api_key=Secret("k"))))

Each check receives a *factory* returning a fresh, unopened connector built on
a test CRM (a loopback server following the CRM's API, or files) that holds
at least one person, and, to check the GDPR filter, one person who objects to
profiling.  Checks raise ``AssertionError`` with a message saying what the
connector must do.  A check that does not apply to the connector (the
do-not-profile check on a read-only CRM) is skipped with the reason, through
pytest's own skip, so a plain ``pytest.mark.parametrize("check", CRM_CHECKS)``
reports it too.  The write checks **write** scores into the test CRM: never run
them against a production CRM.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import pytest

from assoc_ai_core.errors import AssocAIError, CapabilityError
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CrmConnector
from assoc_ai_core.records.people import RECORD_TYPES, RecordPage, Score

__all__ = ["CRM_CHECKS", "check_crm_connector", "live_settings", "parametrize_crm_checks", "read_pages"]

Factory = Callable[[], CrmConnector]
TASK = "donor-propensity"


def _check(condition: Any, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _not_applicable(reason: str) -> NoReturn:
    pytest.skip(reason)


def read_pages(conn: CrmConnector, record_type: str, cursor: Mapping[str, Any] | None = None, *,
               page_size: int | None = None, allow_empty_pages: bool = True) -> tuple[list[Any], Any, int]:
    """Every record of ``record_type`` from ``cursor``, the last page's cursor (``cursor`` when no page) and the page count.

    Each page must say its record type and hold records of that type; with
    ``allow_empty_pages=False`` an empty page is an error too.
    """
    records: list[Any] = []
    last: Any = cursor
    pages = 0
    kwargs = {} if page_size is None else {"page_size": page_size}
    for page in conn.iter_records(record_type, cursor, **kwargs):
        _check(isinstance(page, RecordPage), "iter_records must yield RecordPage objects")
        _check(page.record_type == record_type, "a page must say which record type it holds")
        _check(all(isinstance(r, RECORD_TYPES[record_type]) for r in page.records),
               f"a '{record_type}' page must hold {RECORD_TYPES[record_type].__name__} records")
        _check(allow_empty_pages or page.records, "a page must hold records")
        records += page.records
        last = page.cursor
        pages += 1
    return records, last, pages


def _drain(conn: CrmConnector, record_type: str, cursor: Any = None) -> tuple[list[Any], Any]:
    records, last, _ = read_pages(conn, record_type, cursor, page_size=50)
    return records, last


def check_declares_itself(factory: Factory) -> None:
    """Slug id, kind ``crm``, frozen Config, known record types, READ capability."""
    conn = factory()
    cls = type(conn)
    _check(issubclass(cls, CrmConnector), "the class must derive from CrmConnector")
    _check(cls.id and cls.id == cls.id.lower() and cls.id.replace("_", "").isalnum(), "id must be a lower-case slug")
    params = getattr(cls.Config, "__dataclass_params__", None)
    _check(dataclasses.is_dataclass(cls.Config) and params is not None and params.frozen,
           "Config must be a frozen dataclass")
    _check(cls.record_types and set(cls.record_types) <= set(RECORD_TYPES),
           f"record_types must be a non-empty subset of {sorted(RECORD_TYPES)}")
    _check(Capability.READ in cls.capabilities, "a CRM connector must declare Capability.READ")


def check_construct_does_no_io(factory: Factory) -> None:
    """Building the connector opens no socket and no file (the host builds many, opens few)."""
    seen: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not watching[0] or event not in ("socket.connect", "open"):
            return
        if not (event == "open" and str(args[0]).endswith((".py", ".pyc"))):
            seen.append(event)

    sys.addaudithook(hook)  # audit hooks cannot be removed: it is switched off below
    try:
        factory()
    finally:
        watching[0] = False
    _check(not seen, f"constructing the connector did I/O ({', '.join(sorted(set(seen)))}); do it in open()")


def check_reads_people_and_resumes(factory: Factory) -> None:
    """People come in pages; a second run from the last cursor yields nothing new."""
    with factory() as conn:
        people, cursor = _drain(conn, "person")
    _check(people, "the test CRM holds people, but iter_records('person') yielded none")
    _check(all(p.source_id for p in people), "every Person needs its CRM id in source_id")
    with factory() as conn:
        again, _ = _drain(conn, "person", cursor)
    _check(not again, "a run started from the last cursor must not yield the same people again")


def check_unknown_record_type_is_refused(factory: Factory) -> None:
    """Asking for a record type the connector does not read raises CapabilityError (not a library error)."""
    missing = sorted(set(RECORD_TYPES) - set(type(factory()).record_types))
    if not missing:
        _not_applicable("the connector reads every record type: there is none to refuse")
    with factory() as conn:
        try:
            list(conn.iter_records(missing[0]))
        except CapabilityError:
            return
    raise AssertionError(f"iter_records('{missing[0]}') must raise CapabilityError (use self.check_record_type)")


def _refuses_writes(conn: CrmConnector) -> None:
    """A read-only connector: write_scores and ensure_fields raise CapabilityError (nothing half-done)."""
    calls: dict[str, Callable[[], Any]] = {
        "write_scores": lambda: conn.write_scores([Score("1", TASK, 0.5)]),
        "ensure_fields": lambda: conn.ensure_fields(task=TASK),
    }
    with conn:
        for name, call in calls.items():
            try:
                call()
            except CapabilityError:
                continue
            raise AssertionError(f"without WRITE_SCORES, {name} must raise CapabilityError")


def check_write_scores_dry_run_and_idempotent(factory: Factory) -> None:
    """Without WRITE_SCORES, writing raises CapabilityError.  With it: a dry run changes nothing and returns the
    diff, writing twice changes nothing the second time, and a score never creates a person."""
    conn = factory()
    if Capability.WRITE_SCORES not in type(conn).capabilities:
        _refuses_writes(conn)
        return
    with conn:
        people, _ = _drain(conn, "person")
        target = next((p.source_id for p in people if not p.do_not_profile), "")
        _check(target, "the test CRM must hold a person who does not object to profiling")
        scores = [Score(target, TASK, 0.4242, "42 % : test", "conformance"),
                  Score("assoc-ai-unknown-person", TASK, 0.5, "", "conformance")]
        conn.ensure_fields(task=TASK, dry_run=False)
        first = conn.write_scores(scores)
        _check(first.dry_run and first.diffs, "write_scores(dry_run=True) must return the diff and say dry_run")
        _check("assoc-ai-unknown-person" in dict(first.skipped),
               "a score for an id the CRM does not know must be skipped (a score never creates a person)")
        second = conn.write_scores(scores)
        _check(second.counts == first.counts, "a dry run must not change anything (the second dry run differs)")
        applied = conn.write_scores(scores, dry_run=False)
        _check(not applied.dry_run and applied.changed in (0, 1), "applying must report what changed")
        again = conn.write_scores(scores, dry_run=False)
        _check(again.changed == 0 and again.counts["unchanged"] == 1,
               "writing the same score twice must change nothing the second time (idempotent by CRM id)")


def check_write_scores_respects_do_not_profile(factory: Factory) -> None:
    """A person who objects to profiling is skipped with the reason, in a dry run and when applying."""
    conn = factory()
    if Capability.WRITE_SCORES not in type(conn).capabilities:
        _not_applicable(f"'{conn.id}' is read-only (no Capability.WRITE_SCORES): it never writes a score")
    with conn:
        people, _ = _drain(conn, "person")
        objecting = [p.source_id for p in people if p.do_not_profile]
        if not objecting:
            _not_applicable("the test CRM holds nobody who objects to profiling (do_not_profile): "
                            "seed one so that this check can see their scores are never written")
        conn.ensure_fields(task=TASK, dry_run=False)
        scores = [Score(objecting[0], TASK, 0.9, "90 % : test", "conformance")]
        for dry_run in (True, False):
            report = conn.write_scores(scores, dry_run=dry_run)
            _check(objecting[0] not in {d.record_id for d in report.diffs},
                   "a person who objects to profiling (do_not_profile) must never be in the diff")
            _check("do_not_profile" in dict(report.skipped).get(objecting[0], ""),
                   "a person who objects to profiling must be reported as skipped, with do_not_profile as the reason")


def check_close_is_safe_twice(factory: Factory) -> None:
    """close() may be called twice, and after a failed open, without raising."""
    conn = factory()
    try:
        conn.open()
    except AssocAIError:
        pass
    conn.close()
    conn.close()


CRM_CHECKS: tuple[Callable[[Factory], None], ...] = (
    check_declares_itself,
    check_construct_does_no_io,
    check_reads_people_and_resumes,
    check_unknown_record_type_is_refused,
    check_write_scores_dry_run_and_idempotent,
    check_write_scores_respects_do_not_profile,
    check_close_is_safe_twice,
)


def parametrize_crm_checks() -> pytest.MarkDecorator:
    """``@parametrize_crm_checks()`` on a test taking ``check``: one test per check of :data:`CRM_CHECKS`.

    The test calls ``check(factory)``; a check that does not apply is reported as skipped with the reason.
    """
    return pytest.mark.parametrize("check", CRM_CHECKS, ids=[c.__name__ for c in CRM_CHECKS])


def check_crm_connector(factory: Factory) -> dict[str, str]:
    """Run every check of :data:`CRM_CHECKS`; each check's name -> ``"passed"`` or ``"skipped: <reason>"``."""
    outcome: dict[str, str] = {}
    for check in CRM_CHECKS:
        try:
            check(factory)
        except pytest.skip.Exception as why:
            outcome[check.__name__] = f"skipped: {why.msg}"
        else:
            outcome[check.__name__] = "passed"
    return outcome


def live_settings(service: str, *names: str) -> dict[str, str]:
    """The environment variables a live test needs (``pytest -m live``); it fails naming those missing.

    A live test that was asked for but cannot run must fail, not pass or skip unnoticed.
    """
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.fail(f"{service} not configured for live tests: set {', '.join(missing)}")
    return {name: os.environ[name] for name in names}
