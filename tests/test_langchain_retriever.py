"""`rag.integrations.langchain.RagRetriever` inside a small LangChain chain (no model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from rag.integrations.langchain import RagRetriever
from rag.pipeline import Pipeline
from rag.wire import LOCATION_FIELDS

QUESTION = "全国质检系统检测工作整顿视频会议召开"


@pytest.fixture
def seeds(fake_pipeline: Pipeline, demo_copy: Path) -> None:
    fake_pipeline.ingest([demo_copy])


def format_documents(documents: Sequence[Document]) -> str:
    """Numbered passages with where they stand, as a prompt's context would hold them."""
    return "\n".join(
        f"[{i}] {d.metadata['file']} ¶{d.metadata['paragraph']}: {d.page_content}"
        for i, d in enumerate(documents, 1)
    )


def test_documents_carry_the_passage_and_every_source(fake_pipeline: Pipeline, seeds: None) -> None:
    documents = RagRetriever(pipeline=fake_pipeline, top_k=5).invoke(QUESTION)
    retrieval = fake_pipeline.search(QUESTION, 5)
    assert [d.page_content for d in documents] == [p.passage.text for p in retrieval.passages]
    for document, scored in zip(documents, retrieval.passages, strict=True):
        meta = document.metadata
        assert document.id == str(scored.passage.id) == str(meta["passage_id"])
        assert meta["score"] == scored.score
        assert len(meta["sources"]) == len(scored.passage.sources)
        for placed, source in zip(meta["sources"], scored.passage.sources, strict=True):
            assert tuple(placed) == LOCATION_FIELDS
            assert (placed["file"], placed["paragraph"]) == (source.file, source.paragraph)
            assert (placed["char_start"], placed["char_end"]) == (
                source.char_start,
                source.char_end,
            )
            assert placed["page"] is None
        assert meta["file"] == meta["sources"][0]["file"]
    # Seed 003 repeats its opening paragraphs: one passage, two places.
    assert any(len(d.metadata["sources"]) > 1 for d in documents)


def test_the_retriever_runs_in_a_chain(fake_pipeline: Pipeline, seeds: None) -> None:
    chain = {
        "context": RagRetriever(pipeline=fake_pipeline, top_k=3) | RunnableLambda(format_documents),
        "question": RunnablePassthrough(),
    } | RunnableLambda(lambda x: f"{x['context']}\n\n问题：{x['question']}")
    prompt = chain.invoke(QUESTION)
    assert prompt.startswith("[1] ") and prompt.endswith(f"问题：{QUESTION}")
    assert prompt.count("¶") == 3
