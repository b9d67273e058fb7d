"""A small Microsoft Graph v1.0 client over ``requests``: auth header, retries, errors in assoc-ai terms.

* 429, 500, 502, 503 and 504 are retried with tenacity: the wait is the
  server's ``Retry-After`` when given, else exponential backoff with full
  jitter; after ``max_retries`` the call raises
  :class:`~assoc_ai_core.errors.TransientError` (exit code 75, the scheduler
  tries again later).  A ``Retry-After`` longer than ``max_retry_wait`` is not
  slept through: TransientError straight away.
* 401 once: the token is renewed and the call repeated; twice: AuthError.
* Every request asks for immutable message ids (``Prefer:
  IdType="ImmutableId"``): a message keeps its id when a person moves it, so
  the id stored at decision time finds it again in one lookup.
* :meth:`GraphClient.batch` sends up to 20 requests in one JSON ``$batch``;
  throttled or failed sub-requests are sent again, alone in a new batch.
* Links returned by the server (``@odata.nextLink``/``deltaLink``) are followed
  only when they point at the configured Graph host, so the bearer token never
  leaves it.

Nothing here logs a body, a token or a message field.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3

from assoc_ai_core.errors import AuthError, ConnectorError, TransientError
from assoc_ai_core.ext.http import parse_retry_after
from assoc_ai_core.i18n import tr

from .auth import TokenProvider, auth_command_hint, tls_message
from .config import CONNECTOR_ID, M365Config
from .session import make_session

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
IMMUTABLE_IDS = 'IdType="ImmutableId"'
BATCH_LIMIT = 20  # Graph's maximum of requests in one JSON batch


class GraphHTTPError(ConnectorError):
    """Graph answered with an error status; ``status`` and Graph's ``code`` say which."""

    def __init__(self, message: str, *, status: int, code: str = "") -> None:
        super().__init__(message, connector_id=CONNECTOR_ID)
        self.status = status
        self.code = code


class GraphAccessDenied(AuthError):
    """Graph answered 403; ``code`` says why (``ErrorAccessDenied``, ``ErrorSendAsDenied``...)."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message, connector_id=CONNECTOR_ID)
        self.status = 403
        self.code = code


class GraphOutcomeUnknown(ConnectorError):
    """A non-repeatable call (sending mail) failed in a way that does not say whether Graph acted on it."""


class _Retryable(Exception):
    """Internal: a throttled or failed attempt worth repeating (never leaves this module).

    ``surely_not_done`` is True when the server cannot have acted on the request
    (429 throttling, or the connection was never established).
    """

    def __init__(self, what: str, retry_after: float | None, *, surely_not_done: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after
        self.surely_not_done = surely_not_done


def graph_error(resp: requests.Response) -> tuple[str, str]:
    """Graph's ``error.code`` and ``error.message`` from an error response (empty when absent)."""
    try:
        body = resp.json()
    except ValueError:
        return "", ""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("code", "")), str(err.get("message", ""))[:300]
    return "", ""


def _wait_policy(config: M365Config) -> Callable[[tenacity.RetryCallState], float]:
    backoff = tenacity.wait_random_exponential(multiplier=config.retry_backoff, max=config.max_retry_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        return float(backoff(state))

    return wait


class GraphClient:
    """Authenticated calls to Graph for one connector (one ``requests.Session``)."""

    def __init__(self, config: M365Config, tokens: TokenProvider, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.tokens = tokens
        self.session = make_session(config.ca_bundle)
        self._sleep = sleep
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "throttled": 0, "token_renewals": 0,
                                      "waited_ms": 0, "batched": 0}

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    # ------------------------------------------------------------------ urls
    def url(self, path_or_url: str) -> str:
        """An absolute Graph URL; server-given links must stay on the configured Graph host."""
        if path_or_url.startswith(("https://", "http://")):
            origin = self.config.graph_origin
            if path_or_url != origin and not path_or_url.startswith(origin + "/"):
                raise ConnectorError(
                    tr(
                        "Graph a renvoyé un lien vers un autre serveur ; il n'est pas suivi (le jeton n'en sort pas).",
                        "Graph returned a link to another server; it is not followed (the token stays here).",
                    ),
                    connector_id=CONNECTOR_ID,
                )
            return path_or_url
        return self.config.graph_url + (path_or_url if path_or_url.startswith("/") else "/" + path_or_url)

    def user_url(self, path: str) -> str:
        """URL of ``path`` under the configured mailbox (``/users/{mailbox}`` or ``/me``)."""
        return self.url(self.config.user_path + path)

    # ------------------------------------------------------------------ calls
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        repeatable: bool = True,
    ) -> requests.Response:
        """Send one Graph request with auth, retries and error mapping; return the response.

        ``repeatable=False`` (sending mail) retries only what Graph surely did
        not act on (429, connection never made); any other failure raises
        :class:`GraphOutcomeUnknown`, since repeating could send twice.
        """
        url = self.url(path_or_url)

        def worth_repeating(exc: BaseException) -> bool:
            return isinstance(exc, _Retryable) and (repeatable or exc.surely_not_done)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.config.max_retries + 1),
            wait=_wait_policy(self.config),
            retry=tenacity.retry_if_exception(worth_repeating),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            resp = retrying(self._attempt, method, url, params, json, data, headers)
        except _Retryable as exc:
            if not repeatable and not exc.surely_not_done:
                raise GraphOutcomeUnknown(
                    tr(
                        f"Microsoft Graph n'a pas confirmé la requête ({exc.what}) : elle a pu aboutir, "
                        "elle n'est pas répétée.",
                        f"Microsoft Graph did not confirm the request ({exc.what}): it may have gone through, "
                        "it is not repeated.",
                    ),
                    connector_id=CONNECTOR_ID,
                ) from None
            raise TransientError(
                tr(
                    f"Microsoft Graph indisponible ou limite de débit atteinte ({exc.what}) après "
                    f"{self.config.max_retries + 1} essais. Le travail reprendra au prochain lancement.",
                    f"Microsoft Graph unavailable or throttling ({exc.what}) after "
                    f"{self.config.max_retries + 1} attempts. The job will resume on its next run.",
                ),
                connector_id=CONNECTOR_ID,
            ) from None
        if resp.status_code not in ok:
            raise self._error(resp, method)
        return resp

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        self.stats["retries"] += 1
        if state.next_action is not None:
            self.stats["waited_ms"] += int(state.next_action.sleep * 1000)
        exc = state.outcome.exception() if state.outcome else None
        log.info("Graph: %s, retry %d in %.2fs", getattr(exc, "what", "?"), state.attempt_number,
                 state.next_action.sleep if state.next_action else 0.0)

    def _attempt(
        self, method: str, url: str, params: Any, json: Any, data: Any, headers: Mapping[str, str] | None
    ) -> requests.Response:
        resp = self._send(method, url, params, json, data, headers)
        if resp.status_code == 401:
            # An access token can be refused before msal thinks it expired (revoked, clock skew): renew once.
            self.stats["token_renewals"] += 1
            self.tokens.token(force_refresh=True)
            resp = self._send(method, url, params, json, data, headers)
            if resp.status_code == 401:
                code, _ = graph_error(resp)
                raise self._unauthorised(code)
        if resp.status_code in RETRYABLE_STATUS:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if resp.status_code == 429:
                self.stats["throttled"] += 1
            what = f"HTTP {resp.status_code}"
            if retry_after is not None and retry_after > self.config.max_retry_wait:
                raise TransientError(
                    tr(
                        f"Microsoft Graph demande d'attendre {retry_after:.0f} s ({what}) ; "
                        "le travail reprendra au prochain lancement.",
                        f"Microsoft Graph asks to wait {retry_after:.0f} s ({what}); "
                        "the job will resume on its next run.",
                    ),
                    connector_id=CONNECTOR_ID,
                )
            raise _Retryable(what, retry_after, surely_not_done=resp.status_code == 429)
        return resp

    def _send(
        self, method: str, url: str, params: Any, json: Any, data: Any, headers: Mapping[str, str] | None
    ) -> requests.Response:
        # msal answers from its cache until shortly before expiry, so asking every time costs nothing
        # and spares a 401 per hour on long runs.
        hdrs = {"Authorization": f"Bearer {self.tokens.token()}", "client-request-id": str(uuid.uuid4())}
        if headers:
            hdrs.update(headers)
        hdrs["Prefer"] = with_immutable_ids(hdrs.get("Prefer"))
        self.stats["requests"] += 1
        try:
            resp = self.session.request(
                method, url, params=params, json=json, data=data, headers=hdrs, timeout=self.config.timeout
            )
        except requests.exceptions.SSLError as exc:
            raise ConnectorError(tls_message(self.config.graph_origin), connector_id=CONNECTOR_ID) from exc
        except requests.ConnectTimeout as exc:
            raise _Retryable(type(exc).__name__, None, surely_not_done=True) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            # A connection never made sent nothing; a reset or read time-out may come after the server acted.
            raise _Retryable(type(exc).__name__, None, surely_not_done=_never_connected(exc)) from exc
        except requests.RequestException as exc:
            raise ConnectorError(
                tr(f"Requête Graph impossible : {type(exc).__name__}.", f"Graph request failed: {type(exc).__name__}."),
                connector_id=CONNECTOR_ID,
            ) from exc
        log.debug("Graph %s %s -> %d", method, _path_for_log(url), resp.status_code)
        return resp

    def _unauthorised(self, code: str) -> AuthError:
        if self.config.app_only:
            return AuthError(
                tr(
                    f"Microsoft Graph refuse le jeton de l'application ({code or 'HTTP 401'}). Vérifiez le secret "
                    "client et le consentement administrateur dans le centre d'administration Entra.",
                    f"Microsoft Graph refuses the application's token ({code or 'HTTP 401'}). Check the client "
                    "secret and admin consent in the Entra admin center.",
                ),
                connector_id=CONNECTOR_ID,
            )
        hint = auth_command_hint(self.config)
        return AuthError(
            tr(
                f"Microsoft Graph refuse la connexion ({code or 'HTTP 401'}) : elle a expiré ou a été révoquée. "
                f"Reconnectez-vous avec : {hint}",
                f"Microsoft Graph refuses the sign-in ({code or 'HTTP 401'}): it expired or was revoked. "
                f"Sign in again with: {hint}",
            ),
            connector_id=CONNECTOR_ID,
        )

    def _error(self, resp: requests.Response, method: str) -> ConnectorError:
        code, message = graph_error(resp)
        return self.error_for(resp.status_code, code, message, method)

    def batch_error(self, status: int, body: Mapping[str, Any]) -> ConnectorError:
        """The error for a sub-request of a ``$batch`` that failed (same mapping as a lone request)."""
        err = body.get("error") if isinstance(body, Mapping) else None
        code = str(err.get("code", "")) if isinstance(err, Mapping) else ""
        message = str(err.get("message", ""))[:300] if isinstance(err, Mapping) else ""
        if status == 401:
            return self._unauthorised(code)
        return self.error_for(status, code, message, "GET ($batch)")

    def error_for(self, status: int, code: str, message: str, method: str) -> ConnectorError:
        """Graph's error ``status``/``code`` in assoc-ai terms (403: GraphAccessDenied, else GraphHTTPError)."""
        if status == 403:
            needed = ", ".join(self.config.permissions())
            return GraphAccessDenied(
                tr(
                    f"Accès refusé par Microsoft Graph à la boîte {self.config.mailbox} ({code}). Vérifiez les "
                    f"permissions accordées ({needed}, avec consentement administrateur) et, en accès "
                    "application, que la stratégie d'accès (New-ApplicationAccessPolicy) inclut bien cette boîte.",
                    f"Microsoft Graph denied access to mailbox {self.config.mailbox} ({code}). Check the "
                    f"permissions granted ({needed}, with admin consent) and, for application access, that the "
                    "application access policy (New-ApplicationAccessPolicy) includes this mailbox.",
                ),
                code=code,
            )
        if status == 404 and code in ("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI"):
            return GraphHTTPError(
                tr(
                    f"Boîte aux lettres introuvable : {self.config.mailbox} ({code}). Vérifiez l'adresse "
                    "(mailbox) et qu'elle a une licence Exchange Online.",
                    f"Mailbox not found: {self.config.mailbox} ({code}). Check the address (mailbox) and "
                    "that it has an Exchange Online licence.",
                ),
                status=status,
                code=code,
            )
        return GraphHTTPError(
            tr(
                f"Microsoft Graph a répondu {status} ({code}) à {method} : {message}",
                f"Microsoft Graph answered {status} ({code}) to {method}: {message}",
            ),
            status=status,
            code=code,
        )

    # ------------------------------------------------------------------ helpers
    def get_json(self, path_or_url: str, *, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET and decode a JSON object."""
        resp = self.request("GET", path_or_url, params=params, headers=headers, ok=(200,))
        return _json(resp)

    def send_json(self, method: str, path_or_url: str, body: Any, *, ok: tuple[int, ...] = (200, 201, 202, 204)) -> dict[str, Any]:
        """POST/PATCH a JSON body; the decoded JSON answer (empty dict for 202/204)."""
        resp = self.request(method, path_or_url, json=body, ok=ok)
        if resp.status_code in (202, 204) or not resp.content:
            return {}
        return _json(resp)

    def send_json_raw(self, method: str, path_or_url: str, data: bytes, *, content_type: str) -> dict[str, Any]:
        """Send a non-JSON body (base64 MIME) and decode the JSON answer."""
        resp = self.request(method, path_or_url, data=data, headers={"Content-Type": content_type}, ok=(200, 201))
        return _json(resp)

    def iter_collection(self, path_or_url: str, *, params: Mapping[str, Any] | None = None,
                        headers: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a Graph collection, following ``@odata.nextLink``."""
        page = self.get_json(path_or_url, params=params, headers=headers)
        while True:
            yield from page.get("value", [])
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self.get_json(link, headers=headers)  # the link carries the query already


    def batch(self, calls: Sequence[tuple[str, str] | tuple[str, str, Mapping[str, Any]]], *, select: str = "",
              headers: Sequence[Mapping[str, str] | None] | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Send each ``(method, path under the mailbox[, JSON body])`` through JSON ``$batch``.

        Returns ``(status, body)`` in call order.  ``select`` is added to every
        sub-request's query; ``headers`` (one mapping per call, or None) are
        added to that sub-request (``If-Match``...).

        Sub-requests are counted one by one by Graph's throttling, so a batch
        can come back partly throttled: those (429/5xx) are sent again after
        the longest ``Retry-After`` asked.  A round that answers none of them
        counts as a failed attempt; after ``max_retries`` such rounds in a row
        (or a wait over ``max_retry_wait``) :class:`TransientError` is raised.
        """
        results: list[tuple[int, dict[str, Any]] | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        attempt = 0
        while pending:
            retry: list[int] = []
            wait = 0.0
            for start in range(0, len(pending), BATCH_LIMIT):
                chunk = pending[start:start + BATCH_LIMIT]
                body = {"requests": [self._sub_request(i, calls[i], select, headers[i] if headers else None)
                                     for i in chunk]}
                self.stats["batched"] += len(chunk)
                answer = self.send_json("POST", "/$batch", body, ok=(200,))
                for sub in answer.get("responses", []):
                    i = int(sub.get("id", -1))
                    status = int(sub.get("status", 0))
                    if i not in chunk:
                        continue
                    if status in RETRYABLE_STATUS:
                        if status == 429:
                            self.stats["throttled"] += 1
                        after = parse_retry_after((sub.get("headers") or {}).get("Retry-After"))
                        wait = max(wait, after if after is not None else self.config.retry_backoff * 2 ** attempt)
                        retry.append(i)
                        continue
                    sub_body = sub.get("body")
                    results[i] = (status, sub_body if isinstance(sub_body, dict) else {})
                retry += [i for i in chunk if results[i] is None and i not in retry]
            if not retry:
                break
            attempt = attempt + 1 if len(retry) == len(pending) else 0  # progress resets the count
            if attempt > self.config.max_retries or wait > self.config.max_retry_wait:
                raise TransientError(
                    tr(
                        "Microsoft Graph limite le débit (lot de requêtes) ; le travail reprendra au prochain lancement.",
                        "Microsoft Graph is throttling (request batch); the job will resume on its next run.",
                    ),
                    connector_id=CONNECTOR_ID,
                )
            self.stats["retries"] += 1
            self.stats["waited_ms"] += int(wait * 1000)
            self._sleep(wait)
            pending = retry
        return [r if r is not None else (0, {}) for r in results]


    def _sub_request(self, i: int, call: tuple[Any, ...], select: str,
                     extra: Mapping[str, str] | None) -> dict[str, Any]:
        path = call[1] + (("&" if "?" in call[1] else "?") + "$select=" + select if select else "")
        sub: dict[str, Any] = {"id": str(i), "method": call[0], "url": self.config.user_path + path,
                               "headers": {"Prefer": IMMUTABLE_IDS, **(extra or {})}}
        if len(call) > 2:
            sub["body"] = call[2]
            sub["headers"]["Content-Type"] = "application/json"
        return sub


def with_immutable_ids(prefer: str | None) -> str:
    """A ``Prefer`` header value that also asks for immutable ids (kept alongside other preferences)."""
    if not prefer:
        return IMMUTABLE_IDS
    if "idtype" in prefer.lower():
        return prefer
    return f"{prefer}, {IMMUTABLE_IDS}"


def _never_connected(exc: requests.RequestException) -> bool:
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError as exc:
        raise ConnectorError(
            tr("Réponse de Microsoft Graph illisible (JSON attendu).", "Unreadable Microsoft Graph answer (JSON expected)."),
            connector_id=CONNECTOR_ID,
        ) from exc
    if not isinstance(body, dict):
        raise ConnectorError(
            tr("Réponse de Microsoft Graph inattendue.", "Unexpected Microsoft Graph answer."), connector_id=CONNECTOR_ID
        )
    return body


def _path_for_log(url: str) -> str:
    path = urlsplit(url).path
    parts = path.split("/")
    # The mailbox address is the segment after "users"; keep it out of debug logs.
    for i, part in enumerate(parts[:-1]):
        if part == "users":
            parts[i + 1] = "{mailbox}"
    return "/".join(parts)
