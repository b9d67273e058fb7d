"""Settings of one IMAP mailbox (the `[mailbox]` section of a triage job, `connector = "imap"`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.i18n import tr

from .settings import DEFAULT_FOLDER, DEFAULT_PORTS, LOOPBACK_HOSTS, OAUTH2_MECHANISMS, TLS_MODES

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for this machine's own addresses (the only place unencrypted IMAP is accepted)."""
    return host.strip().lower().strip("[]") in LOOPBACK_HOSTS


@dataclass(frozen=True)
class ImapConfig:
    """Settings of one IMAP mailbox.

    ``password`` (or an app password) and ``oauth2_token`` (XOAUTH2 access
    token) are secrets: give them as references (``{ env = "..." }`` or
    ``{ file = "..." }``); when both are absent the ``resolve_secret`` hook is
    asked at each connection, which lets another plugin hand over fresh tokens.
    TLS is on and verified by default; ``tls = "none"`` and
    ``verify_tls = false`` are accepted only for a server on this machine.
    """

    host: str
    username: str
    password: Secret | None = None
    oauth2_token: Secret | None = None
    oauth2_mechanism: str = "XOAUTH2"
    port: int | None = None
    tls: str = "ssl"
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    folder: str = DEFAULT_FOLDER
    separator: str | None = None
    locate_folders: tuple[str, ...] = ()
    retries: int = 3
    retry_wait: float = 1.0

    def __post_init__(self) -> None:
        for name in ("password", "oauth2_token"):
            value = getattr(self, name)
            if isinstance(value, str):  # a Python caller passing a plain string
                object.__setattr__(self, name, Secret(value))
        if isinstance(self.locate_folders, (list, str)):
            folders = [self.locate_folders] if isinstance(self.locate_folders, str) else self.locate_folders
            object.__setattr__(self, "locate_folders", tuple(folders))
        object.__setattr__(self, "tls", str(self.tls).strip().lower())
        object.__setattr__(self, "oauth2_mechanism", str(self.oauth2_mechanism).strip().upper())
        self._validate()

    def _validate(self) -> None:
        if not str(self.host).strip():
            raise _bad("host", "indiquez le nom du serveur IMAP, par exemple imap.example.org",
                       "give the IMAP server name, for example imap.example.org")
        if not str(self.username).strip():
            raise _bad("username", "indiquez l'identifiant (souvent l'adresse complète)",
                       "give the login (often the full address)")
        if self.tls not in TLS_MODES:
            raise _bad("tls", f"valeurs possibles : {', '.join(TLS_MODES)}", f"allowed values: {', '.join(TLS_MODES)}")
        if self.tls == "none" and not is_loopback(self.host):
            raise _bad(
                "tls",
                "« none » (sans chiffrement) n'est accepté que pour un serveur sur cette machine (127.0.0.1) ; "
                "utilisez « ssl » (port 993) ou « starttls » (port 143)",
                "'none' (no encryption) is only accepted for a server on this machine (127.0.0.1); "
                "use 'ssl' (port 993) or 'starttls' (port 143)",
            )
        if not self.verify_tls and not is_loopback(self.host):
            raise _bad(
                "verify_tls",
                "la vérification du certificat ne peut être désactivée que pour 127.0.0.1 ; pour un certificat "
                "auto-signé, donnez son fichier avec ca_file",
                "certificate checks can only be turned off for 127.0.0.1; for a self-signed certificate, "
                "give its file with ca_file",
            )
        if self.ca_file and not os.path.isfile(os.path.expanduser(self.ca_file)):
            raise _bad("ca_file", f"fichier introuvable : {self.ca_file}", f"file not found: {self.ca_file}")
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            raise _bad("port", "un nombre entre 1 et 65535", "a number between 1 and 65535")
        if not (isinstance(self.timeout, (int, float)) and self.timeout > 0):
            raise _bad("timeout", "un nombre de secondes positif", "a positive number of seconds")
        if self.password is not None and self.oauth2_token is not None:
            raise _bad("password", "donnez soit password, soit oauth2_token, pas les deux",
                       "give either password or oauth2_token, not both")
        if self.oauth2_mechanism not in OAUTH2_MECHANISMS:
            raise _bad("oauth2_mechanism", f"valeurs possibles : {', '.join(OAUTH2_MECHANISMS)}",
                       f"allowed values: {', '.join(OAUTH2_MECHANISMS)}")
        if self.separator is not None and len(self.separator) != 1:
            raise _bad("separator", "un seul caractère, par exemple / ou . (ou rien : détection automatique)",
                       "a single character such as / or . (or nothing: detected automatically)")
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise _bad("retries", "un entier positif ou nul", "a non-negative integer")
        if not (isinstance(self.retry_wait, (int, float)) and self.retry_wait >= 0):
            raise _bad("retry_wait", "un nombre de secondes positif ou nul", "a non-negative number of seconds")

    @property
    def effective_port(self) -> int:
        """The port to connect to: the configured one, else the usual one for ``tls``."""
        return self.port or DEFAULT_PORTS[self.tls]

    def describe(self) -> dict[str, Any]:
        """Settings safe to show or log (secrets replaced by whether they are set)."""
        return {
            "host": self.host, "port": self.effective_port, "username": self.username, "tls": self.tls,
            "verify_tls": self.verify_tls, "auth": "oauth2" if self.oauth2_token else ("password" if self.password else "hook"),
        }


def _bad(key: str, fr: str, en: str) -> ConfigError:
    # the section is [mailbox] in a triage job and [connectors.imap] elsewhere: name the key, not the section
    return ConfigError(tr(f"Réglage IMAP « {key} » : {fr}.", f"IMAP setting '{key}': {en}."))
