"""Hard-wrapped text files: are their paragraphs found again, and are other files left alone?

    python -m eval.studies.wrapped_text ../shared/datasets [--widths 60,70,72,76,80]

The contexts of CMRC 2018 dev and DRCD dev, `--contexts` to a file, are written four ways
and read by the text loader (`rag.loaders.text.text_blocks`, which `rag.loaders.wrapped`
decides for):

- one context a line, as `rag eval` writes its corpora, and one sentence a line: every
  line must stay a paragraph;
- wrapped at each width in columns (a hanzi two), as an old editor or a copy from a PDF
  leaves it, each paragraph opening with a two-space indent (``　　``): the paragraphs
  must come back whole, each the context it was;
- the same without the indent, paragraphs apart by a blank line.

It prints, for each, the articles read exactly right and the paragraphs joined or cut
wrongly (a CMRC article holds one context: too few lines to tell a wrap from chance).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from eval.datasets import Article, load_squad
from rag.loaders.text import text_blocks
from rag.loaders.wrapped import width

# Closing punctuation a wrapper keeps on the line it closes (it may hang past the width).
_CLOSING = set("，。、；：？！”’）》」』】,.;:?!)")
_SENTENCE = re.compile(r"[^。！？]+[。！？]*[”’」』]?")


def wrap(paragraph: str, columns: int, indent: str = "") -> list[str]:
    """`paragraph` cut into lines of at most `columns` display columns, closing punctuation
    never opening a line."""
    lines: list[str] = []
    line, used = indent, width(indent)
    for char in paragraph:
        w = width(char)
        if used + w > columns and line.strip() and char not in _CLOSING:
            lines.append(line)
            line, used = "", 0
        line += char
        used += w
    lines.append(line)
    return lines


def sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE.findall(paragraph) if s.strip()]


def paragraphs_read(text: str) -> list[str]:
    """The non-blank blocks the text loader reads, white space trimmed."""
    return [b.text.text.strip() for b in text_blocks(text) if b.text.text.strip()]


def score(articles: Sequence[Article], write: str, columns: int) -> dict[str, float | int]:
    exact = wrong = total = 0
    for article in articles:
        expected = [p.replace(" ", "") for p in article.paragraphs]
        if write == "lines":
            text = "\n".join(article.paragraphs) + "\n"
        elif write == "sentences":  # one sentence a line: each must stay a paragraph
            expected = [s.replace(" ", "") for p in article.paragraphs for s in sentences(p)]
            text = "\n".join(s for p in article.paragraphs for s in sentences(p)) + "\n"
        elif write == "indented":
            text = "\n".join(line for p in article.paragraphs for line in wrap(p, columns, "　　"))
        else:
            text = "\n\n".join("\n".join(wrap(p, columns)) for p in article.paragraphs)
        read = [p.replace(" ", "") for p in paragraphs_read(text)]
        total += len(expected)
        if read == expected:
            exact += 1
        else:
            wrong += len(set(expected) ^ set(read))
    return {
        "articles": len(articles),
        "articles_exact": round(exact / max(len(articles), 1), 4),
        "paragraphs": total,
        "paragraphs_wrong": wrong,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--widths", default="60,70,72,76,80")
    parser.add_argument("--contexts", type=int, default=5, help="paragraphs a wrapped file")
    args = parser.parse_args(argv)
    results: dict[str, object] = {}
    for name in ("cmrc2018_dev", "drcd_dev"):
        articles = load_squad(args.datasets / f"{name}.json").articles
        # Files of `--contexts` consecutive contexts: a CMRC article holds one.
        contexts = [p for a in articles for p in a.paragraphs]
        n = args.contexts
        long = [Article(str(i), tuple(contexts[i : i + n])) for i in range(0, len(contexts), n)]
        results[f"{name} lines"] = score(long, "lines", 0)
        results[f"{name} sentences"] = score(long, "sentences", 0)
        for columns in (int(w) for w in args.widths.split(",")):
            for write in ("indented", "blank-lines"):
                results[f"{name} {write} {columns}"] = score(long, write, columns)
    json.dump(results, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
