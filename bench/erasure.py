"""Erasure on a realistic audit trail: how many rows change for the person, and for everyone else (must be 0).

Builds a triage job's state file as a season of mail leaves it — a few thousand
decisions from a few hundred senders whose names collide on purpose (Martin,
Martine, Martinez, Val, Valérie, Ève, Évelyne; an "Evenement" category; IMAP
cursors with ``uidvalidity``), their journal, corrections, run rows, contact
forms naming people in the Reply-To and the body — and two model versions in
the registry (one trained on raw text, so its vocabulary holds names).  Then:

1. erases someone who never wrote ("Ève Martin"): every file must stay the same,
   byte for byte;
2. erases someone who wrote ("Val Martin": a dozen mails, a correction, three
   contact forms naming her): every row about her must change, and no row of
   anybody else may — except the few texts of third parties that name her in
   full, where only her name is blanked (counted apart).

Prints the figures and writes bench/results/erasure.json.  Nothing is asserted
here; tests/test_erasure_identity.py checks the same properties on a real run.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assoc_ai_core.jobs.audit import SenderPrivacy  # noqa: E402  (the repository first, not an installed copy)
from assoc_ai_core.jobs.state import StateStore  # noqa: E402

CATEGORIES = {"Adhesion": "IA/Adhésion", "Autre": "IA/Autre", "Benevolat": "IA/Bénévolat",
              "Evenement": "IA/Événement", "Partenariat": "IA/Partenariat", "Presse": "IA/Presse"}
FIRST = ["Paul", "Marie", "Valérie", "Évelyne", "Martine", "Jean", "Lucie", "Bernard", "Cédric", "René", "Nina",
         "Hugo", "Léa", "Yann", "Sophie", "Karim", "Inès", "Luc", "Odile", "Francis"]
LAST = ["Martin", "Martinez", "Dupont", "Fabre", "Lacombe", "Le Bihan", "Kerhervé", "Moreau", "Garnier", "Valette",
        "Evenou", "Roux", "Blanc", "Faure", "Girard"]
PERSON = ("val.martin@exemple.example", "Val Martin")
NEVER_WROTE = ("eve.martin@exemple.example", "Ève Martin")
ASSOCIATION = "contact@jardins-colline.example"


def _senders(n: int, rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}".lower().replace(" ", "").replace("é", "e").replace("è", "e")
        out.append((f"{local}{i}@exemple.example", f"{first} {last}"))
    return out


def _text(rng: random.Random, name: str) -> str:
    words = ["adhésion", "cotisation", "événement", "bénévolat", "atelier", "compost", "partenariat", "presse",
             "uidvalidity", "Evenement", "martinet", "valable", "Martinique"]
    return f"Bonjour, {' '.join(rng.choices(words, k=12))}. Bien à vous, <NAME>"  # names pseudonymised as stored


def _decide(state: StateStore, privacy: SenderPrivacy, rng: random.Random, i: int, sender: tuple[str, str],
            run_id: int, when: datetime) -> str:
    """One decision with its journal row, as the job records it."""
    key = f"{rng.getrandbits(64):016x}.{i}@mail.exemple.example"
    category = rng.choice(list(CATEGORIES))
    auto = rng.random() < 0.7
    with state.transaction():
        state.record_decision(
            instance="imap", key=key, run_id=run_id, dry_run=False, status="done", folder="INBOX", uid=str(i),
            sender=sender[0], privacy=privacy, decision="auto" if auto else "review", category=category,
            probability=round(rng.uniform(0.4, 0.99), 3), runner_up=rng.choice(list(CATEGORIES)),
            runner_up_probability=0.1,
            explanation={"sentence": f"Classé {category} : mots « {category.lower()} », « événement »",
                         "terms": [category.lower(), "evenement", "adhesion"]},
            model_version=rng.choice(["v0001", "v0002"]),
            reason=None if auto else "confiance 55 % sous le seuil 80 % (Evenement)",
            plan=[{"kind": "move", "target": CATEGORIES[category]}])
        aid = state.add_intent(instance="imap", key=key, run_id=run_id, step=0, kind="move",
                               target=CATEGORIES[category], folder="INBOX", uid=str(i))
        state.finish_action(aid, "done", folder=CATEGORIES[category], uid=str(i + 100_000))
        state.execute("UPDATE messages SET decided_at=? WHERE key=?", (when.isoformat(timespec="seconds"), key))
    return key


def build_trail(root: Path, *, decisions: int, senders: int, seed: int = 7) -> dict[str, Any]:
    """The state file and key of a season of mail; returns the person's message keys and the mention keys."""
    rng = random.Random(seed)
    state_path = root / "state" / "assoc_ai.sqlite"
    privacy = SenderPrivacy.from_key_file(root / "state" / "assoc_ai.key", store_raw=True)
    people = _senders(senders, rng)
    hers: list[str] = []
    mentions: list[str] = []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with StateStore(state_path) as state:
        for folder in ("INBOX", "Formulaires"):
            state.set_cursor("imap", folder, {"uidvalidity": 1712345678, "uidnext": decisions + 1})
        run_id = state.start_run("imap", dry_run=False, model_version="v0001")
        for i in range(decisions):
            if i and i % 100 == 0:
                state.finish_run(run_id, status="ok", exit_code=0, message="Evenement: 12 ; uidvalidity inchangé",
                                 stats={"fetched": 100, "auto": 70, "review": 30, "category_mix": {c: 1 for c in
                                                                                                  CATEGORIES}})
                run_id = state.start_run("imap", dry_run=False, model_version="v0002")
            when = start + timedelta(hours=3 * i)
            writes = i % 250 == 17  # a dozen mails of hers over the season
            form = i % 1400 == 33  # contact forms naming her (Reply-To and body), one with Paul Martin in copy
            sender = PERSON if writes else ("noreply@site.exemple.example", "Formulaire") if form else \
                rng.choice(people)
            key = _decide(state, privacy, rng, i, sender, run_id, when)
            roles = {"to": [ASSOCIATION]}
            if form:
                roles |= {"reply-to": [PERSON[0]], "body": [PERSON[0]], "cc": [people[0][0]]}
            with state.transaction():
                state.record_participants("imap", key, privacy, roles)
            if writes or form:
                hers.append(key)
            names_her = i % 20 == 5 and i % 700 == 45  # a third party's text that names her in full
            if i % 20 == 5 or (writes and len(hers) == 1):
                text = _text(rng, sender[1]) + (" J'ai vu Val Martin à l'atelier." if names_her else "")
                state.record_correction(instance="imap", key=key, from_category="Autre", from_folder="IA/Autre",
                                        to_category="Evenement", to_folder="IA/Événement", model_version="v0001",
                                        text=json.dumps({"subject": "Re: Evenement", "text": text},
                                                        ensure_ascii=False))
            if names_her and not (writes or form):
                mentions.append(key)
        state.finish_run(run_id, status="ok", exit_code=0, stats={"fetched": 1})
    return {"state_path": state_path, "hers": hers, "mentions": mentions, "senders": len(people)}


def build_models(root: Path) -> None:
    """Two model versions: pseudonymised text (the default), and raw text that saw her signature."""
    from assoc_ai_core import load_dataset, train
    from assoc_ai_core.jobs.registry import ModelRegistry
    from assoc_ai_core.records.mail import Message

    ds = load_dataset(ROOT / "examples" / "mailbox" / "train")
    registry = ModelRegistry(root / "state" / "models")
    registry.add(train(list(ds.messages)), {"created_at": "2024-01-01T00:00:00+00:00", "source": "examples"})
    hers = [Message(key=f"k{i}", subject="Bénévolat", sender=PERSON[0], sender_name=PERSON[1], label="Benevolat",
                    text=f"Je peux aider au potager samedi. Val Martin, bénévole. {i}") for i in range(3)]
    registry.add(train(list(ds.messages) + hers, pseudonymize=False),
                 {"created_at": "2024-06-01T00:00:00+00:00", "source": "examples + corrections"}, promote=True)


def _config(root: Path) -> Path:
    lines = ['[mailbox]', 'connector = "local"', 'path = "Maildir"', '', '[triage]', 'folders = ["INBOX"]',
             'state = "state/assoc_ai.sqlite"', 'instance = "imap"', '', '[privacy]', 'store_raw_sender = true', '']
    for name, folder in CATEGORIES.items():
        lines += [f"[categories.{name}]", f'folder = "{folder}"', ""]
    cfg = root / "assoc_ai.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    return cfg


def _rows(state_path: Path) -> dict[str, set[tuple[Any, ...]]]:
    db = sqlite3.connect(state_path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                                       "'sqlite_%' AND name NOT LIKE 'privacy_%'")]
    out = {t: set(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    db.close()
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted((root / "state").rglob("*"))
            if p.is_file() and not p.name.endswith((".lock", "-shm"))}


def run(decisions: int, senders: int) -> dict[str, Any]:
    """Build the trail, erase the two people, count what changed."""
    from assoc_ai_core.trust.erasure import erase_person
    from assoc_ai_core.trust.privacy import load_trust_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trail = build_trail(root, decisions=decisions, senders=senders)
        build_models(root)
        config = load_trust_config(_config(root))
        before_files, before = _files(root), _rows(trail["state_path"])
        t0 = time.perf_counter()
        nobody = erase_person(config, email=NEVER_WROTE[0], names=[NEVER_WROTE[1]], apply=True)
        never_s = time.perf_counter() - t0
        unchanged = _files(root) == before_files
        mine = set(trail["hers"])

        def about_her(table: str, row: tuple[Any, ...]) -> bool:
            return table != "runs" and any(v in mine for v in row)

        t0 = time.perf_counter()
        report = erase_person(config, email=PERSON[0], names=[PERSON[1]], apply=True)
        erase_s = time.perf_counter() - t0
        after = _rows(trail["state_path"])
        hers = {t: {r for r in rows if about_her(t, r)} for t, rows in before.items()}
        naming = {t: {r for r in rows - hers[t] if t == "corrections" and r[2] in trail["mentions"]}
                  for t, rows in before.items()}
        others = {t: rows - hers[t] - naming[t] for t, rows in before.items()}
        return {
            "rows": {t: len(r) for t, r in before.items()},
            "senders": trail["senders"] + 2,
            "never_wrote": {"files_unchanged_byte_for_byte": unchanged, "changes": len(nobody.changes),
                            "seconds": round(never_s, 2)},
            "person": {"rows_about_them": sum(map(len, hers.values())),
                       "rows_changed": sum(len(hers[t] - after.get(t, set())) for t in hers),
                       "decisions_tombstoned": report.decisions, "corrections_deleted": report.corrections,
                       "model_terms_removed": report.model_terms, "models_marked": report.models_marked,
                       "verified_on_disk": report.verified, "seconds": round(erase_s, 2)},
            "others_rows_naming_them": {"rows": sum(map(len, naming.values())),
                                        "rows_blanked": sum(len(naming[t] - after.get(t, set())) for t in naming)},
            "everyone_else": {"rows": sum(map(len, others.values())),
                              "rows_changed": sum(len(others[t] - after.get(t, set())) for t in others),
                              "by_table": {t: len(others[t] - after.get(t, set())) for t in others}},
        }


def main() -> None:
    """Run and print the figures; write bench/results/erasure.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=400)
    args = parser.parse_args()
    result = run(args.decisions, args.senders)
    result |= {"when": datetime.now(UTC).isoformat(timespec="seconds"), "python": platform.python_version(),
               "decisions": args.decisions}
    p, o, n = result["person"], result["everyone_else"], result["never_wrote"]
    print(f"audit trail: {args.decisions} decisions, {result['senders']} senders, rows {result['rows']}")
    print(f"never wrote: files unchanged byte for byte: {n['files_unchanged_byte_for_byte']}, "
          f"changes listed: {n['changes']} ({n['seconds']} s)")
    print(f"the person: {p['rows_changed']} of {p['rows_about_them']} rows about them changed, "
          f"{p['model_terms_removed']} model terms removed, models {p['models_marked']}, verified on disk: "
          f"{p['verified_on_disk']} ({p['seconds']} s)")
    m = result["others_rows_naming_them"]
    print(f"others' rows naming them in full (free text): {m['rows_blanked']} of {m['rows']} blanked")
    print(f"everyone else: {o['rows_changed']} of {o['rows']} rows changed (must be 0)")
    out = ROOT / "bench" / "results" / "erasure.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"-> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
