"""LLM-written answers: prompt, citation checks and the composer (needs the `llm` extra).

Nothing here is imported by `import rag`: `rag.pipeline.make_composer` imports the composer
only when `RAG_ANSWERER=llm`.
"""
