"""The Entra ID side of the fake Microsoft 365: OpenID configuration, device codes and the token endpoint.

:class:`FakeEntra` is mixed into :class:`m365_fakeserver.FakeM365`, which
holds the registered applications, users and issued tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

TENANT = "contoso-asso.onmicrosoft.com"
TENANT_ID = "9f3c1a52-0d1e-4c4b-9a61-3f5d2b7e8c10"


def json_answer(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    """A JSON answer as Graph and Entra ID send it."""
    return status, {"Content-Type": "application/json; odata.metadata=minimal"}, json.dumps(body).encode("utf-8")


def _unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class Token:
    kind: str  # "app" or "user"
    client_id: str
    expires: float
    scopes: list[str]
    username: str = ""


class FakeEntra:
    """Token endpoints answering as Entra ID v2.0 does (state lives on the server object)."""

    apps: dict[str, str | None]
    users: set[str]
    tokens: dict[str, Token]
    refresh_tokens: dict[str, dict[str, Any]]
    device_codes: dict[str, dict[str, Any]]
    token_lifetime: int
    auto_approve_as: str | None
    base: str
    app_certificates: dict[str, bytes]
    auth_codes: dict[str, dict[str, Any]]

    def _entra(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict[str, str], bytes]:
        m = re.fullmatch(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/(token|devicecode|authorize))", path)
        if not m:
            return json_answer(404, {"error": "not_found"})
        tenant = m.group(1)
        if tenant not in (TENANT, TENANT_ID, "organizations"):
            return json_answer(400, {"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{tenant}' not found."})
        base = f"{self.base}/{tenant}"
        if m.group(2).startswith("v2.0"):
            return json_answer(200, {
                "issuer": f"{self.base}/{TENANT_ID}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "tenant_region_scope": "EU",
            })
        if m.group(3) == "authorize" and method == "GET":
            return self._authorize({k: v[0] for k, v in query.items()})
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8")).items()}
        if m.group(3) == "devicecode":
            return self._devicecode(form)
        if m.group(3) == "token" and method == "POST":
            return self._token(form)
        return json_answer(400, {"error": "unsupported_response_type"})

    def _devicecode(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if form.get("client_id") not in self.apps or self.apps[form["client_id"]] is not None:
            return json_answer(400, {"error": "invalid_client", "error_description": "AADSTS7000218: public client flows are not allowed."})
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        self.device_codes[device_code] = {"user_code": user_code, "client_id": form["client_id"],
                                          "scope": form.get("scope", ""), "expires": time.time() + 900,
                                          "approved_by": self.auto_approve_as}
        return json_answer(200, {
            "device_code": device_code, "user_code": user_code,
            "verification_uri": f"{self.base}/devicelogin", "expires_in": 900, "interval": 1,
            "message": f"To sign in, use a web browser to open the page {self.base}/devicelogin and enter the code {user_code} to authenticate.",
        })

    def _token(self, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        if client_id not in self.apps:
            return json_answer(400, {"error": "unauthorized_client", "error_description": f"AADSTS700016: Application with identifier '{client_id}' was not found."})
        if grant == "client_credentials" and form.get("client_assertion"):
            if not self._assertion_ok(client_id, form):
                return json_answer(401, {"error": "invalid_client", "error_description": "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."})
            at = self._issue(Token("app", client_id, time.time() + self.token_lifetime, form.get("scope", "").split()))
            return json_answer(200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime, "access_token": at})
        if grant == "authorization_code":
            code = self.auth_codes.pop(form.get("code", ""), None)
            if code is None or code["client_id"] != client_id or code["redirect_uri"] != form.get("redirect_uri"):
                return json_answer(400, {"error": "invalid_grant", "error_description": "AADSTS70000: The provided authorization code is invalid or expired."})
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode()).digest()) != code["challenge"]:
                return json_answer(400, {"error": "invalid_grant", "error_description": "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request."})
            return self._user_tokens(client_id, code["username"], code["scope"].split(), nonce=code["nonce"])
        if grant == "client_credentials":
            if self.apps[client_id] is None or form.get("client_secret") != self.apps[client_id]:
                return json_answer(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
            scopes = form.get("scope", "").split()
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                return json_answer(400, {"error": "invalid_scope", "error_description": "AADSTS1002012: The provided value for scope is not valid."})
            at = self._issue(Token("app", client_id, time.time() + self.token_lifetime, scopes))
            return json_answer(200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime, "access_token": at})
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            dc = self.device_codes.get(form.get("device_code", ""))
            if dc is None or dc["expires"] < time.time():
                return json_answer(400, {"error": "expired_token", "error_description": "AADSTS70020: The provided value for the input parameter 'device_code' is not valid."})
            if dc["approved_by"] is None:
                return json_answer(400, {"error": "authorization_pending", "error_description": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending."})
            del self.device_codes[form["device_code"]]
            return self._user_tokens(client_id, dc["approved_by"], dc["scope"].split())
        if grant == "refresh_token":
            rt = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if rt is None or rt["client_id"] != client_id:
                return json_answer(400, {"error": "invalid_grant", "error_description": "AADSTS700082: The refresh token has expired due to inactivity."})
            return self._user_tokens(client_id, rt["username"], form.get("scope", "").split() or rt["scopes"])
        return json_answer(400, {"error": "unsupported_grant_type"})

    def _authorize(self, q: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """The sign-in page: the person (``auto_approve_as``) consents and the browser is sent back with a code."""
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") not in self.apps or self.apps[q["client_id"]] is not None:
            return json_answer(400, {"error": "invalid_client"})
        host = urlsplit(redirect).hostname
        if urlsplit(redirect).scheme != "http" or host not in ("localhost", "127.0.0.1"):
            return json_answer(400, {"error": "invalid_request", "error_description": "AADSTS50011: The redirect URI does not match."})
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return json_answer(400, {"error": "invalid_request", "error_description": "AADSTS9002325: Proof Key for Code Exchange is required."})
        if self.auto_approve_as is None:
            answer = {"error": "access_denied", "state": q.get("state", "")}
        else:
            code = secrets.token_urlsafe(32)
            self.auth_codes[code] = {"client_id": q["client_id"], "redirect_uri": redirect, "challenge": q["code_challenge"],
                                     "scope": q.get("scope", ""), "username": self.auto_approve_as, "nonce": q.get("nonce")}
            answer = {"code": code, "state": q.get("state", "")}
        if q.get("response_mode") == "form_post":
            fields = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in answer.items())
            page = f'<html><body onload="document.forms[0].submit()"><form method="post" action="{redirect}">{fields}</form></body></html>'
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()
        return 302, {"Location": f"{redirect}?{urlencode(answer)}", "Content-Type": "text/html"}, b""

    def _assertion_ok(self, client_id: str, form: dict[str, str]) -> bool:
        """A private_key_jwt assertion signed by the certificate registered for ``client_id``."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        pem = self.app_certificates.get(client_id)
        if pem is None or form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return False
        try:
            head_b64, claims_b64, sig_b64 = form["client_assertion"].split(".")
            head, claims = json.loads(_unb64url(head_b64)), json.loads(_unb64url(claims_b64))
            cert = x509.load_pem_x509_certificate(pem)
            from cryptography.hazmat.primitives.serialization import Encoding

            der = cert.public_bytes(Encoding.DER)
            if str(head.get("x5t", "")).rstrip("=") != _b64url(hashlib.sha1(der).digest()) or head.get("alg") != "RS256":
                return False
            if claims.get("iss") != client_id or claims.get("sub") != client_id or claims.get("exp", 0) < time.time():
                return False
            key = cert.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(_unb64url(sig_b64), f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, KeyError, InvalidSignature):
            return False
        return True

    def _user_tokens(self, client_id: str, username: str, scopes: list[str], nonce: str | None = None) -> tuple[int, dict[str, str], bytes]:
        granted = [s for s in scopes if s not in ("openid", "profile", "offline_access")]
        at = self._issue(Token("user", client_id, time.time() + self.token_lifetime, granted, username))
        rt = secrets.token_urlsafe(40)
        self.refresh_tokens[rt] = {"client_id": client_id, "username": username, "scopes": granted}
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, username))
        now = int(time.time())
        claims = {"aud": client_id, "iss": f"{self.base}/{TENANT_ID}/v2.0", "iat": now, "nbf": now, "exp": now + 3600,
                  "name": username.split("@")[0].title(), "oid": uid, "preferred_username": username, "sub": uid,
                  "tid": TENANT_ID, "ver": "2.0", **({"nonce": nonce} if nonce else {})}
        id_token = ".".join([_b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode()),
                             _b64url(json.dumps(claims).encode()), ""])
        client_info = _b64url(json.dumps({"uid": uid, "utid": TENANT_ID}).encode())
        return json_answer(200, {"token_type": "Bearer", "scope": " ".join(granted), "expires_in": self.token_lifetime,
                           "ext_expires_in": self.token_lifetime, "access_token": at, "refresh_token": rt,
                           "id_token": id_token, "client_info": client_info})

    def _issue(self, token: Token) -> str:
        value = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(48)
        self.tokens[value] = token
        return value
