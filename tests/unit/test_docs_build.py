"""The documentation site builds without a warning (a broken link or anchor fails the build), and every
relative link in README.md and CONTRIBUTING.md points at a file of the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# [text](target) and ![alt](target), with an optional "title"; <img src="..."> for pictures given in HTML.
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_SOURCE = re.compile(r"""<(?:img|a)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def relative_links(markdown: str) -> list[str]:
    """The targets of the links a reader can follow, outside code blocks, that stay in the repository."""
    text = FENCE.sub("", markdown)
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    targets = MARKDOWN_LINK.findall(text) + HTML_SOURCE.findall(text)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", t, re.IGNORECASE)]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # the theme's notice about its successor
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_point_at_files(name: str) -> None:
    document = ROOT / name
    links = relative_links(document.read_text(encoding="utf-8"))
    assert links, f"{name} links nothing"
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert missing == [], f"{name}: links to files that do not exist: {missing}"


def test_the_link_check_sees_broken_links() -> None:
    """The checker itself: code blocks and inline code are not links; web and anchor links are not files."""
    text = ("[a](docs/a.md) ![b](docs/img/b.png \"B\") <img src=\"x.png\"> [c](https://example.com) [d](#top)\n"
            "`[e](e.md)`\n```\n[f](f.md)\n```\n")
    assert relative_links(text) == ["docs/a.md", "docs/img/b.png", "x.png"]
