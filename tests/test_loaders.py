"""Loading files: encoding detection, bad files reported, folders walked safely."""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import re
from pathlib import Path

import pytest

from rag.ingest.document import load_document, read_source
from rag.loaders.base import LoadError
from rag.loaders.decode import decode
from rag.loaders.walk import iter_files

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
SEEDS = sorted(DEMO.glob("*.txt"))
MB = 1 << 20


def seed_text(prefix: str) -> str:
    return next(p for p in SEEDS if p.name.startswith(prefix)).read_text(encoding="utf-8")


def big5_lines() -> str:
    """The lines of traditional seed 001 that plain Big5 can encode (no 恒, no pinyin)."""
    lines = []
    for line in seed_text("001").splitlines():
        try:
            line.encode("big5")
        except UnicodeEncodeError:
            continue
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name[:3])
@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("utf-8", b""),
        ("utf-8-sig", b""),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("gb18030", b""),
    ],
)
def test_seed_round_trips_through_every_encoding(path: Path, encoding: str, prefix: bytes) -> None:
    text = path.read_text(encoding="utf-8")
    assert decode(prefix + text.encode(encoding)) == (text, encoding)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_byte_order_mark_is_detected(encoding: str) -> None:
    text = seed_text("000")
    assert decode(text.encode(encoding)) == (text, encoding)


def test_big5_seed_text_round_trips() -> None:
    text = big5_lines()
    assert len(text) > 100
    assert decode(text.encode("big5")) == (text, "big5")


def test_whole_traditional_seed_in_big5_hkscs_round_trips() -> None:
    # Seed 001 has 恒 and pinyin letters, which only the HKSCS extension of Big5 encodes.
    text = seed_text("001")
    assert decode(text.encode("big5hkscs")) == (text, "big5hkscs")


@pytest.mark.parametrize("encoding", ["gb18030", "big5"])
def test_short_seed_lines_are_told_apart(encoding: str) -> None:
    # GBK and Big5 share their byte ranges: a short line often decodes both ways.
    lines = [line for p in SEEDS for line in p.read_text(encoding="utf-8").splitlines()]
    checked = 0
    for line in lines:
        if len(re.findall(r"[\u4e00-\u9fff]", line)) < 4:
            continue
        try:
            data = line.encode(encoding)
        except UnicodeEncodeError:
            continue
        assert decode(data) == (line, encoding), line
        checked += 1
    assert checked >= 6


KOREAN = "대한민국은 동아시아의 한반도 남부에 위치한 민주공화국이다. 수도는 서울특별시이다.\n"
JAPANESE = "日本は東アジアに位置する島国である。首都は東京で、公用語は日本語である。\n"


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [
        (KOREAN, "euc-kr", "cp949"),
        (JAPANESE, "shift_jis", "cp932"),
        (JAPANESE, "euc-jp", "euc_jis_2004"),
    ],
)
def test_japanese_and_korean_legacy_files_are_not_read_as_chinese(
    text: str, encoding: str, detected: str
) -> None:
    # Their bytes also decode as GB18030 or Big5, into rare hanzi (대한민국 as 措茄刮惫).
    assert decode(text.encode(encoding)) == (text, detected)


def test_line_breaks_are_normalised_before_offsets_are_taken() -> None:
    text, _ = decode("第一行\r\n第二行\r第三行\n".encode("gb18030"))
    assert text == "第一行\n第二行\n第三行\n"


def test_utf8_file_with_a_byte_order_mark_and_pasted_gbk_lines_reads_both() -> None:
    # Notepad saves UTF-8 with a byte-order mark. Such a file with GBK lines pasted in was
    # refused whole ("invalid utf-8-sig after its byte-order mark"), while the same file
    # without the mark was read line by line.
    utf8 = "第一段是UTF-8编码的中文内容。\n" * 3
    gbk = "第二段是GBK编码的中文内容。\n" * 3
    data = codecs.BOM_UTF8 + utf8.encode() + gbk.encode("gbk")
    assert decode(data) == (utf8 + gbk, "utf-8-sig+gb18030")


def test_binary_data_is_refused() -> None:
    with pytest.raises(ValueError, match="binary file"):
        decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="cannot detect text encoding"):
        decode(bytes(range(0x80, 0x100)) * 4)


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_read_source_takes_the_format_from_the_extension(tmp_path: Path) -> None:
    formats = {"a.txt": "text", "b.md": "markdown", "c.markdown": "markdown", "d.HTML": "html"}
    for name, fmt in formats.items():
        source = read_source(write(tmp_path / name, "正文"), MB)
        assert (source.format, source.text, source.encoding) == (fmt, "正文", "utf-8")
        assert source.path == str(tmp_path / name)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("tool.exe", b"MZ\x90\x00", "unsupported extension .exe"),
        ("empty.txt", b"", "empty file"),
        ("blank.txt", " \n\u3000\n".encode(), "empty file (only white space)"),
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file (NUL bytes)"),
        ("big.txt", "字".encode() * MB, "file too large (3.0 MB > 1 MB limit)"),
    ],
)
def test_bad_files_raise_load_error_with_a_reason(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    path = write(tmp_path / name, data)
    with pytest.raises(LoadError) as error:
        read_source(path, MB)
    assert error.value.reason == reason
    assert error.value.path == str(path)
    assert reason in str(error.value)


def test_load_error_keeps_path_and_reason_through_pickling() -> None:
    error = pickle.loads(pickle.dumps(LoadError("docs/a.txt", "empty file")))
    assert (error.path, error.reason, str(error)) == (
        "docs/a.txt",
        "empty file",
        "docs/a.txt: empty file",
    )


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        read_source(tmp_path / "gone.txt", MB)


def test_load_document_cleans_and_hashes_the_raw_bytes(tmp_path: Path) -> None:
    text = seed_text("001")
    data = text.encode("gb18030")
    document = load_document(write(tmp_path / "001.txt", data), MB)
    assert document.content_hash == hashlib.sha256(data).hexdigest()
    assert document.source.encoding == "gb18030"
    assert document.source.text == text
    assert document.paragraphs[0].text == "王岐山在質量工作座談會上指出"
    assert all(p.file == str(tmp_path / "001.txt") for p in document.paragraphs)


def test_a_bad_file_in_a_folder_is_reported_and_the_rest_load(tmp_path: Path) -> None:
    for path in SEEDS:
        write(tmp_path / path.name, path.read_bytes())
    write(tmp_path / "broken.txt", b"\x00\x01\x02binary\x00")
    loaded, errors = [], []
    for path in iter_files([tmp_path]):
        try:
            loaded.append(load_document(path, MB))
        except LoadError as error:
            errors.append(error)
    assert [Path(d.path).name for d in loaded] == [p.name for p in SEEDS]
    assert [(Path(e.path).name, e.reason) for e in errors] == [
        ("broken.txt", "binary file (NUL bytes)")
    ]


def test_iter_files_walks_sorted_skipping_hidden_and_unsupported(tmp_path: Path) -> None:
    for name in (
        "b.txt", "a.md", "sub/c.html", "sub/deeper/d.htm", "notes.wps", "tool.exe",
        ".hidden.txt", ".git/config.txt", "sub/.cache/e.txt", "z.markdown",
    ):  # fmt: skip
        write(tmp_path / name, "正文")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["a.md", "b.txt", "sub/c.html", "sub/deeper/d.htm", "z.markdown"]


def test_office_lock_files_are_passed_over_with_what_they_are(tmp_path: Path) -> None:
    # Word, Excel and PowerPoint keep `~$name` beside each open document; a folder someone
    # had open reported each one as a damaged Word/Excel/PowerPoint file.
    for name in ("报告.docx", "~$报告.docx", "~$ies.xlsx", "~$deck.pptx", "~$old.doc"):
        write(tmp_path / name, b"\x06zhangs" + b"\0" * 155)
    passed_over: list[tuple[str, str]] = []
    found = iter_files([tmp_path], lambda path, why: passed_over.append((path.name, why)))
    assert [p.name for p in found] == ["报告.docx"]
    assert [name for name, _ in passed_over] == [
        "~$deck.pptx",
        "~$ies.xlsx",
        "~$old.doc",
        "~$报告.docx",
    ]
    assert all(why.startswith("Office lock file (~$)") for _, why in passed_over)


def test_named_files_are_passed_through_for_load_to_judge(tmp_path: Path) -> None:
    exe = write(tmp_path / "tool.exe", b"MZ")
    folder = tmp_path / "docs"
    write(folder / "a.txt", "正文")
    assert list(iter_files([exe, folder])) == [exe, folder / "a.txt"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_does_not_hang_and_each_folder_is_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "a.txt", "正文")
    write(root / "sub" / "b.txt", "正文")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)
    (root / "sub" / "self").symlink_to(root / "sub", target_is_directory=True)
    found = [p.relative_to(root).as_posix() for p in iter_files([root])]
    # `alias` comes first in name order, so sub's files are found through it, and only once.
    assert found == ["a.txt", "alias/b.txt"]
    # Naming the same folder twice walks it once.
    assert len(list(iter_files([root, root / "sub"]))) == 2
