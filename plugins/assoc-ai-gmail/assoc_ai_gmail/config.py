"""Settings of one Gmail mailbox (section ``[mailbox]`` with ``connector = "gmail"``)."""

from __future__ import annotations

from dataclasses import dataclass

from assoc_ai_core.ext.config import Secret
from assoc_ai_core.i18n import tr


@dataclass(frozen=True)
class GmailConfig:
    """Settings of one Gmail mailbox (section ``[mailbox]`` with ``connector = "gmail"``).

    Authenticate with **one** of:

    * ``token`` — reference to the file written by ``assoc-ai gmail auth``,
      e.g. ``token = { file = "/var/lib/assoc-ai/gmail-token.json" }``;
    * ``token_keyring`` — the name given to ``assoc-ai gmail auth --keyring``;
    * ``service_account_file`` + ``subject`` — a Workspace service account with
      domain-wide delegation, acting as the mailbox ``subject``.

    ``label_prefix`` starts the name of the labels :meth:`GmailConnector.add_label`
    attaches (``Adhésion`` -> ``#Adhésion``): on Gmail every label is also a
    folder, and the prefix is what keeps these *tags* apart from the labels
    that say where a message is filed.  An empty prefix makes them folders too.

    ``checkpoint_file`` is where the correction check keeps the history point
    it last read (see :mod:`assoc_ai_gmail.checkpoint`); by default a file per
    mailbox under ``$ASSOC_AI_HOME/gmail/`` (or the user data folder).  Give
    each job its own file when two jobs share one mailbox.

    ``api_endpoint`` and ``auth_endpoint`` (the OAuth 2.0 token URL) default to
    Google's; set them only for a proxy or a test server.
    """

    token: Secret | None = None
    token_keyring: str | None = None
    service_account_file: str | None = None
    subject: str | None = None
    user_id: str = "me"
    label_prefix: str = "#"
    checkpoint_file: str | None = None
    api_endpoint: str | None = None
    auth_endpoint: str | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 5
    batch_size: int = 20
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def __post_init__(self) -> None:
        ways = [w for w, v in (("token", self.token), ("token_keyring", self.token_keyring),
                               ("service_account_file", self.service_account_file)) if v]
        if len(ways) > 1:
            raise ValueError(
                tr(f"choisissez une seule façon de se connecter à Gmail, pas {', '.join(ways)}.",
                   f"choose one way to sign in to Gmail, not {', '.join(ways)}.")
            )
        if self.timeout_seconds <= 0 or self.max_retries < 0 or self.backoff_max_seconds < 0:
            raise ValueError(
                tr("timeout_seconds doit être > 0, max_retries et backoff_max_seconds >= 0.",
                   "timeout_seconds must be > 0, max_retries and backoff_max_seconds >= 0.")
            )
        if not 1 <= self.batch_size <= 100:
            raise ValueError(tr("batch_size doit être entre 1 et 100 (Gmail conseille 50 au plus).",
                                "batch_size must be between 1 and 100 (Gmail advises 50 at most)."))
