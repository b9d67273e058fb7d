"""``assoc-ai m365 …`` commands: sign-in (browser on a loopback address, or device code) and a connection check."""

from __future__ import annotations

import html
import secrets
import threading
import webbrowser
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
import msal
import requests

from assoc_ai_core.cli.common import option
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
from .config import ACTIONS, CONNECTOR_ID, DEFAULT_AUTHORITY_HOST, DEFAULT_GRAPH_URL
from .session import make_session

SIGN_IN_WAIT = 300.0  # seconds the loopback address waits for the browser to come back


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
        "Connecter un compte Microsoft 365 et enregistrer le jeton dans un fichier lisible par vous seul. "
        "Par défaut dans le navigateur (retour sur http://localhost, PKCE) ; --device pour un code à saisir "
        "sur https://microsoft.com/devicelogin (souvent bloqué par les locataires).",
        "Sign in a Microsoft 365 account and store the token in a file only you can read. "
        "By default in the browser (back on http://localhost, PKCE); --device for a code to enter at "
        "https://microsoft.com/devicelogin (often blocked by tenants).",
    ),
)
@option("--client-id", required=True,
        help=tr("ID d'application (client) de l'inscription Entra.",
                "Application (client) ID of the Entra app registration."))
@option("--tenant", required=True,
        help=tr("ID ou domaine du locataire (ex. asso.onmicrosoft.com).",
                "Tenant ID or domain (e.g. asso.onmicrosoft.com)."))
@option("--cache", "cache_path", required=True, type=click.Path(dir_okay=False),
        help=tr("Fichier du cache de jetons (créé en mode 600).", "Token cache file (created with mode 600)."))
@option("--mailbox", default="me", show_default=True,
        help=tr("Boîte à trier : « me » ou l'adresse d'une boîte partagée.",
                "Mailbox to sort: 'me' or a shared mailbox address."))
@option("--actions", "actions_text", default=",".join(ACTIONS), show_default=True,
        help=tr("Actions du tri, séparées par des virgules (move, label, forward ; vide : lecture seule). "
                "Seules leurs permissions sont demandées ; mettez les mêmes dans [mailbox] actions.",
                "Actions of the job, comma-separated (move, label, forward; empty: read only). "
                "Only their permissions are asked for; put the same in [mailbox] actions."))
@option("--device", is_flag=True, default=False,
        help=tr("Connexion par code à saisir (device code) au lieu du navigateur.",
                "Sign in with a code to enter (device code) instead of the browser."))
@option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
        help=tr("Port local du retour du navigateur (0 : un port libre).",
                "Local port the browser comes back to (0: a free port)."))
@option("--no-browser", is_flag=True, default=False,
        help=tr("Ne pas ouvrir le navigateur : l'adresse est affichée, ouvrez-la vous-même sur cette machine.",
                "Do not open the browser: the address is printed, open it yourself on this machine."))
# National clouds and the tests' loopback server only:
@option("--authority-host", default=DEFAULT_AUTHORITY_HOST, show_default=True, hidden=True)
@option("--graph-url", default=DEFAULT_GRAPH_URL, show_default=True, hidden=True)
@option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), default=None,
        help=tr("Certificat racine d'un proxy d'entreprise.", "Root certificate of a corporate proxy."))
@option("--timeout", type=float, default=30.0, show_default=True, hidden=True)
def auth(client_id: str, tenant: str, cache_path: str, mailbox: str, actions_text: str, device: bool, port: int,
         no_browser: bool, authority_host: str, graph_url: str, ca_bundle: str | None, timeout: float) -> None:
    """Delegated sign-in; the msal token cache is written to ``--cache`` with mode 0600."""
    from .config import M365Config

    if not authority_host.startswith("https://") or not graph_url.startswith("https://"):
        raise ConfigError(tr("Les adresses doivent commencer par https://.", "Addresses must start with https://."))
    actions = tuple(a.strip() for a in actions_text.split(",") if a.strip())
    # The same rules as the job's configuration decide the permissions, so both ask for the same scopes.
    settings = M365Config(mailbox=mailbox, client_id=client_id, tenant=tenant, token_cache=cache_path,
                          authority_host=authority_host, graph_url=graph_url, actions=actions)
    scopes = delegated_scopes(graph_url, settings.permissions())
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
        if device:
            result = _device_code(app, scopes)
        else:
            result = _browser(app, scopes, port=port, open_browser=not no_browser)
    except requests.exceptions.SSLError as exc:
        raise AuthError(tls_message(authority_host), connector_id=CONNECTOR_ID) from exc
    except requests.RequestException as exc:
        raise sign_in_unreachable(exc) from exc
    except ValueError as exc:  # msal: the tenant's OpenID configuration cannot be read, or state mismatch
        raise AuthError(
            tr(f"Connexion refusée : {exc}", f"Sign-in refused: {exc}"),
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
    actions_line = "actions = [" + ", ".join(f'"{a}"' for a in settings.actions) + "]"
    click.echo(
        tr(
            f"Connecté : {who}. Jeton enregistré dans {cache_path} (lisible par vous seul).\n"
            "À mettre dans assoc_ai.toml :\n"
            f"[mailbox]\nconnector = \"m365\"\nmailbox = \"{mailbox}\"\nclient_id = \"{client_id}\"\ntenant = \"{tenant}\"\n"
            f"token_cache = \"{cache_path}\"\n{actions_line}",
            f"Signed in: {who}. Token stored in {cache_path} (readable by you only).\n"
            "Put in assoc_ai.toml:\n"
            f"[mailbox]\nconnector = \"m365\"\nmailbox = \"{mailbox}\"\nclient_id = \"{client_id}\"\ntenant = \"{tenant}\"\n"
            f"token_cache = \"{cache_path}\"\n{actions_line}",
        )
    )


def _device_code(app: msal.PublicClientApplication, scopes: list[str]) -> dict[str, Any]:
    """Device-code sign-in: print the code, wait for the person to enter it."""
    flow = app.initiate_device_flow(scopes=scopes)
    if "user_code" not in flow:
        raise AuthError(
            tr(
                f"Microsoft refuse de démarrer la connexion ({flow.get('error', '?')}). Vérifiez l'ID "
                "d'application, le locataire et que « Autoriser les flux clients publics » est activé "
                "dans l'inscription d'application (Authentification), ou connectez-vous sans --device.",
                f"Microsoft refuses to start the sign-in ({flow.get('error', '?')}). Check the application "
                "ID, the tenant and that 'Allow public client flows' is enabled in the app registration "
                "(Authentication), or sign in without --device.",
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
    return result


class _Redirect(HTTPServer):
    """The loopback address the browser comes back to: one answer, then it is done."""

    answer: dict[str, str] | None = None
    expected_state = ""


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _Redirect

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        # response_mode=form_post: the code comes in the body, never in a URL a browser history keeps.
        length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        self._answer({k: v[0] for k, v in form.items()})

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self._answer({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})

    def _answer(self, query: dict[str, str]) -> None:
        if not query.get("state") and not query.get("error"):
            self.send_response(404)
            self.end_headers()
            return
        good = secrets.compare_digest(query.get("state", ""), self.server.expected_state) and "code" in query
        text = (tr("Connexion terminée : vous pouvez fermer cette page.", "Signed in: you can close this page.") if good
                else tr("Connexion refusée : revenez au terminal.", "Sign-in refused: go back to the terminal."))
        body = f"<!doctype html><meta charset=utf-8><title>assoc-ai</title><p>{html.escape(text)}</p>".encode()
        self.send_response(200 if good else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.answer is None:
            self.server.answer = query

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the authorization code
        pass


def _browser(app: msal.PublicClientApplication, scopes: list[str], *, port: int, open_browser: bool) -> dict[str, Any]:
    """Authorization code with PKCE, back on ``http://localhost:<port>`` served on 127.0.0.1 only."""
    server = _Redirect(("127.0.0.1", port), _RedirectHandler)
    server.timeout = 1.0
    try:
        redirect_uri = f"http://localhost:{server.server_address[1]}"
        # msal adds PKCE (S256) and a random state; the answer comes back as a form post.
        flow = app.initiate_auth_code_flow(scopes, redirect_uri=redirect_uri, response_mode="form_post")
        server.expected_state = str(flow["state"])
        click.echo(
            tr(
                f"Ouvrez cette adresse dans un navigateur de cette machine pour vous connecter :\n{flow['auth_uri']}",
                f"Open this address in a browser on this machine to sign in:\n{flow['auth_uri']}",
            ),
            err=True,
        )
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(flow["auth_uri"],), daemon=True).start()
        answer = _wait_for_redirect(server)
    finally:
        server.server_close()
    if answer.get("error"):
        return {"error": answer["error"]}
    if not secrets.compare_digest(answer.get("state", ""), server.expected_state):
        # Not our sign-in (another tab, or a forged redirect): never exchange its code.
        raise AuthError(
            tr("Connexion refusée : la réponse du navigateur ne correspond pas à cette demande (state).",
               "Sign-in refused: the browser's answer does not match this request (state)."),
            connector_id=CONNECTOR_ID,
        )
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, answer, scopes=scopes)
    return result


def _wait_for_redirect(server: _Redirect, wait: float = SIGN_IN_WAIT) -> Mapping[str, str]:
    import time

    deadline = time.monotonic() + wait
    while server.answer is None:
        if time.monotonic() > deadline:
            raise AuthError(
                tr("Connexion non terminée dans le navigateur à temps. Relancez la commande.",
                   "Sign-in not finished in the browser in time. Run the command again."),
                connector_id=CONNECTOR_ID,
            )
        server.handle_request()
    return server.answer


@m365.command(
    name="check",
    help=tr(
        "Vérifier la connexion à la boîte configurée ([mailbox] connector = \"m365\") et lister ses dossiers.",
        "Check the connection to the configured mailbox ([mailbox] connector = \"m365\") and list its folders.",
    ),
)
@option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
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
    conn = M365Connector(cfg)
    with conn:
        folders = conn.list_folders()
    click.echo(tr(f"Connexion réussie à {cfg.mailbox} : {len(folders)} dossiers.",
                  f"Connected to {cfg.mailbox}: {len(folders)} folders."))
    for name in folders:
        click.echo(f"  {name}")
