"""Command-line commands of the trust features (wired into ``assoc-ai`` by :func:`add_commands`).

``privacy export|erase``, ``monitor``, ``model card``.  The ``model`` group
may already exist (``model list|rollback`` of the triage commands): ``card``
is then added to it instead of defining a second group.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from assoc_ai_core.cli.common import lang_option, option
from assoc_ai_core.files import atomic_write
from assoc_ai_core.i18n import tr

CONFIG_HELP = tr("Fichier de configuration TOML (défaut : $ASSOC_AI_CONFIG, puis ./assoc_ai.toml).",
                 "TOML configuration file (default: $ASSOC_AI_CONFIG, then ./assoc_ai.toml).")


def _config(path: str | None) -> Any:
    from assoc_ai_core.trust.privacy import load_trust_config

    return load_trust_config(path or os.environ.get("ASSOC_AI_CONFIG") or "assoc_ai.toml")


# ==================================================================== privacy
@click.group("privacy", help=tr("Données personnelles : demande d'accès, effacement (RGPD).",
                                "Personal data: access request, erasure (GDPR)."))
def privacy_group() -> None:
    """Personal data commands."""


@privacy_group.command("export", help=tr(
    "Tout ce qui est conservé sur une personne, en JSON et en page HTML lisible (droit d'accès).",
    "Everything kept about one person, as JSON and a readable HTML page (access request)."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--email", help=tr("Adresse e-mail de la personne.", "The person's e-mail address."))
@option("--person", "person_id", help=tr("Identifiant de la personne dans le CRM.", "The person's CRM id."))
@option("--output", "output", type=click.Path(), default=".", show_default=True,
              help=tr("Dossier où écrire les deux fichiers.", "Folder to write both files to."))
@lang_option
def privacy_export(config_path: str | None, email: str | None, person_id: str | None, output: str,
                   lang: str | None) -> None:
    """Write the access-request export."""
    from assoc_ai_core.trust.access import export_person, write_export

    if bool(email) == bool(person_id):
        raise click.UsageError(tr("Donnez --email ADRESSE ou --person ID (un seul des deux).",
                                  "Pass --email ADDRESS or --person ID (exactly one)."))
    data = export_person(_config(config_path), email=email, person_id=person_id)
    jpath, hpath = write_export(data, output, lang=lang)
    click.echo(tr(f"{len(data['mail_decisions'])} décision(s), {sum(len(v) for v in data['people_data'].values())} "
                  f"ligne(s) de données de personnes.\nÉcrit : {jpath}\nÉcrit : {hpath}",
                  f"{len(data['mail_decisions'])} decision(s), {sum(len(v) for v in data['people_data'].values())} "
                  f"people-data row(s).\nWritten: {jpath}\nWritten: {hpath}", lang))


@privacy_group.command("erase", help=tr(
    "Effacer ce qui est conservé sur une personne (simulation sans --yes).",
    "Erase what is kept about one person (dry run without --yes)."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--email", required=True, help=tr("Adresse e-mail de la personne.", "The person's e-mail address."))
@option("--name", "names", multiple=True, help=tr(
    "Nom de la personne (répétable) : ses mentions sont aussi effacées.",
    "The person's name (repeatable): its mentions are erased too."))
@option("--yes", is_flag=True, help=tr("Effacer vraiment.", "Really erase."))
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON au lieu du texte.", "JSON output instead of text."))
def privacy_erase(config_path: str | None, email: str, names: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Erase (or count, without --yes) a person's data."""
    from assoc_ai_core.trust.erasure import erase_person

    report = erase_person(_config(config_path), email=email, names=names, apply=yes)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1) if as_json else report.summary())


# ==================================================================== monitor
@click.command("monitor", help=tr(
    "Surveiller le modèle : part envoyée en revue, répartition des catégories, confiance, dérives.",
    "Watch the model: share sent to review, category mix, confidence, drift."))
@option("--config", "config_path", type=click.Path(), help=CONFIG_HELP)
@option("--html", "html_out", type=click.Path(), help=tr("Écrire une page HTML.", "Write an HTML page."))
@option("--alert", is_flag=True, help=tr("Envoyer l'alerte par e-mail à [monitor] alert_to s'il y a une dérive.",
                                               "Mail the alert to [monitor] alert_to when drift is found."))
@option("--json", "as_json", is_flag=True, help=tr("Sortie JSON au lieu du texte.", "JSON output instead of text."))
@click.pass_context
def monitor_cmd(ctx: click.Context, config_path: str | None, html_out: str | None, alert: bool, as_json: bool) -> None:
    """Print the monitoring figures and drift flags; exit 3 when drift is flagged."""
    from assoc_ai_core.jobs.monitoring import monitor_from_config, monitoring_html, send_alert

    config = _config(config_path)
    report = monitor_from_config(config)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1, default=str))
    else:
        click.echo(report.text())
    if html_out:
        atomic_write(html_out, monitoring_html(report))  # sender domains and figures of the association's mail
        click.echo(tr(f"Écrit : {html_out}", f"Written: {html_out}"), err=True)
    if alert and report.flags:
        sent = send_alert(report, config)
        click.echo(tr(f"Alerte envoyée à {sent}.", f"Alert sent to {sent}."), err=True)
    ctx.exit(3 if report.flags else 0)


# ==================================================================== model card
@click.command("card", help=tr(
    "Fiche du modèle (Markdown et HTML) : usage prévu, catégories, mesures, faiblesses, contact.",
    "Model card (Markdown and HTML): intended use, categories, metrics, weaknesses, contact."))
@click.argument("model_ref", metavar="MODEL")
@option("--config", "config_path", type=click.Path(), help=tr(
    "Configuration (pour désigner une version du registre, ex. v0002).",
    "Configuration (to name a registry version, e.g. v0002)."))
@option("--data", "data", type=click.Path(exists=True), help=tr(
    "Courrier étiqueté plus récent que l'entraînement, pour les mesures (protocole chronologique).",
    "Labelled mail newer than the training data, for the metrics (chronological protocol)."))
@option("--contact", default=None, help=tr("Qui contacter au sujet du modèle.", "Who to contact about the model."))
@option("--output", "output", type=click.Path(), default=".", show_default=True,
        help=tr("Dossier où écrire les deux fichiers.", "Folder to write both files to."))
@lang_option
def model_card_cmd(model_ref: str, config_path: str | None, data: str | None, contact: str | None, output: str,
                   lang: str | None) -> None:
    """Write MODEL's card as ``<name>.card.md`` and ``<name>.card.html`` in the output folder."""
    from assoc_ai_core.trust.modelcard import card_for_reference

    md_path, html_path = card_for_reference(model_ref, config_path=config_path, data=data, contact=contact,
                                            output=output, lang=lang)
    click.echo(tr(f"Écrit : {md_path}\nÉcrit : {html_path}", f"Written: {md_path}\nWritten: {html_path}", lang))


@click.group("model", help=tr("Versions du modèle et fiche du modèle.", "Model versions and model card."))
def model_group() -> None:
    """Model commands (the triage commands add list/current/rollback)."""


model_group.add_command(model_card_cmd)


def add_commands(cli: click.Group) -> None:
    """Add ``privacy``, ``monitor`` and ``model card`` to ``cli`` (extending an existing ``model`` group)."""
    for command in (privacy_group, monitor_cmd):
        cli.commands.setdefault(command.name or "", command)
    existing = cli.commands.get("model")
    if isinstance(existing, click.Group):
        existing.commands.setdefault("card", model_card_cmd)
    elif existing is None:
        cli.add_command(model_group)
