"""One test (at least) per hookspec, seen from the plugin manager: plugins are called through pluggy only.

The names matter: ``test_every_hookspec_has_a_test`` reads the test names of this file and of
``tests/test_hook_*.py`` and fails when a hookspec has no ``test_<hook>...`` test.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pluggy
import pytest
from click.testing import CliRunner

from assoc_ai_core.errors import AuthError, ConfigError, MissingSecretError
from assoc_ai_core.ext import hookspecs, plugins
from assoc_ai_core.ext.config import Secret
from assoc_ai_core.ext.connectors import Capability, ConnectorRegistry, MailboxConnector
from assoc_ai_core.ext.hookspecs import hookimpl

TESTS = Path(__file__).resolve().parent
VAULT_VALUE = "v4ult-S3cret-value"


@pytest.fixture()
def pm(monkeypatch: pytest.MonkeyPatch) -> Iterator[pluggy.PluginManager]:
    """The plugin manager with the built-in plugins only; each test registers its own plugin objects."""
    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "")
    monkeypatch.delenv("ASSOC_AI_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("ASSOC_AI_TRACE_PLUGINS", raising=False)
    plugins.reset_for_tests()
    yield plugins.load_plugins()
    plugins.reset_for_tests()


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo connector: one secret, one optional secret, one plain field."""

    token: Secret
    user: str = "tri"
    backup_token: Secret | None = None


class DemoConnector(MailboxConnector):
    """A mailbox connector that is never opened: only its class travels through the hooks."""

    id = "demo_hooks"
    Config = DemoConfig
    capabilities = frozenset({Capability.READ})

    def list_folders(self) -> list[str]:
        return []

    def fetch_new(self, folder: str, cursor: Any, *, page_size: int = 100) -> Iterator[Any]:
        return iter(())

    def fetch_all(self, folder: str) -> Iterator[Any]:
        return iter(())

    def locate(self, refs: Any) -> dict[str, list[Any]]:
        return {}


class Vault:
    """A secret provider answering for one connector's ``token``; remembers what it was asked."""

    def __init__(self, connector_id: str = "demo_hooks", value: str | None = VAULT_VALUE) -> None:
        self.connector_id, self.value = connector_id, value
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def resolve_secret(self, connector_id: str, field: str) -> str | None:
        self.asked.append((connector_id, field))
        return self.value if (connector_id, field) == (self.connector_id, "token") else None


# --------------------------------------------------------------------------------------- register_connectors
def test_register_connectors_is_called_through_pluggy_for_every_plugin(pm: pluggy.PluginManager) -> None:
    seen_before_us: list[list[str]] = []

    class Plugin:
        # Another function name than the hook's: only pluggy (not getattr on the plugin) finds it.
        @hookimpl(specname="register_connectors")
        def add_demo(self, registry: ConnectorRegistry) -> None:
            seen_before_us.append(registry.ids())
            registry.add(DemoConnector, plugin="assoc-ai-demo")

    plugins.register_plugin(Plugin(), name="demo")
    registry = plugins.connector_registry()
    assert {"demo_hooks", "local", "files"} <= set(registry.ids())
    assert registry.origin("demo_hooks") == "assoc-ai-demo"
    assert seen_before_us == [[]]  # the built-in plugins' hooks run after the installed ones
    infos = {info.name: info for info in plugins.get_plugins()}
    assert infos["demo"].hooks == ["register_connectors"]
    assert [c["id"] for c in infos["demo"].connectors] == ["demo_hooks"]  # asked of this plugin alone
    assert infos["demo"].connectors[0]["config"] == [
        {"name": "token", "secret": True, "required": True},
        {"name": "user", "secret": False, "required": False},
        {"name": "backup_token", "secret": True, "required": False},
    ]
    assert [c["id"] for c in infos["assoc_ai_core.default_plugins.local_mail"].connectors] == ["local"]


# ------------------------------------------------------------------------------------------ register_commands
def test_register_commands_adds_a_group_to_the_command_line(pm: pluggy.PluginManager) -> None:
    @click.group(name="demo")
    def demo() -> None:
        """Demo plugin commands."""

    @demo.command(name="hello")
    def hello() -> None:
        click.echo("bonjour du plugin")

    class Plugin:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            cli.add_command(demo)

    plugins.register_plugin(Plugin(), name="demo-commands")
    root = click.Group(name="assoc-ai")
    pm.hook.register_commands(cli=root)
    result = CliRunner().invoke(root, ["demo", "hello"])
    assert result.exit_code == 0 and result.output == "bonjour du plugin\n"


# --------------------------------------------------------------------------------------------- resolve_secret
def test_resolve_secret_first_answer_wins_and_none_lets_the_next_try(pm: pluggy.PluginManager) -> None:
    never_asked = Vault(value="should-not-be-used")
    answering = Vault()

    class OnlyField:
        """Takes fewer parameters than the hookspec gives: pluggy's rule keeps it working."""

        def __init__(self) -> None:
            self.fields: list[str] = []

        @hookimpl
        def resolve_secret(self, field: str) -> None:
            self.fields.append(field)

    only_field = OnlyField()
    for name, plugin in (("first", never_asked), ("second", answering), ("third", only_field)):
        plugins.register_plugin(plugin, name=name)  # pluggy calls the last registered first
    assert plugins.secret_from_plugins("demo_hooks", "token") == Secret(VAULT_VALUE)
    assert only_field.fields == ["token"] and answering.asked == [("demo_hooks", "token")]
    assert never_asked.asked == []  # firstresult: the search stopped at the first answer
    assert plugins.secret_from_plugins("other", "token") is None


def test_resolve_secret_a_broken_provider_is_no_answer_but_an_assoc_ai_error_stops(
        pm: pluggy.PluginManager, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @hookimpl
        def resolve_secret(self, connector_id: str, field: str) -> str:
            raise RuntimeError(f"vault said {VAULT_VALUE}")

    plugins.register_plugin(Broken(), name="broken-vault")
    assert plugins.secret_from_plugins("demo_hooks", "token") is None
    assert "RuntimeError" in caplog.text and VAULT_VALUE not in caplog.text

    class Refusing:
        @hookimpl
        def resolve_secret(self, connector_id: str, field: str) -> str:
            raise AuthError("coffre verrouillé", connector_id=connector_id)

    plugins.register_plugin(Refusing(), name="locked-vault")
    with pytest.raises(AuthError, match="verrouillé"):
        plugins.secret_from_plugins("demo_hooks", "token")


def test_resolve_secret_answers_plugin_references_and_missing_required_secrets(pm: pluggy.PluginManager) -> None:
    vault = Vault()
    plugins.register_plugin(vault, name="vault")
    by_reference = plugins.build_connector_config(
        DemoConfig, {"connector": "demo_hooks", "token": {"plugin": "vault"}}, where="mailbox")
    assert by_reference.token == Secret(VAULT_VALUE) and "v4ult" not in repr(by_reference)
    left_out = plugins.build_connector_config(DemoConfig, {"connector": "demo_hooks"}, where="mailbox")
    assert left_out.token == Secret(VAULT_VALUE)
    assert left_out.backup_token is None  # optional secrets are the connector's to ask for, when it connects
    assert vault.asked == [("demo_hooks", "token"), ("demo_hooks", "token")]


def test_resolve_secret_is_not_asked_when_the_config_names_the_secret(pm: pluggy.PluginManager,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    vault = Vault()
    plugins.register_plugin(vault, name="vault")
    monkeypatch.setenv("ASSOC_AI_TEST_DEMO_TOKEN", "from-env")
    config = plugins.build_connector_config(
        DemoConfig, {"connector": "demo_hooks", "token": {"env": "ASSOC_AI_TEST_DEMO_TOKEN"}}, where="mailbox")
    assert config.token == Secret("from-env") and vault.asked == []


def test_resolve_secret_unanswered_reference_is_a_clear_error(pm: pluggy.PluginManager) -> None:
    vault = Vault(connector_id="another_connector")
    plugins.register_plugin(vault, name="vault")
    with pytest.raises(MissingSecretError, match=r"mailbox\.token.*keyring"):
        plugins.build_connector_config(
            DemoConfig, {"connector": "demo_hooks", "token": {"plugin": "keyring"}}, where="mailbox")
    with pytest.raises(ConfigError, match="token.*obligatoire"):  # required, and no plugin has it
        plugins.build_connector_config(DemoConfig, {"connector": "demo_hooks"}, where="mailbox")
    assert vault.asked == [("demo_hooks", "token"), ("demo_hooks", "token")]


# ------------------------------------------------------------------------------------------ decision_recorded
def test_decision_recorded_reaches_observers_with_the_documented_record(pm: pluggy.PluginManager) -> None:
    received: list[dict[str, Any]] = []

    class Observer:
        @hookimpl
        def decision_recorded(self, record: dict[str, Any]) -> None:
            received.append(record)

    plugins.register_plugin(Observer(), name="observer")
    assert pm.hook.decision_recorded.spec is not None
    assert pm.hook.decision_recorded.spec.argnames == ("record",)
    record = {"instance": "asso", "key": "<m1@asso.example>", "decision": "review", "category": "Adhésion",
              "probability": 0.61, "runner_up": "Don", "reason": "low_confidence", "model_version": "v3",
              "dry_run": False, "actions": ["move"]}
    assert pm.hook.decision_recorded(record=record) == []  # the return value is ignored
    assert received == [record]


def test_a_failing_observer_silences_no_other(pm: pluggy.PluginManager) -> None:
    heard: list[str] = []

    class Broken:
        @hookimpl
        def decision_recorded(self, record: dict[str, Any]) -> None:
            raise RuntimeError("observer down")

    class Listening:
        @hookimpl
        def decision_recorded(self, record: dict[str, Any]) -> None:
            heard.append(record["key"])

    plugins.register_plugin(Listening(), name="listening")
    plugins.register_plugin(Broken(), name="broken")  # registered last, so pluggy calls it first
    with pytest.raises(RuntimeError):  # what a plain hook call does: the first failure stops the others
        pm.hook.decision_recorded(record={"key": "k0"})
    assert heard == []
    failures = plugins.notify_observers("decision_recorded", record={"key": "k1"})
    assert heard == ["k1"]
    assert [(name, type(exc)) for name, exc in failures] == [("broken", RuntimeError)]


# ---------------------------------------------------------------------------------------------------- tracing
def test_trace_switch_logs_hook_calls_without_secrets_or_personal_data(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ASSOC_AI_LOAD_PLUGINS", "")
    monkeypatch.setenv("ASSOC_AI_TRACE_PLUGINS", "1")
    plugins.reset_for_tests()
    try:
        plugins.register_plugin(Vault(), name="vault")
        caplog.set_level(logging.DEBUG, logger="assoc_ai_core.plugins")
        assert plugins.secret_from_plugins("demo_hooks", "token") == Secret(VAULT_VALUE)
        plugins.pm.hook.decision_recorded(record={"key": "<m1@asso.example>", "sender": "marie.dupont@example.org"})
        plugins.connector_registry()
    finally:
        plugins.reset_for_tests()
    trace = "\n".join(r.getMessage() for r in caplog.records if r.name == "assoc_ai_core.plugins")
    assert "hook resolve_secret(connector_id='demo_hooks', field='token') → plugins : vault" in trace
    assert "hook resolve_secret : résultat <str>" in trace  # the type of the answer, never the answer
    assert "hook decision_recorded(record=<dict, 2>)" in trace
    assert "register_connectors(registry=<ConnectorRegistry>)" in trace
    assert "assoc_ai_core.default_plugins.local_mail" in trace
    for private in (VAULT_VALUE, "marie.dupont", "m1@asso.example"):
        assert private not in trace


def test_trace_is_off_without_the_switch_and_stops_when_asked(
        pm: pluggy.PluginManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="assoc_ai_core.plugins")
    plugins.connector_registry()
    assert not [r for r in caplog.records if r.name == "assoc_ai_core.plugins"]
    plugins.trace_plugin_calls()
    plugins.connector_registry()
    traced = len([r for r in caplog.records if r.name == "assoc_ai_core.plugins"])
    assert traced == 2  # the call and its result
    plugins.trace_plugin_calls(enabled=False)
    plugins.connector_registry()
    assert len([r for r in caplog.records if r.name == "assoc_ai_core.plugins"]) == traced


def test_trace_names_the_exception_of_a_failing_hook_not_its_message(
        pm: pluggy.PluginManager, caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        @hookimpl
        def decision_recorded(self, record: dict[str, Any]) -> None:
            raise ValueError(record["key"])

    plugins.register_plugin(Failing(), name="failing")
    caplog.set_level(logging.DEBUG, logger="assoc_ai_core.plugins")
    plugins.trace_plugin_calls()
    with pytest.raises(ValueError):
        pm.hook.decision_recorded(record={"key": "<m2@asso.example>"})
    assert "hook decision_recorded : exception ValueError" in caplog.text and "m2@asso" not in caplog.text


# ------------------------------------------------------------------------------------ every hook has a test
def _hookspec_names() -> set[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name for name, value in vars(hookspecs).items() if callable(value) and hasattr(value, marker)}


def _test_names(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def _hooks_without_test(hooks: set[str], tests: set[str]) -> set[str]:
    return {h for h in hooks if not any(t == f"test_{h}" or t.startswith(f"test_{h}_") for t in tests)}


def test_every_hookspec_has_a_test() -> None:
    hooks = _hookspec_names()
    assert {"register_connectors", "register_commands", "resolve_secret", "decision_recorded"} <= hooks
    tests = _test_names([TESTS / "test_hooks.py", *sorted(TESTS.glob("test_hook_*.py"))])
    assert _hooks_without_test(hooks, tests) == set()
    assert _hooks_without_test(hooks | {"hook_nobody_tests"}, tests) == {"hook_nobody_tests"}  # the check can fail


def test_trace_reaches_stderr_before_logging_is_configured(
        pm: pluggy.PluginManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root_handlers: list[logging.Handler] = []
    monkeypatch.setattr(logging.getLogger(), "handlers", root_handlers)  # as when assoc-ai starts
    plugins.trace_plugin_calls()
    plugins.connector_registry()
    assert "DEBUG assoc_ai_core.plugins: hook register_connectors(registry=<ConnectorRegistry>)" in capsys.readouterr().err
    root_handlers.append(logging.NullHandler())  # logging configured (assoc-ai -v): the trace goes there only
    plugins.connector_registry()
    assert capsys.readouterr().err == ""
