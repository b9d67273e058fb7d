"""Signing in to Microsoft Entra ID with msal.

:class:`TokenProvider` hands out Graph access tokens for one connector:

* application mode: ``ConfidentialClientApplication.acquire_token_for_client``
  with a certificate (``{"private_key", "thumbprint"}`` read from a PEM file)
  or a client secret (msal keeps the token in memory and renews it);
* delegated mode: ``PublicClientApplication.acquire_token_silent`` on a
  :class:`msal.SerializableTokenCache` loaded from the file written by
  ``assoc-ai m365 auth``; rotated refresh tokens are written back to it.

The cache file holds refresh tokens, so it is always (re)written with mode
0600 through :func:`assoc_ai_core.files.atomic_write`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from assoc_ai_core.errors import AuthError, ConfigError, TransientError
from assoc_ai_core.files import PRIVATE_FILE, atomic_write, private_dir
from assoc_ai_core.i18n import tr

from .config import CONNECTOR_ID, WHERE, M365Config
from .session import make_session

log = logging.getLogger(__name__)

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_PEM_KEY = re.compile(r"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----",
                      re.DOTALL)


def graph_resource(graph_url: str) -> str:
    """``https://graph.microsoft.com`` from ``https://graph.microsoft.com/v1.0`` (scopes are named on it)."""
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}"


def delegated_scopes(graph_url: str, permissions: Sequence[str]) -> list[str]:
    """Fully qualified delegated scopes (``https://graph.microsoft.com/Mail.Read``...) for ``permissions``."""
    resource = graph_resource(graph_url)
    return [f"{resource}/{name}" for name in permissions]


def certificate_credential(path: str) -> dict[str, str]:
    """msal's certificate credential from a PEM file holding the private key and its certificate.

    The thumbprint msal sends (``x5t``) is the SHA-1 of the certificate's DER
    bytes, computed here so the person configures one file and nothing else.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            tr(f"{WHERE} client_certificate : fichier illisible {p} ({type(exc).__name__}).",
               f"{WHERE} client_certificate: unreadable file {p} ({type(exc).__name__}).")
        ) from exc
    cert, key = _PEM_CERT.search(text), _PEM_KEY.search(text)
    if cert is None or key is None:
        raise ConfigError(
            tr(f"{WHERE} client_certificate : {p} doit contenir la clé privée et le certificat (PEM).",
               f"{WHERE} client_certificate: {p} must hold the private key and the certificate (PEM).")
        )
    if os.name == "posix" and stat.S_IMODE(p.stat().st_mode) & 0o077:
        log.warning(tr(f"La clé privée {p} est lisible par d'autres ; faites chmod 600.",
                       f"Private key {p} is readable by others; run chmod 600."))
    thumbprint = hashlib.sha1(ssl.PEM_cert_to_DER_cert(cert.group(0)), usedforsecurity=False).hexdigest().upper()
    return {"private_key": key.group(0), "thumbprint": thumbprint, "public_certificate": cert.group(0)}


def authority_url(authority_host: str, tenant: str) -> str:
    """The msal authority for ``tenant`` on ``authority_host``."""
    return f"{authority_host.rstrip('/')}/{tenant.strip('/')}"


def auth_command_hint(config: M365Config | None = None) -> str:
    """The command a person runs to sign in again (shown in AuthError messages)."""
    cache = config.token_cache if config is not None and config.token_cache else tr("FICHIER", "FILE")
    client_id = config.client_id if config is not None else "..."
    tenant = config.tenant if config is not None else "..."
    return f"assoc-ai m365 auth --client-id {client_id} --tenant {tenant} --cache {cache}"


# ---------------------------------------------------------------- token cache file
def load_token_cache(path: str | os.PathLike[str]) -> msal.SerializableTokenCache:
    """Read the msal cache file at ``path`` (empty cache when it does not exist yet).

    A cache readable by other users is tightened to 0600 with a warning: it
    holds a refresh token that opens the mailbox.
    """
    cache = msal.SerializableTokenCache()
    p = Path(path).expanduser()
    if not p.exists():
        return cache
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
        if os.name == "posix" and mode & 0o077:  # Windows protects the profile folder with ACLs instead
            log.warning(
                tr(
                    f"Le cache de jetons {p} était lisible par d'autres (mode {mode:o}) ; droits ramenés à 600.",
                    f"Token cache {p} was readable by others (mode {mode:o}); permissions set to 600.",
                )
            )
            os.chmod(p, 0o600)
        cache.deserialize(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            tr(
                f"Cache de jetons illisible : {p} ({exc}). Reconnectez-vous avec « {auth_command_hint()} ».",
                f"Unreadable token cache: {p} ({exc}). Sign in again with '{auth_command_hint()}'.",
            )
        ) from exc
    return cache


def save_token_cache(cache: msal.SerializableTokenCache, path: str | os.PathLike[str]) -> None:
    """Write ``cache`` to ``path`` with mode 0600, atomically (never a half-written or world-readable file)."""
    p = Path(path).expanduser()
    private_dir(p.parent)
    atomic_write(p, cache.serialize(), mode=PRIVATE_FILE)  # the file holds a refresh token


# ---------------------------------------------------------------- token provider
class TokenProvider:
    """Access tokens for Graph, from msal; builds msal lazily (msal does HTTP at construction)."""

    def __init__(self, config: M365Config) -> None:
        self.config = config
        self._app: msal.ClientApplication | None = None
        self._cache: msal.SerializableTokenCache | None = None
        self._session = make_session(config.ca_bundle)

    # msal contacts the authority (OpenID discovery) when the application is built.
    def _build(self) -> msal.ClientApplication:
        cfg = self.config
        common: dict[str, Any] = {
            "authority": authority_url(cfg.authority_host, cfg.tenant),
            "instance_discovery": False,
            "http_client": self._session,
            "timeout": cfg.timeout,
        }
        try:
            if cfg.app_only:
                credential: Any = (certificate_credential(cfg.client_certificate) if cfg.client_certificate
                                   else cfg.client_secret.get() if cfg.client_secret is not None else None)
                return msal.ConfidentialClientApplication(cfg.client_id, client_credential=credential, **common)
            assert cfg.token_cache
            self._cache = load_token_cache(cfg.token_cache)
            return msal.PublicClientApplication(cfg.client_id, token_cache=self._cache, **common)
        except requests.exceptions.SSLError as exc:
            raise AuthError(tls_message(cfg.authority_host), connector_id=CONNECTOR_ID) from exc
        except requests.RequestException as exc:
            raise sign_in_unreachable(exc) from exc
        except ValueError as exc:  # msal: unknown tenant / bad authority
            raise AuthError(
                tr(
                    f"Locataire (tenant) « {cfg.tenant} » refusé par {cfg.authority_host} : {exc}. "
                    "Vérifiez l'identifiant de locataire dans le centre d'administration Entra.",
                    f"Tenant '{cfg.tenant}' refused by {cfg.authority_host}: {exc}. "
                    "Check the tenant id in the Entra admin center.",
                ),
                connector_id=CONNECTOR_ID,
            ) from exc

    @property
    def app(self) -> msal.ClientApplication:
        """The msal application (built on first use)."""
        if self._app is None:
            self._app = self._build()
        return self._app

    def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` after Graph refused the previous one (401)."""
        cfg = self.config
        try:
            if cfg.app_only:
                if force_refresh:
                    self._forget_app_tokens()
                result = self.app.acquire_token_for_client(scopes=[f"{graph_resource(cfg.graph_url)}/.default"])
            else:
                result = self._delegated(force_refresh)
        except requests.RequestException as exc:
            raise sign_in_unreachable(exc) from exc
        except (ValueError, RuntimeError) as exc:  # msal: malformed answer from the sign-in service
            raise AuthError(
                tr(
                    f"Réponse inattendue du service de connexion Microsoft ({type(exc).__name__}).",
                    f"Unexpected answer from the Microsoft sign-in service ({type(exc).__name__}).",
                ),
                connector_id=CONNECTOR_ID,
            ) from exc
        if not result or "access_token" not in result:
            raise self._auth_error(result or {})
        return str(result["access_token"])

    def _delegated(self, force_refresh: bool) -> dict[str, Any] | None:
        cfg = self.config
        app = self.app
        accounts = app.get_accounts(username=cfg.account) if cfg.account else app.get_accounts()
        if not accounts:
            return {"error": "no_account"}
        if len(accounts) > 1 and not cfg.account:
            raise ConfigError(
                tr(
                    f"Le cache {cfg.token_cache} contient plusieurs comptes ; indiquez lequel avec "
                    f'account = "adresse@asso.org" dans {WHERE}.',
                    f"Cache {cfg.token_cache} holds several accounts; choose one with "
                    f'account = "address@asso.org" in {WHERE}.',
                )
            )
        result: dict[str, Any] | None = app.acquire_token_silent_with_error(
            delegated_scopes(cfg.graph_url, cfg.permissions()), account=accounts[0], force_refresh=force_refresh
        )
        self.persist()
        return result

    def persist(self) -> None:
        """Write the delegated cache back if msal changed it (rotated refresh token)."""
        if self._cache is not None and self._cache.has_state_changed and self.config.token_cache:
            save_token_cache(self._cache, self.config.token_cache)
            self._cache.has_state_changed = False

    def close(self) -> None:
        """Save the cache if it changed and close msal's HTTP session."""
        try:
            self.persist()
        finally:
            self._session.close()

    def _forget_app_tokens(self) -> None:
        cache = self.app.token_cache
        for at in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(at)

    def _auth_error(self, result: dict[str, Any]) -> AuthError:
        cfg = self.config
        code = str(result.get("error", "unknown"))
        # error_description may quote the account; keep only its first line (an AADSTS code and a sentence).
        detail = str(result.get("error_description", "")).splitlines()[0][:200] if result.get("error_description") else ""
        if cfg.app_only:
            needed = ", ".join(cfg.permissions())
            return AuthError(
                tr(
                    f"Microsoft a refusé la connexion de l'application {cfg.client_id} ({code} {detail}). "
                    "Vérifiez le secret client ou le certificat (expiré ?), l'identifiant du locataire et le "
                    f"consentement administrateur des permissions {needed}.",
                    f"Microsoft refused sign-in for application {cfg.client_id} ({code} {detail}). "
                    "Check the client secret or certificate (expired?), the tenant id and admin consent for the "
                    f"{needed} permissions.",
                ),
                connector_id=CONNECTOR_ID,
            )
        hint = auth_command_hint(cfg)
        if code == "no_account":
            return AuthError(
                tr(
                    f"Aucun compte connecté dans le cache {cfg.token_cache}. Connectez-vous avec : {hint}",
                    f"No signed-in account in cache {cfg.token_cache}. Sign in with: {hint}",
                ),
                connector_id=CONNECTOR_ID,
            )
        return AuthError(
            tr(
                f"La connexion Microsoft 365 a expiré ou a été révoquée ({code}). Reconnectez-vous avec : {hint}",
                f"The Microsoft 365 sign-in expired or was revoked ({code}). Sign in again with: {hint}",
            ),
            connector_id=CONNECTOR_ID,
        )


def sign_in_unreachable(exc: requests.RequestException) -> TransientError:
    """The error when the Microsoft sign-in service cannot be reached: nothing is wrong, try later."""
    return TransientError(
        tr(
            f"Service de connexion Microsoft injoignable ({type(exc).__name__}). Réessayez plus tard.",
            f"Microsoft sign-in service unreachable ({type(exc).__name__}). Try again later.",
        ),
        connector_id=CONNECTOR_ID,
    )


def tls_message(host: str) -> str:
    """The message shown when a server's TLS certificate is refused."""
    return tr(
        f"Certificat TLS de {host} refusé. Si un proxy d'entreprise inspecte le trafic, indiquez son "
        "certificat racine avec ca_bundle = \"/chemin/ca.pem\".",
        f"TLS certificate of {host} refused. If a corporate proxy inspects traffic, give its root "
        "certificate with ca_bundle = \"/path/ca.pem\".",
    )

