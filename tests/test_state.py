"""The SQLite state file: schema, cursors, decisions, journal, corrections, runs, privacy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.jobs.state import SCHEMA_VERSION, SenderPrivacy, StateStore, pseudonymise_address


def _decide(state: StateStore, privacy: SenderPrivacy, key: str, *, dry_run: bool = False, status: str = "pending",
            sender: str = "Marie.Dupont@Exemple.org", decision: str = "auto", category: str | None = "Adhésion") -> None:
    state.record_decision(
        instance="local", key=key, run_id=1, dry_run=dry_run, status=status, folder="INBOX", uid="u-" + key,
        sender=sender, privacy=privacy, decision=decision, category=category, probability=0.97,
        runner_up="Événement", runner_up_probability=0.02, explanation={"toward": [["cotisation", 0.8]]},
        model_version="v0001", reason=None, plan=[{"kind": "move", "target": "IA/Adhésion"}],
    )


@pytest.fixture
def privacy(tmp_path: Path) -> SenderPrivacy:
    return SenderPrivacy.from_key_file(tmp_path / "state.key")


def test_file_is_wal_versioned_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.sqlite"
    with StateStore(path) as state:
        assert state.schema_version == SCHEMA_VERSION
        assert state.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        state.set_cursor("local", "INBOX", {"v": 1, "seen": ["a"]})
    with StateStore(path) as state:  # migrations are not re-run on an up-to-date file
        assert state.get_cursor("local", "INBOX") == {"v": 1, "seen": ["a"]}
        assert state.get_cursor("local", "Other") is None
    raw = sqlite3.connect(path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    raw.close()
    assert {"cursors", "messages", "actions", "corrections", "runs"} <= tables


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="plus récente"):
        StateStore(path)


def test_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="state"):
        StateStore(path)


def test_transaction_rolls_back_on_error(tmp_path: Path, privacy: SenderPrivacy) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        with pytest.raises(RuntimeError):
            with state.transaction():
                _decide(state, privacy, "k1")
                raise RuntimeError("boom")
        assert state.get_message("local", "k1") is None
        with state.transaction():
            _decide(state, privacy, "k1")
        assert state.get_message("local", "k1").status == "pending"


def test_sender_is_pseudonymised_and_hashed_not_stored(tmp_path: Path, privacy: SenderPrivacy) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        _decide(state, privacy, "k1")
        record = state.get_message("local", "k1")
    assert record.sender_raw is None
    assert record.sender_pseudo == "m…@exemple.org"
    assert record.sender_hash == privacy.hash(" marie.dupont@exemple.org ")
    assert len(record.sender_hash) == 64
    text = b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite*"))
    assert b"marie.dupont" not in text.lower()


def test_raw_sender_only_when_opted_in(tmp_path: Path) -> None:
    opted = SenderPrivacy.from_key_file(tmp_path / "k.key", store_raw=True)
    with StateStore(tmp_path / "s.sqlite") as state:
        _decide(state, opted, "k1")
        assert state.get_message("local", "k1").sender_raw == "marie.dupont@exemple.org"


def test_keyed_hash_depends_on_the_key(tmp_path: Path) -> None:
    a = SenderPrivacy.from_key_file(tmp_path / "a.key")
    b = SenderPrivacy.from_key_file(tmp_path / "b.key")
    assert a.hash("x@y.fr") != b.hash("x@y.fr")
    assert SenderPrivacy.from_key_file(tmp_path / "a.key").hash("x@y.fr") == a.hash("X@Y.fr")
    assert (tmp_path / "a.key").stat().st_mode & 0o077 == 0
    assert "key=***" in repr(a)


def test_pseudonymise_address() -> None:
    assert pseudonymise_address("Jean@Asso.Example") == "j…@asso.example"
    assert pseudonymise_address("") == ""
    assert pseudonymise_address("nobody") == "…"


def test_real_decision_is_never_overwritten_by_a_dry_run(tmp_path: Path, privacy: SenderPrivacy) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        _decide(state, privacy, "k1", dry_run=True, status="would", category="Presse")
        _decide(state, privacy, "k1", category="Adhésion")  # the real run replaces the simulation
        assert state.get_message("local", "k1").category == "Adhésion"
        _decide(state, privacy, "k1", dry_run=True, status="would", category="Presse")
        record = state.get_message("local", "k1")
        assert (record.category, record.dry_run, record.status) == ("Adhésion", False, "pending")


def test_journal_intent_then_done(tmp_path: Path, privacy: SenderPrivacy) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        _decide(state, privacy, "k1")
        aid = state.add_intent(instance="local", key="k1", run_id=1, step=0, kind="move", target="IA/Adhésion",
                               folder="INBOX", uid="u1")
        assert state.last_action("local", "k1", 0).status == "intent"
        state.finish_action(aid, "done", folder="IA/Adhésion", uid="u1")
        last = state.last_action("local", "k1", 0)
        assert (last.status, last.result_folder) == ("done", "IA/Adhésion")
        assert state.last_action("local", "k1", 1) is None
        assert [a.kind for a in state.actions_for("local", "k1")] == ["move"]


def test_pending_and_window_queries(tmp_path: Path, privacy: SenderPrivacy) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        _decide(state, privacy, "a")
        _decide(state, privacy, "b")
        _decide(state, privacy, "c", dry_run=True, status="would")
        state.set_message_status("local", "b", "done")
        assert [r.key for r in state.messages_with_status("local", "pending")] == ["a"]
        assert [r.key for r in state.decided_since("local", "2000-01-01")] == ["b"]
        state.mark_gone("local", "b")
        assert state.decided_since("local", "2000-01-01") == []
        assert state.auto_keys("local") == {"a", "b"}


def test_corrections_and_audit_filters(tmp_path: Path, privacy: SenderPrivacy) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        _decide(state, privacy, "a", sender="one@x.fr")
        _decide(state, privacy, "b", sender="two@x.fr")
        cid = state.record_correction(instance="local", key="a", from_category="Adhésion", from_folder="IA/Adhésion",
                                      to_category="Presse", to_folder="IA/Presse", model_version="v0001", text=None)
        state.set_correction_text(cid, '{"subject": "s", "text": "t"}')
        state.set_location("local", "a", "IA/Presse", "u9", effective_category="Presse", change_category=True)
        rows = state.corrections("local")
        assert [(r["key"], r["to_category"], r["text"] is not None) for r in rows] == [("a", "Presse", True)]
        assert state.auto_keys("local") == {"b"}  # corrected: no longer the model's own unconfirmed decision
        assert [r.key for r in state.audit(sender_hash=privacy.hash("two@x.fr"))] == ["b"]
        assert state.audit(since="2999-01-01") == []


def test_runs_are_recorded_and_killed_ones_closed(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.sqlite") as state:
        run = state.start_run("local", dry_run=False, model_version="v1")
        state.finish_run(run, status="ok", exit_code=0, stats={"fetched": 3, "auto": 2, "review": 1,
                                                                "review_share": 1 / 3, "category_mix": {"A": 2}})
        state.start_run("local", dry_run=False, model_version="v1")  # never finished: killed
        assert state.mark_abandoned_runs() == 1
        runs = state.runs("local")
    assert [r["status"] for r in runs] == ["killed", "ok"]
    assert runs[1]["category_mix"] == {"A": 2} and runs[1]["fetched"] == 3
    assert runs[1]["review_share"] == pytest.approx(1 / 3)


def test_a_version_1_file_gains_the_participants_table_and_the_identity_column(tmp_path: Path) -> None:
    from assoc_ai_core.jobs.audit import MIGRATIONS

    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1] + "; PRAGMA user_version = 1;")
    db.close()
    with StateStore(path) as state:
        assert state.schema_version == SCHEMA_VERSION == 3
        assert state.participants_of(["h"]) == []
        assert "identity" in {r[1] for r in state.execute("PRAGMA table_info(messages)")}


def test_tombstoned_keys_are_still_known_and_hold_no_personal_data(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"  # the key file sits next to it: state.key, the job's default
    privacy = SenderPrivacy.from_key_file(tmp_path / "state.key")
    with StateStore(path) as state:
        for key in ("marie.dupont.42@exemple.org", "b@x"):
            _decide(state, privacy, key, status="done")
        state.add_intent(instance="local", key="marie.dupont.42@exemple.org", run_id=1, step=0, kind="move",
                         target="IA/Adhésion", folder="INBOX", uid="u", detail="Marie Dupont")
        state.record_participants("local", "marie.dupont.42@exemple.org", privacy,
                                  {"cc": ["Paul@Exemple.org"], "body": ["paul@exemple.org", ""]})
        assert state.participant_keys([privacy.hash("paul@exemple.org")]) == {("local", "marie.dupont.42@exemple.org")}
        assert state.participants_of([privacy.hash("PAUL@exemple.org")]) == [
            ("local", "marie.dupont.42@exemple.org", "body"), ("local", "marie.dupont.42@exemple.org", "cc")]
        with state.transaction():
            tomb = state.tombstone_message("local", "marie.dupont.42@exemple.org")
        assert tomb.startswith("erased:") and "marie" not in tomb
        known = state.get_messages("local", ["marie.dupont.42@exemple.org", "b@x", "unknown@x"])
        assert set(known) == {"marie.dupont.42@exemple.org", "b@x"}
        gone = known["marie.dupont.42@exemple.org"]
        assert (gone.key, gone.status, gone.sender_hash, gone.sender_pseudo, gone.explanation) == (
            tomb, "erased", None, None, None)
        assert [a.detail for a in state.actions_for("local", tomb)] == [None]
        assert state.participant_keys([privacy.hash("paul@exemple.org")]) == {("local", tomb)}
        # another installation's key gives other tombstones: nobody can test guesses without the key
        other = SenderPrivacy(b"k" * 32)
        assert other.tombstone_key("local", "marie.dupont.42@exemple.org") != tomb
        dump = "\n".join(state.execute("SELECT 1").connection.iterdump())  # the old pages: erasure's VACUUM
        assert "marie.dupont.42" not in dump and "Marie Dupont" not in dump
