"""Reference pipelines that `rag eval` compares ours against on the same questions."""
