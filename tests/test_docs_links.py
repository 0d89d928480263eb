"""The documentation stays inside the repository.

Every relative link in README.md and docs/*.md must name a file of the repository, and no page
may send a reader to the shared test data or other paths outside it (tests may read them;
the docs may not).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: ``[text](target)`` and ``![alt](target)``; the target up to whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _relative_targets(page: Path) -> list[str]:
    targets = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_name_files_of_the_repository(page: Path) -> None:
    missing = []
    for target in _relative_targets(page):
        path = (page.parent / target).resolve()
        if ROOT not in path.parents or not path.exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)} links to {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_page_points_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # a path with '..' read from the page or from the repository root (prose names paths
    # from the checkout) must stay inside the repository
    outside = [t for t in re.findall(r"\.\./[\w./-]+", text)
               if any(ROOT not in (base / t).resolve().parents for base in (page.parent, ROOT))]
    assert not outside, f"{page.relative_to(ROOT)} refers to files outside the repository: {outside}"


def test_the_link_pattern_finds_links() -> None:
    text = "see [the design](docs/design.md#2) and ![a figure](fig.png), not [x](https://a.b)"
    found = [t.split("#", 1)[0] for t in LINK.findall(text)
             if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]
    assert found == ["docs/design.md", "fig.png"]
