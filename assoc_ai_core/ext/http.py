"""HTTP plumbing shared by connectors of web APIs (CRMs): one session, retries, Retry-After, TLS, errors in assoc-ai terms.

A CRM plugin builds one :class:`HttpClient` and describes only its API (URLs,
authentication headers, what its error bodies mean).  The client verifies TLS
(a configured CA file wins over ``REQUESTS_CA_BUNDLE``), retries only
:class:`~assoc_ai_core.errors.TransientError` (429, 502-504, network trouble)
with exponential backoff, waits as long as a ``Retry-After`` header says
(seconds or HTTP date) but never longer than ``max_retry_wait``, and re-raises
the last error.  Plugins on an official SDK that does not use ``requests``
(HubSpot's urllib3 client) use the same pieces: :func:`retrying`,
:func:`throttled`, :func:`network_error`, :func:`tls_refused`.

Nothing here logs a request body, a token or a personal field.  ``requests``
is needed only by :class:`HttpClient` and :func:`send` (the plugins using them
depend on it; the core itself does not).
"""

from __future__ import annotations

import email.utils
import functools
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import tenacity

if TYPE_CHECKING:  # requests is imported only where a session is built or used
    import requests

from assoc_ai_core.errors import AssocAIError, ConfigError, ConnectorError, TransientError
from assoc_ai_core.i18n import tr

__all__ = [
    "HttpClient",
    "RateLimited",
    "RETRYABLE_STATUS",
    "check_base_url",
    "is_transient",
    "network_error",
    "parse_retry_after",
    "pinned_session",
    "request_error",
    "retry_after_wait",
    "retrying",
    "send",
    "throttled",
    "tls_refused",
]

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
T = TypeVar("T")


class RateLimited(TransientError):
    """Throttled or temporarily unavailable; ``retry_after`` seconds come from the server when it says."""

    def __init__(self, message: str, *, retry_after: float | None = None, connector_id: str = "") -> None:
        super().__init__(message, connector_id=connector_id)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent or unreadable.

    A date without a time zone is read as UTC (RFC 9110 dates are always GMT).
    """
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


def check_base_url(url: str, *, field: str, connector_id: str, loopback_http: bool = True) -> str:
    """``url`` without its trailing ``/``; plain HTTP is refused (secrets never travel in clear).

    ``loopback_http`` lets tests reach a loopback server over plain HTTP; an SDK
    that always builds ``https://`` URLs itself (simple-salesforce) turns it off.
    """
    parts = urlsplit(url)
    if parts.scheme == "https" or (loopback_http and parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return url.rstrip("/")
    raise ConfigError(
        tr(
            f"[connectors.{connector_id}].{field} doit être une adresse https:// (reçu : {url!r}).",
            f"[connectors.{connector_id}].{field} must be an https:// address (got: {url!r}).",
        )
    )


# -- errors in assoc-ai terms -------------------------------------------------------------------
def throttled(service: str, status: int, *, retry_after: float | None, connector_id: str) -> RateLimited:
    """The error for a throttled or unavailable service (HTTP 429, 502-504); retried, then shown to the user."""
    return RateLimited(
        tr(
            f"{service} limite le débit ou est indisponible (HTTP {status}). Le connecteur a réessayé ; "
            "relancez plus tard.",
            f"{service} is throttling or unavailable (HTTP {status}). The connector retried; run again later.",
        ),
        retry_after=retry_after,
        connector_id=connector_id,
    )


def network_error(service: str, what: str, *, connector_id: str) -> TransientError:
    """The error for a service that does not answer (``what``: the failure's kind or the end-point, no data)."""
    return TransientError(
        tr(
            f"{service} ne répond pas ({what}). Réessayez plus tard ou vérifiez le réseau.",
            f"{service} is not answering ({what}). Try again later or check the network.",
        ),
        connector_id=connector_id,
    )


def tls_refused(host: str, *, field: str, connector_id: str) -> ConnectorError:
    """The error for a TLS certificate that does not verify (never retried: waiting does not fix it)."""
    return ConnectorError(
        tr(
            f"Certificat TLS de {host} refusé. Vérifiez {field} ; n'indiquez verify_tls = \"/chemin/ca.pem\" "
            "que pour un proxy d'entreprise connu.",
            f"TLS certificate of {host} refused. Check {field}; set verify_tls = \"/path/ca.pem\" only for a "
            "known corporate proxy.",
        ),
        connector_id=connector_id,
    )


def request_error(exc: Exception, *, service: str, connector_id: str, url: str, field: str = "base_url") -> AssocAIError:
    """A ``requests`` failure as an assoc-ai error: TLS refused, network trouble (transient), or anything else."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return tls_refused(urlsplit(url).hostname or url, field=field, connector_id=connector_id)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return network_error(service, type(exc).__name__, connector_id=connector_id)
    return ConnectorError(
        tr(f"Requête {service} impossible : {exc}", f"{service} request failed: {exc}"), connector_id=connector_id
    )


# -- retry policy -------------------------------------------------------------------------------
def is_transient(exc: BaseException) -> bool:
    """The default retry predicate: only :class:`TransientError` is worth another attempt."""
    return isinstance(exc, TransientError)


def retry_after_wait(max_wait: float) -> Callable[[tenacity.RetryCallState], float]:
    """A tenacity wait: the error's ``retry_after`` when the server gave one, else exponential backoff; both bounded."""
    backoff = tenacity.wait_exponential(multiplier=0.5, max=max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), max_wait)
        return backoff(state)

    return wait


def _log_retry(name: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info("%s: retrying after %s", name, type(exc).__name__)

    return before_sleep


def retrying(
    max_attempts: int,
    max_wait: float,
    *,
    name: str = "",
    retry_if: Callable[[BaseException], bool] = is_transient,
) -> tenacity.Retrying:
    """A tenacity policy: retry what ``retry_if`` accepts (TransientError), honour Retry-After, re-raise the last error."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_if),
        stop=tenacity.stop_after_attempt(max(1, int(max_attempts))),
        wait=retry_after_wait(float(max_wait)),
        reraise=True,
        before_sleep=_log_retry(name),
    )


# -- requests -----------------------------------------------------------------------------------
@functools.cache
def _pinned_session_class() -> type[requests.Session]:
    import requests

    class PinnedSession(requests.Session):
        """A session whose own ``verify`` (a CA file, or False) beats ``REQUESTS_CA_BUNDLE``.

        requests lets the environment override ``Session.verify`` (psf/requests#3829); SDKs
        riding on the session (simple-salesforce) give no per-call ``verify``, so it is pinned here.
        """

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> dict[str, Any]:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if self.verify is not True:
                settings["verify"] = self.verify
            return settings

    return PinnedSession


def pinned_session(verify: bool | str = True) -> requests.Session:
    """A ``requests`` session verifying TLS with ``verify`` (True, a CA file, or False), whatever the environment."""
    session = _pinned_session_class()()
    session.verify = verify
    return session


def send(session: requests.Session, method: str, url: str, *, timeout: float, service: str, connector_id: str,
         field: str = "base_url", **kwargs: Any) -> requests.Response:
    """One HTTP call to ``service``; network failures become TransientError, throttling RateLimited."""
    import requests

    # An explicit per-call verify keeps a configured CA file ahead of REQUESTS_CA_BUNDLE (psf/requests#3829).
    kwargs.setdefault("verify", session.verify)
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise request_error(exc, service=service, connector_id=connector_id, url=url, field=field) from exc
    if response.status_code in RETRYABLE_STATUS:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        raise throttled(service, response.status_code, retry_after=wait, connector_id=connector_id)
    return response


class HttpClient:
    """One ``requests`` session for one web API: TLS verified, bounded retries, errors in assoc-ai terms.

    ``service`` names the API in messages (``"CiviCRM"``); ``field`` is the
    configuration key of its address, named when TLS fails.  ``headers`` are
    sent with every call (``Accept: application/json`` and an assoc-ai
    ``User-Agent`` are set by default).  :attr:`last_retry_after` keeps the
    ``Retry-After`` of the last throttled answer, for SDKs riding on
    :attr:`session` whose exceptions hide response headers.
    """

    def __init__(
        self,
        service: str,
        connector_id: str,
        *,
        timeout: float = 30.0,
        verify: bool | str = True,
        max_attempts: int = 5,
        max_retry_wait: float = 60.0,
        headers: Mapping[str, str] | None = None,
        field: str = "base_url",
    ) -> None:
        self.service = service
        self.connector_id = connector_id
        self.timeout = timeout
        self.field = field
        self.last_retry_after: float | None = None
        self._retry = (max_attempts, max_retry_wait)
        self.session = pinned_session(verify)
        self.session.headers.update({"Accept": "application/json", "User-Agent": f"assoc-ai-{connector_id}"})
        self.session.headers.update(dict(headers or {}))
        self.session.hooks["response"].append(self._remember_retry_after)

    def _remember_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        throttled_now = response.status_code in RETRYABLE_STATUS
        self.last_retry_after = parse_retry_after(response.headers.get("Retry-After")) if throttled_now else None

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One attempt: the response, or the assoc-ai error (throttling is :class:`RateLimited`)."""
        return send(self.session, method, url, timeout=self.timeout, service=self.service,
                    connector_id=self.connector_id, field=self.field, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """:meth:`send` with retries; any status that is not retried comes back for the plugin to read."""
        return self.retried(lambda: self.send(method, url, **kwargs))

    def retried(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` under this client's retry policy (for calls that refresh a token between tries)."""
        return retrying(*self._retry, name=self.connector_id)(attempt)

    def failure(self, exc: Exception, url: str) -> AssocAIError:
        """A ``requests`` exception raised by an SDK on :attr:`session`, in assoc-ai terms."""
        return request_error(exc, service=self.service, connector_id=self.connector_id, url=url, field=self.field)

    def close(self) -> None:
        """Close the session; safe twice."""
        self.session.close()
