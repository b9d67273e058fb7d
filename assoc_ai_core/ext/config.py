"""Configuration files and secrets.

One TOML file holds the settings of a job; secrets are *references*, never
values: ``password = { env = "IMAP_PASSWORD" }`` or ``{ file = "/run/secrets/imap" }``
(``$env`` / ``$file`` are accepted too).  References are resolved when a
connector is built, and the resolved value lives in a :class:`Secret` whose
``repr`` and ``str`` are ``***`` so it cannot leak into a log by accident.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assoc_ai_core.errors import ConfigError, MissingSecretError
from assoc_ai_core.i18n import tr

SECRET_KEY_HINTS = ("password", "secret", "token", "key", "credential")


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
        elif isinstance(value, str) and value and readable_by_others and any(h in key.lower() for h in SECRET_KEY_HINTS):
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
    """True for ``{env = ...}`` / ``{file = ...}`` references (``$`` prefix optional)."""
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)).lstrip("$") in ("env", "file")


def resolve_secret(value: Any, *, where: str) -> Secret:
    """Turn a literal or a reference into a :class:`Secret`; ``where`` names the field in errors."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    if is_secret_ref(value):
        kind, target = next(iter(value.items()))
        kind = kind.lstrip("$")
        if kind == "env":
            found = os.environ.get(str(target))
            if found is None:
                raise MissingSecretError(
                    tr(
                        f"{where} : la variable d'environnement {target} n'est pas définie. "
                        f"Définissez-la (export {target}=...) dans l'environnement du service.",
                        f"{where}: environment variable {target} is not set. "
                        f"Set it (export {target}=...) in the job's environment.",
                    )
                )
            return Secret(found)
        try:
            return Secret(Path(str(target)).expanduser().read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise MissingSecretError(
                tr(
                    f"{where} : impossible de lire le fichier secret {target} ({exc.strerror}). "
                    "Vérifiez le chemin et les droits (lisible par l'utilisateur du service).",
                    f"{where}: cannot read secret file {target} ({exc.strerror}). "
                    "Check the path and that the job's user can read it.",
                )
            ) from None
    raise MissingSecretError(
        tr(
            f'{where} : secret manquant. Ajoutez par exemple {{ env = "NOM_DE_VARIABLE" }}.',
            f'{where}: secret missing. Add for example {{ env = "VARIABLE_NAME" }}.',
        )
    )


def build_config(config_cls: type, section: Mapping[str, Any], *, where: str) -> Any:
    """Build a connector's frozen ``Config`` dataclass from a TOML section.

    Unknown keys are an error (a typo must not be silently ignored); fields
    annotated ``Secret`` (or ``Secret | None``) are resolved from references.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(section) - set(fields) - {"connector"})
    if unknown:
        raise ConfigError(
            tr(
                f"[{where}] : clé(s) inconnue(s) {', '.join(unknown)}. Clés possibles : {', '.join(fields)}.",
                f"[{where}]: unknown key(s) {', '.join(unknown)}. Allowed keys: {', '.join(fields)}.",
            )
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        is_secret = _mentions_secret(hints.get(name))
        if name in section:
            value = section[name]
            kwargs[name] = resolve_secret(value, where=f"{where}.{name}") if is_secret else value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise ConfigError(
                tr(f"[{where}] : la clé « {name} » est obligatoire.", f"[{where}]: key '{name}' is required.")
            )
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}]: {exc}") from exc


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
    if isinstance(data, str) and any(h in _key.lower() for h in SECRET_KEY_HINTS):
        return "***"
    return data

