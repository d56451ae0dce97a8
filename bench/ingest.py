"""Ingest throughput against the bare embedder on the same passages, side by side.

    python -m bench.ingest ../shared/datasets [--contexts N]

Writes the first N contexts of DRCD dev and CMRC 2018 dev as documents, then measures in one
run: the bare embedder on the passages the pipeline produces, the whole pipeline (load, clean,
chunk, dedupe, fold, embed, index, commit), and the bare embedder again; the overhead is the
pipeline's time over the mean of the two bare runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from embeddings.factory import make_embedder
from eval.datasets import first_contexts, load_squad, write_corpus
from rag.ingest.chunk import chunk_document
from rag.ingest.document import load_document
from rag.loaders.walk import iter_files
from rag.pipeline import EMBED_BATCH, open_pipeline
from rag.settings import Settings
from rag.text.script import fold_script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ingest throughput vs bare embedder")
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--contexts", type=int, default=60, help="contexts per dataset")
    args = parser.parse_args(argv)
    settings = Settings()
    embedder = make_embedder(settings.embedder, settings.embedder_options())
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        write_corpus(
            [
                first_contexts(load_squad(args.datasets / f), args.contexts)
                for f in ("drcd_dev.json", "cmrc2018_dev.json")
            ],
            corpus,
        )
        # The exact passage texts the pipeline will embed (folded chunks).
        texts = [
            fold_script(c.text)
            for path in iter_files([corpus])
            for c in chunk_document(load_document(path, 1 << 30), settings.chunk_size)
        ]
        embedder.embed(texts[:8])  # warm-up: load the model before timing anything

        def bare() -> float:
            t = time.perf_counter()
            embedder.embed(texts, kind="passage", batch_size=EMBED_BATCH)
            return time.perf_counter() - t

        bare_before = bare()
        pipeline = open_pipeline(settings, embedder, Path(tmp) / "index")
        report = pipeline.ingest([corpus])
        bare_after = bare()
    bare_mean = (bare_before + bare_after) / 2
    n = report.new_passages
    print(
        json.dumps(
            {
                "files": report.files,
                "passages": n,
                "chunks": report.chunks,
                "bare_embedder_s": [round(bare_before, 2), round(bare_after, 2)],
                "bare_passages_per_s": round(len(texts) / bare_mean, 2),
                "pipeline_s": round(report.seconds, 2),
                "pipeline_embed_s": round(report.embed_seconds, 2),
                "pipeline_passages_per_s": round(n / report.seconds, 2),
                "overhead_vs_bare": round(report.seconds / bare_mean - 1, 4),
                "non_embedding_share": round(1 - report.embed_seconds / report.seconds, 4),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
