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
#: history.list event types the correction check reads: a message changed labels or was deleted.
CHANGE_TYPES = ("labelAdded", "labelRemoved", "messageDeleted")
#: locate() calls this close together share one reading of the history (the job asks 200 messages at a time).
LOCATE_SESSION_SECONDS = 30.0

#: Gmail limits (published in the API reference).
BATCH_MODIFY_MAX_IDS = 1000
LIST_MAX_RESULTS = 500
#: messages.send through the upload endpoint takes at most 35 MB (its mediaUpload maxSize).
MAX_SEND_BYTES = 35 * 1024 * 1024

#: Where ``assoc-ai gmail auth --keyring NAME`` stores the token.
KEYRING_SERVICE = "assoc-ai-gmail"

#: Header that marks mail sent by assoc-ai (RFC 3834 value for forwards).
AUTO_SUBMITTED = "auto-forwarded"
