"""Constants of the Gmail connector."""

from __future__ import annotations

#: The only scope assoc-ai asks for: read mail, change labels, send (forward).
#: It cannot delete mail permanently nor change settings.
SCOPE = "https://www.googleapis.com/auth/gmail.modify"
SCOPES = (SCOPE,)

#: The label Gmail uses for the inbox (a system label: its id and its name).
INBOX = "INBOX"
TRASH = "TRASH"
SPAM = "SPAM"

#: System labels that say something about a message but are not "where it is filed".
NON_FOLDER_SYSTEM_LABELS = frozenset(
    {"UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT", "CHAT", "TRASH"}
)
NON_FOLDER_PREFIXES = ("CATEGORY_",)

#: history.list event types the incremental sync reads.
HISTORY_TYPES = ("messageAdded", "labelAdded", "labelRemoved")

#: Gmail limits (published in the API reference).
BATCH_MODIFY_MAX_IDS = 1000
LIST_MAX_RESULTS = 500

#: Where ``assoc-ai gmail auth --keyring NAME`` stores the token.
KEYRING_SERVICE = "assoc-ai-gmail"

#: Header that marks mail sent by assoc-ai (RFC 3834 value for forwards).
AUTO_SUBMITTED = "auto-forwarded"
