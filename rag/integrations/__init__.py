"""Adapters that let other frameworks use a pipeline (LangChain)."""
