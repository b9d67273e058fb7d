"""French for click's own words ("Usage:", "Error:", "Missing argument"...), so a French run is French throughout.

click asks :func:`gettext.gettext` for every message it shows.  The catalogue below is ours (written here,
message by message); :func:`install` hands it to click's modules as their ``_`` and ``ngettext``.  A
``.mo`` file would serve too, but gettext picks its language from the process environment and reads a file
on disk, while a run's language comes from ``--lang``: the lookup here asks :mod:`assoc_ai_core.i18n`.
Messages click shows only to developers (badly declared options) stay in English.
"""

from __future__ import annotations

import importlib

from assoc_ai_core.i18n import Bilingual, current_lang

__all__ = ["FRENCH", "FRENCH_PLURAL", "gettext", "ngettext", "install"]

FRENCH: dict[str, str] = {
    "Usage:": "Utilisation :",
    # headings: click adds the colon; French typography wants a (no-break) space before it
    "Options": "Options\u202f",
    "Commands": "Commandes\u202f",
    "Positional arguments": "Arguments\u202f",
    "Aborted!": "Abandon.",
    "Error: {message}": "Erreur : {message}",
    "Try '{command} {option}' for help.": "Essayez « {command} {option} » pour l'aide.",
    "Show this message and exit.": "Afficher cette aide et quitter.",
    "Show the version and exit.": "Afficher la version et quitter.",
    "%(prog)s, version %(version)s": "%(prog)s, version %(version)s",
    "Missing command.": "Commande manquante.",
    "No such command {name!r}.": "Commande inconnue : {name!r}.",
    "No such option {name!r}.": "Option inconnue : {name!r}.",
    "Missing argument": "Argument manquant",
    "Missing option": "Option manquante",
    "Missing parameter": "Paramètre manquant",
    "Missing {param_type}": "{param_type} manquant",
    "Missing parameter: {param_name}": "Paramètre manquant : {param_name}",
    "Invalid value: {message}": "Valeur invalide : {message}",
    "Invalid value for {param_hint}: {message}": "Valeur invalide pour {param_hint} : {message}",
    "Could not open file {filename!r}: {message}": "Impossible d'ouvrir le fichier {filename!r} : {message}",
    "unknown error": "erreur inconnue",
    "required": "obligatoire",
    "default: {default}": "défaut : {default}",
    "env var: {var}": "variable d'environnement : {var}",
    "(dynamic)": "(dynamique)",
    "deprecated": "obsolète",
    "Value must be an iterable.": "La valeur doit être une liste.",
    "Choose from:\n\t{choices}": "Choisir parmi :\n\t{choices}",
    "file": "Fichier",
    "directory": "Dossier",
    "path": "Chemin",
    "{name} {filename!r} does not exist.": "{name} {filename!r} introuvable.",
    "{name} {filename!r} is a file.": "{name} {filename!r} est un fichier.",
    "{name} {filename!r} is a directory.": "{name} {filename!r} est un dossier.",
    "{name} {filename!r} is not readable.": "{name} {filename!r} n'est pas lisible.",
    "{name} {filename!r} is not writable.": "{name} {filename!r} n'est pas modifiable.",
    "{name} {filename!r} is not executable.": "{name} {filename!r} n'est pas exécutable.",
    "{value} is not in the range {range}.": "{value} n'est pas dans l'intervalle {range}.",
    "{value!r} is not a valid {number_type}.": "{value!r} n'est pas un nombre valide.",  # click's type name is English
    "{value!r} is not a valid boolean. Recognized values: {states}":
        "{value!r} n'est pas un booléen valide. Valeurs reconnues : {states}",
    "{value!r} is not a valid UUID.": "{value!r} n'est pas un UUID valide.",
    "Option {name!r} does not take a value.": "L'option {name!r} ne prend pas de valeur.",
    "Invalid start character for option ({option})": "Caractère de début invalide pour une option ({option})",
    "Argument {name!r} takes {nargs} values.": "L'argument {name!r} prend {nargs} valeurs.",
    "Do you want to continue?": "Voulez-vous continuer ?",
    "Confirm the action without prompting.": "Confirmer l'action sans poser la question.",
    "Press any key to continue...": "Appuyez sur une touche pour continuer…",
    "Repeat for confirmation": "Répétez pour confirmer",
    "Error: The two entered values do not match.": "Erreur : les deux valeurs saisies diffèrent.",
    "Error: invalid input": "Erreur : saisie invalide",
}

# (singular, plural) in English -> (singular, plural) in French; French keeps the singular below 2.
FRENCH_PLURAL: dict[tuple[str, str], tuple[str, str]] = {
    ("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"):
        ("Argument en trop : ({args})", "Arguments en trop : ({args})"),
    ("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"):
        ("Vouliez-vous dire {possibility} ?", "(Vouliez-vous dire l'un de : {possibilities} ?)"),
    ("{value!r} is not {choice}.", "{value!r} is not one of {choices}."):
        ("{value!r} n'est pas {choice}.", "{value!r} n'est pas l'un de {choices}."),
    ("{value!r} does not match the format {format}.", "{value!r} does not match the formats {formats}."):
        ("{value!r} ne suit pas le format {format}.", "{value!r} ne suit aucun des formats {formats}."),
    ("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."):
        ("L'option {name!r} demande une valeur.", "L'option {name!r} demande {nargs} valeurs."),
    ("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."):
        ("Prend {nargs} valeurs mais 1 a été donnée.", "Prend {nargs} valeurs mais {len} ont été données."),
    ("{len_type} values are required, but {len_value} was given.",
     "{len_type} values are required, but {len_value} were given."):
        ("{len_type} valeurs sont demandées, {len_value} donnée.", "{len_type} valeurs sont demandées, {len_value} données."),
}

# click's modules that look messages up (all loaded by ``import click``); one a later click lacks is skipped.
_CLICK_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "termui", "types", "utils")


def gettext(message: str) -> str:
    """click's ``message`` in the run's language; both versions kept, for help texts built before ``--lang``."""
    french = FRENCH.get(message)
    return message if french is None else Bilingual(french, message, current_lang())


def ngettext(singular: str, plural: str, n: int) -> str:
    """click's singular or plural message for ``n``, in the run's language."""
    french = FRENCH_PLURAL.get((singular, plural))
    if french is None or current_lang() == "en":
        return singular if n == 1 else plural
    return french[0] if abs(n) < 2 else french[1]


def install() -> None:
    """Make click look its messages up here (idempotent)."""
    for name in _CLICK_MODULES:
        try:
            module = importlib.import_module(f"click.{name}")
        except ImportError:  # a later click without this module
            continue
        if hasattr(module, "_"):
            module._ = gettext  # type: ignore[attr-defined]  # click binds gettext.gettext as "_" at import
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]  # likewise for plurals
