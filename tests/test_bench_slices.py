"""Tiny slices of the scale and converted-document benchmarks: their measures mean what they say.

No timing is asserted; the figures live in docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.converted import load_slice, locate_gold_pages, reads_as, write_corpora
from bench.scale import bm25, dense
from bench.synthetic import clustered_vectors, resampled_passages, vector_statistics
from rag.pipeline import open_pipeline
from rag.settings import Settings
from tests.fakes import HashEmbedder
from tests.formats_samples import needs_chromium

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_datasets = pytest.mark.skipif(not DATASETS.is_dir(), reason="../shared/datasets missing")


def test_synthetic_vectors_are_clustered_unit_vectors_not_noise() -> None:
    vectors = clustered_vectors(2000, 64, seed=1)
    assert vectors.shape == (2000, 64)
    assert abs(float((vectors**2).sum(axis=1).mean()) - 1.0) < 1e-5
    stats = vector_statistics(vectors)
    # Anisotropic like e5 (unrelated passages near cosine 0.75) and with near neighbours.
    assert 0.6 < stats["mean_cosine"] < 0.9
    assert stats["nearest_cosine_median"] > stats["p99_cosine"] > stats["mean_cosine"]


def test_the_scale_slice_measures_recall_against_exact_search(tmp_path: Path) -> None:
    row = dense(3000, 30, milvus=False, hnsw_too=True, folder=tmp_path)
    assert row["flat"]["recall"] == 1.0
    assert row["ivf"]["recall"] >= 0.95 and row["ivf"]["nlist"] >= 16
    assert row["hnsw"]["recall"] >= 0.95
    # Flat storage: 384 float32 and an id per passage.
    assert row["flat"]["bytes_per_passage"] >= 384 * 4


@needs_datasets
def test_the_bm25_slice_indexes_resampled_chinese_passages(tmp_path: Path) -> None:
    from bench.synthetic import dataset_texts

    contexts, questions = dataset_texts(DATASETS)
    passages = resampled_passages(contexts, 50, size=400)
    assert all(0 < len(p) <= 400 for p in passages)
    row = bm25(300, contexts, questions, tmp_path)
    assert row["bytes_per_passage"] > 0 and row["p50_ms"] > 0


@pytest.mark.slow
@needs_chromium
@needs_datasets
def test_a_rendered_article_places_every_answer_on_the_page_the_loader_cites(
    tmp_path: Path,
) -> None:
    articles, questions = load_slice(DATASETS, 2)
    drcd = [a for a in articles if a.stem.startswith("drcd")][1]  # ten contexts, two columns
    assert drcd.two_columns
    folders = write_corpora([drcd], tmp_path / "corpus", set())
    own = [(i, q) for i, q in enumerate(questions) if q.stem == drcd.stem]
    assert locate_gold_pages(drcd, own, folders["pdf"] / f"{drcd.stem}.pdf") == 0
    assert max(max(p) for p in drcd.gold_pages.values()) > 1  # the article spans pages

    pipeline = open_pipeline(Settings(), HashEmbedder(), tmp_path / "index")
    try:
        pipeline.ingest([folders["pdf"]])
        file = f"{drcd.stem}.pdf"
        text = pipeline.document_text(file)
        assert text is not None
        sources = [s for p in pipeline.search(drcd.title, 200).passages for s in p.passage.sources]
    finally:
        pipeline.close()
    assert sources
    for source in sources:
        # Each source's offsets hold text that cleans to it (the quote check of the benchmark).
        span = text[source.char_start : source.char_end]
        assert reads_as(span) == source.text
    # The loader's page for each answer's paragraph is the page the answer was printed on.
    for index, q in own:
        holding = [s for s in sources if q.answer in s.text]
        if holding:
            assert any(s.page in drcd.gold_pages[index] for s in holding), q.question


def test_rag_bench_refuses_missing_inputs_before_benchmarking(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A folder without the datasets ended in a FileNotFoundError traceback; a wrong
    # --saved-baseline was found only after the minutes of the whole benchmark.
    from typer.testing import CliRunner

    import bench.compare
    from cli.app import app

    monkeypatch.setattr(bench.compare, "run", lambda *_: pytest.fail("the benchmark ran"))
    for name in bench.compare.DATASETS:
        (tmp_path / "datasets" / name).parent.mkdir(exist_ok=True)
    runner = CliRunner()

    empty = runner.invoke(app, ["bench", str(tmp_path / "datasets")])
    assert empty.exit_code == 2
    said = "".join(empty.output.split())  # rich wraps and folds the long paths
    assert "nosuchfile:" in said and "cmrc2018_dev.json" in said

    for name in bench.compare.DATASETS:
        (tmp_path / "datasets" / name).write_text('{"data": []}', encoding="utf-8")
    args = ["bench", str(tmp_path / "datasets"), "--saved-baseline", str(tmp_path / "index")]
    unsaved = runner.invoke(app, args)
    assert unsaved.exit_code == 2
    assert "nosavedbaselinethere" in "".join(unsaved.output.split())
