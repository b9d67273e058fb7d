"""Google's OAuth 2.0 endpoints for the loopback Gmail: authorization redirect, token endpoint, bearer checks.

:class:`FakeGoogleOAuth` is mixed into :class:`gmail_loopback.FakeGmail`,
which holds the registered clients and issued tokens.  Grants served:
authorization_code with PKCE, refresh_token, and the JWT bearer grant of
service accounts (checked against the registered public key).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from typing import Any

SCOPE_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
SCOPE_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
SCOPE_SEND = "https://www.googleapis.com/auth/gmail.send"
SCOPE_FULL = "https://mail.google.com/"
#: any of these lets a token call the Gmail API at all; which methods it may call is checked per method
SCOPES_ALLOWED = {SCOPE_MODIFY, SCOPE_FULL, SCOPE_READONLY, SCOPE_SEND}
#: what each kind of call needs (the scopes listed on each method's reference page)
SCOPES_TO_READ = {SCOPE_MODIFY, SCOPE_FULL, SCOPE_READONLY}
SCOPES_TO_CHANGE = {SCOPE_MODIFY, SCOPE_FULL}
SCOPES_TO_SEND = {SCOPE_MODIFY, SCOPE_FULL, SCOPE_SEND, "https://www.googleapis.com/auth/gmail.compose"}

def google_error(code: int, message: str, reason: str, status: str, domain: str = "global") -> dict[str, Any]:
    """The JSON error body Google APIs return."""
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": domain, "reason": reason}], "status": status}}


STANDARD_ERRORS = {
    400: google_error(400, "Invalid argument", "invalidArgument", "INVALID_ARGUMENT"),
    413: google_error(413, "Request payload size exceeds the limit.", "uploadTooLarge", "INVALID_ARGUMENT"),
    403: google_error(403, "User-rate limit exceeded.", "userRateLimitExceeded", "PERMISSION_DENIED", "usageLimits"),
    404: google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND"),
    429: google_error(429, "Resource has been exhausted (e.g. check quota).", "rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: google_error(500, "Backend Error", "backendError", "INTERNAL"),
    503: google_error(503, "The service is currently unavailable.", "backendError", "UNAVAILABLE"),
}



class FakeGoogleOAuth:
    """OAuth clients, refresh and access tokens, service accounts (state lives on the server object)."""

    lock: threading.RLock
    clients: dict[str, str]
    refresh_tokens: dict[str, dict[str, Any]]
    access_tokens: dict[str, dict[str, Any]]
    codes: dict[str, dict[str, Any]]
    service_accounts: dict[str, str]
    delegated: dict[str, set[str]]
    deny_consent: bool
    access_token_lifetime: int

    def add_client(self, client_id: str = "assoc-ai-test.apps.googleusercontent.com",
                   client_secret: str = "GOCSPX-test-secret") -> tuple[str, str]:
        """Register an OAuth client (what the Cloud console creates)."""
        self.clients[client_id] = client_secret
        return client_id, client_secret

    def issue_refresh_token(self, client_id: str, scopes: tuple[str, ...] = (SCOPE_MODIFY,)) -> str:
        """A refresh token as if the user had consented earlier."""
        token = "1//" + secrets.token_urlsafe(24)
        self.refresh_tokens[token] = {"client_id": client_id, "scopes": list(scopes), "revoked": False}
        return token

    def revoke_all_refresh_tokens(self) -> None:
        """The user removed the app's access (or the 7-day testing limit passed)."""
        for info in self.refresh_tokens.values():
            info["revoked"] = True
        self.access_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Every access token is now expired: the API answers 401 until the client refreshes."""
        for info in self.access_tokens.values():
            info["expires"] = time.time() - 1

    def add_service_account(self, client_email: str, public_pem: str, subjects: set[str]) -> None:
        """A service account whose key signs JWT grants, delegated for ``subjects``."""
        self.service_accounts[client_email] = public_pem
        self.delegated[client_email] = set(subjects)

    def _new_access_token(self, scopes: list[str], subject: str) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens[token] = {"scopes": scopes, "expires": time.time() + self.access_token_lifetime,
                                     "subject": subject}
        return {"access_token": token, "expires_in": self.access_token_lifetime, "scope": " ".join(scopes),
                "token_type": "Bearer"}

    def _check_bearer(self, headers: dict[str, str]) -> tuple[int, dict[str, str], Any] | None:
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        info = self.access_tokens.get(token)
        challenge = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'}
        if info is None or info["expires"] < time.time():
            return 401, challenge, google_error(
                401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential.", "authError", "UNAUTHENTICATED")
        if not SCOPES_ALLOWED & set(info["scopes"]):
            return 403, {}, google_error(403, "Request had insufficient authentication scopes.",
                                         "insufficientPermissions", "PERMISSION_DENIED")
        return None

    def token_scopes(self, headers: dict[str, str]) -> set[str]:
        """Scopes of the bearer token of a request (empty when unknown)."""
        auth = headers.get("authorization", "")
        info = self.access_tokens.get(auth[7:] if auth.lower().startswith("bearer ") else "")
        return set(info["scopes"]) if info else set()

    # -- OAuth endpoints ----------------------------------------------------------------------------------

    def _client_auth(self, form: dict[str, list[str]], headers: dict[str, str]) -> tuple[str, str]:
        client_id = (form.get("client_id") or [""])[0]
        secret = (form.get("client_secret") or [""])[0]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            decoded = base64.b64decode(auth[6:]).decode("utf-8")
            cid, _, sec = decoded.partition(":")
            client_id, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)
        return client_id, secret

    def _token(self, form: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        grant = (form.get("grant_type") or [""])[0]
        with self.lock:
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return self._jwt_grant((form.get("assertion") or [""])[0])
            client_id, secret = self._client_auth(form, headers)
            if self.clients.get(client_id) != secret or not secret:
                return 401, {}, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
            if grant == "refresh_token":
                info = self.refresh_tokens.get((form.get("refresh_token") or [""])[0])
                if info is None or info["revoked"] or info["client_id"] != client_id:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                return 200, {}, self._new_access_token(info["scopes"], self.email_address)
            if grant == "authorization_code":
                code = self.codes.pop((form.get("code") or [""])[0], None)
                if code is None or code["client_id"] != client_id:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Malformed auth code."}
                if (form.get("redirect_uri") or [""])[0] != code["redirect_uri"]:
                    return 400, {}, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
                verifier = (form.get("code_verifier") or [""])[0]
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                if code.get("challenge") and digest != code["challenge"]:
                    return 400, {}, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
                refresh = self.issue_refresh_token(client_id, tuple(code["scopes"]))
                answer = self._new_access_token(code["scopes"], self.email_address)
                answer["refresh_token"] = refresh
                answer["refresh_token_expires_in"] = 604799
                return 200, {}, answer
        return 400, {}, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant}"}

    def _jwt_grant(self, assertion: str) -> tuple[int, dict[str, str], Any]:
        from google.auth import jwt

        try:
            unverified = jwt.decode(assertion, verify=False)
            pem = self.service_accounts[unverified["iss"]]
            # Google's token endpoint expects its own URL as audience, whatever URL the grant was posted to
            claims = jwt.decode(assertion, certs=pem, audience=GOOGLE_TOKEN_AUDIENCE)
        except (KeyError, ValueError) as exc:
            return 400, {}, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({type(exc).__name__})"}
        scopes = str(claims.get("scope", "")).split()
        subject = claims.get("sub") or ""
        if subject not in self.delegated.get(claims["iss"], set()):
            return 401, {}, {"error": "unauthorized_client",
                             "error_description": "Client is unauthorized to retrieve access tokens using this "
                             "method, or client not authorized for any of the scopes requested."}
        return 200, {}, self._new_access_token(scopes, subject)

    def _authorize(self, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        one = lambda name: (q.get(name) or [""])[0]  # noqa: E731
        redirect, state = one("redirect_uri"), one("state")
        if one("client_id") not in self.clients:
            return 401, {}, {"error": "invalid_client"}
        if self.deny_consent:
            location = redirect + "?" + urllib.parse.urlencode({"error": "access_denied", "state": state})
        else:
            code = "4/" + secrets.token_urlsafe(16)
            with self.lock:
                self.codes[code] = {"client_id": one("client_id"), "redirect_uri": redirect,
                                    "scopes": one("scope").split(), "challenge": one("code_challenge")}
            location = redirect + "?" + urllib.parse.urlencode({"state": state, "code": code, "scope": one("scope")})
        return 302, {"Location": location}, b""
