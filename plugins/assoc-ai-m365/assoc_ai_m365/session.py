"""The ``requests`` session shared by msal and the Graph client.

``requests`` lets the ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` environment
variables override ``Session.verify`` for every request that does not pass
``verify`` itself.  A ``ca_bundle`` written in the configuration must win (it
is the corporate proxy's root, or the tests' loopback CA), so this session
passes it on each request.
"""

from __future__ import annotations

from typing import Any

import requests

USER_AGENT = "assoc-ai-m365/0.1"


class PinnedVerifySession(requests.Session):
    """A session whose ``verify`` setting is applied to every request, whatever the environment says."""

    def __init__(self, verify: bool | str = True) -> None:
        super().__init__()
        self.verify = verify
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request with this session's ``verify`` unless the caller chose one."""
        if kwargs.get("verify") is None and isinstance(self.verify, str):
            kwargs["verify"] = self.verify
        name = method.decode("ascii") if isinstance(method, bytes) else method
        return super().request(name, url, *args, **kwargs)


def make_session(ca_bundle: str | None) -> PinnedVerifySession:
    """A session verifying TLS with ``ca_bundle`` when given, else the system's trust store."""
    return PinnedVerifySession(ca_bundle or True)
