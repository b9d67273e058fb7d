"""HTML mail to plain text with selectolax (the Lexbor HTML5 parser).

Block elements become line breaks and quoted blocks (``<blockquote>``, Gmail
and Outlook quote containers) become ``> `` lines, so the plain-text reply
detection of :mod:`assoc_ai_core.mail.cleaning` works the same on HTML-only mail.

The tree is read in one walk along sibling and parent links, never by
recursion and never by re-reading a subtree: hostile mail nests quotes
thousands deep, and a walk per quote made that quadratic.  Two caps apply
before the parser sees a page: its first ``MAX_HTML_CHARS`` characters only
(a 50 MB single-line page cost gigabytes of tree), and tags nested deeper than
``MAX_HTML_DEPTH`` are dropped (the parser's scope checks grow with the depth,
so 100,000 nested tags took minutes).  :func:`read_html` says which cap cut.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["html_to_text", "read_html", "MAX_HTML_CHARS", "MAX_HTML_DEPTH", "TRUNCATED_HTML", "FLATTENED_HTML"]

# The largest HTML part of 13,000 messages of the shared corpora is 82 KB; the text kept is a few KB of it.
MAX_HTML_CHARS = 256 * 1024
MAX_HTML_DEPTH = 256  # newsletters' nested tables stay far below; the count below over-estimates, never under
TRUNCATED_HTML = "truncated:html"
FLATTENED_HTML = "truncated:html-depth"
# Tags that never hold others, or that the parser closes by itself when the next one opens: they add no depth.
_FLAT_TAGS = frozenset((
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
    "p", "li", "dt", "dd", "tr", "td", "th", "option",
))
# Possessive quantifiers: an unclosed "<a<a<a..." is read once, not re-scanned from every "<".
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*+)[^<>]*+>")
_BLOCK_TAGS = frozenset(
    ("p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr", "blockquote", "pre")
)
_CELL_TAGS = frozenset(("td", "th"))
_QUOTES = "blockquote, div.gmail_quote, div.moz-cite-prefix, div#divRplyFwdMsg, div.yahoo_quoted"
_DROPPED = "script, style, head, noscript, template"
_SPACES = re.compile(r"[ \t\u00a0\u200b]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: scripts and styles dropped, quotes marked with ``> ``."""
    return read_html(html)[0]


def read_html(html: str) -> tuple[str, list[str]]:
    """The text of an HTML body (as :func:`html_to_text`) and the caps that cut it (``truncated:html``...)."""
    if not html or not html.strip():
        return "", []
    defects = []
    if len(html) > MAX_HTML_CHARS:
        html = html[:MAX_HTML_CHARS]
        defects.append(TRUNCATED_HTML)
    html, flattened = _flatten_deep(html)
    if flattened:
        defects.append(FLATTENED_HTML)
    tree = LexborHTMLParser(html)
    for node in tree.css(_DROPPED):
        node.decompose()
    root = tree.body or tree.root
    if root is None:
        return "", defects
    return _normalise("".join(_Walk(root).run())), defects


def _flatten_deep(html: str) -> tuple[str, bool]:
    """``html`` without the tags nested deeper than :data:`MAX_HTML_DEPTH` (and their end tags); whether any was.

    Their text stays, read as part of the last kept element.
    """
    if html.count("<") <= MAX_HTML_DEPTH:
        return html, False
    depth = dropped = 0
    cuts: list[tuple[int, int]] = []
    for match in _TAG.finditer(html):
        if match.group(2).lower() in _FLAT_TAGS:
            continue
        if match.group(1):  # an end tag closes the innermost open element: a dropped one first
            if dropped:
                dropped -= 1
                cuts.append(match.span())
            elif depth:
                depth -= 1
        elif depth >= MAX_HTML_DEPTH:
            dropped += 1
            cuts.append(match.span())
        else:
            depth += 1
    if not cuts:
        return html, False
    pieces, pos = [], 0
    for start, end in cuts:
        pieces.append(html[pos:start])
        pos = end
    pieces.append(html[pos:])
    return "".join(pieces), True


def _normalise(raw: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in raw.splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


class _Walk:
    """One depth-first walk of a tree, writing text chunks with block breaks and the outermost quotes marked.

    A quote inside a quote is read as a plain block of the outer one: the
    whole outer quote gets one ``> `` level, as mailers show it.
    """

    def __init__(self, root: LexborNode) -> None:
        self.root_id = root.mem_id
        self.root = root
        # Found by the selector engine, in one pass: it knows how the document's mode compares class names.
        self.quotes = {node.mem_id for node in root.css(_QUOTES)}
        self.out: list[str] = []
        self.quote: list[str] | None = None  # chunks of the outermost quote being read
        self.quote_id: int | None = None

    def _buf(self) -> list[str]:
        return self.quote if self.quote is not None else self.out

    def _enter(self, node: LexborNode) -> None:
        tag = node.tag or ""
        if node.is_text_node:
            self._buf().append(node.text_content or "")
        elif self.quote is None and node.mem_id in self.quotes:
            self.out.append("\n")
            self.quote, self.quote_id = [], node.mem_id
        elif tag in _BLOCK_TAGS:
            self._buf().append("\n")

    def _leave(self, node: LexborNode) -> None:
        if self.quote is not None and node.mem_id == self.quote_id:
            inner = _normalise("".join(self.quote))
            quoted = "\n".join("> " + line if line.strip() else ">" for line in inner.splitlines())
            self.out.append("\n" + quoted + "\n\n")
            self.quote, self.quote_id = None, None
            return
        tag = node.tag or ""
        if tag in _CELL_TAGS:
            self._buf().append(" ")
        elif tag in _BLOCK_TAGS and tag != "br":
            self._buf().append("\n")

    def run(self) -> list[str]:
        """The text chunks of the tree under the root, in document order."""
        node: LexborNode | None = self.root.child
        while node is not None:
            self._enter(node)
            child = node.child if not node.is_text_node else None
            if child is not None:
                node = child
                continue
            while node is not None:  # leave this node, and its ancestors that have no next sibling
                self._leave(node)
                nxt = node.next
                if nxt is not None:
                    node = nxt
                    break
                parent = node.parent
                node = None if parent is None or parent.mem_id == self.root_id else parent
        return self.out
