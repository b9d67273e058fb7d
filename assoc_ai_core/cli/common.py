"""What every command group shares: errors turned into one clear line and the documented exit code."""

from __future__ import annotations

import os
from typing import Any

import click

from assoc_ai_core.errors import AssocAIError
from assoc_ai_core.i18n import tr

__all__ = ["ErrorReportingGroup"]


class ErrorReportingGroup(click.Group):
    """A click group that turns assoc-ai errors into one clear line and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AssocAIError as exc:
            if os.environ.get("ASSOC_AI_RAISE_ERRORS"):
                raise
            click.echo(tr("Erreur : ", "Error: ") + str(exc), err=True)
            ctx.exit(exc.exit_code)
