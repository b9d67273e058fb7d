"""The official HubSpot client set up for assoc-ai: configured host, bounded retries, errors in assoc-ai terms.

``hubspot-api-client`` builds a new API client (and connection pool) each
time ``client.crm.objects.basic_api`` is read, so the API objects are built
once here and reused.  The client speaks urllib3, not requests, so it takes the
core's retry policy and errors (:mod:`assoc_ai_core.ext.http`) rather than its
session: its own urllib3 retries are switched off, tenacity retries only
:class:`~assoc_ai_core.errors.TransientError` (429, 502-504, network trouble)
and waits as long as ``Retry-After`` says, within ``max_retry_wait``.  A
refused token is an :class:`~assoc_ai_core.errors.AuthError` at once:
private-app tokens do not refresh, so retrying cannot help.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import hubspot
import urllib3
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.objects.exceptions import ApiException as ObjectsApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from urllib3.util.retry import Retry

from assoc_ai_core.errors import AuthError, ConnectorError, TransientError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.http import (
    RETRYABLE_STATUS,
    check_base_url,
    network_error,
    parse_retry_after,
    retrying,
    throttled,
    tls_refused,
)
from assoc_ai_core.i18n import tr

CONNECTOR_ID = "hubspot"
SERVICE = "HubSpot"
DEFAULT_HOST = "https://api.hubapi.com"
API_ERRORS = (ObjectsApiException, PropertiesApiException, AssociationsApiException)
T = TypeVar("T")


class _NoBodies(logging.Filter):
    """Drop the generated client's DEBUG lines that echo whole response bodies (names, e-mails...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a response-body line."""
        return not str(record.msg).startswith("response body")


for _name in ("hubspot.crm.objects.rest", "hubspot.crm.properties.rest", "hubspot.crm.associations.v4.rest"):
    logging.getLogger(_name).addFilter(_NoBodies())


class NotFound(ConnectorError):
    """HubSpot answered 404: the object type, record or property does not exist."""


class AlreadyExists(ConnectorError):
    """HubSpot answered 409: what we create is already there."""


class DailyLimitReached(TransientError):
    """The portal's daily API allowance is spent: retrying before midnight (portal time) is pointless."""


def _body(exc: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(exc.body or b"{}")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _header(exc: Any, name: str) -> str | None:
    headers = getattr(exc, "headers", None) or {}
    return headers.get(name)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientError) and not isinstance(exc, DailyLimitReached)


class HubSpotApi:
    """The HubSpot API objects assoc-ai uses, built once on one client, and :meth:`call` to use them."""

    def __init__(self, base_url: str, token: Secret, *, timeout: float, verify: bool | str, max_attempts: int,
                 max_retry_wait: float) -> None:
        self.base_url = check_base_url(base_url, field="base_url", connector_id=CONNECTOR_ID)
        self.timeout = timeout
        self._max_attempts = max(1, int(max_attempts))
        self._max_wait = float(max_retry_wait)
        settings: dict[str, Any] = {
            "access_token": token.get(),
            "host": self.base_url,
            # urllib3 must not retry on its own: tenacity decides, and counts, every attempt.
            "retry": Retry(total=0, redirect=False),
            "verify_ssl": verify is not False,
        }
        if isinstance(verify, str):
            settings["ssl_ca_cert"] = verify
        client = hubspot.Client.create(**settings)
        self.objects_basic = client.crm.objects.basic_api
        self.objects_search = client.crm.objects.search_api
        self.objects_batch = client.crm.objects.batch_api
        self.properties_core = client.crm.properties.core_api
        self.properties_groups = client.crm.properties.groups_api
        self.associations_batch = client.crm.associations.v4.batch_api
        self._apis = (self.objects_basic, self.objects_search, self.objects_batch, self.properties_core,
                      self.properties_groups, self.associations_batch)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` with retries on throttling and network trouble; errors become assoc-ai errors.

        ``what`` names the end-point (``POST /crm/v3/objects/contacts/search``) for messages; it never
        holds personal data.
        """
        policy = retrying(self._max_attempts, self._max_wait, name=f"{CONNECTOR_ID} ({what})", retry_if=_retryable)
        return policy(self._translated, fn, what)

    def _translated(self, fn: Callable[[], T], what: str) -> T:
        try:
            return fn()
        except API_ERRORS as exc:
            raise self._error(exc, what) from exc
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None)
            if isinstance(exc, urllib3.exceptions.SSLError) or isinstance(reason, urllib3.exceptions.SSLError):
                raise self._tls_error() from exc
            raise network_error(SERVICE, type(exc).__name__, connector_id=CONNECTOR_ID) from exc

    def _tls_error(self) -> ConnectorError:
        return tls_refused(urlsplit(self.base_url).hostname or self.base_url, field="base_url",
                           connector_id=CONNECTOR_ID)

    def _error(self, exc: Any, what: str) -> Exception:
        status = int(getattr(exc, "status", 0) or 0)
        if status == 0:
            if "SSL" in str(getattr(exc, "reason", "")):
                return self._tls_error()
            return network_error(SERVICE, what, connector_id=CONNECTOR_ID)
        body = _body(exc)
        category = str(body.get("category") or "")
        detail = str(body.get("message") or getattr(exc, "reason", "") or "")[:300]
        if status == 401:
            expired = category == "EXPIRED_AUTHENTICATION"
            return AuthError(
                tr(
                    ("HubSpot indique que le jeton a expiré" if expired else "HubSpot refuse le jeton d'accès")
                    + f" ({category or 'HTTP 401'}). Un jeton d'application privée ne se renouvelle pas : dans "
                    "HubSpot (Paramètres › Intégrations › Applications privées), affichez ou faites pivoter le "
                    "jeton, puis mettez à jour le secret access_token.",
                    ("HubSpot says the token has expired" if expired else "HubSpot refuses the access token")
                    + f" ({category or 'HTTP 401'}). A private-app token does not refresh: in HubSpot (Settings › "
                    "Integrations › Private apps), show or rotate the token, then update the access_token secret.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if status == 403:
            scopes = sorted({s for e in body.get("errors") or [] if isinstance(e, dict)
                             for key in ("requiredGranularScopes", "requiredScopes")
                             for s in (e.get("context") or {}).get(key, [])})
            wanted = ", ".join(scopes) or "?"
            return AuthError(
                tr(f"L'application privée HubSpot n'a pas le droit de faire {what}. Ajoutez-lui la ou les "
                   f"portées : {wanted} (Paramètres › Intégrations › Applications privées › Portées).",
                   f"The HubSpot private app may not do {what}. Grant it the scope(s): {wanted} "
                   "(Settings › Integrations › Private apps › Scopes)."),
                connector_id=CONNECTOR_ID,
            )
        if status == 429 and str(body.get("policyName") or "").upper() == "DAILY":
            return DailyLimitReached(
                tr("Le quota quotidien d'appels à l'API HubSpot du portail est épuisé. Relancez demain.",
                   "The portal's daily HubSpot API allowance is used up. Run again tomorrow."),
                connector_id=CONNECTOR_ID,
            )
        if status in RETRYABLE_STATUS:
            return throttled(SERVICE, status, retry_after=parse_retry_after(_header(exc, "Retry-After")),
                             connector_id=CONNECTOR_ID)
        hint = ""
        if "PROPERTY_DOESNT_EXIST" in detail or "does not exist" in detail:
            hint = tr(" Lancez d'abord ensure_fields (dry_run=False) ou corrigez la correspondance des propriétés.",
                      " Run ensure_fields (dry_run=False) first, or fix the property mapping.")
        kind = NotFound if status == 404 else AlreadyExists if status == 409 else ConnectorError
        return kind(
            tr(f"HubSpot a refusé {what} (HTTP {status} {category}) : {detail}{hint}",
               f"HubSpot rejected {what} (HTTP {status} {category}): {detail}{hint}"),
            connector_id=CONNECTOR_ID,
        )

    @staticmethod
    def server_time(headers: Any) -> datetime | None:
        """The ``Date`` of a response (HubSpot's clock, not ours), or None."""
        value = (headers or {}).get("Date") if headers is not None else None
        if not value:
            return None
        try:
            return email.utils.parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            return None

    def close(self) -> None:
        """Close every connection pool; safe twice."""
        for api in self._apis:
            try:
                api.api_client.rest_client.pool_manager.clear()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass
