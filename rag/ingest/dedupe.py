"""Duplicate detection: one identity for exact duplicates, MinHash LSH for near duplicates.

datasketch is imported where a signature is made, not at import: it pulls in scipy and
redis (0.4 s), which every `rag` command would pay, and only writing needs it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from rag.text.identity import identity

if TYPE_CHECKING:
    from datasketch import MinHash


def shingles(text: str, size: int) -> list[bytes]:
    """Character `size`-grams of the text's identity (the whole of it if shorter)."""
    return [gram.encode("utf-8") for gram in normalised_shingles(identity(text), size)]


def normalised_shingles(norm: str, size: int) -> list[str]:
    """`shingles` of text already normalised, for callers that also need `norm` itself."""
    if len(norm) <= size:
        return [norm]
    return [norm[i : i + size] for i in range(len(norm) - size + 1)]


# Stored signatures are only comparable under the hashing scheme that made them: pin it.
SCHEME = "affine32"


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> np.ndarray:
    """The parameters of the `num_perm` hash functions (datasketch's, from its default seed),
    drawn once. datasketch draws them again for every MinHash it makes, 0.1 ms each: about
    12 s of loading the stored signatures at the first write to an index of 10^5 passages."""
    from datasketch import MinHash

    drawn: np.ndarray = MinHash(num_perm=num_perm, scheme=SCHEME).permutations
    drawn.setflags(write=False)  # shared by every signature: never changed in place
    return drawn


def minhash(text: str, size: int, num_perm: int) -> MinHash:
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, scheme=SCHEME, permutations=_permutations(num_perm))
    m.update_batch(shingles(text, size))
    return m


class NearDuplicateIndex:
    """Finds, among the passages added so far, one whose shingles overlap a new text enough.

    LSH proposes candidates; the estimated Jaccard similarity of their MinHashes decides, so
    a merge needs `threshold` similarity, not just a shared band.
    """

    def __init__(self, threshold: float, num_perm: int, shingle_size: int) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        from datasketch import MinHashLSH

        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._hashes: dict[int, MinHash] = {}

    def signature(self, text: str) -> MinHash:
        return minhash(text, self.shingle_size, self.num_perm)

    def add(self, key: int, signature: MinHash) -> None:
        if key not in self._hashes:
            self._lsh.insert(key, signature)
            self._hashes[key] = signature

    def remove(self, key: int) -> None:
        if self._hashes.pop(key, None) is not None:
            self._lsh.remove(key)

    def find(self, signature: MinHash) -> int | None:
        """The most similar stored key at or above the threshold, if any."""
        best, best_sim = None, self.threshold
        for key in self._lsh.query(signature):
            sim = signature.jaccard(self._hashes[key])
            if sim >= best_sim:
                best, best_sim = key, sim
        return best

    def __len__(self) -> int:
        return len(self._hashes)


def signature_bytes(signature: MinHash) -> bytes:
    return np.asarray(signature.hashvalues, dtype=np.uint64).tobytes()


def signature_from_bytes(data: bytes, num_perm: int) -> MinHash:
    from datasketch import MinHash

    return MinHash(
        num_perm=num_perm,
        hashvalues=np.frombuffer(data, dtype=np.uint64),
        permutations=_permutations(num_perm),
        scheme=SCHEME,
    )
