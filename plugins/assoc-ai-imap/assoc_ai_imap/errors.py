"""Turning imapclient, socket and TLS exceptions into assoc-ai errors.

No raw library exception leaves the connector: a volunteer reading the job's
output gets one sentence, in French or English, saying what went wrong and
what to do; the original exception stays chained (``raise ... from``) for
developers.
"""

from __future__ import annotations

import socket
import ssl

from imapclient import exceptions as imap_exc

from assoc_ai_core.errors import AuthError, CapabilityError, ConnectorError, TransientError
from assoc_ai_core.i18n import tr

CONNECTOR_ID = "imap"
_TEMPORARY_CODES = ("[UNAVAILABLE]", "[INUSE]", "[SERVERBUG]", "[LIMIT]")
_LOST_CONNECTION_SSL = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)


def _server_text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
        text = text[2:-1]
    return text[:300]


def _error(kind: type[ConnectorError], fr: str, en: str) -> ConnectorError:
    return kind(tr(fr, en), connector_id=CONNECTOR_ID)


def _login_error(exc: imap_exc.LoginError, where: str) -> ConnectorError:
    text = _server_text(exc)
    if any(code in text for code in _TEMPORARY_CODES):
        return _error(TransientError, f"{where} : connexion refusée temporairement ({text}). Réessayez plus tard.",
                      f"{where}: login temporarily refused ({text}). Try again later.")
    return _error(
        AuthError,
        f"{where} : identifiant ou mot de passe refusé ({text}). Vérifiez username et le mot de passe ; "
        "chez la plupart des fournisseurs il faut un « mot de passe d'application » (voir docs/imap.md).",
        f"{where}: login or password refused ({text}). Check username and the password; most providers "
        "need an 'app password' (see docs/imap.md).",
    )


def _network_error(exc: BaseException, where: str) -> ConnectorError | None:
    """TLS and DNS failures, which say what to check in the settings; None for other errors."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or exc
        return _error(ConnectorError,
                      f"{where} : certificat TLS refusé ({why}). Vérifiez le nom du serveur ; pour un "
                      "certificat auto-signé, indiquez son fichier avec ca_file.",
                      f"{where}: TLS certificate refused ({why}). Check the server name; for a "
                      "self-signed certificate, give its file with ca_file.")
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, _LOST_CONNECTION_SSL):
        reason = getattr(exc, "reason", None) or exc
        return _error(ConnectorError,
                      f"{where} : échec de la négociation TLS ({reason}). Vérifiez port et tls "
                      "(993 avec tls = \"ssl\", 143 avec tls = \"starttls\").",
                      f"{where}: TLS handshake failed ({reason}). Check port and tls "
                      "(993 with tls = \"ssl\", 143 with tls = \"starttls\").")
    if isinstance(exc, socket.gaierror):
        if exc.errno == socket.EAI_AGAIN:
            return _error(TransientError, f"{where} : résolution DNS impossible pour l'instant. Réessayez plus tard.",
                          f"{where}: DNS lookup failed for now. Try again later.")
        return _error(ConnectorError, f"{where} : serveur introuvable. Vérifiez l'orthographe de host.",
                      f"{where}: server not found. Check the spelling of host.")
    return None


def _server_error(exc: imap_exc.IMAPClientError, action: str, where: str) -> ConnectorError:
    text = _server_text(exc)
    if any(code in text for code in _TEMPORARY_CODES) or "illegal in state LOGOUT" in text:
        return _error(TransientError,
                      f"{where} : le serveur est indisponible pour « {action} » ({text}). Réessayez plus tard.",
                      f"{where}: the server is unavailable for '{action}' ({text}). Try again later.")
    return _error(ConnectorError, f"{where} : le serveur a refusé « {action} » ({text}).",
                  f"{where}: the server refused '{action}' ({text}).")


def translate(exc: BaseException, *, action: str, host: str) -> ConnectorError:
    """The assoc-ai error for ``exc``, raised while doing ``action`` on ``host``."""
    if isinstance(exc, ConnectorError):
        return exc
    where = f"IMAP {host}"
    if isinstance(exc, imap_exc.LoginError):
        return _login_error(exc, where)
    if isinstance(exc, imap_exc.CapabilityError):
        return _error(CapabilityError,
                      f"{where} : le serveur ne sait pas faire ce qu'il faut pour « {action} » ({_server_text(exc)}).",
                      f"{where}: the server lacks what '{action}' needs ({_server_text(exc)}).")
    network = _network_error(exc, where)
    if network is not None:
        return network
    if isinstance(exc, (imap_exc.IMAPClientAbortError, OSError, EOFError)):
        return _error(TransientError,
                      f"{where} : connexion perdue pendant « {action} » ({type(exc).__name__}). "
                      "Le serveur est peut-être redémarré ou injoignable ; réessayez plus tard.",
                      f"{where}: connection lost during '{action}' ({type(exc).__name__}). "
                      "The server may be restarting or out of reach; try again later.")
    if isinstance(exc, imap_exc.IMAPClientError):
        return _server_error(exc, action, where)
    return _error(ConnectorError, f"{where} : erreur inattendue pendant « {action} » ({type(exc).__name__}: {exc}).",
                  f"{where}: unexpected error during '{action}' ({type(exc).__name__}: {exc}).")


def is_connection_broken(error: ConnectorError) -> bool:
    """True when the connection must be dropped and opened again after ``error``."""
    return isinstance(error, TransientError)
