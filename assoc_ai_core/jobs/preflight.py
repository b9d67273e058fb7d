"""What a run builds from its settings before it touches the mailbox, and the check ``config show`` shares with it.

:func:`check_config` is the whole configuration check of ``assoc-ai triage run``
(and ``watch``): the declared sections, the connector's own ``[mailbox]`` keys
and secrets, ``[acknowledgement]`` and the ``[smtp]`` settings a run would use.
``assoc-ai config show`` runs the very same function, so a configuration it
accepts is never refused by the job for its configuration.  What is not
configuration but state — no model trained yet, a retention policy the job
skips with a warning — comes back as warnings.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import load_config, resolve_relative_paths
from assoc_ai_core.ext.connectors import Capability, MailboxConnector
from assoc_ai_core.i18n import tr
from assoc_ai_core.jobs.acknowledgement import Acknowledger, AckSettings, NoticeSender
from assoc_ai_core.jobs.forwarding import SmtpForwarder, SmtpSettings
from assoc_ai_core.jobs.settings import TriageSettings
from assoc_ai_core.jobs.state import SenderPrivacy, StateStore


class Forwarder(Protocol):
    """Sends one forward; :class:`~assoc_ai_core.jobs.forwarding.SmtpForwarder` is the default."""

    def send(self, raw: bytes, to: str, *, category: str, key: str, subject: str = "") -> str:
        """Send ``raw`` wrapped in a forward to ``to``; return the forward's Message-ID."""
        ...


def build_connector(settings: TriageSettings) -> MailboxConnector:
    """Build (without connecting) the mailbox connector named by ``[mailbox] connector``."""
    from assoc_ai_core.ext.plugins import build_connector_config, get_connector_class

    cls = get_connector_class(settings.connector)
    if not issubclass(cls, MailboxConnector):
        raise ConfigError(tr(f"« {settings.connector} » n'est pas un connecteur de boîte mail.",
                             f"'{settings.connector}' is not a mailbox connector."))
    mailbox = dict(settings.mailbox)
    if settings.config_path is not None:  # relative to the configuration file, like every other path
        mailbox = resolve_relative_paths(mailbox, settings.config_path.resolve().parent)
    return cls(build_connector_config(cls.Config, mailbox, where="mailbox"))


def model_file(settings: TriageSettings) -> Path | None:
    """The configured model file when the registry has no live version (None when it has one)."""
    from assoc_ai_core.jobs.registry import ModelRegistry

    if ModelRegistry(settings.models_dir).current():
        return None
    if settings.model_path is None:
        raise ConfigError(tr(
            "Aucun modèle : indiquez [model] path, ou entraînez-en un avec "
            "assoc-ai train --from-mailbox --config FICHIER -o modele.skops.",
            "No model: set [model] path, or train one with "
            "assoc-ai train --from-mailbox --config FILE -o model.skops.",
        ))
    if not settings.model_path.is_file():
        raise ConfigError(tr(f"Modèle introuvable : {settings.model_path} ([model] path).",
                             f"Model not found: {settings.model_path} ([model] path)."))
    return settings.model_path


def load_current_model(settings: TriageSettings) -> tuple[Any, str]:
    """The live model: the registry's current version, else ``[model] path``; returns (model, version)."""
    from assoc_ai_core.jobs.registry import ModelRegistry, file_digest

    path = model_file(settings)
    if path is None:
        return ModelRegistry(settings.models_dir).load()
    from assoc_ai_core.persistence import load_model

    return load_model(path), f"file:{path.name}@{file_digest(path)}"


def smtp_forwarder(settings: TriageSettings, capabilities: Collection[Capability], *, dry_run: bool,
                   given: Forwarder | None = None) -> Forwarder | None:
    """How the job sends forwards: ``given``, the connector itself (None), or ``[smtp]`` (not built in a dry run).

    Categories that forward with neither a forwarding connector nor ``[smtp]`` are a configuration error.
    """
    forwards = any(c.forward for c in settings.categories.values())
    if given is not None or not forwards or Capability.FORWARD in capabilities:
        return given
    if settings.smtp is None:
        raise ConfigError(tr(
            "Des catégories ont « forward » mais il n'y a pas de section [smtp] pour envoyer les transferts.",
            "Some categories have 'forward' but there is no [smtp] section to send forwards.",
        ))
    return None if dry_run else SmtpForwarder(SmtpSettings.from_section(settings.smtp))


def acknowledgement_setup(settings: TriageSettings, *, dry_run: bool, data: Mapping[str, Any] | None = None,
                          ) -> tuple[AckSettings, SmtpSettings] | None:
    """``[acknowledgement]`` as the job reads it, with the ``[smtp]`` settings it sends through.

    None when acknowledgements are off or in a dry run (the section is checked all the same).
    ``data`` is the loaded configuration (default: read again from ``settings.config_path``).
    """
    if data is None:
        data = load_config(settings.config_path) if settings.config_path is not None else {}
    ack = AckSettings.from_mapping(dict(data.get("acknowledgement", {}) or {}))
    if not ack.enabled or dry_run:
        return None
    if settings.smtp is None:
        raise ConfigError(tr("[acknowledgement] enabled = true demande une section [smtp].",
                             "[acknowledgement] enabled = true needs an [smtp] section."))
    return ack, SmtpSettings.from_section(settings.smtp)


def acknowledger(settings: TriageSettings, state: StateStore, privacy: SenderPrivacy, *, dry_run: bool,
                 ) -> Acknowledger | None:
    """The job's acknowledgement sender, when ``[acknowledgement] enabled = true`` (never in a dry run)."""
    setup = acknowledgement_setup(settings, dry_run=dry_run)
    if setup is None:
        return None
    ack, smtp = setup
    return Acknowledger(ack, state, privacy, NoticeSender(smtp))


@dataclass(frozen=True)
class CheckedConfig:
    """A configuration file that passed :func:`check_config`: its settings, and what to warn about."""

    settings: TriageSettings
    warnings: tuple[str, ...] = ()


def check_config(path: str | os.PathLike[str], *, dry_run: bool | None = None) -> CheckedConfig:
    """Every configuration check of ``triage run`` (``dry_run`` None: as the file says), in the order it runs them."""
    data = load_config(path)
    settings = TriageSettings.from_mapping(data, base_dir=Path(path).resolve().parent, config_path=Path(path))
    dry = settings.dry_run if dry_run is None else dry_run
    acknowledgement_setup(settings, dry_run=dry, data=data)
    connector = build_connector(settings)
    smtp_forwarder(settings, connector.capabilities, dry_run=dry)
    warnings: list[str] = []
    try:
        model_file(settings)
    except ConfigError as exc:  # not yet trained: `train --from-mailbox` needs this very configuration
        warnings.append(str(exc))
    from assoc_ai_core.jobs.retention import policy_of

    try:
        policy_of(settings)
    except ConfigError as exc:  # the job skips retention with this warning, it does not stop
        warnings.append(str(exc))
    window = getattr(connector.config, "locate_window_days", None)
    if isinstance(window, int | float) and window < settings.correction_window_days:
        # the connector would not look back as far as corrections count: older ones would be missed
        warnings.append(tr(
            f"[mailbox] locate_window_days ({window}) est plus court que [triage] correction_window_days "
            f"({settings.correction_window_days}) : les corrections plus anciennes ne seraient pas vues.",
            f"[mailbox] locate_window_days ({window}) is shorter than [triage] correction_window_days "
            f"({settings.correction_window_days}): older corrections would be missed."))
    return CheckedConfig(settings, tuple(warnings))


__all__ = ["Forwarder", "build_connector", "model_file", "load_current_model", "smtp_forwarder",
           "acknowledgement_setup", "acknowledger", "CheckedConfig", "check_config"]
