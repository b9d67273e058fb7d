"""A small HelloAsso API v5 client: OAuth2 client credentials with refresh, continuation-token paging."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from assoc_ai_core.errors import AuthError, ConnectorError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.http import HttpClient
from assoc_ai_core.ext.paging import token_pages
from assoc_ai_core.i18n import tr

if TYPE_CHECKING:
    import requests

CONNECTOR_ID = "helloasso"
SERVICE = "HelloAsso"

# Refresh a little before the announced expiry so a token never dies mid-request.
EXPIRY_MARGIN_S = 60.0


class HelloAssoClient:
    """Authenticated calls to ``{api_url}/v5``; tokens come from ``{api_url}/oauth2/token``."""

    def __init__(self, api_url: str, client_id: str, client_secret: Secret, *, http: HttpClient) -> None:
        self.api_url = api_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._http = http
        self._access: Secret | None = None
        self._refresh: Secret | None = None
        self._expires_at = 0.0

    # -- tokens -----------------------------------------------------------------
    def authenticate(self) -> None:
        """Get a fresh token pair with the client-credentials grant."""
        self._token_request(
            {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret.get()}
        )

    def _refresh_token(self) -> None:
        if self._refresh is None:
            self.authenticate()
            return
        try:
            self._token_request(
                {"grant_type": "refresh_token", "client_id": self._client_id, "refresh_token": self._refresh.get()}
            )
        except AuthError:
            # A refresh token also expires (HelloAsso: one month); start again from the client secret.
            self.authenticate()

    def _token_request(self, form: Mapping[str, str]) -> None:
        response = self._http.request("POST", f"{self.api_url}/oauth2/token", data=dict(form),
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        if response.status_code in (400, 401, 403):
            raise AuthError(
                tr(
                    "HelloAsso refuse l'identifiant client ou le secret (client_id / client_secret). "
                    "Vérifiez-les dans votre espace HelloAsso, rubrique « Intégrations et API ».",
                    "HelloAsso refused the client id or secret (client_id / client_secret). "
                    "Check them in your HelloAsso back office, 'Integrations and API'.",
                ),
                connector_id=CONNECTOR_ID,
            )
        body = self._json(response)
        token = body.get("access_token")
        if not token:
            raise AuthError(
                tr("HelloAsso n'a pas renvoyé de jeton d'accès.", "HelloAsso returned no access token."),
                connector_id=CONNECTOR_ID,
            )
        self._access = Secret(str(token))
        refresh = body.get("refresh_token")
        self._refresh = Secret(str(refresh)) if refresh else None
        self._expires_at = time.monotonic() + float(body.get("expires_in") or 1800) - EXPIRY_MARGIN_S

    # -- calls ------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/v5{path}`` and return the decoded JSON; a 401 refreshes the token once."""
        url = f"{self.api_url}/v5{path}"

        def call() -> requests.Response:
            if self._access is None:
                self.authenticate()
            elif time.monotonic() >= self._expires_at:
                self._refresh_token()
            response = self._get(url, params)
            if response.status_code == 401:
                # The token died early (revoked, clock skew): refresh once, then give up.
                self._refresh_token()
                response = self._get(url, params)
            return response

        response = self._http.retried(call)
        if response.status_code == 401:
            raise AuthError(
                tr(
                    "HelloAsso refuse le jeton même après renouvellement. Vérifiez les droits du client API.",
                    "HelloAsso refuses the token even after a refresh. Check the API client's rights.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code == 403:
            raise AuthError(
                tr(
                    f"Accès refusé par HelloAsso à {path}. Le client API doit avoir le rôle OrganizationAdmin "
                    "et le privilège AccessTransactions sur cette association.",
                    f"HelloAsso denied access to {path}. The API client needs the OrganizationAdmin role "
                    "and the AccessTransactions privilege on this organization.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code == 404:
            raise ConnectorError(
                tr(
                    f"HelloAsso ne connaît pas {path} : vérifiez organization_slug dans la configuration.",
                    f"HelloAsso does not know {path}: check organization_slug in the configuration.",
                ),
                connector_id=CONNECTOR_ID,
            )
        if response.status_code >= 400:
            raise ConnectorError(
                tr(
                    f"HelloAsso a répondu HTTP {response.status_code} pour {path}.",
                    f"HelloAsso answered HTTP {response.status_code} for {path}.",
                ),
                connector_id=CONNECTOR_ID,
            )
        return self._json(response)

    def _get(self, url: str, params: Mapping[str, Any] | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._access.get()}"} if self._access else {}
        return self._http.send("GET", url, params=params, headers=headers)

    def pages(self, path: str, params: Mapping[str, Any], *, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yield the ``data`` of each page, following ``pagination.continuationToken`` to the end.

        The v5 API keeps returning a token after the last page; an empty or
        short page is what says the list is over.
        """

        def fetch(token: str | None) -> tuple[list[dict[str, Any]], str | None]:
            query = {**params, "pageSize": page_size, **({"continuationToken": token} if token else {})}
            body = self.get(path, query)
            return list(body.get("data") or []), (body.get("pagination") or {}).get("continuationToken")

        for data, _ in token_pages(fetch, page_size=page_size):
            if data:
                yield data

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectorError(
                tr(
                    f"Réponse HelloAsso illisible (HTTP {response.status_code}, pas du JSON).",
                    f"Unreadable HelloAsso answer (HTTP {response.status_code}, not JSON).",
                ),
                connector_id=CONNECTOR_ID,
            ) from exc

    def close(self) -> None:
        """Close the HTTP session; safe to call twice."""
        self._http.close()
