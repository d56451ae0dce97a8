"""A folder of hostile and broken files beside good ones, and what ingesting it must do.

Used by tests/test_hostile_files.py and, as a benchmark of time and memory on the worst
of them, by `python -m eval.hostile` (figures in docs/reliability.md).
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.service import RAG

MB = 1024 * 1024


@dataclass(frozen=True)
class Expected:
    """What ingesting a file must do: index it, skip it with a reason, or pass over it."""

    outcome: str  # "ingested", "skipped" or "ignored"
    reason: str = ""  # a substring of the reported reason


def build_hostile_corpus(folder: Path, one_line_mb: float = 2.0) -> dict[str, Expected]:
    """Write the hostile corpus into `folder`; return what must become of each entry."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Expected] = {}

    def put(name: str, data: bytes, expected: Expected) -> None:
        (folder / name).write_bytes(data)
        files[name] = expected

    put("good.txt", "质检总局召开会议。\n会议强调质量安全。\n".encode(), Expected("ingested"))
    put(
        "good-big5.txt",
        "臺北市政府舉行記者會。\n說明防災準備工作。\n".encode("big5"),
        Expected("ingested"),
    )
    put("empty.txt", b"", Expected("skipped", "empty file"))
    put("blank.md", " \n\u3000\n\t\n".encode(), Expected("skipped", "only white space"))
    png = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(256)) * 20
    put("image.txt", png, Expected("skipped", "binary file"))
    put(
        "mixed.txt",
        "第一段是UTF-8编码的中文内容。\n".encode() * 5
        + "第二段是GBK编码的中文内容。\n".encode("gbk") * 5,
        Expected("ingested"),
    )
    put("latin1.txt", bytes(range(0x80, 0x100)) * 4, Expected("skipped", "encoding"))
    line = "质量安全很重要，必须落实到每一个环节。"
    one_line = (line * int(one_line_mb * MB / len(line.encode()))).encode()
    put("one-line.txt", one_line, Expected("ingested"))
    put(
        "deep.html",
        ("<div>" * 50_000 + "<p>深层嵌套的正文。</p>" + "</div>" * 50_000).encode(),
        Expected("ingested"),
    )
    # A character reference of 5,000 digits: Python refuses to turn it into an int.
    put(
        "long-reference.html",
        ("<p>编号&#" + "9" * 5_000 + ";之后的超长字符引用正文。</p>").encode(),
        Expected("ingested"),
    )
    put("deep.md", (">" * 20_000 + " 深层引用\n").encode(), Expected("skipped", "no text left"))
    put("script.html", b"<script>alert(1)</script><style>p{}</style>", Expected("skipped"))
    # 200 MB of nothing, written sparse: refused by its size before a byte is read.
    with (folder / "huge.txt").open("wb") as f:
        f.truncate(200 * MB)
    files["huge.txt"] = Expected("skipped", "file too large")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (64 * MB))  # 64 MB from ~64 KB
    put("bomb.docx", bomb.getvalue(), Expected("skipped", "zip bomb"))
    put("old.wps", b"\xd0\xcf\x11\xe0" + b"\0" * 64, Expected("ignored", "unsupported type .wps"))
    put("bomb.txt", bomb.getvalue(), Expected("skipped", "binary file"))
    # The owner file Word keeps beside an open document (and leaves after a crash): the
    # user's name, 162 bytes; not a damaged Word file.
    name = "张三".encode("utf-16-le")
    owner = bytes([6]) + b"zhangs".ljust(53, b"\0") + bytes([2, 0]) + name.ljust(106, b"\0")
    put("~$报告.docx", owner, Expected("ignored", "Office lock file"))
    (folder / "loop").mkdir(exist_ok=True)
    os.symlink("..", folder / "loop" / "back-up")
    files["loop/back-up"] = Expected("ignored", "folder already walked")
    os.symlink("/nonexistent/gone.txt", folder / "dangling.txt")
    files["dangling.txt"] = Expected("skipped", "no such file")
    # A Linux file name may hold any bytes; this one is not UTF-8 (reported as \xff).
    (folder / os.fsdecode(b"bad-\xffname.txt")).write_text("质量。", encoding="utf-8")
    files["bad-\\xffname.txt"] = Expected("skipped", "its name is not valid UTF-8")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one-line-mb", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "hostile"
        build_hostile_corpus(corpus, args.one_line_mb)
        started = time.perf_counter()
        result = subprocess.run(
            [str(RAG), "ingest", str(corpus), "--index", str(Path(tmp) / "index")],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(result.stdout)
    print(result.stderr)
    print(f"exit {result.returncode}; {seconds:.1f} s; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
