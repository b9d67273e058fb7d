"""``assoc-ai gmail auth``: Google's consent screen, once; the refresh token stored privately.

Two ways to consent:

* default: a browser opens Google's page, and a small local web server
  receives the answer (``--no-browser`` prints the address instead of opening it);
* ``--console`` (alias ``--headless``), for a server without a browser: open the
  printed address on any computer, accept, then paste back the address of the
  page the browser lands on (it shows an error, that is expected) or just the code.
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path
from typing import Any

import click

from assoc_ai_core.cli.common import option
from assoc_ai_core.errors import AuthError, ConfigError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.i18n import tr

from .credentials import write_keyring, write_private_file
from .settings import SCOPES

log = logging.getLogger(__name__)

def _error(kind: type[AuthError] | type[TransientError], fr: str, en: str) -> AuthError | TransientError:
    return kind(tr(fr, en), connector_id="gmail")


#: Loopback address for the manual-code flow: nothing listens there, the code stays in the browser's address bar.
CONSOLE_REDIRECT_URI = "http://127.0.0.1:1/"


@click.group("gmail", help=tr("Connecteur Gmail / Google Workspace.", "Gmail / Google Workspace connector."))
def gmail() -> None:
    """Gmail / Google Workspace commands."""


@gmail.command(
    "auth",
    help=tr(
        "Autoriser assoc-ai à trier une boîte Gmail (une seule fois). Ouvre la page de consentement de "
        "Google et enregistre le jeton dans un fichier lisible par vous seul (ou dans le trousseau système).",
        "Authorise assoc-ai to sort a Gmail mailbox (once). Opens Google's consent page and stores the "
        "token in a file only you can read (or in the system keyring).",
    ),
)
@option("--client-secrets", "client_secrets", required=True, type=click.Path(dir_okay=False),
              help=tr("Fichier JSON du client OAuth « Application de bureau » téléchargé depuis la console Google Cloud.",
                      "JSON file of the 'Desktop app' OAuth client downloaded from the Google Cloud console."))
@option("--token", "token_path", type=click.Path(dir_okay=False),
              help=tr("Où enregistrer le jeton (fichier créé en mode 0600).",
                      "Where to store the token (file created with mode 0600)."))
@option("--keyring", "keyring_name",
              help=tr("Enregistrer le jeton dans le trousseau système sous ce nom (au lieu de --token).",
                      "Store the token in the system keyring under this name (instead of --token)."))
@option("--console", "--headless", "console", is_flag=True,
              help=tr("Serveur sans navigateur : copier-coller de l'adresse ou du code.",
                      "Server without a browser: copy and paste the address or the code."))
@option("--no-browser", is_flag=True,
              help=tr("Afficher l'adresse au lieu d'ouvrir le navigateur.", "Print the address instead of opening a browser."))
@option("--port", type=int, default=0, show_default=True,
              help=tr("Port local de retour (0 : n'importe lequel de libre).", "Local redirect port (0: any free one)."))
@option("--timeout", "timeout_seconds", type=int, default=300, show_default=True,
              help=tr("Secondes d'attente de la réponse de Google.", "Seconds to wait for Google's answer."))
@option("--check/--no-check", default=True, show_default=True,
              help=tr("Vérifier le jeton en lisant l'adresse de la boîte.", "Check the token by reading the mailbox address."))
@option("--api-endpoint", hidden=True, default=None)
def auth(client_secrets: str, token_path: str | None, keyring_name: str | None, console: bool, no_browser: bool,
         port: int, timeout_seconds: int, check: bool, api_endpoint: str | None) -> None:
    """Run the consent flow once and store the refresh token."""
    if bool(token_path) == bool(keyring_name):
        raise ConfigError(
            tr("Indiquez où enregistrer le jeton : --token FICHIER, ou --keyring NOM (un seul des deux).",
               "Say where to store the token: --token FILE, or --keyring NAME (only one of them).")
        )
    flow = _make_flow(client_secrets)
    creds = _consent_console(flow) if console else _consent_local(flow, port, not no_browser, timeout_seconds)
    if not getattr(creds, "refresh_token", None):
        raise _error(AuthError,
                     "Google n'a pas renvoyé de jeton de renouvellement. Retirez l'accès d'assoc-ai sur "
                     "https://myaccount.google.com/permissions puis relancez cette commande.",
                     "Google returned no refresh token. Remove assoc-ai's access at "
                     "https://myaccount.google.com/permissions then run this command again.")
    token_json = creds.to_json()
    if keyring_name:
        write_keyring(keyring_name, token_json)
        where = tr(f"dans le trousseau système (nom « {keyring_name} »)", f"in the system keyring (name '{keyring_name}')")
        snippet = f'token_keyring = "{keyring_name}"'
    else:
        assert token_path is not None
        path = write_private_file(token_path, token_json)
        where = tr(f"dans {path} (lisible par vous seul)", f"in {path} (readable by you only)")
        snippet = f'token = {{ file = "{path}" }}'
    click.echo(tr(f"Jeton enregistré {where}.", f"Token stored {where}."))
    if check:
        address = _check(token_json, api_endpoint, getattr(creds, "token_uri", None))
        click.echo(tr(f"Connexion vérifiée : boîte {address}.", f"Connection checked: mailbox {address}."))
    click.echo(tr("Ajoutez à votre fichier de configuration :", "Add to your configuration file:"))
    click.echo('\n[mailbox]\nconnector = "gmail"\n' + snippet + "\n")


def _make_flow(client_secrets: str) -> Any:
    from google_auth_oauthlib.flow import InstalledAppFlow

    path = Path(client_secrets).expanduser()
    try:
        return InstalledAppFlow.from_client_secrets_file(str(path), scopes=list(SCOPES))
    except OSError as exc:
        raise ConfigError(
            tr(f"Impossible de lire {path} ({exc.strerror}). Téléchargez le fichier JSON du client OAuth dans la "
               "console Google Cloud (API et services > Identifiants).",
               f"Cannot read {path} ({exc.strerror}). Download the OAuth client JSON file from the Google Cloud "
               "console (APIs & Services > Credentials).")
        ) from None
    except ValueError:
        raise ConfigError(
            tr(f"{path} n'est pas un fichier de client OAuth Google. Créez un identifiant « ID client OAuth » de "
               "type « Application de bureau » et téléchargez son JSON.",
               f"{path} is not a Google OAuth client file. Create an 'OAuth client ID' credential of type "
               "'Desktop app' and download its JSON.")
        ) from None


def _consent_local(flow: Any, port: int, open_browser: bool, timeout_seconds: int) -> Any:
    from google_auth_oauthlib.flow import WSGITimeoutError

    try:
        return flow.run_local_server(
            host="localhost", port=port, open_browser=open_browser,
            timeout_seconds=timeout_seconds, prompt="consent",
            authorization_prompt_message=tr(
                "Ouvrez cette adresse dans un navigateur pour autoriser assoc-ai :\n{url}\n",
                "Open this address in a browser to authorise assoc-ai:\n{url}\n",
            ),
            success_message=tr(
                "C'est fait : assoc-ai est autorisé. Vous pouvez fermer cette page.",
                "Done: assoc-ai is authorised. You may close this page.",
            ),
        )
    except WSGITimeoutError:
        raise _error(AuthError,
                     f"Pas de réponse de Google en {timeout_seconds} s. Relancez la commande (ou utilisez --console "
                     "sur un serveur sans navigateur).",
                     f"No answer from Google within {timeout_seconds} s. Run the command again (or use --console "
                     "on a server without a browser).") from None
    except Exception as exc:
        raise _flow_error(exc) from exc


def _consent_console(flow: Any) -> Any:
    flow.redirect_uri = CONSOLE_REDIRECT_URI
    url, state = flow.authorization_url(prompt="consent")
    click.echo(tr(
        "1. Ouvrez cette adresse dans un navigateur, sur n'importe quel ordinateur :",
        "1. Open this address in a browser, on any computer:",
    ))
    click.echo("\n" + url + "\n")
    click.echo(tr(
        "2. Acceptez l'accès. Le navigateur arrive ensuite sur une page d'erreur « 127.0.0.1 » : c'est normal.\n"
        "3. Copiez l'adresse complète de cette page (elle contient « code= ») et collez-la ci-dessous.",
        "2. Accept the access. The browser then lands on a '127.0.0.1' error page: that is expected.\n"
        "3. Copy the full address of that page (it contains 'code=') and paste it below.",
    ))
    answer = click.prompt(tr("Adresse ou code", "Address or code"), type=str)
    code = extract_code(answer, state)
    try:
        flow.fetch_token(code=code)
    except Exception as exc:
        raise _flow_error(exc) from exc
    return flow.credentials


def extract_code(answer: str, expected_state: str | None) -> str:
    """The authorisation code from a pasted redirect address (checking ``state``) or a bare code."""
    text = answer.strip()
    if "code=" not in text and "error=" not in text:
        if not text:
            raise _error(AuthError, "Aucun code collé.", "No code pasted.")
        return text
    query = urllib.parse.urlsplit(text).query if "://" in text or text.startswith("/") else text.lstrip("?")
    params = urllib.parse.parse_qs(query)
    if "error" in params:
        raise _error(AuthError,
                     f"Google a répondu « {params['error'][0]} » : l'accès n'a pas été accordé. Relancez la commande "
                     "et cliquez sur « Autoriser ».",
                     f"Google answered '{params['error'][0]}': access was not granted. Run the command again and "
                     "click 'Allow'.")
    if expected_state and params.get("state", [expected_state])[0] != expected_state:
        raise _error(AuthError,
                     "Cette adresse vient d'une autre tentative d'autorisation. Utilisez l'adresse affichée par "
                     "cette commande-ci.",
                     "This address comes from another authorisation attempt. Use the address printed by this "
                     "run of the command.")
    code = (params.get("code") or [""])[0]
    if not code:
        raise _error(AuthError, "Pas de code dans l'adresse collée.", "No code in the pasted address.")
    return code


def _flow_error(exc: BaseException) -> Exception:
    """Explain a failed code exchange (refused code, missing scope, network)."""
    import requests
    from oauthlib.oauth2.rfc6749 import errors as oauth_errors

    if isinstance(exc, oauth_errors.OAuth2Error):
        return _error(AuthError,
                      f"Google a refusé le code ({exc.error}). Relancez la commande : un code ne sert qu'une fois "
                      "et expire vite.",
                      f"Google refused the code ({exc.error}). Run the command again: a code works once and "
                      "expires quickly.")
    if isinstance(exc, Warning) and "scope" in str(exc).lower():
        return _error(AuthError,
                      "L'accès Gmail n'a pas été coché sur la page de Google. Relancez la commande et cochez "
                      "« Lire, rédiger et envoyer des e-mails… » (gmail.modify).",
                      "The Gmail access box was not ticked on Google's page. Run the command again and tick "
                      "'Read, compose and send emails…' (gmail.modify).")
    if isinstance(exc, requests.RequestException):
        return _error(TransientError,
                      f"Serveur d'autorisation Google injoignable ({type(exc).__name__}). Vérifiez la connexion et "
                      "relancez.",
                      f"Google's authorisation server unreachable ({type(exc).__name__}). Check the connection and "
                      "try again.")
    return _error(AuthError, f"Autorisation Google impossible : {exc}", f"Google authorisation failed: {exc}")


def _check(token_json: str, api_endpoint: str | None, token_uri: str | None) -> str:
    from .connector import GmailConfig, GmailConnector

    # the token endpoint that just answered is the one to check against (Google's, outside tests)
    config = GmailConfig(token=Secret(token_json), api_endpoint=api_endpoint, auth_endpoint=token_uri)
    with GmailConnector(config) as conn:
        return conn.email_address
