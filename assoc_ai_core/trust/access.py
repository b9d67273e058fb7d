"""Access requests: everything assoc-ai keeps about one person, as JSON and as a readable HTML page.

:func:`export_person` gathers the person's sorting decisions (with their
actions and corrections), the acknowledgements they were sent, the model
versions that decided about them and their rows in the people files;
:func:`write_export` writes both files, mode 0600, for the person who asked.
What is shared with erasure (who the person is, the people files) lives in
:mod:`assoc_ai_core.trust.privacy`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from assoc_ai_core.api import load_sender_key
from assoc_ai_core.errors import DataError
from assoc_ai_core.files import atomic_write, private_dir
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.registry import ModelRegistry
from assoc_ai_core.jobs.retention import iso_utc, json_or_none, sender_privacy, utc_now
from assoc_ai_core.jobs.state import StateStore
from assoc_ai_core.trust.privacy import TrustConfig, check_email, people_matches

__all__ = ["export_person", "export_html", "write_export"]


def _ack_rows(state: Any, sender_hash: str) -> list[dict[str, Any]]:
    try:
        rows = state.execute("SELECT * FROM acknowledgements WHERE sender_hash=?", (sender_hash,)).fetchall()
    except sqlite3.OperationalError:  # the acknowledgement feature never ran
        return []
    return [{k: r[k] for k in r.keys() if k != "sender_hash"} for r in rows]


def _decision(state: Any, record: Any, corrections: list[dict[str, Any]], roles: list[str]) -> dict[str, Any]:
    """One decision about mail the person appears in, as the export shows it (``roles``: where they appear)."""
    r = record
    return {
        "decided_at": r.decided_at, "message_key": r.key, "mailbox": r.instance, "roles": roles,
        "decision": r.decision, "category": r.category, "probability": r.probability,
        "runner_up": r.runner_up, "runner_up_probability": r.runner_up_probability,
        "reason": r.reason, "explanation": r.explanation, "model_version": r.model_version,
        "received_in": r.source_folder, "now_in": r.current_folder, "status": r.status,
        "simulation": r.dry_run, "sender_as_stored": r.sender_raw or r.sender_pseudo if "from" in roles else None,
        "actions": [{"kind": a.kind, "target": a.target, "status": a.status,
                     "at": a.done_at or a.created_at} for a in state.actions_for(r.instance, r.key)],
        "corrections": [
            {"from_category": c["from_category"], "to_category": c["to_category"],
             "detected_at": c["detected_at"], "stored_text": json_or_none(c["text"])}
            for c in corrections],
    }


def _roles_by_message(state: Any, privacy: Any, emails: Iterable[str]) -> dict[tuple[str, str], set[str]]:
    """Where the person appears, by message: ``from`` (sender hash or raw address), else the roles recorded
    as keyed hashes when the message was decided (``reply-to``, ``to``, ``cc``, ``body``)."""
    roles: dict[tuple[str, str], set[str]] = {}
    for address in sorted(emails):
        h = privacy.hash(address)
        for r in state.audit(sender_hash=h, sender_raw=address):
            roles.setdefault((r.instance, r.key), set()).add("from")
        for instance, key, role in state.participants_of([h]):
            roles.setdefault((instance, key), set()).add(role)
    return roles


def _mail_data(settings: Any, emails: Iterable[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(decisions about mail these addresses appear in, acknowledgements sent to them) from the state file."""
    decisions: list[dict[str, Any]] = []
    acknowledgements: list[dict[str, Any]] = []
    privacy = sender_privacy(settings)
    with StateStore(settings.state_path, key_file=settings.key_file) as state:
        corrections: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for c in state.corrections():
            corrections.setdefault((c["instance"], c["key"]), []).append(c)
        for (instance, key), roles in sorted(_roles_by_message(state, privacy, emails).items()):
            record = state.get_message(instance, key)
            if record is not None:
                decisions.append(_decision(state, record, corrections.get((instance, key), []), sorted(roles)))
        for address in sorted(emails):
            acknowledgements += _ack_rows(state, privacy.hash(address))
    return decisions, acknowledgements


def _model_versions(settings: Any, decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What the registry records about each model version that decided about the person or learnt from their mail.

    A version learnt from their mail when it was trained with the corrections
    (its ``source`` says so) after one of their messages was corrected.
    """
    registry = ModelRegistry(settings.models_dir)
    corrected = min((c["detected_at"] for d in decisions for c in d["corrections"]), default=None)
    deciders = {d["model_version"] for d in decisions if d["model_version"]}
    models = {}
    for v in sorted(deciders | {m.version for m in registry.list()}):
        info = registry.info(v) if re.match(r"^v\d{4,}$", v) else {}
        trained = bool(corrected and "correction" in str(info.get("source", ""))
                       and str(info.get("created_at", "")) >= corrected)
        if v not in deciders and not trained:
            continue
        meta = info.get("model_metadata", {}) if info else {}
        models[v] = {"created_at": info.get("created_at"), "source": info.get("source"),
                     "trained_at": meta.get("trained_at"), "categories": meta.get("labels"),
                     "n_train": info.get("n_train", meta.get("n_train")),
                     "evaluation": info.get("evaluation"), "decided_about_them": v in deciders,
                     "trained_with_their_mail": trained}
    return models


def _model_address_tokens(settings: Any, emails: Iterable[str]) -> dict[str, int | None]:
    """Per model version, how many keyed sender/recipient tokens of the addresses it holds.

    Only versions that hold some are listed; None means its tokens were made
    with another key than the job's, so whether it holds theirs cannot be told.
    """
    addresses = sorted(emails)
    if not addresses:
        return {}
    key = load_sender_key(settings.key_file) if settings.key_file.is_file() else None
    files = [(v.version, v.path) for v in ModelRegistry(settings.models_dir).list()]
    if settings.model_path is not None and settings.model_path.is_file():
        files.append((f"file:{settings.model_path.name}", settings.model_path))
    from assoc_ai_core.persistence import load_model

    held: dict[str, int | None] = {}
    for version, path in files:
        try:
            count = getattr(load_model(path), "address_tokens_held", None)
        except Exception:  # an unreadable model is reported by the commands that use it, not here
            continue
        n = count(addresses, key) if callable(count) else 0
        if n is None or n > 0:
            held[version] = n
    return held


def export_person(config: TrustConfig, *, email: str | None = None, person_id: str | None = None) -> dict[str, Any]:
    """Everything stored about one person (by address, or by CRM id) as JSON-ready data."""
    if not email and not person_id:
        raise DataError(tr("Donnez --email ADRESSE ou --person ID.", "Pass --email ADDRESS or --person ID."))
    email = check_email(email) if email else ""
    settings = config.settings
    people, ids, emails = people_matches(config.privacy, email=email, person_id=person_id or "")
    if email:
        emails.add(email)
    decisions: list[dict[str, Any]] = []
    acknowledgements: list[dict[str, Any]] = []
    if settings.state_path.is_file() and emails:
        decisions, acknowledgements = _mail_data(settings, emails)
    return {
        "generated_at": iso_utc(utc_now()),
        "request": {"email": email or None, "person_id": person_id or None},
        "what_is_kept": tr(
            "Décisions de tri sur les messages où apparaît cette adresse — expéditeur, adresse de réponse, "
            "destinataire ou copie, ou dans le texte d'un formulaire de contact ou d'un transfert (catégorie, "
            "probabilité, explication, version du modèle, actions) —, corrections faites par l'équipe (texte "
            "pseudonymisé), versions de modèle qui ont décidé à son sujet ou appris de ses messages, accusés de "
            "réception envoyés, et lignes des fichiers de données de personnes.",
            "Sorting decisions on mail where this address appears — sender, reply-to, recipient or copy, or in "
            "the text of a contact form or a forward (category, probability, explanation, model version, "
            "actions) —, corrections made by the team (pseudonymised text), model versions that decided about "
            "them or learnt from their mail, acknowledgements sent, and rows of people-data files."),
        "mail_decisions": sorted(decisions, key=lambda d: (d["decided_at"], d["message_key"])),
        "acknowledgements": acknowledgements,
        "model_versions": _model_versions(settings, decisions),
        # keyed tokens (no address): they say a model learnt that this address writes or is written to
        "model_address_tokens": _model_address_tokens(settings, emails),
        "people_data": people,
        "people_ids": sorted(ids),
    }


def export_html(data: Mapping[str, Any], *, lang: str | None = None) -> str:
    """A readable page of an export (self-contained, escaped)."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    page = env.from_string(_EXPORT_TEMPLATE)
    return page.render(d=data, t=lambda fr, en: tr(fr, en, lang), lang=lang or "fr",
                       dumps=lambda v: json.dumps(v, ensure_ascii=False, indent=1))


_EXPORT_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<title>{{ t("Données personnelles conservées par assoc-ai", "Personal data kept by assoc-ai") }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3rem;vertical-align:top;text-align:left}
pre{white-space:pre-wrap;margin:0;font-size:.85em}</style></head><body>
<h1>{{ t("Données personnelles conservées par assoc-ai", "Personal data kept by assoc-ai") }}</h1>
<p>{{ t("Produit le", "Generated on") }} {{ d.generated_at }} —
{% if d.request.email %}{{ d.request.email }}{% endif %}{% if d.request.person_id %} ({{ d.request.person_id }}){% endif %}</p>
<p>{{ d.what_is_kept }}</p>
<h2>{{ t("Messages triés", "Mail sorted") }} ({{ d.mail_decisions|length }})</h2>
{% if d.mail_decisions %}<table><tr><th>{{ t("Date", "Date") }}</th><th>{{ t("Décision", "Decision") }}</th>
<th>{{ t("Rôle", "Role") }}</th><th>{{ t("Catégorie", "Category") }}</th><th>{{ t("Pourquoi", "Why") }}</th><th>{{ t("Modèle", "Model") }}</th>
<th>{{ t("Actions et corrections", "Actions and corrections") }}</th></tr>
{% for m in d.mail_decisions %}<tr><td>{{ m.decided_at }}</td><td>{{ m.decision }}</td><td>{{ m.roles|join(", ") }}</td>
<td>{{ m.category or "—" }}{% if m.probability is not none %} ({{ "%.0f"|format(m.probability * 100) }} %){% endif %}</td>
<td>{% if m.explanation and m.explanation.sentence %}{{ m.explanation.sentence }}{% endif %}{% if m.reason %}<br>{{ m.reason }}{% endif %}</td>
<td>{{ m.model_version or "—" }}</td>
<td>{% for a in m.actions %}{{ a.kind }} → {{ a.target }} ({{ a.status }})<br>{% endfor %}
{% for c in m.corrections %}{{ t("correction", "correction") }} {{ c.from_category or "—" }} → {{ c.to_category }}<br>{% endfor %}</td></tr>
{% endfor %}</table>{% else %}<p>{{ t("Aucun.", "None.") }}</p>{% endif %}
<h2>{{ t("Accusés de réception envoyés", "Acknowledgements sent") }}</h2>
{% if d.acknowledgements %}<pre>{{ dumps(d.acknowledgements) }}</pre>{% else %}<p>{{ t("Aucun.", "None.") }}</p>{% endif %}
<h2>{{ t("Versions de modèle concernées", "Model versions involved") }}</h2>
{% if d.model_versions %}<pre>{{ dumps(d.model_versions) }}</pre>{% else %}<p>{{ t("Aucune.", "None.") }}</p>{% endif %}
<h2>{{ t("Jetons d'adresse dans les modèles", "Address tokens in models") }}</h2>
<p>{{ t("Un modèle garde l'expéditeur et les destinataires sous forme de jetons chiffrés par une clé secrète "
        "(pas l'adresse) ; nombre de jetons de cette personne par version (vide : clé différente, inconnu).",
        "A model keeps senders and recipients as tokens made with a secret key (not the address); number of "
        "this person's tokens per version (empty: another key, unknown).") }}</p>
{% if d.model_address_tokens %}<pre>{{ dumps(d.model_address_tokens) }}</pre>{% else %}<p>{{ t("Aucun.", "None.") }}</p>{% endif %}
<h2>{{ t("Données de personnes (CRM, scores)", "People data (CRM, scores)") }}</h2>
{% for path, rows in d.people_data.items() %}<h3>{{ path }}</h3><table>
<tr>{% for k in rows[0].keys() %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for v in r.values() %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<p>{{ t("Aucune.", "None.") }}</p>{% endfor %}
</body></html>
"""


def write_export(data: Mapping[str, Any], output_dir: str | os.PathLike[str], *,
                 lang: str | None = None) -> tuple[Path, Path]:
    """Write ``access-request-<date>-<n>.json`` and ``.html`` in ``output_dir`` (mode 0600); returns both paths."""
    out = private_dir(output_dir)
    stem = f"access-request-{utc_now().strftime('%Y%m%d-%H%M%S')}"
    n = 0
    while (out / f"{stem}{'-' + str(n) if n else ''}.json").exists():
        n += 1
    stem = f"{stem}{'-' + str(n) if n else ''}"
    jpath, hpath = out / f"{stem}.json", out / f"{stem}.html"
    atomic_write(jpath, json.dumps(data, ensure_ascii=False, indent=1, default=str))  # personal data: owner only
    atomic_write(hpath, export_html(data, lang=lang))
    return jpath, hpath
