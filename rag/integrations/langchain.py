"""A LangChain retriever over a pipeline: our hybrid search inside any LangChain chain.

    from rag.integrations.langchain import RagRetriever

    retriever = RagRetriever(pipeline=rag.open("./index"), top_k=5)
    docs = retriever.invoke("质检总局局长是谁？")

Each `Document` holds a passage's text; its metadata holds the passage id, the fused score
(and its dense and lexical parts) and every place the passage stands in (`sources`: file,
paragraph, lines, character offsets, page, sheet: the wire format of `rag.wire`), with the
first place also at the top level (`file`, `paragraph`, `page`, ...), as LangChain loaders do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.types import ScoredPassage
from rag.wire import source_payload

if TYPE_CHECKING:
    from rag.pipeline import Pipeline


def passage_document(scored: ScoredPassage) -> Document:
    """A retrieved passage as a LangChain `Document`, every source in its metadata."""
    sources = [source_payload(s) for s in scored.passage.sources]
    metadata: dict[str, Any] = {
        **(sources[0] if sources else {}),
        "passage_id": scored.passage.id,
        "score": scored.score,
        "dense": scored.dense,
        "lexical": scored.lexical,
        "sources": sources,
    }
    return Document(page_content=scored.passage.text, metadata=metadata, id=str(scored.passage.id))


class RagRetriever(BaseRetriever):
    """Hybrid (BM25 + dense) retrieval of a `rag` pipeline, as a LangChain retriever.

    Args:
        pipeline: An open pipeline (`rag.open(...)`).
        top_k: Passages per query; default the pipeline's `top_k` setting.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Any  # a rag.pipeline.Pipeline (typed loosely: pydantic cannot model it)
    top_k: int | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        pipeline: Pipeline = self.pipeline
        return [passage_document(p) for p in pipeline.search(query, self.top_k).passages]
