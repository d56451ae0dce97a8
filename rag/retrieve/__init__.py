"""Hybrid retrieval: fold the query, search both indexes, fuse the scores (`fusion`)."""
