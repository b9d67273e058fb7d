"""Calling the Gmail API: bounded retries with backoff, and errors in assoc-ai's terms.

Google asks clients to retry 429, 5xx and the 403 rate-limit reasons with a
truncated exponential backoff plus jitter, and to honour ``Retry-After`` when
the server sends it.  Everything else fails at once, translated to the
:mod:`assoc_ai_core.errors` tree so no raw library exception escapes a
connector method.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import httplib2
import tenacity
from google.auth import exceptions as gauth_exceptions
from googleapiclient.errors import Error as GoogleApiClientError
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from assoc_ai_core.errors import AuthError, ConnectorError, TransientError
from assoc_ai_core.ext.http import parse_retry_after
from assoc_ai_core.i18n import tr

log = logging.getLogger(__name__)

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
API_DISABLED_REASONS = frozenset({"accessNotConfigured", "SERVICE_DISABLED"})
#: Quota units per method (Gmail API "Usage limits" page); an unknown method counts as 5.
METHOD_UNITS = {
    "users.getProfile": 1, "users.history.list": 2, "users.labels.list": 1, "users.labels.create": 5,
    "users.messages.list": 5, "users.messages.get": 5, "users.messages.modify": 5,
    "users.messages.batchModify": 50, "users.messages.send": 100,
}
#: Gmail allows 250 units per user per second (moving window); staying below leaves room for a person using the
#: same account in another client, and keeps a run from being throttled in the first place.
UNITS_PER_SECOND = 200


def units_of(what: str) -> int:
    """Quota units one call of ``what`` (``users.messages.get``...) costs."""
    return METHOD_UNITS.get(what.split(" ", 1)[0], 5)


class QuotaPacer:
    """Spreads requests so that no second carries more than ``per_second`` quota units.

    Gmail counts units per user in a one-second moving window and answers
    429/403 beyond it; waiting beforehand costs the same time as the retry
    would, without the failed round trip nor the risk of running out of
    retries on a long listing.
    """

    def __init__(self, *, per_second: int = UNITS_PER_SECOND, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.per_second = max(1, int(per_second))
        self.clock = clock
        self.sleep = sleep
        self._window: deque[tuple[float, int]] = deque()
        self.units = 0  # units spent through this pacer, for reports and benchmarks
        self.requests = 0
        self.waited = 0.0

    def spend(self, units: int, *, requests: int = 1) -> None:
        """Wait until ``units`` more fit in the last second, then count them."""
        while True:
            now = self.clock()
            while self._window and self._window[0][0] <= now - 1.0:
                self._window.popleft()
            spent = sum(u for _, u in self._window)
            if not self._window or spent + units <= self.per_second:
                break
            # wait for the oldest entry to leave the window, and a little more against clock rounding
            wait = max(0.01, self._window[0][0] + 1.0 - now + 0.01)
            self.waited += wait
            self.sleep(wait)
        self._window.append((self.clock(), units))
        self.units += units
        self.requests += requests

    def answered(self) -> None:
        """The last request was answered: count its units from now, as late as Gmail may have counted them."""
        if self._window:
            self._window[-1] = (self.clock(), self._window[-1][1])


NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, time-out (socket.timeout is a TimeoutError)
    httplib2.HttpLib2Error,
    gauth_exceptions.TransportError,
)


def error_reasons(exc: HttpError) -> set[str]:
    """The machine-readable reasons Google put in an error body (``errors[].reason``, ``status``)."""
    try:
        body = json.loads(exc.content.decode("utf-8") if isinstance(exc.content, bytes) else exc.content)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return set()
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return set()
    reasons = {str(e.get("reason")) for e in err.get("errors") or [] if isinstance(e, dict) and e.get("reason")}
    if err.get("status"):
        reasons.add(str(err["status"]))
    for detail in err.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            reasons.add(str(detail["reason"]))
    return reasons


def error_message(exc: HttpError) -> str:
    """Google's own one-line explanation of an HTTP error (never message content)."""
    try:
        body = json.loads(exc.content.decode("utf-8") if isinstance(exc.content, bytes) else exc.content)
        text = body["error"]["message"]
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
        text = getattr(exc.resp, "reason", "") or ""
    return " ".join(str(text).split())[:300]


def status_of(exc: BaseException) -> int | None:
    """HTTP status of an :class:`HttpError`, else None."""
    if isinstance(exc, HttpError):
        try:
            return int(exc.resp.status)
        except (TypeError, ValueError, AttributeError):
            return None
    return None


def retry_after_seconds(exc: BaseException, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta or HTTP date), else None."""
    if isinstance(exc, PartsToRetry):
        exc = exc.representative
    if not isinstance(exc, HttpError):
        return None
    value = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
    return None if value is None else parse_retry_after(str(value), now=now)


def is_retryable(exc: BaseException) -> bool:
    """True for throttling (429, 403 rate-limit reasons), server errors (5xx) and network trouble."""
    if isinstance(exc, HttpError):
        status = status_of(exc)
        if status == 429 or (status is not None and 500 <= status < 600):
            return True
        return status == 403 and bool(error_reasons(exc) & RATE_LIMIT_REASONS)
    if isinstance(exc, gauth_exceptions.RefreshError):
        # the token endpoint itself failing (5xx) is worth another try; a refused grant is not
        return bool(getattr(exc, "retryable", False))
    return isinstance(exc, NETWORK_ERRORS)


def rejected_before_processing(exc: BaseException) -> bool:
    """True when the server certainly did not act on the request (throttled, or never reached)."""
    if isinstance(exc, HttpError):
        status = status_of(exc)
        return status == 429 or (status == 403 and bool(error_reasons(exc) & RATE_LIMIT_REASONS))
    return isinstance(exc, (ConnectionRefusedError, gauth_exceptions.TransportError))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PartsToRetry):
        return f"{len(exc.errors)} batch part(s): " + _describe(exc.representative)
    status = status_of(exc)
    if status is not None:
        text = error_message(exc)
        return f"HTTP {status}" + (f" {text}" if text else "")
    return type(exc).__name__


def auth_error(exc: BaseException, *, connector_id: str, service_account: bool) -> AuthError:
    """An :class:`AuthError` telling the admin exactly what to redo."""
    if isinstance(exc, HttpError):
        detail = _describe(exc)
    else:
        detail = " ".join(str(exc.args[0] if getattr(exc, "args", None) else exc).split())[:300]
    if service_account:
        return AuthError(
            tr(
                f"Google a refusé le compte de service ({detail}). Vérifiez dans la console d'administration "
                "Google Workspace (Sécurité > Accès et contrôle des données > Commandes des API > Délégation "
                "au niveau du domaine) que l'ID client du compte de service a le champ d'application "
                "https://www.googleapis.com/auth/gmail.modify, et que « subject » est une adresse de votre domaine.",
                f"Google refused the service account ({detail}). In the Google Workspace admin console "
                "(Security > Access and data control > API controls > Domain-wide delegation) check that the "
                "service account's client ID has the scope https://www.googleapis.com/auth/gmail.modify, "
                "and that 'subject' is an address of your domain.",
            ),
            connector_id=connector_id,
        )
    return AuthError(
        tr(
            f"Google a refusé l'autorisation enregistrée ({detail}) : elle a été révoquée ou a expiré. "
            "Relancez « assoc-ai gmail auth --client-secrets FICHIER --token FICHIER » une fois pour la "
            "renouveler, puis relancez le tri.",
            f"Google refused the stored authorisation ({detail}): it was revoked or has expired. "
            "Run `assoc-ai gmail auth --client-secrets FILE --token FILE` once to renew it, then run the "
            "triage again.",
        ),
        connector_id=connector_id,
    )


def translate(exc: BaseException, *, what: str, connector_id: str, service_account: bool = False,
              attempts: int = 1) -> Exception:
    """Map a Google/httplib2 exception to the assoc-ai error tree."""
    if isinstance(exc, gauth_exceptions.RefreshError) and not is_retryable(exc):
        return auth_error(exc, connector_id=connector_id, service_account=service_account)
    if isinstance(exc, gauth_exceptions.DefaultCredentialsError):
        return AuthError(str(exc), connector_id=connector_id)
    status = status_of(exc)
    if is_retryable(exc):
        return TransientError(
            tr(
                f"API Gmail ({what}) : toujours indisponible ou limitée ({_describe(exc)}) après {attempts} essai(s). "
                "Rien n'est perdu : le prochain passage reprendra là où celui-ci s'est arrêté.",
                f"Gmail API ({what}): still unavailable or throttled ({_describe(exc)}) after {attempts} attempt(s). "
                "Nothing is lost: the next run resumes where this one stopped.",
            ),
            connector_id=connector_id,
        )
    if status == 401:
        return auth_error(exc, connector_id=connector_id, service_account=service_account)
    if status == 403:
        reasons = error_reasons(exc)  # type: ignore[arg-type]
        if reasons & SCOPE_REASONS:
            return AuthError(
                tr(
                    "L'autorisation Google ne couvre pas l'accès gmail.modify. Relancez « assoc-ai gmail auth » "
                    "et acceptez l'accès demandé (ou ajoutez ce champ d'application à la délégation du compte de service).",
                    "The Google authorisation does not include gmail.modify access. Run `assoc-ai gmail auth` again "
                    "and accept the requested access (or add that scope to the service account's delegation).",
                ),
                connector_id=connector_id,
            )
        if reasons & API_DISABLED_REASONS:
            return ConnectorError(
                tr(
                    "L'API Gmail n'est pas activée pour ce projet Google Cloud. Dans la console Google Cloud, "
                    "ouvrez « API et services > Bibliothèque », cherchez « Gmail API » et cliquez sur « Activer ».",
                    "The Gmail API is not enabled for this Google Cloud project. In the Google Cloud console open "
                    "'APIs & Services > Library', search for 'Gmail API' and click 'Enable'.",
                ),
                connector_id=connector_id,
            )
    if status is not None:
        return ConnectorError(
            tr(f"API Gmail ({what}) : {_describe(exc)}.", f"Gmail API ({what}): {_describe(exc)}."),
            connector_id=connector_id,
        )
    return ConnectorError(
        tr(f"API Gmail ({what}) : erreur inattendue {type(exc).__name__} : {exc}",
           f"Gmail API ({what}): unexpected error {type(exc).__name__}: {exc}"),
        connector_id=connector_id,
    )


class ApiCaller:
    """Runs Gmail API requests with bounded, jittered exponential backoff.

    ``sleep`` and ``now`` are seams so tests measure waits on a fake clock.
    """

    def __init__(
        self,
        *,
        connector_id: str,
        max_retries: int = 5,
        initial_wait: float = 1.0,
        max_wait: float = 60.0,
        service_account: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        pacer: QuotaPacer | None = None,
    ) -> None:
        self.connector_id = connector_id
        self.pacer = pacer or QuotaPacer(sleep=sleep)
        self.max_retries = max(0, int(max_retries))
        self.initial_wait = max(0.0, float(initial_wait))
        self.max_wait = max(0.0, float(max_wait))
        self.service_account = service_account
        self.sleep = sleep
        self.now = now
        self.waits: list[float] = []  # every wait actually slept, for reports and tests
        # Google's recommended truncated exponential backoff: 1, 2, 4... s (capped) plus random jitter
        self._backoff = tenacity.wait_exponential(multiplier=self.initial_wait, max=self.max_wait) + tenacity.wait_random(
            0, self.initial_wait
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc, now=self.now) if exc is not None else None
        if asked is not None:
            return asked
        return float(self._backoff(state))

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number > self.max_retries:
            return True
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc, now=self.now) if exc is not None else None
        # a server asking for a longer pause than we allow: give up now, the scheduler retries later
        return asked is not None and asked > self.max_wait

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sleep(seconds)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "Gmail API %s: %s, retry %d/%d in %.1f s",
            state.kwargs.get("what", "?"), _describe(exc) if exc else "?", state.attempt_number,
            self.max_retries, wait,
        )

    def _retrying(self, retry: Callable[[BaseException], bool]) -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(retry),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def execute(self, request: Any, *, what: str, idempotent: bool = True) -> Any:
        """Execute a googleapiclient request; return its JSON body or raise an assoc-ai error.

        ``idempotent=False`` (sending mail) retries only when the server
        certainly did nothing (429, rate-limit 403, connection refused, token
        refresh failure): a 5xx or a time-out after sending may hide a success.

        404, 409 and 400 come back as :class:`GmailNotFound`, :class:`GmailConflict`
        and :class:`GmailBadRequest` (all :class:`ConnectorError`) because callers
        handle them: a message deleted meanwhile, a history id too old, a label
        created meanwhile, a page token that expired.
        """

        def once(*, what: str) -> Any:
            if isinstance(request, BatchHttpRequest):
                try:
                    return request.execute()  # its parts were paced by execute_many
                finally:
                    self.pacer.answered()
            self.pacer.spend(units_of(what))
            try:
                return request.execute(num_retries=0)
            finally:
                self.pacer.answered()

        retrying = self._retrying(is_retryable if idempotent else rejected_before_processing)
        try:
            return retrying(once, what=what)
        except (GoogleApiClientError, gauth_exceptions.GoogleAuthError, *NETWORK_ERRORS) as exc:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            raise self.error_for(exc, what=what, attempts=attempts) from exc

    def execute_many(self, new_batch: Callable[[Callable[..., None]], Any], requests: Mapping[str, Any], *,
                     what: str, chunk: int = 20) -> dict[str, Any]:
        """Run many requests in HTTP batches of ``chunk``; return ``{id: JSON body or ConnectorError}``.

        Parts throttled or failed with 5xx are sent again (only those), with the
        same backoff and bounds as single requests; other failures are returned
        per id (e.g. :class:`GmailNotFound` for a message deleted meanwhile).
        """
        results: dict[str, Any] = {}
        pending = dict(requests)

        def one_round(*, what: str) -> None:
            retry: list[BaseException] = []
            ids = list(pending)
            for start in range(0, len(ids), max(1, chunk)):
                part = ids[start: start + max(1, chunk)]
                outcome: dict[str, tuple[Any, BaseException | None]] = {}
                batch = new_batch(lambda rid, resp, exc, outcome=outcome: outcome.__setitem__(rid, (resp, exc)))
                for rid in part:
                    batch.add(pending[rid], request_id=rid)
                # Gmail charges every call of a batch as if sent alone
                self.pacer.spend(units_of(what) * len(part), requests=len(part))
                self.execute(batch, what=f"{what} (batch)")
                for rid in part:
                    resp, exc = outcome.get(rid, (None, None))
                    if exc is None and rid in outcome:
                        results[rid] = resp
                        del pending[rid]
                    elif exc is not None and is_retryable(exc):
                        retry.append(exc)
                    else:
                        results[rid] = self.error_for(exc, what=what) if exc is not None else ConnectorError(
                            tr(f"API Gmail ({what}) : réponse manquante dans le lot.",
                               f"Gmail API ({what}): answer missing from the batch."), connector_id=self.connector_id)
                        del pending[rid]
            if retry:
                raise PartsToRetry(retry)

        retrying = self._retrying(lambda exc: isinstance(exc, PartsToRetry))
        try:
            retrying(one_round, what=what)
        except PartsToRetry as exc:
            attempts = int(retrying.statistics.get("attempt_number", 1))
            raise self.error_for(exc.representative, what=what, attempts=attempts) from exc.representative
        return results

    def error_for(self, exc: BaseException, *, what: str, attempts: int = 1) -> ConnectorError:
        """The assoc-ai error for a failed call (404/409/400 get their own classes)."""
        status = status_of(exc)
        if status == 404:
            return GmailNotFound(tr(f"API Gmail ({what}) : introuvable.", f"Gmail API ({what}): not found."),
                                 connector_id=self.connector_id)
        if status == 409:
            return GmailConflict(
                tr(f"API Gmail ({what}) : conflit ({error_message(exc)}).",  # type: ignore[arg-type]
                   f"Gmail API ({what}): conflict ({error_message(exc)})."),  # type: ignore[arg-type]
                connector_id=self.connector_id,
            )
        error = translate(exc, what=what, connector_id=self.connector_id, service_account=self.service_account,
                          attempts=attempts)
        if status == 400:
            return GmailBadRequest(str(error), connector_id=self.connector_id)
        assert isinstance(error, ConnectorError)
        return error


class PartsToRetry(Exception):
    """Some parts of an HTTP batch were throttled or hit a server error: send those again."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(f"{len(errors)} part(s) to retry")
        self.errors = errors
        asked = [(retry_after_seconds(e) or 0.0, i) for i, e in enumerate(errors)]
        self.representative = errors[max(asked)[1]]  # the one asking for the longest pause


class GmailBadRequest(ConnectorError):
    """HTTP 400 from the Gmail API (invalid argument, expired page token)."""


class GmailNotFound(ConnectorError):
    """HTTP 404 from the Gmail API (message gone, history id too old, unknown label)."""


class GmailConflict(ConnectorError):
    """HTTP 409 from the Gmail API (e.g. a label with that name already exists)."""
