"""Synthetic corpora for the scale study: clustered unit vectors and Chinese-like passages.

Millions of real passages cannot be embedded on two cores, so `bench.scale` measures indexes
on vectors and texts made to look like the real ones:

- `clustered_vectors`: unit vectors of the embedder's width (384) drawn as a three-level
  mixture, like passages of e5-small: a direction every vector shares (e5's embeddings are
  anisotropic: two unrelated passages still have a cosine near 0.7), a topic, an article
  inside the topic (a few passages each, like a document's chunks), then the passage's own
  noise. The scales were fitted so that the mean pairwise cosine, the nearest-neighbour
  cosine and the share of variance in the top principal components land near those of
  e5-small on CMRC 2018 + DRCD contexts (`bench.scale --calibrate` prints both side by side).
- `queries_near`: a query is a stored passage moved by noise, so its gold passage is close
  but not identical, as a question is to the paragraph that answers it.
- `resampled_passages`: passages of about the chunk size made of sentences drawn at random
  from CMRC/DRCD contexts: real Chinese vocabulary and sentence lengths, in new combinations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SENTENCE = re.compile(r"[^。！？!?]+[。！？!?]?")


@dataclass(frozen=True)
class VectorShape:
    """Scales of the mixture, relative to unit-variance noise per component (see module)."""

    shared: float = 1.7  # length of the shared direction (the spread below is ~1)
    topic: float = 0.55
    article: float = 0.45
    passage: float = 0.7
    passages_per_article: int = 8
    articles_per_topic: int = 50
    # Spread lives in a subspace: real embeddings put most variance in a few hundred
    # directions; noise decays with the component index as 1/(1 + i/decay).
    decay: float = 40.0


def clustered_vectors(
    n: int, dim: int = 384, seed: int = 0, shape: VectorShape = VectorShape()
) -> np.ndarray:
    """`n` unit vectors of width `dim`, float32, built in blocks to bound memory."""
    out = np.empty((n, dim), dtype=np.float32)
    for start, block in _blocks(n, dim, seed, shape):
        out[start : start + len(block)] = block
    return out


def _blocks(n: int, dim: int, seed: int, shape: VectorShape) -> Iterator[tuple[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    scale = (1.0 / (1.0 + np.arange(dim) / shape.decay)).astype(np.float32)
    scale /= np.sqrt((scale**2).sum())  # a noise vector of norm ~1
    shared = rng.normal(size=dim).astype(np.float32)
    shared /= np.linalg.norm(shared)

    # Decaying variance along the coordinate axes: a rotation would change no inner product.
    def noise(rows: int) -> np.ndarray:
        return rng.standard_normal((rows, dim), dtype=np.float32) * scale

    articles = -(-n // shape.passages_per_article)
    topics = max(1, -(-articles // shape.articles_per_topic))
    topic_centres = noise(topics) * shape.topic
    block_articles = 4096
    for a0 in range(0, articles, block_articles):
        count = min(block_articles, articles - a0)
        topic_of = rng.integers(0, topics, size=count)
        centres = topic_centres[topic_of] + noise(count) * shape.article
        rows = np.repeat(centres, shape.passages_per_article, axis=0)
        rows += noise(len(rows)) * shape.passage + shared * shape.shared
        start = a0 * shape.passages_per_article
        rows = rows[: max(0, min(len(rows), n - start))]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        yield start, rows


def queries_near(
    vectors: np.ndarray, count: int, noise: float = 0.55, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """`count` unit queries, each a random stored vector plus noise; and those vectors' rows."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), size=count, replace=False)
    dim = vectors.shape[1]
    q = vectors[rows] + rng.normal(size=(count, dim)).astype(np.float32) * noise / np.sqrt(dim)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32), rows


def dataset_texts(datasets: Path) -> tuple[list[str], list[str]]:
    """The contexts and questions of CMRC 2018 dev and DRCD dev."""
    contexts: list[str] = []
    questions: list[str] = []
    for name in ("cmrc2018_dev.json", "drcd_dev.json"):
        data = json.loads((datasets / name).read_text(encoding="utf-8"))
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                contexts.append(paragraph["context"])
                questions += [qa["question"] for qa in paragraph["qas"]]
    return contexts, questions


def resampled_passages(contexts: list[str], n: int, size: int = 400, seed: int = 2) -> list[str]:
    """`n` passages of up to `size` characters, sentences drawn at random from `contexts`."""
    sentences = [s for c in contexts for s in _SENTENCE.findall(c) if len(s.strip()) > 4]
    rng = np.random.default_rng(seed)
    lengths = np.array([len(s) for s in sentences])
    out: list[str] = []
    for _ in range(n):
        picks = iter(rng.integers(0, len(sentences), size=64))
        # A chunk is cut at a sentence end near `size`: aim between half and all of it.
        target = int(rng.integers(size // 2, size + 1))
        parts: list[str] = []
        length = 0
        while length < target:
            i = next(picks)
            if length and length + lengths[i] > size:
                break
            parts.append(sentences[i])
            length += int(lengths[i])
        out.append("".join(parts)[:size])
    return out


def vector_statistics(vectors: np.ndarray, seed: int = 0) -> dict[str, float]:
    """What the synthetic vectors are fitted to: cosines between passages and the spectrum."""
    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 1000), replace=False)]
    sims = sample @ sample.T
    np.fill_diagonal(sims, -1.0)
    upper = sims[np.triu_indices(len(sample), 1)]
    centred = sample - sample.mean(axis=0)
    spectrum = np.linalg.svd(centred, compute_uv=False) ** 2
    share = np.cumsum(spectrum) / spectrum.sum()
    return {
        "mean_cosine": round(float(upper.mean()), 3),
        "p99_cosine": round(float(np.percentile(upper, 99)), 3),
        "nearest_cosine_median": round(float(np.median(sims.max(axis=1))), 3),
        "variance_top10": round(float(share[9]), 3),
        "variance_top50": round(float(share[49]), 3),
    }
