"""Google credentials for the connector: a stored user authorisation or a service account.

Two ways in, both limited to the ``gmail.modify`` scope:

* *installed app* (any Gmail or Workspace account): ``assoc-ai gmail auth`` runs
  Google's consent screen once and stores the refresh token in a file readable
  by its owner only (or in the system keyring); the connector reads it back
  through a secret reference, ``token = { file = "..." }``;
* *service account with domain-wide delegation* (Google Workspace): the
  connector signs its own token requests and acts as ``subject``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from google.auth.credentials import Credentials as BaseCredentials
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.files import PRIVATE_FILE, atomic_write, private_dir
from assoc_ai_core.i18n import tr

from .settings import KEYRING_SERVICE, SCOPES


def _rerun_auth_hint() -> tuple[str, str]:
    return (
        "Relancez « assoc-ai gmail auth --client-secrets FICHIER --token FICHIER ».",
        "Run `assoc-ai gmail auth --client-secrets FILE --token FILE` again.",
    )


def user_credentials_from_json(text: str, *, where: str) -> user_credentials.Credentials:
    """Credentials from the JSON written by ``assoc-ai gmail auth`` (Google's authorized-user format)."""
    fr_hint, en_hint = _rerun_auth_hint()
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(
            tr(f"{where} : ce n'est pas un jeton Gmail (JSON illisible). {fr_hint}",
               f"{where}: this is not a Gmail token (unreadable JSON). {en_hint}")
        ) from None
    if not isinstance(info, dict) or info.get("type") == "service_account":
        raise ConfigError(
            tr(f"{where} : ce fichier n'est pas un jeton utilisateur (pour un compte de service, utilisez "
               f"service_account_file et subject). {fr_hint}",
               f"{where}: this file is not a user token (for a service account use service_account_file "
               f"and subject). {en_hint}")
        )
    try:
        return user_credentials.Credentials.from_authorized_user_info(info, scopes=list(SCOPES))
    except ValueError as exc:
        raise ConfigError(
            tr(f"{where} : jeton incomplet ({exc}). {fr_hint}", f"{where}: incomplete token ({exc}). {en_hint}")
        ) from None


def service_account_credentials(path: str, subject: str | None, *, where: str) -> service_account.Credentials:
    """Credentials of a service account acting, by domain-wide delegation, as ``subject``."""
    if not subject:
        raise ConfigError(
            tr(
                f"[{where}] : avec un compte de service, indiquez aussi « subject », l'adresse de la boîte "
                'à trier (ex. subject = "contact@asso.example").',
                f"[{where}]: with a service account also set 'subject', the address of the mailbox to sort "
                '(e.g. subject = "contact@asso.example").',
            )
        )
    p = Path(path).expanduser()
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            tr(f"[{where}] : impossible de lire le fichier du compte de service {p} ({exc.strerror}).",
               f"[{where}]: cannot read the service account file {p} ({exc.strerror}).")
        ) from None
    except ValueError:
        raise ConfigError(
            tr(f"[{where}] : {p} n'est pas un fichier JSON de clé de compte de service.",
               f"[{where}]: {p} is not a service account key JSON file.")
        ) from None
    try:
        return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES), subject=subject)
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            tr(f"[{where}] : clé de compte de service invalide ({exc}). Téléchargez une nouvelle clé JSON "
               "dans la console Google Cloud (IAM > Comptes de service > Clés).",
               f"[{where}]: invalid service account key ({exc}). Download a new JSON key from the Google "
               "Cloud console (IAM > Service accounts > Keys).")
        ) from None


def read_keyring(name: str, *, where: str) -> str:
    """The token JSON stored in the system keyring under ``name``."""
    fr_hint, en_hint = _rerun_auth_hint()
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise ConfigError(
            tr(f"[{where}] : token_keyring demande le paquet « keyring » (pip install keyring).",
               f"[{where}]: token_keyring needs the 'keyring' package (pip install keyring).")
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(
            tr(f"[{where}] : trousseau système inaccessible ({exc}).", f"[{where}]: system keyring unavailable ({exc}).")
        ) from None
    if not value:
        raise ConfigError(
            tr(f"[{where}] : aucun jeton « {name} » dans le trousseau système. {fr_hint}",
               f"[{where}]: no token '{name}' in the system keyring. {en_hint}")
        )
    return value


def write_keyring(name: str, token_json: str) -> None:
    """Store the token JSON in the system keyring under ``name``."""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise ConfigError(
            tr("--keyring demande le paquet « keyring » (pip install keyring).",
               "--keyring needs the 'keyring' package (pip install keyring).")
        ) from None
    try:
        keyring.set_password(KEYRING_SERVICE, name, token_json)
    except keyring.errors.KeyringError as exc:
        raise ConfigError(
            tr(f"Trousseau système inaccessible ({exc}) ; utilisez --token FICHIER à la place.",
               f"System keyring unavailable ({exc}); use --token FILE instead.")
        ) from None


def write_private_file(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically, readable and writable by its owner only (0600, folder 0700)."""
    target = Path(path).expanduser()
    try:
        private_dir(target.parent)
        atomic_write(target, text, mode=PRIVATE_FILE)
    except OSError as exc:
        raise ConfigError(
            tr(f"Impossible d'écrire le jeton dans {target} ({exc.strerror}). Choisissez un dossier où vous "
               "pouvez écrire.",
               f"Cannot write the token to {target} ({exc.strerror}). Choose a folder you can write to.")
        ) from None
    return target


def credentials_info(creds: BaseCredentials) -> dict[str, Any]:
    """What to store after consent: refresh token, client id/secret, token endpoint, scopes."""
    return json.loads(creds.to_json())  # type: ignore[attr-defined]
