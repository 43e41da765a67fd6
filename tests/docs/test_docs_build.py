"""The book (`mkdocs.yml`, `docs/`) builds with `mkdocs build --strict`, offline.

Strict mode turns every warning into a failure: a link to a missing page or anchor, a
relative link mkdocs does not recognise, an absolute link, a page missing from the
navigation or a navigation entry without its page (the `validation` settings of
`mkdocs.yml` raise all of these to warnings).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _mkdocs() -> Path:
    # The venv's own mkdocs (the dev extra installs it), never one found on PATH.
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.fail(f"{mkdocs} is missing: install the dev extra (pip install -e '.[dev]')")
    return mkdocs


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(_mkdocs()),
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=180,
        # Material prints a banner about MkDocs 2 unless told not to; it is not a warning.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


def _problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith(("WARNING", "ERROR"))
    ]


def test_the_book_builds_strict_without_a_warning(tmp_path: Path) -> None:
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _problems(result) == []
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize(
    ("link", "complaint"),
    [
        ("[gone](no-such-page.md)", "no-such-page.md"),
        ("[gone](concepts.md#no-such-section)", "no-such-section"),
        ("[gone](../README.md)", "README.md"),
    ],
)
def test_a_broken_link_fails_the_build(tmp_path: Path, link: str, complaint: str) -> None:
    # A copy of the book with one bad link: proves the configuration keeps failing on it.
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + f"\nSee {link}.\n", encoding="utf-8")

    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")

    assert result.returncode != 0
    assert any(complaint in line for line in _problems(result)), result.stdout + result.stderr


def test_a_page_left_out_of_the_navigation_fails_the_build(tmp_path: Path) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "docs" / "stray.md").write_text("# Stray\n", encoding="utf-8")

    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    # mkdocs lists the pages on the lines after its WARNING line.
    assert _problems(result), output
    assert "- stray.md" in output, output
