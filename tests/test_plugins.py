"""Plugin discovery through entry points: good plugins load, broken ones warn (or fail in strict mode)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from assoc_ai_core.errors import PluginError, UnknownConnectorError
from assoc_ai_core.ext import plugins
from assoc_ai_core.ext.connectors import Capability, ConnectorRegistry, MailboxConnector

GOOD = '''
from dataclasses import dataclass
from assoc_ai_core import hookimpl
from assoc_ai_core.ext.connectors import MailboxConnector, Capability

@dataclass(frozen=True)
class Cfg:
    path: str = "."

class Demo(MailboxConnector):
    id = "demo_box"
    Config = Cfg
    capabilities = frozenset({Capability.READ})
    def list_folders(self): return []
    def fetch_new(self, folder, cursor, *, page_size=100): return iter(())
    def fetch_all(self, folder): return iter(())
    def locate(self, refs): return {}

@hookimpl
def register_connectors(registry):
    registry.add(Demo)
'''


@pytest.fixture()
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder on sys.path holding two installed distributions: one good plugin, one broken."""
    (tmp_path / "good_plugin_mod.py").write_text(GOOD)
    for dist, ep in (("good-plugin", "good = good_plugin_mod"), ("broken-plugin", "broken = no_such_module_xyz")):
        info = tmp_path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(f"[assoc_ai]\n{ep}\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    for var in ("ASSOC_AI_LOAD_PLUGINS", "ASSOC_AI_BLOCK_PLUGINS", "ASSOC_AI_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.reset_for_tests()
    yield tmp_path
    plugins.reset_for_tests()
    sys.modules.pop("good_plugin_mod", None)


def test_good_plugin_registers_and_broken_one_warns(fake_site):
    with pytest.warns(UserWarning, match="broken"):
        plugins.load_plugins()
    registry = plugins.connector_registry()
    assert "demo_box" in registry.ids() and "local" in registry.ids()
    infos = {i.name: i for i in plugins.get_plugins()}
    assert infos["good"].version == "1.2.3" and infos["good"].distribution == "good-plugin"
    assert infos["good"].connectors[0]["capabilities"] == ["read"]
    assert "register_connectors" in infos["good"].hooks
    assert "No module named" in infos["broken"].error


def test_strict_mode_makes_a_broken_plugin_an_error(fake_site, monkeypatch):
    monkeypatch.setenv("ASSOC_AI_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        plugins.load_plugins()


def test_load_and_block_switches(fake_site, monkeypatch):
    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "good-plugin")
    plugins.load_plugins()  # the broken distribution is not even tried: no warning
    assert "demo_box" in plugins.connector_registry().ids()
    plugins.reset_for_tests()
    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "")
    plugins.load_plugins()
    assert "demo_box" not in plugins.connector_registry().ids()
    with pytest.raises(UnknownConnectorError, match="demo_box"):
        plugins.get_connector_class("demo_box")


def test_block_switch_and_reset_forgets_it(fake_site, monkeypatch):
    monkeypatch.setenv("ASSOC_AI_BLOCK_PLUGINS", "good,broken")
    plugins.load_plugins()  # both blocked: the broken one is not tried either, so no warning
    assert "demo_box" not in plugins.connector_registry().ids()
    assert "good" not in {i.name for i in plugins.get_plugins()}
    plugins.reset_for_tests()
    monkeypatch.setenv("ASSOC_AI_BLOCK_PLUGINS", "broken")
    plugins.load_plugins()
    assert "demo_box" in plugins.connector_registry().ids()


def test_registry_validates_what_plugins_add():
    reg = ConnectorRegistry()
    with pytest.raises(TypeError):
        reg.add(object)  # type: ignore[arg-type]

    class BadId(MailboxConnector):
        id = "Bad Id"
        Config = object
    with pytest.raises((TypeError, ValueError)):
        reg.add(BadId)
    assert Capability("move") is Capability.MOVE
