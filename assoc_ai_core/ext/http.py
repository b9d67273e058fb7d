"""HTTP plumbing shared by connectors of web APIs (CRMs): retries, Retry-After, TLS, errors in assoc-ai terms.

Only :class:`~assoc_ai_core.errors.TransientError` is retried (429, 502-504,
network trouble); a ``Retry-After`` header sets the wait.  Nothing here logs a
request body, a token or a personal field.  Needs ``requests``, which the
plugins using :func:`send` depend on (the core itself does not); the rest has no
such dependency.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import tenacity

if TYPE_CHECKING:  # requests is needed only by send(); connectors on other HTTP clients use the rest
    import requests

from assoc_ai_core.errors import ConfigError, ConnectorError, TransientError
from assoc_ai_core.i18n import tr

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class RateLimited(TransientError):
    """Throttled or temporarily unavailable; ``retry_after`` seconds come from the server when it says."""

    def __init__(self, message: str, *, retry_after: float | None = None, connector_id: str = "") -> None:
        super().__init__(message, connector_id=connector_id)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def check_base_url(url: str, *, field: str, connector_id: str) -> str:
    """Refuse plain-HTTP URLs except on loopback (tests), so secrets never travel in clear."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return url.rstrip("/")
    raise ConfigError(
        tr(
            f"[connectors.{connector_id}].{field} doit être une adresse https:// (reçu : {url!r}).",
            f"[connectors.{connector_id}].{field} must be an https:// address (got: {url!r}).",
        )
    )


def retry_after_wait(max_wait: float) -> Callable[[tenacity.RetryCallState], float]:
    """A tenacity wait: the error's ``retry_after`` when the server gave one, else exponential backoff."""
    backoff = tenacity.wait_exponential(multiplier=0.5, max=max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), max_wait)
        return backoff(state)

    return wait


def retrying(max_attempts: int, max_wait: float, *, name: str = "") -> tenacity.Retrying:
    """A tenacity policy: retry TransientError only, honour Retry-After, re-raise the last error."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=tenacity.stop_after_attempt(max(1, max_attempts)),
        wait=retry_after_wait(max_wait),
        reraise=True,
        before_sleep=lambda s: log.info("%s: retrying after %s", name, type(s.outcome.exception()).__name__),
    )


def send(session: requests.Session, method: str, url: str, *, timeout: float, service: str, connector_id: str,
         **kwargs: Any) -> requests.Response:
    """One HTTP call to ``service``; network failures become TransientError, throttling RateLimited."""
    import requests

    # An explicit per-call verify keeps a configured CA file ahead of REQUESTS_CA_BUNDLE (psf/requests#3829).
    kwargs.setdefault("verify", session.verify)
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.exceptions.SSLError as exc:
        raise ConnectorError(
            tr(
                f"Certificat TLS refusé pour {urlsplit(url).hostname} : vérifiez l'adresse (verify_tls).",
                f"TLS certificate refused for {urlsplit(url).hostname}: check the address (verify_tls).",
            ),
            connector_id=connector_id,
        ) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(
            tr(
                f"{service} ne répond pas ({type(exc).__name__}). Réessayez plus tard ou vérifiez le réseau.",
                f"{service} is not answering ({type(exc).__name__}). Try again later or check the network.",
            ),
            connector_id=connector_id,
        ) from exc
    except requests.RequestException as exc:
        raise ConnectorError(
            tr(f"Requête {service} impossible : {exc}", f"{service} request failed: {exc}"), connector_id=connector_id
        ) from exc
    if response.status_code in RETRYABLE_STATUS:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimited(
            tr(
                f"{service} (ou son serveur web) limite le débit ou est indisponible (HTTP {response.status_code}). "
                "Le connecteur a réessayé ; relancez plus tard.",
                f"{service} (or its web server) is throttling or unavailable (HTTP {response.status_code}). "
                "The connector retried; run again later.",
            ),
            retry_after=wait,
            connector_id=connector_id,
        )
    return response
