"""Constants of the IMAP connector (no logic here)."""

from __future__ import annotations

DEFAULT_FOLDER = "INBOX"
PAGE_SIZE = 100  # messages per page handed to the host: small enough to commit often
FETCH_CHUNK = 200  # messages per FETCH when reading a whole folder for training
BATCH_CHUNK = 500  # UIDs per MOVE / COPY / STORE of a batch: keeps each command line short
KEY_SEARCH_CHUNK = 25  # Message-IDs OR-ed in one SEARCH when looking for several messages at once
LOCATE_SEARCH_LIMIT = 20  # above this many keys, one header FETCH per folder beats one SEARCH per key
IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: servers may end an IDLE after 30 minutes
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
TLS_MODES = ("ssl", "starttls", "none")
OAUTH2_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
