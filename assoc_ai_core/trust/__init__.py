"""Trust: GDPR access and erasure, retention, and model cards.

This layer sits above :mod:`assoc_ai_core.jobs`: it reads and rewrites the
job's state store and model registry through their own methods.

* :mod:`~assoc_ai_core.trust.privacy` — what access and erasure share: the
  configuration, who the person is, the people files, the job lock;
* :mod:`~assoc_ai_core.trust.access` — the access-request export (JSON + HTML);
* :mod:`~assoc_ai_core.trust.erasure` — erasure, with a counting dry run;
* :mod:`~assoc_ai_core.trust.modelcard` — the model card (Markdown + HTML).
"""

# Used from its modules (assoc_ai_core.trust.access, .erasure, .modelcard).
__all__: list[str] = []
