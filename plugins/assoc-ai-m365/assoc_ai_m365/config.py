"""Settings of the Microsoft 365 connector (the ``[mailbox]`` section with ``connector = "m365"``).

Two ways to sign in, chosen by which credential is given:

* **application** (unattended job on a server): ``client_certificate`` (a PEM
  file holding the private key and its certificate; preferred) or
  ``client_secret``; the app reads one shared mailbox, limited to it by an
  Exchange application access policy (see ``docs/m365.md``);
* **delegated** (a volunteer's account): ``token_cache`` names the file written
  by ``assoc-ai m365 auth`` (browser sign-in on a loopback address, or device
  code); refresh tokens are rotated into that same file.

``actions`` lists what the job does to the mailbox (``move``, ``label``,
``forward``); only the permissions those need are asked for (see
:meth:`M365Config.permissions`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.i18n import tr

CONNECTOR_ID = "m365"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
WHERE = f'[mailbox] (connector = "{CONNECTOR_ID}")'

# Outlook's 25 colour presets (outlookCategory.color); names as the Outlook desktop client shows them.
COLOR_PRESETS: dict[str, str] = {
    name.lower(): f"preset{i}"
    for i, name in enumerate(
        "Red Orange Brown Yellow Green Teal Olive Blue Purple Cranberry Steel DarkSteel Gray DarkGray Black "
        "DarkRed DarkOrange DarkBrown DarkYellow DarkGreen DarkTeal DarkOlive DarkBlue DarkPurple DarkCranberry".split()
    )
}
_PRESET_RE = re.compile(r"^preset([0-9]|1[0-9]|2[0-4])$", re.IGNORECASE)
ACTIONS = ("move", "label", "forward")


def normalise_color(value: str) -> str:
    """``"preset7"``, ``"Blue"`` or ``"none"`` to the constant Graph expects; ConfigError otherwise."""
    v = value.strip()
    if _PRESET_RE.match(v):
        return v.lower()
    if v.lower() == "none":
        return "none"
    if v.lower() in COLOR_PRESETS:
        return COLOR_PRESETS[v.lower()]
    raise ConfigError(
        tr(
            f"{WHERE} category_colors : couleur inconnue « {value} ». "
            f"Utilisez preset0 à preset24 ou un nom : {', '.join(sorted(COLOR_PRESETS))}.",
            f"{WHERE} category_colors: unknown colour '{value}'. "
            f"Use preset0 to preset24 or a name: {', '.join(sorted(COLOR_PRESETS))}.",
        )
    )


def _require_https(url: str, key: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            tr(
                f"{WHERE} {key} doit être une adresse https:// (reçu : {url!r}).",
                f"{WHERE} {key} must be an https:// address (got: {url!r}).",
            )
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class M365Config:
    """Configuration of :class:`~assoc_ai_m365.connector.M365Connector`.

    ``mailbox`` is the address of the shared mailbox (``info@asso.org``), or
    ``"me"`` for the signed-in user's own mailbox in delegated mode.
    """

    mailbox: str
    client_id: str
    tenant: str
    client_secret: Secret | None = None
    client_certificate: str | None = None
    token_cache: str | None = None
    account: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_url: str = DEFAULT_GRAPH_URL
    ca_bundle: str | None = None
    timeout: float = 30.0
    max_retries: int = 5
    retry_backoff: float = 1.0
    max_retry_wait: float = 120.0
    category_colors: Mapping[str, str] = field(default_factory=dict)
    default_category_color: str = "preset7"
    actions: tuple[str, ...] = ACTIONS
    locate_window_days: int = 62

    def __post_init__(self) -> None:
        where = WHERE
        for key in ("mailbox", "client_id", "tenant"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    tr(f"{where} : la clé « {key} » est vide.", f"{where}: key '{key}' is empty.")
                )
        if self.client_secret is None and not self.client_certificate and not self.token_cache:
            raise ConfigError(
                tr(
                    f"{where} : indiquez client_secret ou client_certificate (accès application à la boîte "
                    "partagée) ou token_cache (compte délégué, fichier écrit par « assoc-ai m365 auth »).",
                    f"{where}: set client_secret or client_certificate (application access to the shared "
                    "mailbox) or token_cache (delegated account, file written by 'assoc-ai m365 auth').",
                )
            )
        if self.client_secret is not None and self.client_certificate:
            raise ConfigError(
                tr(
                    f"{where} : client_secret et client_certificate sont exclusifs ; gardez le certificat.",
                    f"{where}: client_secret and client_certificate exclude each other; keep the certificate.",
                )
            )
        actions = (self.actions,) if isinstance(self.actions, str) else tuple(self.actions)
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise ConfigError(
                tr(
                    f"{where} actions : action inconnue {unknown[0]!r} ; possibles : {', '.join(ACTIONS)}.",
                    f"{where} actions: unknown action {unknown[0]!r}; possible: {', '.join(ACTIONS)}.",
                )
            )
        object.__setattr__(self, "actions", tuple(a for a in ACTIONS if a in actions))
        if not isinstance(self.locate_window_days, int) or self.locate_window_days < 1:
            raise ConfigError(
                tr(f"{where} locate_window_days doit être un entier ≥ 1.",
                   f"{where} locate_window_days must be an integer >= 1.")
            )
        if self.client_secret is not None and not isinstance(self.client_secret, Secret):
            object.__setattr__(self, "client_secret", Secret(str(self.client_secret)))
        if self.app_only and self.mailbox.strip().lower() == "me":
            raise ConfigError(
                tr(
                    f"{where} : avec client_secret ou client_certificate (accès application) il n'y a pas "
                    'd\'utilisateur connecté ; mettez l\'adresse de la boîte partagée dans mailbox (ex. "info@asso.org").',
                    f"{where}: with client_secret or client_certificate (application access) there is no signed-in "
                    'user; put the shared mailbox address in mailbox (e.g. "info@asso.org").',
                )
            )
        object.__setattr__(self, "authority_host", _require_https(self.authority_host, "authority_host"))
        object.__setattr__(self, "graph_url", _require_https(self.graph_url, "graph_url"))
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(
                tr(f"{where} max_retries doit être un entier ≥ 0.", f"{where} max_retries must be an integer >= 0.")
            )
        for key in ("timeout", "retry_backoff", "max_retry_wait"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(
                    tr(f"{where} {key} doit être un nombre ≥ 0.", f"{where} {key} must be a number >= 0.")
                )
        colours = {str(k): normalise_color(str(v)) for k, v in dict(self.category_colors).items()}
        object.__setattr__(self, "category_colors", colours)
        object.__setattr__(self, "default_category_color", normalise_color(self.default_category_color))

    @property
    def app_only(self) -> bool:
        """True when signing in as the application (client secret or certificate)."""
        return self.client_secret is not None or bool(self.client_certificate)

    @property
    def shared_delegated(self) -> bool:
        """True when a signed-in person works in another (shared) mailbox."""
        return not self.app_only and self.mailbox.strip().lower() != "me"

    def permissions(self) -> list[str]:
        """The Graph permissions the configured ``actions`` need, least first (names as Entra shows them).

        Reading (new mail, where decided mail is now) needs ``Mail.Read``;
        moving, categories and folders need ``Mail.ReadWrite``; forwarding
        needs ``Mail.Send`` and ``Mail.ReadWrite`` (large forwards are
        drafts with an uploaded attachment); category colours need
        ``MailboxSettings.ReadWrite``, asked for only with ``label`` and
        never for a shared mailbox in delegated mode (Graph does not share
        another mailbox's settings).  Delegated access to a shared mailbox
        uses the ``.Shared`` variants.
        """
        acts = set(self.actions)
        names = ["Mail.ReadWrite" if acts else "Mail.Read"]
        if "forward" in acts:
            names.append("Mail.Send")
        if self.shared_delegated:
            return [f"{n}.Shared" for n in names]
        if "label" in acts:
            names.append("MailboxSettings.ReadWrite")
        return names

    @property
    def user_path(self) -> str:
        """The Graph path of the mailbox: ``/me`` or ``/users/{address}``."""
        box = self.mailbox.strip()
        return "/me" if box.lower() == "me" else f"/users/{box}"

    @property
    def graph_origin(self) -> str:
        """``scheme://host[:port]`` of Graph; links from the server must stay on it."""
        parts = urlsplit(self.graph_url)
        return f"{parts.scheme}://{parts.netloc}"

    def color_for(self, label: str) -> str:
        """The colour preset to give a new category named ``label``."""
        return self.category_colors.get(label, self.default_category_color)
