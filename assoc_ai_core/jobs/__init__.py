"""The scheduled mailbox job: settings, triage plan and execution, state and audit trail, model registry,
retraining, forwarding, acknowledgements and monitoring.

Where actions reach the mailbox: :mod:`~assoc_ai_core.jobs.triage` calls the
connector contract of :mod:`assoc_ai_core.ext.connectors`; every decision is
written to :mod:`~assoc_ai_core.jobs.state` before and after it is carried out.
Erasure and access requests (:mod:`assoc_ai_core.trust`) sit above this layer
and use what the state store offers.
"""

# The job is used from its modules (assoc_ai_core.jobs.triage, .settings, .retrain...).
__all__: list[str] = []
