"""Loaders: one module per file format, a `Loader` protocol and a registry by extension.

To read a new format, add one module with a class satisfying `rag.loaders.base.Loader` and
one line to `LOADERS` in `rag.loaders.registry`.
"""
