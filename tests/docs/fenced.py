"""The fenced code blocks of one section of a Markdown page, as the reader sees them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADING = re.compile(r"^(#+)\s+(.*)$")


def fenced_blocks(page: str, section: str, language: str = "sh") -> list[str]:
    """The ```LANGUAGE blocks under the heading SECTION of PAGE (relative to the
    repository), up to the next heading of the same or a higher level, in order."""
    blocks: list[str] = []
    level = 0
    inside = False
    block: list[str] | None = None
    for line in (ROOT / page).read_text().splitlines():
        if block is not None:
            if line.strip() == "```":
                blocks.append("\n".join(block))
                block = None
            else:
                block.append(line)
            continue
        heading = HEADING.match(line)
        if heading:
            if inside and len(heading.group(1)) <= level:
                break
            if heading.group(2).strip() == section:
                inside, level = True, len(heading.group(1))
            continue
        if inside and line.strip() == f"```{language}":
            block = []
    if not blocks:
        raise AssertionError(f"no ```{language} block under '{section}' in {page}")
    return blocks
