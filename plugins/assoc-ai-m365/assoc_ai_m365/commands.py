"""``assoc-ai m365 …`` commands: device-code sign-in and a connection check."""

from __future__ import annotations

from typing import Any

import click
import msal
import requests

from assoc_ai_core.errors import AuthError, ConfigError
from assoc_ai_core.i18n import tr

from .auth import (
    authority_url,
    delegated_scopes,
    load_token_cache,
    save_token_cache,
    sign_in_unreachable,
    tls_message,
)
from .config import CONNECTOR_ID, DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL
from .session import make_session


@click.group(
    name="m365",
    help=tr("Microsoft 365 (Exchange Online) : connexion et vérification.",
            "Microsoft 365 (Exchange Online): sign-in and check."),
)
def m365() -> None:
    """Commands of the assoc-ai-m365 plugin."""


@m365.command(
    name="auth",
    help=tr(
        "Connecter un compte Microsoft 365 (code à saisir sur https://microsoft.com/devicelogin) "
        "et enregistrer le jeton dans un fichier lisible par vous seul.",
        "Sign in a Microsoft 365 account (code to enter at https://microsoft.com/devicelogin) "
        "and store the token in a file only you can read.",
    ),
)
@click.option("--client-id", required=True,
              help=tr("ID d'application (client) de l'inscription Entra.",
                      "Application (client) ID of the Entra app registration."))
@click.option("--tenant", required=True,
              help=tr("ID ou domaine du locataire (ex. asso.onmicrosoft.com).",
                      "Tenant ID or domain (e.g. asso.onmicrosoft.com)."))
@click.option("--cache", "cache_path", required=True, type=click.Path(dir_okay=False),
              help=tr("Fichier du cache de jetons (créé en mode 600).", "Token cache file (created with mode 600)."))
@click.option("--mailbox", default="me", show_default=True,
              help=tr("Boîte à trier : « me » ou l'adresse d'une boîte partagée.",
                      "Mailbox to sort: 'me' or a shared mailbox address."))
# National clouds and the tests' loopback server only:
@click.option("--authority-host", default=DEFAULT_AUTHORITY_HOST, show_default=True, hidden=True)
@click.option("--graph-url", default=DEFAULT_GRAPH_URL, show_default=True, hidden=True)
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), default=None,
              help=tr("Certificat racine d'un proxy d'entreprise.", "Root certificate of a corporate proxy."))
@click.option("--timeout", type=float, default=30.0, show_default=True, hidden=True)
def auth(client_id: str, tenant: str, cache_path: str, mailbox: str, authority_host: str, graph_url: str,
         ca_bundle: str | None, timeout: float) -> None:
    """Device-code sign-in; the msal token cache is written to ``--cache`` with mode 0600."""
    if not authority_host.startswith("https://") or not graph_url.startswith("https://"):
        raise ConfigError(tr("Les adresses doivent commencer par https://.", "Addresses must start with https://."))
    cache = load_token_cache(cache_path)
    try:
        app = msal.PublicClientApplication(
            client_id,
            authority=authority_url(authority_host, tenant),
            token_cache=cache,
            instance_discovery=False,
            http_client=make_session(ca_bundle),
            timeout=timeout,
        )
        flow = app.initiate_device_flow(scopes=delegated_scopes(graph_url, mailbox))
        if "user_code" not in flow:
            raise AuthError(
                tr(
                    f"Microsoft refuse de démarrer la connexion ({flow.get('error', '?')}). Vérifiez l'ID "
                    "d'application, le locataire et que « Autoriser les flux clients publics » est activé "
                    "dans l'inscription d'application (Authentification).",
                    f"Microsoft refuses to start the sign-in ({flow.get('error', '?')}). Check the application "
                    "ID, the tenant and that 'Allow public client flows' is enabled in the app registration "
                    "(Authentication).",
                ),
                connector_id=CONNECTOR_ID,
            )
        click.echo(
            tr(
                f"Pour vous connecter, ouvrez {flow['verification_uri']} dans un navigateur et saisissez le code "
                f"{flow['user_code']} (valable {int(flow.get('expires_in', 900)) // 60} min). En attente…",
                f"To sign in, open {flow['verification_uri']} in a browser and enter the code "
                f"{flow['user_code']} (valid {int(flow.get('expires_in', 900)) // 60} min). Waiting…",
            ),
            err=True,
        )
        result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
    except requests.exceptions.SSLError as exc:
        raise AuthError(tls_message(authority_host), connector_id=CONNECTOR_ID) from exc
    except requests.RequestException as exc:
        raise sign_in_unreachable(exc) from exc
    except ValueError as exc:  # msal: the tenant's OpenID configuration cannot be read
        raise AuthError(
            tr(f"Locataire « {tenant} » introuvable : {exc}", f"Tenant '{tenant}' not found: {exc}"),
            connector_id=CONNECTOR_ID,
        ) from exc
    if "access_token" not in result:
        raise AuthError(
            tr(
                f"Connexion non aboutie ({result.get('error', '?')}) : code expiré, refusé ou permissions "
                "non accordées. Relancez la commande.",
                f"Sign-in did not complete ({result.get('error', '?')}): code expired, declined or permissions "
                "not granted. Run the command again.",
            ),
            connector_id=CONNECTOR_ID,
        )
    save_token_cache(cache, cache_path)
    claims = result.get("id_token_claims") or {}
    who = claims.get("preferred_username") or claims.get("upn") or "?"
    click.echo(
        tr(
            f"Connecté : {who}. Jeton enregistré dans {cache_path} (lisible par vous seul).\n"
            "À mettre dans assoc_ai.toml :\n"
            f"[mailbox]\nconnector = \"m365\"\nmailbox = \"{mailbox}\"\nclient_id = \"{client_id}\"\ntenant = \"{tenant}\"\n"
            f"token_cache = \"{cache_path}\"",
            f"Signed in: {who}. Token stored in {cache_path} (readable by you only).\n"
            "Put in assoc_ai.toml:\n"
            f"[mailbox]\nconnector = \"m365\"\nmailbox = \"{mailbox}\"\nclient_id = \"{client_id}\"\ntenant = \"{tenant}\"\n"
            f"token_cache = \"{cache_path}\"",
        )
    )


@m365.command(
    name="check",
    help=tr(
        "Vérifier la connexion à la boîte configurée ([mailbox] connector = \"m365\") et lister ses dossiers.",
        "Check the connection to the configured mailbox ([mailbox] connector = \"m365\") and list its folders.",
    ),
)
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help=tr("Fichier de configuration TOML.", "TOML configuration file."))
def check(config_path: str) -> None:
    """Open the connector from a configuration file and print the mailbox's folders."""
    from assoc_ai_core.ext.config import build_config, load_config

    from .config import M365Config
    from .connector import M365Connector

    data = load_config(config_path)
    section = dict(data.get("mailbox") or {})
    if section.pop("connector", None) != CONNECTOR_ID:
        raise ConfigError(
            tr(
                f'{config_path} : il faut une section [mailbox] avec connector = "{CONNECTOR_ID}".',
                f'{config_path}: a [mailbox] section with connector = "{CONNECTOR_ID}" is needed.',
            )
        )
    cfg = build_config(M365Config, section, where="mailbox")
    with M365Connector(cfg) as conn:
        folders = conn.list_folders()
    click.echo(tr(f"Connexion réussie à {cfg.mailbox} : {len(folders)} dossiers.",
                  f"Connected to {cfg.mailbox}: {len(folders)} folders."))
    for name in folders:
        click.echo(f"  {name}")
