"""The mail layer: read, parse, clean, pseudonymise, featurise, classify, explain, evaluate, report.

Where data enters: :mod:`~assoc_ai_core.mail.sources` (folders, Maildir, mbox,
CSV/JSONL) and :mod:`~assoc_ai_core.mail.parsing` (RFC 822 bytes to
:class:`~assoc_ai_core.records.Message`).  Where it is cleaned:
:mod:`~assoc_ai_core.mail.cleaning`, :mod:`~assoc_ai_core.mail.html` and
:mod:`~assoc_ai_core.mail.pseudonymise`.  Where the model lives:
:mod:`~assoc_ai_core.mail.model` (with :mod:`~assoc_ai_core.mail.ngrams` and
:mod:`~assoc_ai_core.mail.embeddings`).  Why it decided:
:mod:`~assoc_ai_core.mail.explain`.

This layer never imports :mod:`assoc_ai_core.people`, the jobs, or the CLI;
use :mod:`assoc_ai_core.api` for the public functions.
"""
