"""Extension contracts: what a plugin author imports.

* :mod:`~assoc_ai_core.ext.hookspecs` — the hooks (``register_connectors``,
  ``register_commands``, ``resolve_secret``, ``decision_recorded``);
* :mod:`~assoc_ai_core.ext.plugins` — the plugin manager (entry points, env switches);
* :mod:`~assoc_ai_core.ext.connectors` — the connector base classes and the mailbox contract;
* :mod:`~assoc_ai_core.ext.crm` — the CRM contract;
* :mod:`~assoc_ai_core.ext.http` — a shared HTTP client (TLS verified, retries honouring Retry-After);
* :mod:`~assoc_ai_core.ext.paging` — following an API's pages (offset, token, next link);
* :mod:`~assoc_ai_core.ext.config` — configuration files and secrets;
* :mod:`~assoc_ai_core.ext.subject` — ``[#Catégorie]`` subject tags on raw messages;
* :mod:`~assoc_ai_core.ext.headers` — decoding headers and the audit key of a raw message;
* :mod:`~assoc_ai_core.ext.values` — reading amounts as CRMs and spreadsheets write them.

This layer sits below the mail and people layers: a connector never needs the
model to be imported.
"""

# The contracts are used from their modules (assoc_ai_core.ext.connectors, .crm, .hookspecs...).
__all__: list[str] = []
