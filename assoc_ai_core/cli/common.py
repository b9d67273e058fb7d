"""What every command group shares: one language per run, errors turned into one clear line and the
documented exit code, and Ctrl-C ending in one line and exit code 130."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from assoc_ai_core.cli import click_fr
from assoc_ai_core.errors import AssocAIError
from assoc_ai_core.i18n import SUPPORTED, Bilingual, env_lang, in_lang, tr, use_lang

__all__ = ["ErrorReportingGroup", "BilingualOption", "option", "LANG_HELP", "lang_option", "lang_from_args", "localise",
           "VERBOSE_HELP", "set_verbosity",
           "INTERRUPTED_EXIT_CODE"]

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C

LANG_HELP = tr("Langue de tout ce que la commande affiche (défaut : la langue du système).",
               "Language of everything the command prints (default: the system's language).")

click_fr.install()


class BilingualOption(click.Option):
    """A click option whose help text keeps both languages (click's own clean-up of the text would drop one)."""

    def __init__(self, param_decls: Sequence[str] | None = None, help: str | None = None, **kwargs: Any) -> None:
        super().__init__(param_decls, help=help, **kwargs)
        if isinstance(help, Bilingual) and not kwargs.get("deprecated"):
            self.help = help


def option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """``click.option`` with a help text shown in the run's language."""
    return click.option(*param_decls, cls=BilingualOption, **attrs)


def lang_option(func: F) -> F:
    """The ``--lang fr|en`` option, passed to the command as ``lang``."""
    return option("--lang", type=click.Choice(list(SUPPORTED)), default=None, help=LANG_HELP)(func)


def _silent_lang_option() -> click.Option:
    """``--lang`` for a command that does not read it itself: the run's language is set before parsing."""
    return BilingualOption(["--lang"], type=click.Choice(list(SUPPORTED)), default=None, expose_value=False,
                           help=LANG_HELP)


def lang_from_args(args: Sequence[str]) -> str | None:
    """The ``--lang`` given anywhere on the command line, read before click parses it.

    click shows ``--help`` and usage errors while parsing, so the language must be known first.
    """
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--lang="):
            value = arg.split("=", 1)[1]
        else:
            continue
        if value in SUPPORTED:
            return value
    return None


VERBOSE_HELP = tr("Plus de détails dans le journal (-vv : encore plus).", "More detail in the log (-vv: even more).")


def set_verbosity(verbose: int) -> None:
    """Log at INFO (``-v``) or DEBUG (``-vv``, with every plugin hook call traced); never less than already set.

    Every handler gets the pseudonymising filter, so personal data never reaches the log.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    root = logging.getLogger()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if root.level > level:
        root.setLevel(level)
    from assoc_ai_core.trust.privacy import PseudonymisingFilter

    for handler in root.handlers:  # on the handler: it sees every logger's records
        if not any(isinstance(f, PseudonymisingFilter) for f in handler.filters):
            handler.addFilter(PseudonymisingFilter())
    if verbose >= 2:  # -vv: every plugin hook call too (secrets and personal data summarised, never shown)
        from assoc_ai_core.ext.plugins import trace_plugin_calls

        trace_plugin_calls()


def _verbosity_given(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        set_verbosity(value)


def _silent_verbose_option() -> click.Option:
    """``-v`` after the subcommand too (``assoc-ai triage run -v``), as people type it."""
    return BilingualOption(["-v", "--verbose"], count=True, expose_value=False, callback=_verbosity_given,
                           help=VERBOSE_HELP)


def localise(command: click.Command, lang: str) -> None:
    """Show ``command`` and its subcommands in ``lang``: help texts were written at import, in both languages.

    Every command also gets a ``--lang`` option (plugins' commands included), so the option is everywhere;
    likewise ``-v``.
    """
    command.help = _in(command.help, lang)
    command.short_help = _in(command.short_help, lang)
    command.epilog = _in(command.epilog, lang)
    if not any(p.name == "lang" for p in command.params):
        command.params.append(_silent_lang_option())
    taken = {o for p in command.params if isinstance(p, click.Option) for o in p.opts}
    if not taken & {"-v", "--verbose"} and not isinstance(command, click.Group):
        command.params.append(_silent_verbose_option())
    for param in command.params:
        if isinstance(param, click.Option):
            param.help = _in(param.help, lang)
        type_name = getattr(param.type, "name", None)
        if isinstance(type_name, str):  # click.Path names itself ("path", "file") when declared
            param.type.name = in_lang(type_name, lang)
    if hasattr(command, "_help_option"):  # click builds --help once per command and keeps it: build it anew
        command._help_option = None
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            localise(sub, lang)


def _in(text: str | None, lang: str) -> str | None:
    return None if text is None else in_lang(text, lang)


class ErrorReportingGroup(click.Group):
    """A click group that speaks one language per run and turns assoc-ai errors into one line and an exit code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the command line in the language of ``--lang``, else of the environment."""
        argv = list(args) if args is not None else sys.argv[1:]
        lang = lang_from_args(argv) or env_lang()
        previous = use_lang(lang)
        localise(self, lang)
        try:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        finally:
            use_lang(previous)

    def invoke(self, ctx: click.Context) -> Any:
        """Invoke the command; assoc-ai errors and Ctrl-C end in one line and their exit code."""
        try:
            return super().invoke(ctx)
        except AssocAIError as exc:
            if os.environ.get("ASSOC_AI_RAISE_ERRORS"):
                raise
            click.echo(tr("Erreur : ", "Error: ") + str(exc), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            if os.environ.get("ASSOC_AI_RAISE_ERRORS"):
                raise
            click.echo(tr("Interrompu (Ctrl-C) : rien n'a été écrit à moitié.",
                          "Interrupted (Ctrl-C): nothing was left half-written."), err=True)
            ctx.exit(INTERRUPTED_EXIT_CODE)
