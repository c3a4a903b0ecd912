"""The docs hold together: every relative link and `#anchor` in the README, docs/ and benchmarks/README.md
resolves, every repository path the docs name in `code` exists, the README stays short and reaches every page
under docs/ (directly or through one index page). Plain text only: no Ray, no torch; about a second."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 320


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md")), ROOT / "benchmarks" / "README.md"]


FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
REPO_PATH = re.compile(r"^(orchestrator|trainables|search_spaces|benchmarks|tests|docs)/[\w./-]*$")


def prose(text: str) -> str:
    """The text outside fenced code blocks (code is not markdown: no links, no headings)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: formatting dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page defines: its headings' slugs (repeats numbered -1, -2 as GitHub does) and HTML ids."""
    seen: dict[str, int] = {}
    out = set()
    body = prose(text)
    for _, title in HEADING.findall(body):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out | set(HTML_ANCHOR.findall(body))


def links(text: str) -> list[str]:
    """The targets of a page's inline links, images and reference definitions, outside code."""
    body = CODE_SPAN.sub("code", prose(text))
    return INLINE_LINK.findall(body) + REFERENCE_DEF.findall(body)


def resolve(page: Path, target: str) -> tuple[Path, str] | None:
    """(file, anchor) a relative link points at; None for a link to another site."""
    if SCHEME.match(target):
        return None
    path, _, anchor = target.partition("#")
    path = unquote(path.split("?", 1)[0])
    if not path:
        return page, anchor
    base = ROOT if path.startswith("/") else page.parent
    return (base / path.lstrip("/")).resolve(), anchor


def problems(page: Path) -> list[str]:
    """Each link of `page` that points nowhere, as `page: target: why`."""
    out = []
    cache: dict[Path, set[str]] = {}
    for target in links(page.read_text()):
        where = resolve(page, target)
        if where is None:
            continue
        file, anchor = where
        if not file.exists():
            out.append(f"{page.relative_to(ROOT)}: {target}: no such file")
        elif anchor and file.suffix == ".md":
            if file not in cache:
                cache[file] = anchors(file.read_text())
            if anchor.lower() not in cache[file]:
                out.append(f"{page.relative_to(ROOT)}: {target}: no heading with anchor #{anchor} in {file.name}")
    return out


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing"
    assert problems(page) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_in_code_exists(page):
    """`orchestrator/search/budget.py` and the like, written as code in prose: the file or folder is there (a
    path with a placeholder such as `<task>` or `*` is a pattern, not a path)."""
    named = {span for _, span in CODE_SPAN.findall(prose(page.read_text())) if REPO_PATH.match(span.strip())}
    missing = sorted(p for p in named if not (ROOT / p.strip()).exists())
    assert missing == [], f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into a page under docs/ (at most {README_MAX_LINES})"


def test_readme_reaches_every_docs_page():
    """Every page under docs/ is linked from the README or from a page the README links (one index page)."""
    def linked(page: Path) -> set[Path]:
        found = set()
        for target in links(page.read_text()):
            where = resolve(page, target)
            if where and where[0].suffix == ".md" and where[0].is_file():
                found.add(where[0])
        return found

    direct = linked(README)
    reached = direct | {p for index in direct for p in linked(index)}
    unreached = [str(p.relative_to(ROOT)) for p in sorted(DOCS.rglob("*.md")) if p.resolve() not in reached]
    assert unreached == [], f"pages under docs/ that README.md does not reach: {unreached}"


# The checker itself, on pages made up for the purpose: a test that cannot fail proves nothing.

def test_slugs_follow_github():
    assert slug("Trackers: MLflow and Weights & Biases") == "trackers-mlflow-and-weights--biases"
    assert slug("The quickstart and `--budget`, timed") == "the-quickstart-and---budget-timed"
    assert slug("`points_to_evaluate`") == "points_to_evaluate"
    assert slug("4. Look at the results") == "4-look-at-the-results"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n<a id=\"here\"></a>\n") == {"a", "a-1", "here"}


def test_the_checker_finds_broken_links_and_anchors(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Real heading\n")
    index = tmp_path / "index.md"
    index.write_text(
        "[fine](docs/page.md) [fine too](docs/page.md#real-heading) [self](#top) [site](https://example.com/x.md)\n"
        "[gone](docs/gone.md) [bad anchor](docs/page.md#no-such-heading) ![image](docs/missing.png)\n"
        "`[in code](docs/ignored.md)`\n```\n[in a block](docs/ignored.md)\n```\n# Top\n"
    )
    assert problems(index) == [
        "index.md: docs/gone.md: no such file",
        "index.md: docs/page.md#no-such-heading: no heading with anchor #no-such-heading in page.md",
        "index.md: docs/missing.png: no such file",
    ]
