"""HTTP plumbing for the Dolibarr API: the core's shared helpers (assoc_ai_core.ext.http), bound to this connector."""

from __future__ import annotations

from typing import Any

import requests
import tenacity

from assoc_ai_core.ext import http as webapi
from assoc_ai_core.ext.http import RateLimited, parse_retry_after

__all__ = ["CONNECTOR_ID", "RateLimited", "check_base_url", "parse_retry_after", "retrying", "send"]

CONNECTOR_ID = "dolibarr"
SERVICE = "Dolibarr"


def check_base_url(url: str, *, field: str) -> str:
    """Refuse plain-HTTP URLs except on loopback (tests), so secrets never travel in clear."""
    return webapi.check_base_url(url, field=field, connector_id=CONNECTOR_ID)


def retrying(max_attempts: int, max_wait: float) -> tenacity.Retrying:
    """Retry TransientError only, honour Retry-After, re-raise the last error."""
    return webapi.retrying(max_attempts, max_wait, name=CONNECTOR_ID)


def send(session: requests.Session, method: str, url: str, *, timeout: float, **kwargs: Any) -> requests.Response:
    """One HTTP call; network failures become TransientError, throttling RateLimited."""
    return webapi.send(session, method, url, timeout=timeout, service=SERVICE, connector_id=CONNECTOR_ID, **kwargs)
