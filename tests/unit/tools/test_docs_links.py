"""The user docs point at things that exist: every relative link in README.md, CONTRIBUTING.md and
docs/*.md resolves (and its #anchor names a heading of the target page), and every repository
path they mention (in backticks, links or plain text) is in the tree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PAGES = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# A path-like token: at least one "/" between name characters (no placeholders such as <name>).
PATH_TOKEN = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.+\-/]*/[A-Za-z0-9_.+\-/]*")
# Generated or per-deployment locations a page may name without the tree holding them.
NOT_IN_TREE = ("model_repository/", "secrets/", ".venv", ".whl/")


def top_level_entries(root: Path) -> set[str]:
    """Names at the repository root that a mentioned path may start with (hidden ones excluded)."""
    return {p.name for p in root.iterdir() if not p.name.startswith(".")}


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub generates for the page's headings (repeats get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        out.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return out


def broken_links(page: Path) -> list[str]:
    """Relative links of `page` whose file or #anchor does not exist."""
    problems = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading with anchor #{anchor}")
    return problems


def mentioned_paths(text: str, top: set[str]) -> set[str]:
    """Repository paths a page mentions: path-like tokens whose first part is a root entry."""
    found = set()
    for token in PATH_TOKEN.findall(text):
        token = token.rstrip(".,:;")
        first = token.split("/", 1)[0]
        if first in top and not token.startswith(NOT_IN_TREE):
            found.add(token)
    return found


def missing_paths(page: Path, root: Path = REPO) -> list[str]:
    """Mentioned repository paths of `page` not in the tree: any path in code (spans and fenced
    blocks), and in prose the paths that end in a file name with an extension (not "a/b" words)."""
    text = page.read_text()
    text = re.sub(r"\S*<[^>\s]*>\S*", " ", text)  # tokens with a placeholder (<name>, <model>)
    text = re.sub(r"\S*[{*$]\S*", " ", text)  # globs, brace lists and variables
    code = FENCE.findall(text) + CODE_SPAN.findall(FENCE.sub("", text))
    prose = CODE_SPAN.sub(" ", FENCE.sub("", text))
    top = top_level_entries(root)
    paths = mentioned_paths("\n".join(code), top)
    paths |= {p for p in mentioned_paths(prose, top) if "." in p.rsplit("/", 1)[-1]}
    return sorted(p for p in paths if not exists(root, p))


def exists(root: Path, path: str) -> bool:
    """`path` is in the tree, or names a module attribute as `dir/module.attribute`."""
    module, _, attribute = path.rpartition(".")
    return (root / path).exists() or bool(
        module and attribute.isidentifier() and (root / f"{module}.py").is_file()
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_mentioned_repository_paths_exist(page: Path):
    assert missing_paths(page) == []


def test_the_checks_catch_a_broken_link_anchor_and_path(tmp_path: Path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "real.py").write_text("")
    (tmp_path / "other.md").write_text("# Long passages\n\n## 4. Failures seen by callers\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#long-passages) [ok](other.md#4-failures-seen-by-callers) [web](https://x.org/y)\n"
        "[gone](missing.md) [bad anchor](other.md#nope)\n"
        "`core/real.py` `core/real.ATTR` `core/gone.py::test_x` see core/typo.py. core/words are prose.\n"
        "`core/<name>/x` `bench/not-a-root-entry.py`\n"
        "```\npython core/also_gone.py --flag\n```\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "other.md#nope: no heading with anchor #nope"]
    assert missing_paths(page, root=tmp_path) == ["core/also_gone.py", "core/gone.py", "core/typo.py"]
