"""MkDocs hook: make links from the docs to repository files (``../examples/…``) work on the site too.

The pages are written to be read in the repository as well as on the site, so
they link to example configurations and plugin READMEs with paths that leave
``docs/``.  MkDocs only knows files inside ``docs/`` and would report those
links as broken.  This hook publishes each linked repository file under
``repo/`` in the site (Markdown files become pages, with their own links
followed the same way) and rewrites the links to point there.  A link to a
file that does not exist in the repository is still reported, so
``mkdocs build --strict`` keeps catching drift.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel

log = logging.getLogger("mkdocs.hooks.repo_links")

PREFIX = "repo"
# Inline Markdown links and images: [text](target "title") — the target is group 2.
_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?((?:\s+\"[^\"]*\")?\))")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def _roots(config: Any) -> tuple[Path, Path]:
    docs = Path(config.docs_dir).resolve()
    repo = Path(config.config_file_path).resolve().parent
    return docs, repo


def _outside_targets(text: str, source: Path, docs: Path, repo: Path) -> list[Path]:
    found = []
    for chunk in _prose(text):
        for match in _LINK.finditer(chunk):
            target = match.group(2)
            if "://" in target or target.startswith(("/", "mailto:")):
                continue
            path = (source.parent / target).resolve()
            if not path.is_relative_to(docs) and path.is_relative_to(repo):
                found.append(path)
    return found


def _prose(text: str) -> list[str]:
    """The parts of a Markdown text outside fenced code blocks."""
    parts = _FENCE.split(text)
    out, inside, i = [], False, 0
    while i < len(parts):
        piece = parts[i]
        if piece in ("```", "~~~"):
            inside = not inside
        elif not inside:
            out.append(piece)
        i += 1
    return out


def on_files(files: Files, config: Any) -> Files:
    """Add every repository file linked from a page (transitively through linked Markdown files)."""
    docs, repo = _roots(config)
    queue = [Path(f.abs_src_path) for f in files.documentation_pages() if f.abs_src_path]
    seen: set[Path] = set()
    while queue:
        source = queue.pop()
        if source in seen or not source.is_file():
            continue
        seen.add(source)
        for target in _outside_targets(source.read_text(encoding="utf-8"), source, docs, repo):
            if not target.is_file():
                continue  # reported by on_page_markdown, where the page is known
            uri = f"{PREFIX}/{target.relative_to(repo).as_posix()}"
            if files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(target), inclusion=InclusionLevel.NOT_IN_NAV))
                if target.suffix == ".md":
                    queue.append(target)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point links that leave ``docs/`` at the published copies; report links to missing files."""
    docs, repo = _roots(config)
    source = Path(page.file.abs_src_path).resolve()
    here = posixpath.dirname(page.file.src_uri)

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        path = (source.parent / target).resolve()
        if path.is_relative_to(docs):
            if source.is_relative_to(docs):
                return match.group(0)  # an ordinary link between pages: MkDocs checks it
            uri = path.relative_to(docs).as_posix()
        elif path.is_relative_to(repo):
            if not path.exists():
                log.warning("Doc file '%s' links to '%s', which does not exist in the repository.",
                            page.file.src_uri, target)
                return match.group(0)
            if path.is_dir():
                return match.group(0)
            uri = f"{PREFIX}/{path.relative_to(repo).as_posix()}"
        else:
            return match.group(0)
        new = posixpath.relpath(uri, here or ".")
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    pieces = _FENCE.split(markdown)
    inside = False
    for i, piece in enumerate(pieces):
        if piece in ("```", "~~~"):
            inside = not inside
        elif not inside:
            pieces[i] = _LINK.sub(fix, piece)
    return "".join(pieces)
