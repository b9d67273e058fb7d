"""A Salesforce session for assoc-ai: OAuth2 client-credentials token, simple-salesforce calls, retries, errors.

simple-salesforce does not refresh a token it was given, and its exceptions
hide the response headers; so the token is fetched here (and fetched again
once after ``INVALID_SESSION_ID``), and a requests response hook keeps the
last ``Retry-After`` so throttling waits as long as Salesforce asks.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from assoc_ai_core.errors import AuthError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.i18n import tr

log = logging.getLogger(__name__)
CONNECTOR_ID = "salesforce"
T = TypeVar("T")


class RateLimited(TransientError):
    """Salesforce throttled the call or is unavailable; ``retry_after`` seconds when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, connector_id=CONNECTOR_ID)
        self.retry_after = retry_after


def check_https(url: str, field: str) -> str:
    """Salesforce is only reached over https (simple-salesforce builds https URLs itself)."""
    if urlsplit(url).scheme != "https":
        raise ConfigError(tr(f"[connectors.salesforce].{field} doit commencer par https:// (reçu {url!r}).",
                             f"[connectors.salesforce].{field} must start with https:// (got {url!r})."))
    return url.rstrip("/")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


class _PinnedSession(requests.Session):
    """A session whose configured ``verify`` (a CA file, or False) beats ``REQUESTS_CA_BUNDLE``.

    requests lets the environment override ``Session.verify`` (psf/requests#3829);
    simple-salesforce gives no per-call ``verify``, so an explicit setting is pinned here.
    """

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.verify is not True:
            settings["verify"] = self.verify
        return settings


class SalesforceSession:
    """Owns the HTTP session, the token and the simple-salesforce client."""

    def __init__(self, domain_url: str, client_id: str, client_secret: Secret, *, api_version: str, timeout: float,
                 verify: bool | str, max_attempts: int, max_retry_wait: float) -> None:
        self.domain_url = domain_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._version = api_version
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_wait = max_retry_wait
        self.http = _PinnedSession()
        self.http.verify = verify
        self.http.hooks["response"].append(self._remember_retry_after)
        self._last_retry_after: float | None = None
        self._sf: Salesforce | None = None

    def _remember_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_retry_after = _retry_after(response.headers.get("Retry-After")) if response.status_code in (
            429, 503) else None

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client, logged in on first use."""
        if self._sf is None:
            self.login()
        assert self._sf is not None
        return self._sf

    def login(self) -> None:
        """OAuth 2.0 client-credentials flow on the org's My Domain, then a direct simple-salesforce client."""
        url = f"{self.domain_url}/services/oauth2/token"
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret.get()}

        def once() -> requests.Response:
            try:
                response = self.http.post(url, data=form, timeout=self._timeout)
            except requests.exceptions.SSLError as exc:
                raise self._tls_error() from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise self._transient(type(exc).__name__) from exc
            if response.status_code in (429, 503):
                raise RateLimited(self._throttled_text(response.status_code), retry_after=self._last_retry_after)
            return response

        response = self._retrying()(once)
        if response.status_code != 200:
            raise AuthError(
                tr(
                    "Salesforce refuse l'application connectée (client_id / client_secret) ou le flux "
                    "« client credentials » n'est pas activé, avec un utilisateur d'exécution, pour cette application.",
                    "Salesforce refused the connected app (client_id / client_secret), or the client-credentials "
                    "flow is not enabled, with a run-as user, for this app.",
                ),
                connector_id=CONNECTOR_ID,
            )
        body = response.json()
        instance = check_https(str(body.get("instance_url") or self.domain_url), "instance_url")
        self._sf = Salesforce(instance_url=instance, session_id=str(body["access_token"]), session=self.http,
                              version=self._version)

    def call(self, fn: Callable[[Salesforce], T], what: str) -> T:
        """Run ``fn(sf)`` with retries; one new token after an expired session; errors in assoc-ai terms."""

        def once() -> T:
            for attempt in (1, 2):
                try:
                    return self._translated(fn, what)
                except SalesforceExpiredSession:
                    if attempt == 2:
                        raise AuthError(tr("Salesforce refuse le jeton même renouvelé.",
                                           "Salesforce refuses even a fresh token."), connector_id=CONNECTOR_ID) from None
                    self.login()  # the token expired or was revoked: one new token, then give up
            raise AssertionError("unreachable")  # pragma: no cover

        return self._retrying()(once)

    def _translated(self, fn: Callable[[Salesforce], T], what: str) -> T:
        try:
            return fn(self.sf)
        except SalesforceExpiredSession:
            raise
        except SalesforceRefusedRequest as exc:
            if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
                raise RateLimited(tr("Quota d'API Salesforce atteint pour 24 h.",
                                     "Salesforce API quota reached for 24 h."), retry_after=None) from exc
            raise AuthError(
                tr(f"Salesforce interdit {what} : donnez à l'utilisateur d'exécution l'accès aux objets et champs "
                   f"(ensemble d'autorisations). Détail : {_first_message(exc)}",
                   f"Salesforce forbids {what}: grant the run-as user access to the objects and fields "
                   f"(permission set). Detail: {_first_message(exc)}"),
                connector_id=CONNECTOR_ID) from exc
        except SalesforceGeneralError as exc:
            if exc.status in (429, 502, 503, 504):
                raise RateLimited(self._throttled_text(exc.status), retry_after=self._last_retry_after) from exc
            raise self._connector_error(what, exc) from exc
        except (SalesforceMalformedRequest, SalesforceResourceNotFound) as exc:
            raise self._connector_error(what, exc) from exc
        except SalesforceError as exc:
            raise self._connector_error(what, exc) from exc
        except requests.exceptions.SSLError as exc:
            raise self._tls_error() from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._transient(type(exc).__name__) from exc

    def _tls_error(self) -> ConnectorError:
        return ConnectorError(
            tr(f"Certificat TLS de {self.domain_url} refusé. Vérifiez l'adresse ; n'indiquez verify_tls = "
               "\"/chemin/ca.pem\" que pour un proxy d'entreprise connu.",
               f"TLS certificate of {self.domain_url} refused. Check the address; set verify_tls = "
               "\"/path/ca.pem\" only for a known corporate proxy."),
            connector_id=CONNECTOR_ID)

    def _retrying(self) -> tenacity.Retrying:
        backoff = tenacity.wait_exponential(multiplier=0.5, max=self._max_wait)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = getattr(exc, "retry_after", None)
            return min(float(after), self._max_wait) if after is not None else backoff(state)

        return tenacity.Retrying(retry=tenacity.retry_if_exception_type(TransientError),
                                 stop=tenacity.stop_after_attempt(max(1, self._max_attempts)), wait=wait, reraise=True)

    @staticmethod
    def _throttled_text(status: int) -> str:
        return tr(f"Salesforce limite le débit ou est indisponible (HTTP {status}). Relancez plus tard.",
                  f"Salesforce is throttling or unavailable (HTTP {status}). Run again later.")

    @staticmethod
    def _transient(kind: str) -> TransientError:
        return TransientError(tr(f"Salesforce ne répond pas ({kind}).", f"Salesforce is not answering ({kind})."),
                              connector_id=CONNECTOR_ID)

    @staticmethod
    def _connector_error(what: str, exc: SalesforceError) -> ConnectorError:
        return ConnectorError(tr(f"Salesforce a refusé {what} : {_first_message(exc)}",
                                 f"Salesforce rejected {what}: {_first_message(exc)}"), connector_id=CONNECTOR_ID)

    def close(self) -> None:
        """Close the HTTP session; safe twice."""
        self.http.close()
        self._sf = None


def _first_message(exc: SalesforceError) -> str:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return f"{content[0].get('errorCode', '')} {content[0].get('message', '')}".strip()
    return str(content)[:200]
