"""A small CiviCRM API v4 REST client: ``POST {base}/civicrm/ajax/api4/{Entity}/{action}`` with ``params`` JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from assoc_ai_core.errors import AuthError, CapabilityError, ConnectorError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.http import HttpClient
from assoc_ai_core.ext.paging import offset_pages
from assoc_ai_core.i18n import tr

if TYPE_CHECKING:
    import requests

CONNECTOR_ID = "civicrm"
SERVICE = "CiviCRM"


class CiviClient:
    """Authenticated API v4 calls (authx ``X-Civi-Auth: Bearer <api key>``, optional ``X-Civi-Key`` site key)."""

    def __init__(self, endpoint: str, api_key: Secret, site_key: Secret | None = None, *, http: HttpClient) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._http = http
        self._api_key = api_key
        self._site_key = site_key

    def call(self, entity: str, action: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one API v4 action and return the decoded result (``values``, ``count``...)."""
        url = f"{self.endpoint}/{entity}/{action}"
        # X-Requested-With is what CiviCRM's AJAX routes demand as CSRF protection.
        headers = {"X-Civi-Auth": f"Bearer {self._api_key.get()}", "X-Requested-With": "XMLHttpRequest"}
        if self._site_key is not None:
            headers["X-Civi-Key"] = self._site_key.get()
        form = {"params": json.dumps(dict(params or {}))}
        response = self._http.request("POST", url, data=form, headers=headers)
        body = self._json(response, entity, action)
        message = str(body.get("error_message") or "") if isinstance(body, dict) else ""
        if response.status_code in (401, 403):
            raise AuthError(
                tr(
                    f"CiviCRM refuse la clé d'API pour {entity}.{action} (HTTP {response.status_code}). "
                    "Vérifiez api_key (et site_key si votre site l'exige) et les permissions du contact lié "
                    "(« access CiviCRM », « authenticate with api key », « edit all contacts » pour écrire).",
                    f"CiviCRM refused the API key for {entity}.{action} (HTTP {response.status_code}). "
                    "Check api_key (and site_key if your site requires it) and the linked contact's permissions "
                    "('access CiviCRM', 'authenticate with api key', 'edit all contacts' to write).",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code == 404 and not message:
            raise ConnectorError(
                tr(
                    f"Adresse API v4 introuvable : {self.endpoint}. Vérifiez base_url et api_path "
                    "(WordPress : /wp-json/civicrm/v3/... n'est pas l'API v4).",
                    f"API v4 address not found: {self.endpoint}. Check base_url and api_path.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code >= 400 or message:
            lowered = message.lower()
            if ("not found" in lowered or "does not exist" in lowered) and "api" in lowered:
                raise CapabilityError(
                    tr(
                        f"CiviCRM ne propose pas {entity}.{action} : {message}. Activez le composant concerné.",
                        f"CiviCRM does not offer {entity}.{action}: {message}. Enable the matching component.",
                    ),
                    connector_id=CONNECTOR_ID,
                )
            raise ConnectorError(
                tr(
                    f"CiviCRM a refusé {entity}.{action} (HTTP {response.status_code}) : {message or 'sans détail'}.",
                    f"CiviCRM rejected {entity}.{action} (HTTP {response.status_code}): {message or 'no detail'}.",
                ),
                connector_id=CONNECTOR_ID,
            )
        return body

    def get_pages(self, entity: str, params: Mapping[str, Any], *, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """``get`` with ``limit``/``offset`` until a short page."""

        def fetch(offset: int) -> list[dict[str, Any]]:
            return list(self.call(entity, "get", {**params, "limit": page_size, "offset": offset}).get("values") or [])

        return offset_pages(fetch, page_size)

    def _json(self, response: requests.Response, entity: str, action: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            if response.status_code in (401, 403, 404):
                return {}  # the status alone says what went wrong (proxy or CMS page, not CiviCRM)
            raise ConnectorError(
                tr(
                    f"Réponse CiviCRM illisible pour {entity}.{action} (HTTP {response.status_code}, pas du JSON). "
                    "L'adresse mène-t-elle bien à CiviCRM ?",
                    f"Unreadable CiviCRM answer for {entity}.{action} (HTTP {response.status_code}, not JSON). "
                    "Does the address lead to CiviCRM?",
                ),
                connector_id=CONNECTOR_ID,
            ) from exc
        return body if isinstance(body, dict) else {"values": body}

    def close(self) -> None:
        """Close the HTTP session; safe twice."""
        self._http.close()
