"""MkDocs hook: render the Sphinx-flavoured bits of the core's docstrings cleanly in the API reference.

The docstrings are numpydoc (like scikit-learn's, which our users read side by
side) and use Sphinx roles (``:class:`~assoc_ai_core.records.mail.Message```) and
``.. versionadded::`` lines.  mkdocstrings renders Markdown, so without this
hook the roles would show as raw text.  Here a role becomes a cross-reference
to the object's entry in the reference when there is one (mkdocs-autorefs
resolves it, optionally: no warning when the object is not documented), and
``.. versionadded:: X`` becomes a short "new in" note; the ``::`` that ends a
paragraph before a reST literal block loses its second colon.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# :class:`~pkg.mod.Name`, after Markdown turned the backticks into <code>.
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")
_VERSION = re.compile(r"\.\. version(added|changed):: ([\w.]+)")


class _DirectiveLines(logging.Filter):
    """griffe's numpydoc parser reports ``.. versionadded::`` lines it does not know; they are handled below."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Could not parse line '.. version" not in record.getMessage()


logging.getLogger("mkdocs.plugins.griffe").addFilter(_DirectiveLines())


def _role(match: re.Match[str]) -> str:
    tilde, target, call = match.group(1), match.group(2), match.group(3) or ""
    shown = (target.rsplit(".", 1)[-1] if tilde else target) + call
    if target.startswith("assoc_ai_core."):
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'
    return f"<code>{shown}</code>"


def _version(match: re.Match[str]) -> str:
    kind, version = match.group(1), match.group(2)
    words = "Nouveau en / New in" if kind == "added" else "Modifié en / Changed in"
    return f"<em>{words} {version}</em>"


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Turn Sphinx roles into cross-references and version directives into notes (reference pages only)."""
    if not page.file.src_uri.startswith("reference/"):
        return html
    html = _ROLE.sub(_role, html)
    html = html.replace("::</p>", ":</p>")  # reST "text::" before a literal block
    return _VERSION.sub(_version, html)
