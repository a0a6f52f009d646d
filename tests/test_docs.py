"""Docs that a reader outside the project can follow: no pointers to material they do not have, every
command documented, the models table current, and the README's Python blocks run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("gallery/**/README.md")])
# words that point at material a reader does not have
FORBIDDEN = re.compile(r"pitfall|slides?\b|lectures?\b|\bissue\s*#?\d+|(?<![\w/])#\d+\b", re.IGNORECASE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_point_at_nothing_a_reader_lacks(page: Path) -> None:
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(page.read_text().splitlines(), 1) if FORBIDDEN.search(line)]
    assert hits == []


def test_forbidden_pattern_catches_what_it_should() -> None:
    for text in ("see pitfall 3", "the slides say", "as in the lecture", "issue 10", "fixed in #12"):
        assert FORBIDDEN.search(text), text
    for text in ("layer4.1", "see docs/units.md#patches", "#include", "10 issues were"):
        assert not FORBIDDEN.search(text), text


def test_every_command_is_documented() -> None:
    from cnnlens.cli import COMMANDS

    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *ROOT.glob("docs/*.md")])
    missing = [c for c in COMMANDS if f"cnnlens {c}" not in text]
    assert missing == []


def test_models_table_is_generated_from_the_registry() -> None:
    from cnnlens.cli.support import support_table

    assert (ROOT / "docs" / "models.md").read_text() == support_table(), "run: python -m cnnlens.cli.support > docs/models.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_has_python_blocks() -> None:
    assert len(_python_blocks((ROOT / "README.md").read_text())) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_python_blocks((ROOT / "README.md").read_text()))))
def test_readme_python_block_runs_as_written(index: int, tmp_path: Path) -> None:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (the README's examples use the development data folder)")
    code = _python_blocks((ROOT / "README.md").read_text())[index]
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (tmp_path / "shared").symlink_to(DATA.parent)  # ../shared/data from the working folder, as beside a checkout
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
