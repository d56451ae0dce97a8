"""Persistent BM25 index over script-folded passage text (bm25s), built on write, not per query."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import bm25s
import numpy as np


class Bm25sLexicalIndex:
    """BM25 over pre-tokenised passages, addressed by passage id.

    bm25s stores an immutable sparse matrix, so the index is rebuilt from the stored tokens
    when documents change (milliseconds per thousand passages) and loaded memory-mapped
    for queries: a query never rebuilds anything.
    """

    def __init__(self, retriever: bm25s.BM25 | None, ids: np.ndarray) -> None:
        self._bm25 = retriever
        self._ids = ids
        self._vocab: dict[str, int] = retriever.vocab_dict if retriever is not None else {}
        self._row = {int(pid): row for row, pid in enumerate(ids)}
        self._doc_freq: dict[str, int] | None = None

    @classmethod
    def build(cls, ids: Sequence[int], tokens: Sequence[list[str]]) -> Bm25sLexicalIndex:
        if not any(tokens):
            # No passage holds a term (none, or only lines of symbols): bm25s cannot index an
            # empty vocabulary, and no query could score anyway.
            return cls(None, np.asarray(ids, dtype=np.int64))
        retriever = bm25s.BM25()
        retriever.index([list(t) for t in tokens], show_progress=False)
        return cls(retriever, np.asarray(ids, dtype=np.int64))

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def matrix_rows(self) -> int:
        """Passages the BM25 matrix was built over; equals `len(self)` in a sound index."""
        return len(self._ids) if self._bm25 is None else int(self._bm25.scores["num_docs"])

    def scores(self, tokens: Sequence[str]) -> np.ndarray | None:
        """BM25 score of every passage (in index order), or None if no query term is known."""
        if self._bm25 is None:
            return None
        # Each query term counts once, and terms the corpus never saw cannot score.
        known = [t for t in dict.fromkeys(tokens) if t in self._vocab]
        if not known:
            return None
        return np.asarray(self._bm25.get_scores(known), dtype=np.float32)

    def score_of(self, scores: np.ndarray | None, ids: Iterable[int]) -> dict[int, float]:
        """Pick the scores of given passage ids out of a `scores()` array."""
        if scores is None:
            return {}
        return {pid: float(scores[self._row[pid]]) for pid in ids if pid in self._row}

    def idf(self, tokens: Iterable[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each token; unseen tokens get the highest value.

        An unseen token is as rare as a token can be: a question built on words the corpus
        never uses should weigh them heavily, which is what makes it abstain.
        """
        n = len(self._ids)
        df = self._df()
        out = {}
        for t in tokens:
            d = df.get(t, 0)
            out[t] = math.log(1 + (n - d + 0.5) / (d + 0.5))
        return out

    def _df(self) -> dict[str, int]:
        if self._doc_freq is None:
            if self._bm25 is None:
                self._doc_freq = {}
            else:
                # bm25s keeps a CSC matrix with one column per token: a column's number of
                # stored entries is the number of passages holding the token.
                counts = np.diff(np.asarray(self._bm25.scores["indptr"]))
                # (bm25s adds an empty token to the vocabulary with no column.)
                self._doc_freq = {
                    t: int(counts[i]) for t, i in self._vocab.items() if i < len(counts)
                }
        return self._doc_freq

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Top `k` `(passage id, BM25 score)` pairs with a positive score, best first."""
        return self.top(self.scores(tokens), k)

    def top(self, scores: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        if scores is None or k <= 0:
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self._ids[i]), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, directory: Path) -> None:
        """Write to `directory` atomically: a reader sees the old index or the new one."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._bm25 is not None:
            self._bm25.save(str(tmp), show_progress=False)
        np.save(tmp / "ids.npy", self._ids)
        ok = {"passages": len(self._ids), "matrix": self._bm25 is not None}
        (tmp / "ok").write_text(json.dumps(ok))
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> Bm25sLexicalIndex:
        ids = np.load(directory / "ids.npy")
        # Written before "matrix" was: only an empty index had none.
        if not json.loads((directory / "ok").read_text()).get("matrix", len(ids) > 0):
            return cls(None, ids)
        retriever = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
        return cls(retriever, ids)
