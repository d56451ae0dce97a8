"""The import graph follows the layers: no module imports a layer above its own.

Parsed with `ast` (every import, including those inside functions and under
TYPE_CHECKING), so an upward import cannot hide in a lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Lowest first. A module may import modules of its own layer or a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("embeddings",),
    ("rag.text",),  # imports nothing else of rag
    ("rag.types", "rag.settings"),
    ("rag.loaders",),
    ("rag.ingest",),
    ("rag.store",),
    ("rag.index",),
    ("rag.retrieve",),
    ("rag.answer", "rag.conversation"),  # the rewrite uses the LLM client of rag.answer.llm
    ("rag.pipeline", "rag.wire", "rag.collections"),
    ("rag.integrations", "rag"),  # `rag` is the package itself: `rag.open`
    ("service",),
    ("eval",),
    ("bench",),
    ("cli",),  # the command wires core, service and evaluator together
    ("tests",),
]
# Same-layer neighbours that must stay apart.
FORBIDDEN = [
    ("rag.answer.llm", "rag.answer.extractive"),  # the LLM composer uses only rag.answer.base
    ("eval", "service"),  # the evaluator asks a service over HTTP, never imports it
]
# What a caller outside rag/ must not touch on a pipeline (or `pipeline.index.store`).
PRIVATE = {"_index", "_retriever", "retriever"}
PACKAGES = ("embeddings", "rag", "service", "eval", "bench", "cli", "tests")


def group(module: str) -> tuple[int, str] | None:
    """The layer index and group prefix of a module of ours (longest prefix wins)."""
    best: tuple[int, str] | None = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > len(best[1])):
                best = (rank, prefix)
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_module_of_ours_has_a_layer() -> None:
    assert not [m for m in map(module_name, sources()) if group(m) is None]


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = []
    for path in sources():
        importer = module_name(path)
        mine = group(importer)
        assert mine is not None
        for name in imports(path):
            theirs = group(name)
            if theirs is None:
                continue
            if theirs[0] > mine[0]:
                upward.append(f"{importer} imports {name}")
    assert not upward, "\n".join(upward)


def test_forbidden_neighbours_do_not_import_each_other() -> None:
    found = []
    for path in sources():
        importer = module_name(path)
        for name in imports(path):
            for a, b in FORBIDDEN:
                if importer.startswith(a) and name.startswith(b):
                    found.append(f"{importer} imports {name}")
    assert not found, "\n".join(found)


def test_nothing_outside_rag_reaches_behind_the_pipeline() -> None:
    """The pipeline is the only door: its index and retriever are its own business."""
    behind = []
    for package in ("service", "eval", "bench", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and (
                    node.attr in PRIVATE
                    or (node.attr == "store" and getattr(node.value, "attr", None) == "index")
                ):
                    behind.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not behind, behind
