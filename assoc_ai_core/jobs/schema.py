"""Declarative configuration sections: one frozen dataclass per section, one validator for all of them.

A section's keys are the dataclass fields made with :func:`setting`; the
field metadata says the value's :class:`Kind`, its allowed values and a
French / English help line, the field default is the key's default.
:func:`read_section` is the only place a section is checked: unknown keys,
types and allowed values, each error naming the section, the key and what it
must be, in the user's language.  Fields made without :func:`setting` are
not configuration keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from assoc_ai_core.errors import ConfigError
from assoc_ai_core.i18n import tr

META = "assoc_ai_setting"


class Kind(StrEnum):
    """The type of a configuration value, as the documentation names it."""

    TEXT = "text"
    FLAG = "bool"
    INTEGER = "integer"
    NUMBER = "number"
    PATH = "path"
    TEXT_LIST = "list of text"
    TAG = "bool or text"


#: what an error says a value of each kind must be, when the setting does not say it better
_EXPECT: dict[Kind, tuple[str, str]] = {
    Kind.TEXT: ("du texte", "text"),
    Kind.FLAG: ("true ou false", "true or false"),
    Kind.INTEGER: ("un entier", "an integer"),
    Kind.NUMBER: ("un nombre", "a number"),
    Kind.PATH: ("un chemin (texte)", "a path (text)"),
    Kind.TEXT_LIST: ("une liste de textes", "a list of texts"),
    Kind.TAG: ("true, false ou un texte", "true, false or a text"),
}


@dataclass(frozen=True)
class Between:
    """Allowed numbers: ``low`` to ``high``, each end included unless ``*_open``; ``says`` is the range in words."""

    low: float
    high: float
    says: tuple[str, str]
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


@dataclass(frozen=True)
class Setting:
    """How one key is read: its kind, allowed values and help (``(french, english)`` pairs)."""

    kind: Kind
    help: tuple[str, str]
    expect: tuple[str, str] | None = None
    between: Between | None = None
    item: Callable[[str], bool] | None = None
    min_items: int = 0

    def must_be(self) -> tuple[str, str]:
        """What the value must be, in French and English (the end of an error sentence)."""
        if self.expect is not None:
            return self.expect
        fr, en = _EXPECT[self.kind]
        if self.between is not None:
            return f"{fr} {self.between.says[0]}", f"{en} {self.between.says[1]}"
        return fr, en


def setting(default: Any, kind: Kind, help_fr: str, help_en: str, *, expect: tuple[str, str] | None = None,
            between: Between | None = None, item: Callable[[str], bool] | None = None, min_items: int = 0) -> Any:
    """A dataclass field that is a configuration key (see the module docstring)."""
    spec = Setting(kind, (help_fr, help_en), expect, between, item, min_items)
    return dataclasses.field(default=default, metadata={META: spec})


class SectionClass(Protocol):
    """A section dataclass; ``delegated`` lists keys another module checks (accepted here, not read)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    delegated: ClassVar[frozenset[str]]


S = TypeVar("S", bound=SectionClass)


def settings_of(cls: type[Any]) -> dict[str, Setting]:
    """The configuration keys of a section class, in declaration order."""
    return {f.name: f.metadata[META] for f in dataclasses.fields(cls) if META in f.metadata}


def defaults_of(cls: type[Any]) -> dict[str, Any]:
    """Each key's default value (``None`` when the key has none)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if META in f.metadata}


def section_of(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The top-level section ``name`` of a loaded configuration (empty when absent)."""
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(tr(f"[{name}] doit être une section.", f"[{name}] must be a section."))
    return value


def reject_unknown(raw: Mapping[str, Any], allowed: set[str] | frozenset[str], where: str) -> None:
    """Unknown keys are errors (a typo must not be silently ignored); the message lists the allowed keys."""
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        keys = ", ".join(sorted(allowed))
        raise ConfigError(tr(
            f"{where} : clé(s) inconnue(s) {', '.join(unknown)}. Clés possibles : {keys}.",
            f"{where}: unknown key(s) {', '.join(unknown)}. Allowed keys: {keys}.",
        ))


def read_section(cls: type[S], raw: Mapping[str, Any], *, where: str, base: Path) -> S:
    """Check one section against its class and build it; relative paths are taken from ``base``."""
    specs = settings_of(cls)
    reject_unknown(raw, set(specs) | cls.delegated, where)
    values = {name: read_value(raw[name], spec, f"{where} {name}", base) for name, spec in specs.items() if name in raw}
    return cls(**values)


def read_value(value: Any, spec: Setting, where: str, base: Path) -> Any:
    """One checked value (``where`` is ``[section] key``); a wrong one raises :class:`ConfigError`."""
    read = _READERS[spec.kind]
    result = read(value, spec)
    if result is _WRONG:
        fr, en = spec.must_be()
        raise ConfigError(tr(f"{where} doit être {fr}.", f"{where} must be {en}."))
    if spec.between is not None and result not in spec.between:
        fr, en = spec.between.says
        raise ConfigError(tr(f"{where} doit être {fr}.", f"{where} must be {en}."))
    if spec.kind is Kind.PATH:
        path = Path(result).expanduser()
        return path if path.is_absolute() else base / path
    return result


_WRONG = object()


def _text(value: Any, spec: Setting) -> Any:
    ok = isinstance(value, str) and value and (spec.item is None or spec.item(value))
    return value if ok else _WRONG


def _flag(value: Any, spec: Setting) -> Any:
    return value if isinstance(value, bool) else _WRONG


def _integer(value: Any, spec: Setting) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG


def _number(value: Any, spec: Setting) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else _WRONG


def _path(value: Any, spec: Setting) -> Any:
    return value if isinstance(value, str) and value.strip() else _WRONG


def _text_list(value: Any, spec: Setting) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) < spec.min_items:
        return _WRONG
    if not all(isinstance(i, str) and i and (spec.item is None or spec.item(i)) for i in items):
        return _WRONG
    return tuple(items)


def _tag(value: Any, spec: Setting) -> Any:
    if isinstance(value, bool):
        return value
    return value.strip() if isinstance(value, str) and value.strip() else _WRONG


_READERS: dict[Kind, Callable[[Any, Setting], Any]] = {
    Kind.TEXT: _text, Kind.FLAG: _flag, Kind.INTEGER: _integer, Kind.NUMBER: _number, Kind.PATH: _path,
    Kind.TEXT_LIST: _text_list, Kind.TAG: _tag,
}


def describe(sections: Mapping[str, type[Any]], lang: str = "en") -> list[dict[str, Any]]:
    """Every key of ``sections`` (name -> class): section, key, type, default and help in ``lang``."""
    index = 0 if lang == "fr" else 1
    rows = []
    for name, cls in sections.items():
        defaults = defaults_of(cls)
        for key, spec in settings_of(cls).items():
            rows.append({"section": name, "key": key, "type": spec.kind.value, "default": defaults[key],
                         "help": spec.help[index]})
    return rows


__all__ = ["Kind", "Between", "Setting", "setting", "settings_of", "defaults_of", "section_of", "reject_unknown",
           "read_section", "read_value", "describe"]
