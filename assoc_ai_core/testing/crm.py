"""Conformance checks every CRM connector should pass (use them in a plugin's own tests).

::

    from assoc_ai_core.testing.crm import CRM_CHECKS

    @pytest.mark.parametrize("check", CRM_CHECKS, ids=lambda c: c.__name__)
    def test_conformance(check, server):
        check(lambda: MyCrmConnector(MyConfig(base_url=server.url, api_key=Secret("k"))))

Each check receives a *factory* returning a fresh, unopened connector built on
a test CRM (a loopback server following the CRM's API, or files) that holds
at least one person.  Checks raise ``AssertionError`` with a message saying
what the connector must do.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from assoc_ai_core.errors import AssocAIError, CapabilityError
from assoc_ai_core.ext.connectors import Capability
from assoc_ai_core.ext.crm import CrmConnector
from assoc_ai_core.records.people import RECORD_TYPES, RecordPage, Score

__all__ = ["CRM_CHECKS", "check_crm_connector"]

Factory = Callable[[], CrmConnector]


def _check(condition: Any, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _drain(conn: CrmConnector, record_type: str, cursor: Any = None) -> tuple[list[Any], Any]:
    records: list[Any] = []
    last = cursor
    for page in conn.iter_records(record_type, cursor, page_size=50):
        _check(isinstance(page, RecordPage), "iter_records must yield RecordPage objects")
        _check(page.record_type == record_type, "a page must say which record type it holds")
        _check(all(isinstance(r, RECORD_TYPES[record_type]) for r in page.records),
               f"a '{record_type}' page must hold {RECORD_TYPES[record_type].__name__} records")
        records += page.records
        last = page.cursor
    return records, last


def check_declares_itself(factory: Factory) -> None:
    """Slug id, kind ``crm``, frozen Config, known record types, READ capability."""
    conn = factory()
    cls = type(conn)
    _check(issubclass(cls, CrmConnector), "the class must derive from CrmConnector")
    _check(cls.id and cls.id == cls.id.lower() and cls.id.replace("_", "").isalnum(), "id must be a lower-case slug")
    _check(dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen,  # type: ignore[attr-defined]
           "Config must be a frozen dataclass")
    _check(cls.record_types and set(cls.record_types) <= set(RECORD_TYPES),
           f"record_types must be a non-empty subset of {sorted(RECORD_TYPES)}")
    _check(Capability.READ in cls.capabilities, "a CRM connector must declare Capability.READ")


def check_construct_does_no_io(factory: Factory) -> None:
    """Building the connector opens no socket and no file (the host builds many, opens few)."""
    seen: list[str] = []

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in ("socket.connect", "open") and not (event == "open" and str(args[0]).endswith((".py", ".pyc"))):
            seen.append(event)

    watching = [True]

    def guarded(event: str, args: tuple[Any, ...]) -> None:
        if watching[0]:
            hook(event, args)

    sys.addaudithook(guarded)  # audit hooks cannot be removed: it is switched off below
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
        return
    with factory() as conn:
        try:
            list(conn.iter_records(missing[0]))
        except CapabilityError:
            return
    raise AssertionError(f"iter_records('{missing[0]}') must raise CapabilityError (use self.check_record_type)")


def check_write_scores_dry_run_and_idempotent(factory: Factory) -> None:
    """Dry run changes nothing and returns a diff; writing twice changes nothing the second time."""
    conn = factory()
    if Capability.WRITE_SCORES not in type(conn).capabilities:
        with conn:
            try:
                conn.write_scores([Score("1", "donor-propensity", 0.5)])
            except CapabilityError:
                return
        raise AssertionError("without WRITE_SCORES, write_scores must raise CapabilityError")
    with conn:
        people, _ = _drain(conn, "person")
        target = people[0].source_id
        scores = [Score(target, "donor-propensity", 0.4242, "42 % : test", "conformance")]
        conn.ensure_fields(task="donor-propensity", dry_run=False)
        first = conn.write_scores(scores)
        _check(first.dry_run and first.diffs, "write_scores(dry_run=True) must return the diff and say dry_run")
        second = conn.write_scores(scores)
        _check(second.counts == first.counts, "a dry run must not change anything (the second dry run differs)")
        applied = conn.write_scores(scores, dry_run=False)
        _check(not applied.dry_run and applied.changed in (0, 1), "applying must report what changed")
        again = conn.write_scores(scores, dry_run=False)
        _check(again.changed == 0 and again.counts["unchanged"] == 1,
               "writing the same score twice must change nothing the second time (idempotent by CRM id)")


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
    check_close_is_safe_twice,
)


def check_crm_connector(factory: Factory) -> None:
    """Run every check in :data:`CRM_CHECKS`."""
    for check in CRM_CHECKS:
        check(factory)
