"""The README and docs/ stay navigable: every relative link resolves, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target); a target ends at whitespace or ')'. Skip URLs and pure anchors.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold commands, not links
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(doc: Path) -> None:
    broken = [t for t in relative_links(doc) if not (doc.parent / t.split("#", 1)[0]).exists()]
    assert not broken, f"{doc.relative_to(REPO)}: links to missing files: {broken}"


def test_link_checker_sees_links() -> None:
    # The checker itself must find the README's links, or the test above would pass on nothing.
    links = relative_links(REPO / "README.md")
    assert "docs/INSTALL.md" in links and "docs/CAMERA_TRAPS.md" in links


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    seen, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.exists():
            continue
        seen.add(page)
        todo += [(page.parent / t.split("#", 1)[0]).resolve() for t in relative_links(page)]
    orphans = [p.name for p in DOCS[1:] if p.resolve() not in seen]
    assert not orphans, f"docs pages no link leads to from README.md: {orphans}"


def test_readme_stays_a_two_minute_read() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


TOOL = re.compile(r"\btools/[a-z][\w-]*\.(?:py|sh)\b")  # placeholders such as tools/X.py are not tools


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_tool_a_page_names_exists(doc: Path) -> None:
    """Commands in the docs (the README's figure commands included) name tools that are in the clone."""
    missing = sorted({t for t in TOOL.findall(doc.read_text(encoding="utf-8")) if not (REPO / t).is_file()})
    assert not missing, f"{doc.relative_to(REPO)} names missing tools: {missing}"


def test_readme_says_which_commands_need_a_clone() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "The benchmarks need a clone" in text and "`benchmarks/`" in text
    assert "|benchmark|" not in text  # no longer an installed sub-command
    for tool in ("benchmark.py", "benchmark_eval.py", "benchmark_journal.py", "benchmark_scaling.py"):
        assert f"python tools/{tool}" in text
