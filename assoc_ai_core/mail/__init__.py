"""The mail layer: read, parse, clean, pseudonymise, featurise, classify, explain, evaluate, report.

Where data enters: :mod:`~assoc_ai_core.mail.sources` (folders, Maildir, mbox,
CSV/JSONL) and :mod:`~assoc_ai_core.mail.parsing` (RFC 822 bytes to
:class:`~assoc_ai_core.records.Message`).  Where it is cleaned:
:mod:`~assoc_ai_core.mail.cleaning`, :mod:`~assoc_ai_core.mail.html` and
:mod:`~assoc_ai_core.mail.pseudonymise`.  Where the model lives:
:mod:`~assoc_ai_core.mail.model` (with :mod:`~assoc_ai_core.mail.ngrams` and
:mod:`~assoc_ai_core.mail.embeddings`), trained in named steps:
:mod:`~assoc_ai_core.mail.label_names`, :mod:`~assoc_ai_core.mail.search`,
:mod:`~assoc_ai_core.mail.thresholds`, :mod:`~assoc_ai_core.mail.metadata`.
Why it decided: :mod:`~assoc_ai_core.mail.explain`.  How well:
:mod:`~assoc_ai_core.mail.evaluate` and :mod:`~assoc_ai_core.mail.report`.

This layer never imports :mod:`assoc_ai_core.people`, the jobs, or the CLI.
Its modules are the core's own: other code (and the CLI in particular) uses
the public functions of :mod:`assoc_ai_core.api`.  Each module's ``__all__``
lists what the other layers of the core may use.
"""

__all__: list[str] = []
