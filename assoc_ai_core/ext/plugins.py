"""Finding and loading plugins.

Plugins are found through the ``assoc_ai`` entry-point group.  A plugin that
fails to load is reported and skipped, so one broken connector never stops the
others; ``ASSOC_AI_STRICT_PLUGINS=1`` (or ``load_plugins(strict=True)``) makes
it an error, for CI.  ``ASSOC_AI_LOAD_PLUGINS`` limits loading to a
comma-separated list of distributions (empty: none), ``ASSOC_AI_BLOCK_PLUGINS``
blocks some.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from assoc_ai_core.errors import PluginError
from assoc_ai_core.ext import hookspecs
from assoc_ai_core.ext.connectors import Capability, Connector, ConnectorRegistry
from assoc_ai_core.i18n import tr

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "assoc_ai"
DEFAULT_PLUGINS = ("assoc_ai_core.default_plugins.local_mail", "assoc_ai_core.default_plugins.people_files")


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


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [x.strip() for x in raw.split(",") if x.strip()]


def load_plugins(*, strict: bool | None = None) -> pluggy.PluginManager:
    """Load default and installed plugins once; return the plugin manager."""
    global _loaded
    if _loaded:
        return pm
    _loaded = True
    strict = os.environ.get("ASSOC_AI_STRICT_PLUGINS", "") not in ("", "0") if strict is None else strict
    for blocked in _env_list("ASSOC_AI_BLOCK_PLUGINS") or []:
        pm.set_blocked(blocked)
    only = _env_list("ASSOC_AI_LOAD_PLUGINS")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ep.name
        version = ep.dist.version if ep.dist is not None else ""
        if only is not None and dist not in only and ep.name not in only:
            continue
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
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
            warnings.warn(message, stacklevel=2)
            _failures.append(PluginInfo(name=ep.name, distribution=dist, version=version, error=str(exc)))
    for name in DEFAULT_PLUGINS:
        if not pm.has_plugin(name) and not pm.is_blocked(name):
            pm.register(importlib.import_module(name), name=name)
    return pm


def register_plugin(module: ModuleType | object, name: str | None = None) -> None:
    """Register a plugin object by hand (tests, unpackaged scripts)."""
    load_plugins()
    pm.register(module, name=name)
    pm.check_pending()


def connector_registry() -> ConnectorRegistry:
    """A registry filled by every loaded plugin's ``register_connectors``."""
    load_plugins()
    registry = ConnectorRegistry()
    for impl in pm.hook.register_connectors.get_hookimpls():
        impl.function(registry=registry)  # one call per plugin so the registry knows who added what
    return registry


def get_connector_class(connector_id: str) -> type[Connector]:
    """The connector class for ``connector_id``; clear error listing installed ones."""
    return connector_registry().get(connector_id)


def describe_connector(cls: type[Connector]) -> dict[str, Any]:
    """Id, kind, capabilities and config fields (secrets flagged) of a connector class."""
    import dataclasses
    import typing

    from assoc_ai_core.ext.config import _mentions_secret

    hints = typing.get_type_hints(cls.Config)
    return {
        "id": cls.id,
        "kind": cls.kind,
        "capabilities": sorted(c.value if isinstance(c, Capability) else str(c) for c in cls.capabilities),
        "config": [
            {"name": f.name, "secret": _mentions_secret(hints.get(f.name)),
             "required": f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}  # type: ignore[misc]
            for f in dataclasses.fields(cls.Config)
        ],
        "description": cls.description,
    }


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
        if hasattr(plugin, "register_connectors"):
            reg = ConnectorRegistry()
            plugin.register_connectors(registry=reg)
            info.connectors = [describe_connector(reg.get(cid)) for cid in reg.ids()]
        infos.append(info)
    return infos + list(_failures)


def _core_version() -> str:
    from assoc_ai_core import __version__

    return __version__


def reset_for_tests() -> None:
    """Forget loaded plugins (tests that install fake entry points)."""
    global _loaded
    for name, plugin in list(pm.list_name_plugin()):
        if plugin is not None:
            pm.unregister(plugin)
    _failures.clear()
    _sources.clear()
    _loaded = False
