"""A Salesforce session for assoc-ai: OAuth2 client-credentials token, simple-salesforce calls, retries, errors.

simple-salesforce does not refresh a token it was given, and its exceptions
hide the response headers; so the token is fetched here (and fetched again
once after ``INVALID_SESSION_ID``), and simple-salesforce rides on the core's
:class:`~assoc_ai_core.ext.http.HttpClient` session, which keeps the last
``Retry-After`` so throttling waits as long as Salesforce asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from assoc_ai_core.errors import AuthError, ConnectorError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.http import RETRYABLE_STATUS, HttpClient, RateLimited, check_base_url, throttled
from assoc_ai_core.i18n import tr

CONNECTOR_ID = "salesforce"
SERVICE = "Salesforce"
T = TypeVar("T")


def check_https(url: str, field: str) -> str:
    """Salesforce is only reached over https (simple-salesforce builds https URLs itself, even on loopback)."""
    return check_base_url(url, field=field, connector_id=CONNECTOR_ID, loopback_http=False)


class SalesforceSession:
    """Owns the HTTP client, the token and the simple-salesforce client."""

    def __init__(self, domain_url: str, client_id: str, client_secret: Secret, *, api_version: str,
                 http: HttpClient) -> None:
        self.domain_url = domain_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._version = api_version
        self.http = http
        self._sf: Salesforce | None = None
        self.user_id = ""

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client, logged in on first use."""
        if self._sf is None:
            self.login()
        assert self._sf is not None
        return self._sf

    def login(self) -> None:
        """OAuth 2.0 client-credentials flow on the org's My Domain, then a direct simple-salesforce client."""
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret.get()}
        response = self.http.request("POST", f"{self.domain_url}/services/oauth2/token", data=form)
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
        # The identity URL ends with the run-as user's id: ensure_fields grants that user access to the score fields.
        self.user_id = str(body.get("id") or "").rstrip("/").rsplit("/", 1)[-1]
        self._sf = Salesforce(instance_url=instance, session_id=str(body["access_token"]), session=self.http.session,
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

        return self.http.retried(once)

    def _translated(self, fn: Callable[[Salesforce], T], what: str) -> T:
        try:
            return fn(self.sf)
        except SalesforceExpiredSession:
            raise
        except SalesforceRefusedRequest as exc:
            if "REQUEST_LIMIT_EXCEEDED" in str(exc.content):
                raise RateLimited(tr("Quota d'API Salesforce atteint pour 24 h.",
                                     "Salesforce API quota reached for 24 h."), connector_id=CONNECTOR_ID) from exc
            raise AuthError(
                tr(f"Salesforce interdit {what} : donnez à l'utilisateur d'exécution l'accès aux objets et champs "
                   f"(ensemble d'autorisations). Détail : {_first_message(exc)}",
                   f"Salesforce forbids {what}: grant the run-as user access to the objects and fields "
                   f"(permission set). Detail: {_first_message(exc)}"),
                connector_id=CONNECTOR_ID) from exc
        except SalesforceGeneralError as exc:
            if exc.status in RETRYABLE_STATUS:
                raise throttled(SERVICE, exc.status, retry_after=self.http.last_retry_after,
                                connector_id=CONNECTOR_ID) from exc
            raise self._connector_error(what, exc) from exc
        except SalesforceError as exc:
            raise self._connector_error(what, exc) from exc
        except requests.RequestException as exc:
            raise self.http.failure(exc, self.domain_url) from exc

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
