"""The documentation site: it builds strictly, documents every hook exactly, and its tutorial plugin works.

The site is built with the real ``mkdocs build --strict`` (broken links, missing
anchors, pages left out of the navigation and docstrings griffe cannot parse
all fail it).  The tutorial includes the skeleton plugin's code through
``pymdownx.snippets``, so the skeleton's own tests are run here too: the code a
partner reads is code that passes the conformance kit.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from assoc_ai_core.ext import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKELETON = ROOT / "examples" / "crm_plugin_skeleton"
HOOKS_PAGE = DOCS / "plugins" / "hooks.md"

# The public API the reference must cover (one ``::: module`` block each).
REFERENCE_MODULES = (
    "assoc_ai_core.api", "assoc_ai_core.mail.model", "assoc_ai_core.mail.explain", "assoc_ai_core.mail.evaluate",
    "assoc_ai_core.persistence", "assoc_ai_core.mail.cleaning", "assoc_ai_core.mail.parsing", "assoc_ai_core.ext.connectors",
    "assoc_ai_core.ext.config", "assoc_ai_core.ext.hookspecs", "assoc_ai_core.errors", "assoc_ai_core.records.people",
    "assoc_ai_core.ext.crm",
)


def _mkdocs(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's mkdocs (the venv's), failing clearly when the docs extra is not installed."""
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"the documentation tools are not installed ({exc.name}): pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "mkdocs", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole site, built once with --strict."""
    out = tmp_path_factory.mktemp("site")
    done = _mkdocs(["build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)], ROOT)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert "WARNING" not in done.stderr, done.stderr
    return out


def _page(site: Path, src: str) -> str:
    """The HTML MkDocs wrote for the source page ``src`` (directory URLs)."""
    stem = src.removesuffix(".md")
    path = site / (f"{stem.removesuffix('index')}index.html" if stem.endswith("index") else f"{stem}/index.html")
    assert path.is_file(), f"{src} was not built ({path} missing)"
    return path.read_text(encoding="utf-8")


def test_site_builds_strictly_with_every_audience(site: Path) -> None:
    """Home, the three audiences' pages and the reference are all built."""
    for src in ("index.md", "quickstart.md", "reading-the-report.md", "gdpr.md", "plugins/hooks.md",
                "plugins/connector-contract.md", "plugins/tutorial.md", "plugins/testing.md", "reference/index.md"):
        _page(site, src)
    home = _page(site, "index.md")
    for target in ("quickstart/", "reading-the-report/", "gdpr/", "plugins/tutorial/", "reference/"):
        assert f'href="{target}' in home, f"the home page does not link to {target}"


def test_reference_pages_are_generated_from_docstrings(site: Path) -> None:
    """Each public module has its ``:::`` page, rendered with its objects and no raw Sphinx roles."""
    blocks = {m.group(1) for p in (DOCS / "reference").glob("*.md")
              for m in re.finditer(r"^::: ([\w.]+)\s*$", p.read_text(encoding="utf-8"), re.MULTILINE)}
    assert set(REFERENCE_MODULES) <= blocks, f"no reference page for {sorted(set(REFERENCE_MODULES) - blocks)}"
    html = _page(site, "reference/connectors.md")
    assert 'id="assoc_ai_core.ext.connectors.MailboxConnector"' in html
    assert 'id="assoc_ai_core.ext.connectors.MailboxConnector.fetch_new"' in html
    for page in (site / "reference").rglob("index.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r":(class|func|meth|mod|data):<code>", text), f"raw Sphinx role left in {page}"
        assert ".. versionadded::" not in text, f"raw reST directive left in {page}"


def test_tutorial_shows_the_tested_skeleton_code(site: Path) -> None:
    """The snippets were included (nothing left unexpanded) and match the skeleton's files."""
    html = _page(site, "plugins/tutorial.md")
    assert "--8&lt;--" not in html and "--8<--" not in html
    code = "\n".join(re.findall(r"<pre\b[^>]*>(.*?)</pre>", html, flags=re.DOTALL))
    shown = {line.strip() for line in unescape(re.sub(r"<[^>]+>", "", code)).splitlines()}
    for name in ("assoc_ai_skeleton/connector.py", "assoc_ai_skeleton/__init__.py", "tests/test_skeleton.py"):
        source = (SKELETON / name).read_text(encoding="utf-8")
        for section in re.findall(r"--8<-- \[start:([\w-]+)\]", source):
            body = source.split(f"--8<-- [start:{section}]", 1)[1].split(f"--8<-- [end:{section}]", 1)[0]
            lines = [ln.strip() for ln in body.splitlines()[1:-1] if ln.strip() and "--8<--" not in ln]
            missing = [ln for ln in lines if ln not in shown]
            assert not missing, f"{name}:{section} lines not shown in the tutorial: {missing[:3]}"


def test_links_to_repository_files_are_published(site: Path) -> None:
    """Links from pages to repository files (examples, plugin READMEs) point at copies that exist in the site."""
    seen = 0
    for page in site.rglob("*.html"):
        for href in re.findall(r'href="([^"#?]+)"', page.read_text(encoding="utf-8")):
            if "://" in href or "repo/" not in href:
                continue
            target = (page.parent / href).resolve()
            if target.is_dir():
                target = target / "index.html"
            assert target.is_file(), f"{page.relative_to(site)} links to {href}, which is not in the site"
            seen += 1
    assert seen, "no page links to a repository file: the repo_links hook is no longer exercised"


def _mini_site(tmp_path: Path, link: str) -> subprocess.CompletedProcess[str]:
    """Build a one-page site, using the real hook, whose page links to ``link``."""
    (tmp_path / "docs").mkdir(parents=True)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "job.toml").write_text("[triage]\n", encoding="utf-8")
    (tmp_path / "docs" / "index.md").write_text(f"# Page\n\nSee [the example]({link}).\n", encoding="utf-8")
    hook = DOCS / "_hooks" / "repo_links.py"
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\nnav:\n  - index.md\nhooks:\n  - {json.dumps(str(hook))}\n", encoding="utf-8")
    return _mkdocs(["build", "--strict", "-d", str(tmp_path / "site")], tmp_path)


def test_repo_link_hook_publishes_existing_files_and_fails_on_missing_ones(tmp_path: Path) -> None:
    """The hook turns ``../examples/job.toml`` into a published copy, and a dangling link into a strict failure."""
    good = _mini_site(tmp_path / "good", "../examples/job.toml")
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "good" / "site" / "repo" / "examples" / "job.toml").read_text(encoding="utf-8") == "[triage]\n"
    assert 'href="repo/examples/job.toml"' in (tmp_path / "good" / "site" / "index.html").read_text(encoding="utf-8")
    bad = _mini_site(tmp_path / "bad", "../examples/missing.toml")
    assert bad.returncode != 0
    assert "missing.toml" in bad.stderr and "does not exist in the repository" in bad.stderr


# ------------------------------------------------------------------------------------------ hooks page
def _hooks() -> list[Callable[..., Any]]:
    """Every hookspec of the core (pluggy marks them with ``assoc_ai_spec``)."""
    marker = f"{hookspecs.PROJECT}_spec"
    return [f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, marker)]


def signature_text(fn: Callable[..., Any]) -> str:
    """``name(param: Type, ...) -> Return`` as written in hookspecs.py (string annotations unquoted)."""
    def shown(annotation: Any) -> str:
        text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        return text.strip("'\"")

    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {shown(p.annotation)}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {shown(sig.return_annotation)}"


def _hook_sections() -> dict[str, str]:
    """Level-2 headings of hooks.md that are code spans (one per hook) mapped to their section text."""
    text = HOOKS_PAGE.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    for part in parts:
        heading, _, body = part.partition("\n")
        match = re.fullmatch(r"`([^`]+)`\s*(\{[^}]*\})?\s*", heading)
        if match:
            sections[match.group(1)] = body
    return sections


def test_every_hook_has_a_section_headed_by_its_exact_signature() -> None:
    """One section per hookspec, heading = exact signature; no section for a hook that does not exist."""
    hooks = _hooks()
    assert len(hooks) >= 4, "hookspecs were not found (pluggy marker changed?)"
    sections = _hook_sections()
    expected = {signature_text(f) for f in hooks}
    assert expected - set(sections) == set(), f"hooks without an exact-signature section: {sorted(expected - set(sections))}"
    assert set(sections) - expected == set(), f"sections for hooks that do not exist (stale): {sorted(set(sections) - expected)}"


def test_hook_sections_are_bilingual_with_an_example_and_say_firstresult() -> None:
    """Each hook section has French and English text and a Python example; firstresult hooks say so."""
    sections = _hook_sections()
    marker = f"{hookspecs.PROJECT}_spec"
    for fn in _hooks():
        body = sections[signature_text(fn)]
        assert "*English.*" in body, f"{fn.__name__}: no English part"
        assert "```python" in body, f"{fn.__name__}: no example"
        if getattr(fn, marker).get("firstresult"):
            assert "firstresult" in body, f"{fn.__name__} is firstresult: its section must say so"


def test_hooks_page_catches_a_changed_signature() -> None:
    """The comparison is strict: a renamed parameter would not match its section."""
    sections = _hook_sections()

    def register_connectors(reg: ConnectorRegistry) -> None:  # noqa: F821 - the annotation is only text
        """Same hook, renamed parameter."""

    assert signature_text(register_connectors) == "register_connectors(reg: ConnectorRegistry) -> None"
    assert signature_text(register_connectors) not in sections


# ------------------------------------------------------------------------------------------ skeleton plugin
def test_skeleton_plugin_tests_pass() -> None:
    """The tutorial's plugin passes its own suite (the CRM conformance kit included), installed or not."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SKELETON)],
                          cwd=SKELETON, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    from assoc_ai_core.testing.crm import CRM_CHECKS

    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= len(CRM_CHECKS) + 4, done.stdout
    assert not re.search(r"\d+ (failed|errors?)\b", done.stdout), done.stdout


@pytest.fixture
def skeleton_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The skeleton module known to the plugin manager: by its entry point if installed, else by hand."""
    from assoc_ai_core.ext import plugins

    try:
        import assoc_ai_skeleton
    except ImportError:  # CI installs plugins/*/, not examples/: import it from its folder
        monkeypatch.syspath_prepend(str(SKELETON))
        import assoc_ai_skeleton
    plugins.load_plugins()
    if plugins.pm.has_plugin("skeleton"):
        yield assoc_ai_skeleton
        return
    plugins.register_plugin(assoc_ai_skeleton, name="skeleton")
    try:
        yield assoc_ai_skeleton
    finally:
        plugins.pm.unregister(name="skeleton")


def test_skeleton_is_found_through_its_hook_and_conforms(skeleton_plugin: Any, tmp_path: Path) -> None:
    """The host resolves ``skeleton`` to the plugin's class, and that class passes the whole CRM kit."""
    from assoc_ai_core.ext.plugins import connector_registry, get_connector_class
    from assoc_ai_core.testing.crm import check_crm_connector

    cls = get_connector_class("skeleton")
    assert cls is skeleton_plugin.SkeletonConnector
    assert connector_registry().origin("skeleton") == "assoc_ai_skeleton.connector"
    people = tmp_path / "people.json"
    people.write_text(json.dumps({"people": [
        {"id": "a1", "last_name": "Martin", "modified": "2025-01-02T03:04:05+00:00"},
        {"id": "a2", "last_name": "Haddad", "modified": "2025-01-02T03:04:05+00:00"},
    ]}), encoding="utf-8")
    check_crm_connector(lambda: cls(cls.Config(path=str(people))))
