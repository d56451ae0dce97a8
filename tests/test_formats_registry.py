"""The format registry and the contract every loader keeps, whatever bytes it is given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.loaders.base import Extraction, Loader, LoadError, LoadOptions
from rag.loaders.registry import EXTENSIONS, LOADERS, loader_for
from tests.formats_samples import check_extraction


def test_every_extension_has_exactly_one_loader() -> None:
    seen = [ext for loader in LOADERS for ext in loader.extensions]
    assert len(seen) == len(set(seen))
    assert set(EXTENSIONS) == set(seen)
    for ext in (
        ".pdf",
        ".docx",
        ".docm",
        ".xlsx",
        ".xlsm",
        ".csv",
        ".pptx",
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".epub",
        ".xls",
    ):
        assert ext in EXTENSIONS
    assert loader_for(Path("报告.PDF")).format == "pdf"


def test_unsupported_extension_is_a_load_error() -> None:
    with pytest.raises(LoadError, match=r"unsupported extension \.doc"):
        loader_for(Path("old.doc"))


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.format)
def test_loader_contract(loader: Loader) -> None:
    assert loader.format and loader.format.islower()
    assert all(ext.startswith(".") and ext == ext.lower() for ext in loader.extensions)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.format)
@pytest.mark.parametrize("data", [b"", b"\0" * 100, os.urandom(2048), b"PK\x03\x04" + b"\xff" * 64])
def test_any_bytes_give_an_extraction_or_a_load_error(
    tmp_path: Path, loader: Loader, data: bytes
) -> None:
    path = tmp_path / f"x{loader.extensions[0]}"
    path.write_bytes(data)
    options = LoadOptions(max_bytes=1 << 20, ocr="off")
    try:
        extraction = loader.extract(path, data, options)
    except LoadError as e:
        assert e.reason and str(path) in str(e)
        return
    assert isinstance(extraction, Extraction)
    check_extraction(extraction)
