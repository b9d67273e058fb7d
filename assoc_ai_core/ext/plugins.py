"""Finding and loading plugins, and calling their hooks.

Plugins are found through the ``assoc_ai`` entry-point group.  A plugin that
fails to load is reported and skipped, so one broken connector never stops the
others; ``ASSOC_AI_STRICT_PLUGINS=1`` (or ``load_plugins(strict=True)``) makes
it an error, for CI.  ``ASSOC_AI_LOAD_PLUGINS`` limits loading to a
comma-separated list of distributions (empty: none), ``ASSOC_AI_BLOCK_PLUGINS``
blocks some.  The built-in plugins are registered last.

Every hook is called through pluggy (``pm.hook.<name>(...)``, or a subset
caller when only one plugin must answer), never on a plugin module directly:
that is what lets a hook gain parameters without breaking the plugins that do
not take them.  ``ASSOC_AI_TRACE_PLUGINS=1`` (or :func:`trace_plugin_calls`)
logs each hook call to the ``assoc_ai_core.plugins`` logger, secrets and
personal data left out.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from assoc_ai_core.errors import AssocAIError, PluginError
from assoc_ai_core.ext import hookspecs
from assoc_ai_core.ext.config import Secret, build_config, describe_fields
from assoc_ai_core.ext.connectors import Capability, Connector, ConnectorRegistry
from assoc_ai_core.i18n import tr

log = logging.getLogger(__name__)
trace_log = logging.getLogger("assoc_ai_core.plugins")

ENTRY_POINT_GROUP = "assoc_ai"
DEFAULT_PLUGINS = ("assoc_ai_core.default_plugins.local_mail", "assoc_ai_core.default_plugins.people_files")
# Hook arguments the trace may show as they are: names chosen by the code, never a value a person or a vault gave.
TRACED_AS_IS = frozenset({"connector_id", "field"})


@dataclass
class PluginInfo:
    """One plugin as ``assoc-ai plugins`` shows it."""

    name: str
    distribution: str = ""
    version: str = ""
    hooks: list[str] = field(default_factory=list)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


pm = pluggy.PluginManager(hookspecs.PROJECT)
pm.add_hookspecs(hookspecs)
_loaded = False
_failures: list[PluginInfo] = []
_sources: dict[str, tuple[str, str]] = {}
_undo_trace: Callable[[], None] | None = None


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [x.strip() for x in raw.split(",") if x.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def load_plugins(*, strict: bool | None = None) -> pluggy.PluginManager:
    """Load default and installed plugins once; return the plugin manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    if _env_flag("ASSOC_AI_TRACE_PLUGINS"):
        trace_plugin_calls()
    strict = _env_flag("ASSOC_AI_STRICT_PLUGINS") if strict is None else strict
    for blocked in _env_list("ASSOC_AI_BLOCK_PLUGINS") or []:
        pm.set_blocked(blocked)
    only = _env_list("ASSOC_AI_LOAD_PLUGINS")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load_entry_point(ep, only=only, strict=strict)
    for name in DEFAULT_PLUGINS:
        if not pm.has_plugin(name) and not pm.is_blocked(name):
            pm.register(importlib.import_module(name), name=name)
    return pm


def _load_entry_point(ep: EntryPoint, *, only: list[str] | None, strict: bool) -> None:
    """Register one installed plugin; a failure is a warning (an error when ``strict``)."""
    dist = ep.dist.name if ep.dist is not None else ep.name
    version = ep.dist.version if ep.dist is not None else ""
    if only is not None and dist not in only and ep.name not in only:
        return
    if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
        return
    try:
        module = ep.load()
        pm.register(module, name=ep.name)
        pm.check_pending()
        _sources[ep.name] = (dist, version)
    except Exception as exc:  # a broken third-party plugin must not stop the others
        if pm.has_plugin(ep.name):
            pm.unregister(name=ep.name)
        message = tr(
            f"Le plugin {ep.name} ({dist}) n'a pas pu être chargé : {exc}. Il est ignoré.",
            f"Plugin {ep.name} ({dist}) failed to load: {exc}. It is skipped.",
        )
        if strict:
            raise PluginError(message) from exc
        warnings.warn(message, stacklevel=3)  # points at the caller of load_plugins
        _failures.append(PluginInfo(name=ep.name, distribution=dist, version=version, error=str(exc)))


def register_plugin(module: ModuleType | object, name: str | None = None) -> None:
    """Register a plugin object by hand (tests, unpackaged scripts)."""
    load_plugins()
    pm.register(module, name=name)
    pm.check_pending()


def connector_registry() -> ConnectorRegistry:
    """A registry filled by every loaded plugin's ``register_connectors``."""
    load_plugins()
    registry = ConnectorRegistry()
    pm.hook.register_connectors(registry=registry)
    return registry


def get_connector_class(connector_id: str) -> type[Connector]:
    """The connector class for ``connector_id``; clear error listing installed ones."""
    return connector_registry().get(connector_id)


def describe_connector(cls: type[Connector]) -> dict[str, Any]:
    """Id, kind, capabilities and config fields (secrets flagged) of a connector class."""
    return {
        "id": cls.id,
        "kind": cls.kind,
        "capabilities": sorted(c.value if isinstance(c, Capability) else str(c) for c in cls.capabilities),
        "config": describe_fields(cls.Config),
        "description": cls.description,
    }


def secret_from_plugins(connector_id: str, field: str) -> Secret | None:
    """Ask the plugins' ``resolve_secret`` hook (first answer wins) for ``connector_id``'s ``field``.

    A provider that raises an :class:`~assoc_ai_core.errors.AssocAIError` stops the search; any other
    exception is logged (its type only, a message could hold the secret) and counts as no answer.
    """
    load_plugins()
    try:
        value = pm.hook.resolve_secret(connector_id=connector_id, field=field)
    except AssocAIError:
        raise
    except Exception as exc:  # a broken secret provider must not look like a missing or wrong password
        log.warning(tr(f"Le hook resolve_secret a échoué pour {connector_id}.{field} : {type(exc).__name__}",
                       f"The resolve_secret hook failed for {connector_id}.{field}: {type(exc).__name__}"))
        return None
    if value is None:
        return None
    return value if isinstance(value, Secret) else Secret(str(value))


def notify_observers(hook_name: str, **kwargs: Any) -> list[tuple[str, BaseException]]:
    """Call every plugin's ``hook_name`` through pluggy, each on its own, so one failing observer silences no other.

    pluggy stops a hook call at the first implementation that raises; for an
    observer hook (``decision_recorded``) every plugin must hear every event.
    Returns ``(plugin name, exception)`` for each implementation that raised.
    """
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    everyone = [p for _, p in pm.list_name_plugin() if p is not None]
    failures: list[tuple[str, BaseException]] = []
    for impl in impls:
        alone = pm.subset_hook_caller(hook_name, remove_plugins=[p for p in everyone if p is not impl.plugin])
        try:
            alone(**kwargs)
        except Exception as exc:  # reported to the caller, which decides how loud to be
            failures.append((impl.plugin_name, exc))
    return failures


def build_connector_config(config_cls: type, section: Mapping[str, Any], *, where: str) -> Any:
    """:func:`~assoc_ai_core.ext.config.build_config` with the plugins as a secret source.

    ``{ plugin = "..." }`` references, and required secret fields the section
    leaves out, are asked of the ``resolve_secret`` hook.
    """
    return build_config(config_cls, section, where=where, secrets=secret_from_plugins)


def get_plugins() -> list[PluginInfo]:
    """Every plugin: name, distribution, version, hooks, connectors, or its load error."""
    load_plugins()
    infos: list[PluginInfo] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist, version = _sources.get(name, ("assoc-ai-core", _core_version()))
        info = PluginInfo(name=name, distribution=dist, version=version)
        info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        if "register_connectors" in info.hooks:
            info.connectors = _connectors_of(plugin)
        infos.append(info)
    return infos + list(_failures)


def _connectors_of(plugin: object) -> list[dict[str, Any]]:
    """The connectors one plugin registers, asked through pluggy with every other plugin left out."""
    others = [p for _, p in pm.list_name_plugin() if p is not None and p is not plugin]
    registry = ConnectorRegistry()
    pm.subset_hook_caller("register_connectors", remove_plugins=others)(registry=registry)
    return [describe_connector(registry.get(cid)) for cid in registry.ids()]


def _core_version() -> str:
    from assoc_ai_core import __version__

    return __version__


def trace_plugin_calls(enabled: bool = True) -> None:
    """Log every hook call to the ``assoc_ai_core.plugins`` logger (``ASSOC_AI_TRACE_PLUGINS=1``).

    One line when a hook is called (its arguments, the plugins in call order)
    and one when it returns (the result's type) or raises (the exception's
    type).  Only ``connector_id`` and ``field`` are shown as they are; every
    other argument and every result is shown by its type and size, so neither a
    secret nor personal data reaches the trace.  ``enabled=False`` stops it.
    """
    global _undo_trace
    if enabled and _undo_trace is None:
        _undo_trace = pm.add_hookcall_monitoring(_trace_call, _trace_outcome)
        trace_log.setLevel(logging.DEBUG)  # the switch was asked for: show the trace without -vv too
        trace_log.addHandler(_early_trace_handler)
    elif not enabled and _undo_trace is not None:
        _undo_trace()
        _undo_trace = None
        trace_log.setLevel(logging.NOTSET)
        trace_log.removeHandler(_early_trace_handler)


class _EarlyTraceHandler(logging.Handler):
    """Write the trace to stderr while nobody has configured logging; once the root logger has a handler, stay quiet.

    assoc-ai loads its plugins (and calls ``register_commands``) before its command line configures logging:
    without this handler the first hook calls of a run would be traced to nowhere.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        try:
            sys.stderr.write(self.format(record) + "\n")  # looked up now: tests and CLI runners swap stderr
        except Exception:  # logging's rule: a failing handler reports itself and never raises
            self.handleError(record)


_early_trace_handler = _EarlyTraceHandler()


def _traced(name: str, value: object) -> str:
    if name in TRACED_AS_IS and isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, Sized) and not isinstance(value, (str, bytes)):
        return f"<{type(value).__name__}, {len(value)}>"
    return f"<{type(value).__name__}>"


def _trace_call(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]) -> None:
    arguments = ", ".join(f"{name}={_traced(name, value)}" for name, value in kwargs.items())
    called = ", ".join(impl.plugin_name for impl in reversed(impls)) or "-"  # pluggy calls the last one first
    trace_log.debug(tr(f"hook {hook_name}({arguments}) → plugins : {called}",
                       f"hook {hook_name}({arguments}) → plugins: {called}"))


def _trace_outcome(outcome: pluggy.Result[object], hook_name: str, impls: Sequence[pluggy.HookImpl],
                   kwargs: Mapping[str, object]) -> None:
    if outcome.exception is not None:
        name = type(outcome.exception).__name__
        trace_log.debug(tr(f"hook {hook_name} : exception {name}", f"hook {hook_name}: raised {name}"))
        return
    result = _traced("", outcome.get_result())
    trace_log.debug(tr(f"hook {hook_name} : résultat {result}", f"hook {hook_name}: returned {result}"))


def reset_for_tests() -> None:
    """Forget loaded plugins and stop tracing (tests that install fake entry points)."""
    global _loaded
    for name, plugin in list(pm.list_name_plugin()):
        if plugin is None:  # blocked by ASSOC_AI_BLOCK_PLUGINS: the next load reads the variable again
            pm.unblock(name)
        else:
            pm.unregister(plugin)
    trace_plugin_calls(enabled=False)
    _failures.clear()
    _sources.clear()
    _loaded = False
