"""A small Dolibarr REST client: ``{base_url}/api/index.php/<resource>`` with the ``DOLAPIKEY`` header."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from assoc_ai_core.errors import AuthError, CapabilityError, ConnectorError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.http import HttpClient
from assoc_ai_core.ext.paging import offset_pages
from assoc_ai_core.i18n import tr

CONNECTOR_ID = "dolibarr"
SERVICE = "Dolibarr"


class NotFound(ConnectorError):
    """Dolibarr answered 404 (also what older versions answer for an empty list)."""


class DolibarrClient:
    """Authenticated calls to the Dolibarr REST API."""

    def __init__(self, api_url: str, api_key: Secret, *, http: HttpClient) -> None:
        self.api_url = api_url.rstrip("/")
        self._key = api_key
        self._http = http

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """One call; returns decoded JSON, raises assoc-ai errors."""
        url = f"{self.api_url}/{path.lstrip('/')}"
        response = self._http.request(method, url, params=params, json=json, headers={"DOLAPIKEY": self._key.get()})
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        message = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message") or "")
        if response.status_code == 401:
            raise AuthError(
                tr(
                    "Dolibarr refuse la clé d'API (DOLAPIKEY). Régénérez-la dans la fiche de l'utilisateur "
                    "(onglet « Clé API ») et mettez à jour le secret api_key.",
                    "Dolibarr refused the API key (DOLAPIKEY). Regenerate it on the user's card ('API key' tab) "
                    "and update the api_key secret.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code == 403:
            raise AuthError(
                tr(
                    f"Dolibarr interdit {method} {path} à cet utilisateur : {message}. Donnez-lui les droits du module "
                    "concerné (Adhérents, Dons) ; créer des attributs supplémentaires demande un administrateur.",
                    f"Dolibarr forbids {method} {path} to this user: {message}. Grant the module's rights "
                    "(Members, Donations); creating extra fields needs an administrator.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code == 404:
            raise NotFound(message or path, connector_id=CONNECTOR_ID)
        if response.status_code == 501 or (response.status_code == 400 and "module" in message.lower()):
            raise CapabilityError(
                tr(f"Dolibarr : {message} — activez le module (Adhérents, Dons, API REST).",
                   f"Dolibarr: {message} — enable the module (Members, Donations, REST API)."),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code >= 400:
            raise ConnectorError(
                tr(f"Dolibarr a refusé {method} {path} (HTTP {response.status_code}) : {message or 'sans détail'}.",
                   f"Dolibarr rejected {method} {path} (HTTP {response.status_code}): {message or 'no detail'}."),
                connector_id=CONNECTOR_ID,
            )
        if body is None and response.content:
            raise ConnectorError(
                tr(f"Réponse Dolibarr illisible pour {path} (pas du JSON) : vérifiez base_url.",
                   f"Unreadable Dolibarr answer for {path} (not JSON): check base_url."),
                connector_id=CONNECTOR_ID,
            )
        return body

    def pages(self, path: str, params: Mapping[str, Any], *, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """List with ``limit``/``page`` (0-based) until a short or empty page."""

        def fetch(offset: int) -> list[dict[str, Any]]:
            try:
                return list(self.request("GET", path, params={**params, "limit": page_size,
                                                               "page": offset // page_size}) or [])
            except NotFound:
                return []  # "No ... found": Dolibarr's way of saying the list is over

        return offset_pages(fetch, page_size)

    def close(self) -> None:
        """Close the HTTP session; safe twice."""
        self._http.close()
