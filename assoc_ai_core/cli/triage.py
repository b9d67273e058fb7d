"""Command-line commands of the triage job (wired into ``assoc-ai`` by :func:`add_commands`).

``triage run|watch``, ``audit``, ``retrain``, ``model list|current|rollback``,
``config show``, ``plugins``, ``connectors``; and the ``train --from-mailbox``
implementation.  Exit codes are listed in ``docs/scheduled-jobs.md``.
Secrets never reach the output: ``config show`` redacts them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from assoc_ai_core.cli.common import option
from assoc_ai_core.errors import ConfigError
from assoc_ai_core.files import atomic_write
from assoc_ai_core.i18n import count, decimal, percent, tr

if TYPE_CHECKING:  # imported for annotations only: the commands load the job lazily
    from assoc_ai_core.jobs.preflight import CheckedConfig
    from assoc_ai_core.jobs.settings import TriageSettings

CONFIG_HELP = tr("Fichier de configuration TOML (défaut : $ASSOC_AI_CONFIG, puis ./assoc_ai.toml).",
                 "TOML configuration file (default: $ASSOC_AI_CONFIG, then ./assoc_ai.toml).")


def _config_path(value: str | None) -> str:
    path = value or os.environ.get("ASSOC_AI_CONFIG") or "assoc_ai.toml"
    if not Path(path).is_file():
        raise ConfigError(tr(
            f"Fichier de configuration introuvable : {path}. Donnez --config FICHIER "
            "(modèle : examples/assoc_ai.example.toml).",
            f"Configuration file not found: {path}. Pass --config FILE (template: examples/assoc_ai.example.toml).",
        ))
    return path


def _settings(config_path: str | None) -> TriageSettings:
    from assoc_ai_core.jobs.settings import TriageSettings

    return TriageSettings.load(_config_path(config_path))


def _checked(config_path: str | None, *, dry_run: bool | None = None) -> CheckedConfig:
    """The configuration check of ``triage run`` — the one ``config show`` runs too."""
    from assoc_ai_core.jobs.preflight import check_config

    return check_config(_config_path(config_path), dry_run=dry_run)


def _emit(text: str, output: str | None) -> None:
    if output:  # decisions and corrections about people: written whole, readable by the owner only
        atomic_write(output, text)
        click.echo(tr(f"Écrit : {output}", f"Written: {output}"), err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


# ===================================================================== triage
@click.group("triage", help=tr("Trier la boîte mail partagée (tâche planifiée).", "Triage the shared mailbox (scheduled job)."))
def triage_group() -> None:
    """The triage job."""


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        data = {"run_id": report.run_id, "dry_run": report.dry_run, **report.stats(), "stopped": report.stopped,
                "exit_code": report.exit_code}
        if report.dry_run:
            data["would"] = report.would
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    if report.dry_run and report.would:
        click.echo(tr("Simulation — rien n'a été modifié dans la boîte :", "Dry run — nothing was changed in the mailbox:"))
        for w in report.would:
            actions = ", ".join(f"{a['kind']} → {a['target']}" for a in w["actions"]) or "-"
            prob = percent(w["probability"]) if w["probability"] is not None else "—"
            click.echo(f"  {w['key']}: {w['decision']} {w['category'] or '—'} ({prob}) ⇒ {actions}")
    click.echo(report.summary())


@triage_group.command("run", help=tr("Un passage : reprise, corrections, nouveau courrier ; puis s'arrête.",
                                     "One pass: resume, corrections, new mail; then exit."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--once", is_flag=True, default=True, help=tr("Un seul passage (par défaut ; voir « triage watch »).",
                                                           "A single pass (the default; see 'triage watch')."))
@option("--dry-run", is_flag=True, default=None,
              help=tr("Décider et noter « ferait », sans rien toucher dans la boîte.",
                      "Decide and record 'would do', without touching the mailbox."))
@option("--json", "as_json", is_flag=True, help=tr("Résumé en JSON.", "Summary as JSON."))
@click.pass_context
def triage_run(ctx: click.Context, config_path: str | None, once: bool, dry_run: bool | None, as_json: bool) -> None:
    """Run one pass of the triage job."""
    from assoc_ai_core.jobs.triage import run_triage

    checked = _checked(config_path, dry_run=dry_run or None)
    report = run_triage(checked.settings, dry_run=dry_run or None, watch=False)
    _print_report(report, as_json)
    ctx.exit(report.exit_code)


@triage_group.command("watch", help=tr("Trier en continu (attente de courrier ou interrogation périodique) "
                                       "jusqu'à SIGTERM/SIGINT.",
                                       "Triage continuously (wait for mail or poll) until SIGTERM/SIGINT."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--dry-run", is_flag=True, default=None, help=tr("Simulation.", "Dry run."))
@click.pass_context
def triage_watch(ctx: click.Context, config_path: str | None, dry_run: bool | None) -> None:
    """Run until stopped; a stop signal ends the current message, commits, exits 0."""
    from assoc_ai_core.jobs.triage import run_triage

    checked = _checked(config_path, dry_run=dry_run or None)
    report = run_triage(checked.settings, dry_run=dry_run or None, watch=True)
    click.echo(report.summary())
    ctx.exit(0)


@triage_group.command("backlog", help=tr(
    "Trier le courrier déjà présent, reçu depuis une date (d'abord avec --dry-run pour voir ce qui serait fait).",
    "Sort the mail already there, received since a date (first with --dry-run to see what would be done)."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--since", required=True, help=tr("Courrier reçu depuis cette date (AAAA-MM-JJ).",
                                          "Mail received since this date (YYYY-MM-DD)."))
@option("--dry-run", is_flag=True, default=None,
        help=tr("Montrer ce qui serait fait, par catégorie et action, sans rien toucher.",
                "Show what would be done, per category and action, without touching anything."))
@option("--json", "as_json", is_flag=True, help=tr("Résumé en JSON.", "Summary as JSON."))
@click.pass_context
def triage_backlog(ctx: click.Context, config_path: str | None, since: str, dry_run: bool | None,
                   as_json: bool) -> None:
    """Sort older mail on purpose; the job itself only sorts mail that arrives after its first run."""
    from assoc_ai_core.jobs.backlog import describe_table, plan_table, run_backlog
    from assoc_ai_core.jobs.report import StopFlag
    from assoc_ai_core.jobs.triage import TriageJob

    start = datetime.fromisoformat(_parse_since(since) or since)
    checked = _checked(config_path, dry_run=dry_run or None)
    stop = StopFlag()
    with TriageJob(checked.settings, dry_run=dry_run or None, stop=stop) as job, stop.handle_signals():
        report = run_backlog(job, start)
    table = plan_table(report.would, max_age_days=checked.settings.forward_max_age_days) if report.dry_run else []
    if as_json:
        data = {"run_id": report.run_id, "dry_run": report.dry_run, "since": start.isoformat(), **report.stats(),
                "exit_code": report.exit_code,
                "plan": [{"category": c, "action": a, "messages": n} for c, a, n in table]}
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
    else:
        if report.dry_run:
            click.echo(tr(f"Simulation — courrier reçu depuis le {start.date()} ; rien n'a été modifié :",
                          f"Dry run — mail received since {start.date()}; nothing was changed:"))
            click.echo(describe_table(table))
            click.echo(tr("Pour le faire : la même commande sans --dry-run.", "To do it: the same command without --dry-run."))
        click.echo(report.summary())
    ctx.exit(report.exit_code)


# ====================================================================== audit
AUDIT_COLUMNS = ("decided_at", "ref", "key", "decision", "category", "probability", "runner_up", "runner_up_probability",
                 "reason", "source_folder", "current_folder", "sender", "model_version", "status", "dry_run")


def _parse_since(value: str | None) -> str | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(tr(f"date attendue au format AAAA-MM-JJ (reçu {value!r})",
                                    f"expected a date as YYYY-MM-DD (got {value!r})"), param_hint="--since") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def audit_rows(config_path: str | None, *, sender: str | None = None, since: str | None = None,
               state_path: str | None = None) -> list[dict[str, Any]]:
    """Rows of the audit trail (decisions with their journal and corrections), filtered."""
    from assoc_ai_core.jobs.plan import log_key
    from assoc_ai_core.jobs.state import SenderPrivacy, StateStore

    settings = None
    if config_path or os.environ.get("ASSOC_AI_CONFIG") or (state_path is None and Path("assoc_ai.toml").is_file()):
        settings = _settings(config_path)
    path = Path(state_path) if state_path else (settings.state_path if settings else None)
    if path is None:
        raise ConfigError(tr("Donnez --config FICHIER (ou --state FICHIER.sqlite).",
                             "Pass --config FILE (or --state FILE.sqlite)."))
    if not path.is_file():
        raise ConfigError(tr(f"Fichier d'état introuvable : {path} (aucun tri n'a encore tourné ?).",
                             f"State file not found: {path} (has the triage never run?)."))
    sender_hash = sender_raw = None
    if sender:
        key_file = settings.key_file if settings else path.with_name(path.stem + ".key")
        if not key_file.is_file():
            raise ConfigError(tr(f"Clé de pseudonymisation introuvable : {key_file}. Sans elle, impossible de "
                                 "retrouver un expéditeur.",
                                 f"Pseudonymisation key not found: {key_file}. Without it a sender cannot be found."))
        privacy = SenderPrivacy.from_key_file(key_file)
        sender_hash, sender_raw = privacy.hash(sender), sender.strip().lower()
    with StateStore(path) as state:
        records = state.audit(sender_hash=sender_hash, sender_raw=sender_raw, since=since)
        rows = []
        corrections: dict[str, list[dict[str, Any]]] = {}
        for c in state.corrections():
            corrections.setdefault(c["key"], []).append(
                {k: c[k] for k in ("from_category", "from_folder", "to_category", "to_folder", "detected_at")})
        for r in records:
            row = {
                "decided_at": r.decided_at, "ref": log_key(r.key), "key": r.key, "decision": r.decision, "category": r.category,
                "probability": r.probability, "runner_up": r.runner_up,
                "runner_up_probability": r.runner_up_probability, "reason": r.reason,
                "source_folder": r.source_folder, "current_folder": r.current_folder,
                "sender": r.sender_raw or r.sender_pseudo, "model_version": r.model_version, "status": r.status,
                "dry_run": r.dry_run, "instance": r.instance, "explanation": r.explanation,
                "actions": [{"kind": a.kind, "target": a.target, "status": a.status, "at": a.done_at or a.created_at}
                            for a in state.actions_for(r.instance, r.key)],
                "corrections": corrections.get(r.key, []),
            }
            rows.append(row)
    return rows


def format_audit(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """Render audit rows as ``table``, ``csv`` or ``json``."""
    if fmt == "json":
        return json.dumps(list(rows), ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(AUDIT_COLUMNS) + ["actions", "corrections"], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            flat = dict(row)
            flat["actions"] = "; ".join(f"{a['kind']}:{a['target']}:{a['status']}" for a in row["actions"])
            flat["corrections"] = "; ".join(f"{c['from_category']}->{c['to_category']}" for c in row["corrections"])
            writer.writerow(flat)
        return buf.getvalue()
    if not rows:
        return tr("Aucune décision enregistrée.", "No decision recorded.") + "\n"
    head = [tr(fr, en) for fr, en in (("date", "date"), ("décision", "decision"), ("catégorie", "category"), ("p", "p"),
                                      ("2e choix", "runner-up"), ("expéditeur", "sender"), ("réf. journal", "log ref"),
                                      ("clé", "key"))]
    lines = [f"{head[0]:<25} {head[1]:<8} {head[2]:<16} {head[3]:>5}  {head[4]:<16} {head[5]:<26} {head[6]:<14} "
             f"{head[7]}"]
    for r in rows:
        p = decimal(r["probability"], 2) if r["probability"] is not None else "—"
        mark = tr(" (simulation)", " (dry run)") if r["dry_run"] else ""
        lines.append(f"{r['decided_at']:<25} {r['decision']:<8} {str(r['category'] or '—'):<16} {p:>5}  "
                     f"{str(r['runner_up'] or '—'):<16} {str(r['sender'] or '—'):<26} {r['ref']:<14} {r['key']}{mark}")
        if r["reason"]:
            lines.append(f"{'':<25} {r['reason']}")
        for c in r["corrections"]:
            lines.append(f"{'':<25} correction: {c['from_category'] or '—'} → {c['to_category']} ({c['detected_at']})")
    return "\n".join(lines) + "\n"


@click.command("audit", help=tr(
    "Relire les décisions (qui, quoi, pourquoi) ; --sender pour une demande d'accès RGPD.",
    "Read back decisions (what, why, which model); --sender for a GDPR access request.",
))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--state", "state_path", type=click.Path(), help=tr("Fichier d'état (sans --config).", "State file (without --config)."))
@option("--sender", help=tr("Adresse de l'expéditeur (retrouvée par son empreinte).", "Sender address (found by its keyed hash)."))
@option("--since", help=tr("Depuis cette date (AAAA-MM-JJ).", "Since this date (YYYY-MM-DD)."))
@option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
        help=tr("Format de sortie.", "Output format."))
@option("--output", "output", type=click.Path(), help=tr("Écrire dans ce fichier.", "Write to this file."))
def audit(config_path: str | None, state_path: str | None, sender: str | None, since: str | None, fmt: str,
          output: str | None) -> None:
    """Print the audit trail."""
    rows = audit_rows(config_path, sender=sender, since=_parse_since(since), state_path=state_path)
    _emit(format_audit(rows, fmt), output)


@triage_group.command("outbox", help=tr(
    "Transferts non remis (en attente, en échec, refusés, incertains) et pourquoi.",
    "Forwards not delivered (pending, failed, refused, uncertain) and why."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--all", "show_all", is_flag=True, help=tr("Aussi les transferts remis.", "Delivered forwards too."))
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON au lieu du texte.", "JSON output instead of text."))
def triage_outbox(config_path: str | None, show_all: bool, as_json: bool) -> None:
    """List the forward outbox of the configured mailbox (exit 1 when a forward failed, was refused or is uncertain)."""
    from assoc_ai_core.jobs.outbox import NOT_SENT, OutboxStatus, outbox_status

    rows = outbox_status(_settings(config_path), statuses=None if show_all else NOT_SENT)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2))
    elif not rows:
        click.echo(tr("Aucun transfert en souffrance.", "No forward outstanding."))
    else:
        for r in rows:
            when = f" → {r.next_attempt_at}" if r.next_attempt_at else ""
            click.echo(f"{r.status:<9} {r.key}  {r.destination}  {r.attempts}x{when}  {r.reason or r.message_id or ''}")
    if any(r.status in {OutboxStatus.FAILED, OutboxStatus.REFUSED, OutboxStatus.UNCERTAIN} for r in rows):
        raise SystemExit(1)


# ==================================================================== models
@click.command("retrain", help=tr(
    "Ré-entraîner avec les corrections ; la nouvelle version n'est mise en service que si elle n'est pas moins bonne.",
    "Retrain with the corrections; the new version goes live only if it is not worse.",
))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON au lieu du texte.", "JSON output instead of text."))
def retrain_cmd(config_path: str | None, as_json: bool) -> None:
    """Train a candidate, compare on recent corrections, promote if not worse."""
    from assoc_ai_core.jobs.retrain import retrain
    from assoc_ai_core.trust.modelcard import card_beside_model

    result = retrain(_settings(config_path),
                     on_stored=lambda model, path, version: card_beside_model(model, path, version=version))
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), ensure_ascii=False, indent=1, default=str))
    else:
        click.echo(result.summary())
    if result.version is None:  # refused: a scheduler must see it (nothing was trained or stored)
        raise SystemExit(1)


@click.group("model", help=tr("Versions du modèle : liste, version en service, retour arrière.",
                              "Model versions: list, live version, rollback."))
def model_group() -> None:
    """Model versions."""


def _registry(config_path: str | None) -> Any:
    from assoc_ai_core.jobs.registry import ModelRegistry

    return ModelRegistry(_settings(config_path).models_dir)


@model_group.command("list", help=tr("Lister les versions.", "List versions."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON au lieu du texte.", "JSON output instead of text."))
def model_list(config_path: str | None, as_json: bool) -> None:
    """Every stored version, the live one marked with ``*``."""
    versions = _registry(config_path).list()
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in versions], ensure_ascii=False, indent=1, default=str))
        return
    if not versions:
        click.echo(tr("Aucune version enregistrée.", "No version stored."))
        return
    for v in versions:
        ev = v.info.get("evaluation", {})
        acc = ev.get("candidate_accuracy")
        extra = f" holdout {percent(acc)}" if isinstance(acc, (int, float)) else ""
        click.echo(f"{'*' if v.current else ' '} {v.version}  {v.info.get('created_at', '?')}  "
                   f"{v.info.get('source', '?')}  n={v.info.get('n_train', '?')}{extra}")


@model_group.command("current", help=tr("Afficher la version en service.", "Show the live version."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def model_current(config_path: str | None) -> None:
    """Print the live version (or the configured model file when the registry is empty)."""
    settings = _settings(config_path)
    from assoc_ai_core.jobs.registry import ModelRegistry

    current = ModelRegistry(settings.models_dir).current()
    if current:
        click.echo(current)
    elif settings.model_path:
        click.echo(tr(f"aucune version ; fichier configuré : {settings.model_path}",
                      f"no version; configured file: {settings.model_path}"))
    else:
        click.echo(tr("aucun modèle", "no model"))


@model_group.command("rollback", help=tr("Remettre en service une version antérieure.", "Put an earlier version back in service."))
@click.argument("version")
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def model_rollback(version: str, config_path: str | None) -> None:
    """Make ``VERSION`` the live model again (later versions are kept)."""
    _registry(config_path).rollback(version)
    click.echo(tr(f"Version en service : {version}", f"Live version: {version}"))


# ==================================================================== config
@click.group("config", help=tr("Configuration.", "Configuration."))
def config_group() -> None:
    """Configuration commands."""


@config_group.command("show", help=tr("Afficher la configuration, secrets masqués, et la vérifier.",
                                      "Show the configuration with secrets hidden, and check it."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
def config_show(config_path: str | None) -> None:
    """Print the configuration (secrets replaced by ``***``; references shown as references), then check it.

    The check is the one ``triage run`` starts with (same function), so what it accepts the job accepts.
    """
    from assoc_ai_core.ext.config import load_config, redact

    data = load_config(_config_path(config_path))
    shown = redact({k: v for k, v in data.items() if not k.startswith("_")})
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    checked = _checked(config_path)
    click.echo(tr("Configuration valide.", "Configuration is valid."), err=True)
    for warning in checked.warnings:  # state, not configuration: e.g. no model trained yet
        click.echo(tr(f"Attention : {warning}", f"Warning: {warning}"), err=True)


# =================================================================== plugins
@click.command("plugins", help=tr("Plugins installés (JSON).", "Installed plugins (JSON)."))
def plugins_cmd() -> None:
    """JSON list of plugins: name, distribution, version, hooks, connectors, load error."""
    from assoc_ai_core.ext.plugins import get_plugins

    click.echo(json.dumps([dataclasses.asdict(p) for p in get_plugins()], ensure_ascii=False, indent=1))


@click.command("connectors", help=tr("Connecteurs disponibles : id, capacités, champs de configuration (JSON).",
                                     "Available connectors: id, capabilities, configuration fields (JSON)."))
def connectors_cmd() -> None:
    """JSON list of connectors with their capabilities and config fields (secrets flagged)."""
    from assoc_ai_core.ext.plugins import connector_registry, describe_connector

    registry = connector_registry()
    out = []
    for cid in registry.ids():
        info = describe_connector(registry.get(cid))
        info["plugin"] = registry.origin(cid)
        out.append(info)
    click.echo(json.dumps(out, ensure_ascii=False, indent=1))


# ==================================================================== train
def train_from_mailbox_command(config_path: str, output: str) -> None:
    """``assoc-ai train --from-mailbox --config FILE -o MODEL``: learn from the category folders, save."""
    from assoc_ai_core.jobs.triage import train_from_mailbox
    from assoc_ai_core.persistence import save_model

    model = train_from_mailbox(_settings(config_path))
    save_model(model, output)
    md = getattr(model, "metadata_", {})
    categories = count(len(md.get("labels", [])), ("catégorie", "catégories"), ("category", "categories"))
    click.echo(tr(
        f"Modèle écrit : {output} ({md.get('n_train', '?')} messages, {categories}).\n"
        f"Validation croisée : F1 macro {decimal(md.get('cv_macro_f1', 0), 3)} ; "
        f"{percent(md.get('expected_auto_share', 0))} du courrier serait classé automatiquement.",
        f"Model written: {output} ({md.get('n_train', '?')} messages, {categories}).\n"
        f"Cross-validation: macro-F1 {decimal(md.get('cv_macro_f1', 0), 3)}; "
        f"{percent(md.get('expected_auto_share', 0))} of mail would be routed automatically.",
    ))


# ==================================================================== wiring
COMMANDS: tuple[click.Command, ...] = (triage_group, audit, retrain_cmd, model_group, config_group, plugins_cmd,
                                       connectors_cmd)


def add_commands(cli: click.Group) -> None:
    """Add the triage commands to ``cli``; existing commands are kept, existing groups are extended."""
    for command in COMMANDS:
        name = command.name or ""
        existing = cli.commands.get(name)
        if existing is None:
            cli.add_command(command)
        elif isinstance(existing, click.Group) and isinstance(command, click.Group) and existing is not command:
            for sub_name, sub in command.commands.items():
                existing.commands.setdefault(sub_name, sub)



