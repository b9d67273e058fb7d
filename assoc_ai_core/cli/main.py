"""The ``assoc-ai`` command line: the root group, the wiring of every command group, and ``main``.

The mail commands live in :mod:`assoc_ai_core.cli.mail`; the triage, trust and
people commands in their own modules; installed plugins add theirs through the
``register_commands`` hook.

Exit codes (listed in :mod:`assoc_ai_core.errors`): 0 success; 1 unexpected error; 2 usage error;
3 authentication refused; 4 unusable data; 5 plugin error; 6 connector error; 7 model error;
75 temporary failure (network, throttling: try again later); 78 configuration error; 130 Ctrl-C.
Set ``ASSOC_AI_RAISE_ERRORS=1`` to see the full traceback of an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

from assoc_ai_core import __version__
from assoc_ai_core.cli import mail
from assoc_ai_core.cli.common import (
    VERBOSE_HELP,
    BilingualOption,
    ErrorReportingGroup,
    lang_option,
    option,
    set_verbosity,
)
from assoc_ai_core.cli.label import label as label_command
from assoc_ai_core.errors import AssocAIError
from assoc_ai_core.i18n import tr

__all__ = ["cli", "main"]


@click.group(cls=ErrorReportingGroup, help=tr(
    "assoc-ai : trier le courrier d'une association, expliquer, laisser la main aux humains.",
    "assoc-ai: sort an association's mail, explain, keep humans in charge.",
))
@click.version_option(__version__, prog_name="assoc-ai", cls=BilingualOption,
                      help=tr("Afficher la version et quitter.", "Show the version and exit."))
@option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@lang_option
def cli(verbose: int, lang: str | None) -> None:
    """Root command."""
    set_verbosity(verbose)


mail.add_commands(cli)
cli.add_command(label_command)


def _wire_optional_commands() -> None:
    """Commands of other core modules and of installed plugins."""
    add_commands: Callable[[click.Group], None] | None
    try:
        from assoc_ai_core.cli.triage import add_commands
    except ImportError:  # the triage module is part of the core; absent only in a partial checkout
        add_commands = None
    if add_commands is not None:
        add_commands(cli)
        from assoc_ai_core.cli.trust import add_commands as add_trust_commands

        add_trust_commands(cli)  # after the triage commands: "model card" joins their "model" group
    try:
        from assoc_ai_core.cli.people import people as people_group

        cli.add_command(people_group)
    except ImportError:
        pass
    from assoc_ai_core.ext.plugins import load_plugins

    try:
        load_plugins().hook.register_commands(cli=cli)
    except AssocAIError as exc:
        click.echo(str(exc), err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``assoc-ai`` script."""
    _wire_optional_commands()
    cli.main(args=list(argv) if argv is not None else None, prog_name="assoc-ai")


if __name__ == "__main__":  # pragma: no cover
    main()
