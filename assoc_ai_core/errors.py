"""Error tree of assoc-ai.

Every error a user can meet derives from :class:`AssocAIError`; the command line
prints its message (already localised) and exits with ``exit_code``.

Exit codes of ``assoc-ai``: 0 success; 1 unexpected error (or actions that failed in a
triage pass); 2 usage error (a bad option or argument: click's own); 3 authentication
refused; 4 unusable data (no message, one category only); 5 plugin error; 6 connector
error; 7 model error; 75 temporary failure, try again later (``EX_TEMPFAIL``);
78 configuration error (``EX_CONFIG``); 130 stopped by Ctrl-C.
"""

from __future__ import annotations


class AssocAIError(Exception):
    """Base of all assoc-ai errors; ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(AssocAIError):
    """Bad or missing configuration."""

    exit_code = 78  # EX_CONFIG; 2 stays click's, for a mistyped command line


class MissingSecretError(ConfigError):
    """A secret reference could not be resolved."""


class DataError(AssocAIError):
    """Input data that cannot be used (no messages, one label only, bad columns)."""

    exit_code = 4


class PluginError(AssocAIError):
    """A plugin failed to load or to validate."""

    exit_code = 5


class UnknownConnectorError(PluginError, KeyError):
    """No installed plugin provides the requested connector id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConnectorError(AssocAIError):
    """A connector failed; upstream exceptions are chained with ``raise ... from``."""

    exit_code = 6

    def __init__(self, message: str, *, connector_id: str = "") -> None:
        super().__init__(message)
        self.connector_id = connector_id


class AuthError(ConnectorError):
    """Login or token refused."""

    exit_code = 3


class CapabilityError(ConnectorError):
    """The server or CRM lacks a feature this operation needs."""


class TransientError(ConnectorError):
    """Network trouble, throttling or time-out: the same call may succeed later."""

    exit_code = 75  # EX_TEMPFAIL: schedulers retry


class ForwardError(ConnectorError):
    """A forward failed after the connection was made; it affects that message only (the run goes on).

    ``maybe_sent``: the connection was lost during the send, the server may
    have accepted it.  ``transient``: worth trying again later (a 4xx reply, a
    lost connection, throttling); otherwise the server refused it for good (a
    5xx reply, Graph's ``ErrorSendAsDenied``).  ``code`` and ``reason`` are
    the server's reply, when there was one.  Connectors that forward natively
    (Gmail, Microsoft 365) raise it too, with their own ``connector_id``.
    """

    def __init__(self, message: str, *, maybe_sent: bool = False, transient: bool = False, code: int | None = None,
                 reason: str = "", connector_id: str = "smtp") -> None:
        super().__init__(message, connector_id=connector_id)
        self.maybe_sent = maybe_sent
        self.transient = transient or maybe_sent
        self.code = code
        self.reason = reason


class ModelError(AssocAIError):
    """A model cannot be trained, loaded or used."""

    exit_code = 7


class UntrustedModelError(ModelError):
    """A model file holds types outside the trusted list (possible code execution)."""


class IncompatibleModelError(ModelError):
    """A model file was written by an incompatible version of assoc-ai."""
