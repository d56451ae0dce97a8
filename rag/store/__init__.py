"""Storage: protocols (`base`), the local FAISS / bm25s / SQLite implementations, snapshot
publishing (`snapshot`), the backend factory (`factory`) and the writer lock (`lock`)."""
