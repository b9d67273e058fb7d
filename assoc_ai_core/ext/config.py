"""Configuration files and secrets.

One TOML file holds the settings of a job; secrets are *references*, never
values: ``password = { env = "IMAP_PASSWORD" }``, ``{ file = "/run/secrets/imap" }``
or ``{ plugin = "keyring" }`` (``$env`` / ``$file`` / ``$plugin`` are accepted too).
References are resolved when a connector is built, and the resolved value lives
in a :class:`Secret` whose ``repr`` and ``str`` are ``***`` so it cannot leak
into a log by accident.

This module knows nothing of the plugin manager (which sits above it and imports
it): ``{ plugin = ... }`` references are answered by a :data:`SecretSource`
handed to :func:`build_config`, in practice the plugins' ``resolve_secret`` hook
(:func:`assoc_ai_core.ext.plugins.build_connector_config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import stat
import tomllib
import typing
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, MissingSecretError
from assoc_ai_core.i18n import tr

SECRET_KEY_HINTS = ("password", "secret", "token", "key", "credential")
# words a secret's key is often misspelt or abbreviated as (``passwrd``, ``pwd``, ``api_secrt``)
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential")
_SECRET_ABBREVIATIONS = ("pwd", "pw", "pass", "mdp", "auth", "pin")


def looks_secret(key: str) -> bool:
    """Whether a configuration key probably holds a secret, typos included (``passwrd``, ``mot_de_passe``, ``pwd``).

    Generous on purpose: ``config show`` masks what this says, and masking a
    harmless value costs nothing while printing a password costs a lot.
    """
    name = key.lower()
    if any(h in name for h in SECRET_KEY_HINTS) or "passe" in name:
        return True
    parts = [p for p in re.split(r"[^a-z0-9]+", name) if p]
    for part in parts + ["".join(parts)]:
        if part in _SECRET_ABBREVIATIONS:
            return True
        if len(part) >= 4 and any(difflib.SequenceMatcher(None, part, w).ratio() >= 0.8 for w in _SECRET_WORDS):
            return True
    return False
SECRET_REF_KINDS = ("env", "file", "plugin")


class Secret:
    """A secret value that never shows itself in ``repr``, ``str`` or logs; use ``.get()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Return the secret value (only where it is used, e.g. a login call)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


SecretSource = Callable[[str, str], "Secret | None"]
"""Asked for a secret by connector id and field name; None when no provider has it."""

PluginAnswer = Callable[[], "Secret | None"]
"""A :data:`SecretSource` already bound to one connector and field."""


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML configuration file; errors say which file and what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            tr(
                f"Fichier de configuration introuvable : {p}. Copiez examples/assoc_ai.example.toml et adaptez-le.",
                f"Configuration file not found: {p}. Copy examples/assoc_ai.example.toml and adapt it.",
            )
        )
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(tr(f"{p} n'est pas un TOML valide : {exc}", f"{p} is not valid TOML: {exc}")) from exc
    _warn_on_literal_secrets(data, p)
    data.setdefault("_path", str(p.resolve()))
    return data


def _warn_on_literal_secrets(data: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    try:
        readable_by_others = bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not is_secret_ref(value):
                _warn_on_literal_secrets(value, path, name + ".")
        elif isinstance(value, str) and value and readable_by_others and looks_secret(key):
            warnings.warn(
                tr(
                    f"{path} : « {name} » contient un secret en clair dans un fichier lisible par d'autres ; "
                    'utilisez { env = "..." } ou { file = "..." }.',
                    f"{path}: '{name}' holds a literal secret in a file others can read; "
                    'use { env = "..." } or { file = "..." }.',
                ),
                stacklevel=3,
            )


def is_secret_ref(value: Any) -> bool:
    """True for ``{env = ...}`` / ``{file = ...}`` / ``{plugin = ...}`` references (``$`` prefix optional)."""
    return (
        isinstance(value, Mapping) and len(value) == 1 and str(next(iter(value))).lstrip("$") in SECRET_REF_KINDS
    )


def secret_from_config(value: Any, *, where: str, ask_plugins: PluginAnswer | None = None) -> Secret:
    """Turn a literal or a reference into a :class:`Secret`; ``where`` names the field in errors.

    ``{ plugin = "..." }`` is answered by ``ask_plugins`` (the plugins' ``resolve_secret`` hook, already bound
    to this connector and field); the string only tells the reader which plugin provides it.
    """
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    if is_secret_ref(value):
        kind, target = next(iter(value.items()))
        kind = str(kind).lstrip("$")
        if kind == "env":
            return _secret_from_env(str(target), where)
        if kind == "file":
            return _secret_from_file(str(target), where)
        return _secret_from_plugins(str(target), where, ask_plugins)
    raise MissingSecretError(
        tr(
            f'{where} : secret manquant. Ajoutez par exemple {{ env = "NOM_DE_VARIABLE" }}.',
            f'{where}: secret missing. Add for example {{ env = "VARIABLE_NAME" }}.',
        )
    )


def _secret_from_env(variable: str, where: str) -> Secret:
    found = os.environ.get(variable)
    if found is None:
        raise MissingSecretError(
            tr(
                f"{where} : la variable d'environnement {variable} n'est pas définie. "
                f"Définissez-la (export {variable}=...) dans l'environnement du service.",
                f"{where}: environment variable {variable} is not set. "
                f"Set it (export {variable}=...) in the job's environment.",
            )
        )
    return Secret(found)


def _secret_from_file(path: str, where: str) -> Secret:
    try:
        return Secret(Path(path).expanduser().read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise MissingSecretError(
            tr(
                f"{where} : impossible de lire le fichier secret {path} ({exc.strerror}). "
                "Vérifiez le chemin et les droits (lisible par l'utilisateur du service).",
                f"{where}: cannot read secret file {path} ({exc.strerror}). "
                "Check the path and that the job's user can read it.",
            )
        ) from None


def _secret_from_plugins(provider: str, where: str, ask_plugins: PluginAnswer | None) -> Secret:
    found = ask_plugins() if ask_plugins is not None else None
    if found is not None:
        return found
    if ask_plugins is None:  # plain build_config: no plugin manager was handed over
        raise MissingSecretError(
            tr(
                f'{where} : {{ plugin = "{provider}" }} ne se résout que quand assoc-ai construit le connecteur '
                "avec ses plugins chargés ; ailleurs, utilisez { env = \"...\" } ou { file = \"...\" }.",
                f'{where}: {{ plugin = "{provider}" }} is only resolved when assoc-ai builds the connector with its '
                'plugins loaded; elsewhere use { env = "..." } or { file = "..." }.',
            )
        )
    raise MissingSecretError(
        tr(
            f'{where} : aucun plugin n\'a fourni ce secret ({{ plugin = "{provider}" }}, hook resolve_secret). '
            f"Installez et configurez le plugin « {provider} » (assoc-ai plugins liste les plugins chargés).",
            f'{where}: no plugin provided this secret ({{ plugin = "{provider}" }}, resolve_secret hook). '
            f"Install and set up the '{provider}' plugin (assoc-ai plugins lists the loaded plugins).",
        )
    )


def build_config(config_cls: type, section: Mapping[str, Any], *, where: str,
                 secrets: SecretSource | None = None) -> Any:
    """Build a connector's frozen ``Config`` dataclass from a TOML section.

    Unknown keys are an error (a typo must not be silently ignored); fields
    annotated ``Secret`` (or ``Secret | None``) are resolved from references.
    ``secrets`` (the plugins' ``resolve_secret`` hook, see
    :func:`assoc_ai_core.ext.plugins.build_connector_config`) answers ``{ plugin = ... }`` references and
    required secret fields the section leaves out; it is asked with the section's ``connector`` (else
    ``where``) and the field name.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    fields = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(section) - set(fields) - {"connector"})
    if unknown:
        raise ConfigError(
            tr(
                f"[{where}] : clé(s) inconnue(s) {', '.join(unknown)}. Clés possibles : {', '.join(fields)}.",
                f"[{where}]: unknown key(s) {', '.join(unknown)}. Allowed keys: {', '.join(fields)}.",
            )
        )
    connector_id = str(section.get("connector") or where)
    kwargs: dict[str, Any] = {}
    for spec in describe_fields(config_cls):
        name = spec["name"]
        ask = functools.partial(secrets, connector_id, name) if secrets is not None and spec["secret"] else None
        if name in section:
            value = section[name]
            if spec["secret"]:
                value = secret_from_config(value, where=f"{where}.{name}", ask_plugins=ask)
            kwargs[name] = value
        elif spec["required"] and ask is not None and (found := ask()) is not None:
            kwargs[name] = found
        elif spec["required"]:
            raise ConfigError(
                tr(f"[{where}] : la clé « {name} » est obligatoire.", f"[{where}]: key '{name}' is required.")
            )
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        text = str(exc)  # a Config's own check usually names its section already
        raise ConfigError(text if text.startswith(f"[{where}]") else f"[{where}]: {text}") from exc


#: the keys of a connector section that name a file or folder (``ca_file``, ``token_file``, ``path``, ``cache_dir``…)
_PATH_KEY = ("path", "file", "dir")


def resolve_relative_paths(section: Mapping[str, Any], base: str | os.PathLike[str]) -> dict[str, Any]:
    """``section`` with relative file and folder names taken from ``base`` (the configuration file's folder).

    A job runs from wherever the scheduler starts it: ``ca_file = "ca.pem"`` or
    ``password = { file = "secret.txt" }`` must mean the file beside the
    configuration, as ``config show`` and ``triage run`` both read it.  Keys
    ending in ``path``, ``file`` or ``dir`` and ``{ file = ... }`` references
    are resolved; ``~`` is expanded; absolute names are kept.
    """
    def absolute(value: str) -> str:
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else Path(base) / p)

    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, str) and value and str(key).lower().endswith(_PATH_KEY):
            value = absolute(value)
        elif is_secret_ref(value):
            kind, target = next(iter(value.items()))
            if str(kind).lstrip("$") == "file" and isinstance(target, str):
                value = {kind: absolute(target)}
        out[key] = value
    return out


def describe_fields(config_cls: type) -> list[dict[str, Any]]:
    """Name, ``secret`` (annotated :class:`Secret`) and ``required`` (no default) of each field of a ``Config``."""
    hints = typing.get_type_hints(config_cls)
    return [
        {"name": f.name, "secret": _mentions_secret(hints.get(f.name)),
         "required": f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        for f in dataclasses.fields(config_cls)
    ]


def _mentions_secret(hint: Any) -> bool:
    if hint is Secret:
        return True
    return any(_mentions_secret(a) for a in typing.get_args(hint))


def redact(data: Any, _key: str = "") -> Any:
    """Copy of a config with secrets and secret-looking keys replaced by ``***`` (for display)."""
    if isinstance(data, Secret):
        return "***"
    if isinstance(data, Mapping):
        if is_secret_ref(data):
            return dict(data)  # a reference names where the secret is, not the secret
        return {k: redact(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v, _key) for v in data]
    if isinstance(data, str | int | float) and not isinstance(data, bool) and looks_secret(_key):
        return "***"  # a number too: a PIN or a numeric password given without quotes
    return data

