"""HTML mail to plain text with selectolax (the Lexbor HTML5 parser).

Block elements become line breaks and quoted blocks (``<blockquote>``, Gmail
and Outlook quote containers) become ``> `` lines, so the plain-text reply
detection of :mod:`assoc_ai_core.mail.cleaning` works the same on HTML-only mail.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["html_to_text"]

_BLOCKS = "p, div, br, tr, li, h1, h2, h3, h4, h5, h6, table, ul, ol, hr, blockquote, pre"
_QUOTES = "blockquote, div.gmail_quote, div.moz-cite-prefix, div#divRplyFwdMsg, div.yahoo_quoted"
_SPACES = re.compile(r"[ \t\u00a0\u200b]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: scripts and styles dropped, quotes marked with ``> ``."""
    if not html or not html.strip():
        return ""
    tree = LexborHTMLParser(html)
    for node in tree.css("script, style, head, noscript, template"):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return ""
    for node in root.css(_QUOTES):
        if node.parent is None:
            continue
        inner = _text_of(node)
        quoted = "\n".join("> " + line if line.strip() else ">" for line in inner.splitlines())
        node.replace_with("\n" + quoted + "\n")
    text = _text_of(root)
    return text


def _text_of(node: LexborNode) -> str:
    for cell in node.css("td, th"):
        cell.insert_after(" ")
    for block in node.css(_BLOCKS):
        block.insert_before("\n")
        if block.tag != "br":
            block.insert_after("\n")
    raw = node.text(deep=True, separator="", strip=False)
    lines = (_SPACES.sub(" ", line).strip() for line in raw.splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
