"""Does `bigram2` move Chinese retrieval? Its tokens against `bigram`'s on every context.

    python -m eval.studies.tokenizer_versions ../shared/datasets

Tokenises every context (and question) of CMRC 2018 dev and DRCD dev, script-folded as the
index folds them, with `bigram` and `bigram2`, and reports how many differ, and why: which
characters that `bigram` drops (its "new" characters) the differing ones hold. It also checks
the claim that they differ only there: with every new character replaced by a space, `bigram2`
gives exactly `bigram`'s tokens of the original text.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from rag.text.script import fold_script
from rag.text.tokenize import bigram2_tokens, bigram_tokens

FILES = ("cmrc2018_dev.json", "drcd_dev.json")


def new_in_bigram2(char: str) -> bool:
    """Whether `bigram` drops `char` and `bigram2` reads it (a letter, digit or mark of any
    script, or a character it tokenises alone: kana and hangul signs, 々 〇)."""
    if bigram_tokens(char):
        return False
    return unicodedata.category(char)[0] in "LNM" or bool(bigram2_tokens(char))


def masked(folded: str) -> str:
    """`folded` with every character `bigram2` reads and `bigram` drops replaced by a space."""
    return "".join(" " if new_in_bigram2(c) else c for c in folded)


def kind(char: str) -> str:
    name = unicodedata.name(char, "")
    if not name:
        return f"U+{ord(char):04X}"
    return name.split(" ")[0] if not name.startswith("CJK") else name.rsplit(" ", 1)[0]


def compare(texts: list[str]) -> dict[str, Any]:
    differ = 0
    unexplained: list[str] = []
    kinds: Counter[str] = Counter()
    chars: dict[str, Counter[str]] = {}
    for text in texts:
        folded = fold_script(text)
        old, new = bigram_tokens(folded), bigram2_tokens(folded)
        if bigram2_tokens(masked(folded)) != old:
            unexplained.append(text[:80])
        if old == new:
            continue
        differ += 1
        found = {c for c in folded if new_in_bigram2(c)}
        kinds.update({kind(c) for c in found})
        for c in found:
            chars.setdefault(kind(c), Counter())[c] += 1
    return {
        "texts": len(texts),
        "differ": differ,
        "unexplained": unexplained,
        # Kind of new character: the differing texts holding one, and the commonest ones.
        "by kind": {
            k: f"{n} {''.join(c for c, _ in chars[k].most_common(12))}"
            for k, n in kinds.most_common()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bigram2 against bigram on CMRC and DRCD")
    parser.add_argument("datasets", type=Path)
    args = parser.parse_args(argv)
    for name in FILES:
        data = json.loads((args.datasets / name).read_text(encoding="utf-8-sig"))["data"]
        contexts = [p["context"] for a in data for p in a["paragraphs"]]
        questions = [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]]
        for what, texts in (("contexts", contexts), ("questions", questions)):
            print(json.dumps({f"{name} {what}": compare(texts)}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
