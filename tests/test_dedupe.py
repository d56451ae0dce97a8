"""Duplicate identity and near-duplicate detection."""

from __future__ import annotations

from rag.ingest.dedupe import NearDuplicateIndex, signature_bytes, signature_from_bytes
from rag.text.identity import content_hash

TEXT = (
    "支树平指出,党的十八大以来,我国经济发展进入新常态,"
    "处于转方式、调结构的关键阶段,质量的重要性进一步凸显。"
)


def test_exact_identity_ignores_script_spacing_and_punctuation() -> None:
    assert content_hash("質量是基礎。 安全是底線") == content_hash("质量是基础,安全是底线")
    assert content_hash("质量是基础") != content_hash("质量是底线")


def test_a_near_duplicate_is_found_and_an_unrelated_text_is_not() -> None:
    index = NearDuplicateIndex(threshold=0.85, num_perm=128, shingle_size=3)
    index.add(1, index.signature(TEXT))
    index.add(2, index.signature("完全不同的一段文字,讲的是天气和交通。"))
    assert index.find(index.signature(TEXT.replace("。", "!") + "好")) == 1
    assert index.find(index.signature("上海迪士尼门票多少钱?")) is None


def test_removed_keys_are_no_longer_found() -> None:
    index = NearDuplicateIndex(threshold=0.85, num_perm=128, shingle_size=3)
    index.add(7, index.signature(TEXT))
    index.remove(7)
    assert index.find(index.signature(TEXT)) is None
    assert len(index) == 0


def test_signatures_survive_storage() -> None:
    index = NearDuplicateIndex(threshold=0.85, num_perm=64, shingle_size=3)
    signature = index.signature(TEXT)
    assert signature_from_bytes(signature_bytes(signature), 64).jaccard(signature) == 1.0


def test_signatures_are_datasketchs_own_with_the_hash_functions_drawn_once() -> None:
    # Stored signatures must stay comparable with those of earlier versions, which let
    # datasketch draw its hash functions for every signature (0.1 ms each).
    from datasketch import MinHash

    from rag.ingest.dedupe import SCHEME, minhash, shingles

    own = MinHash(num_perm=64, scheme=SCHEME)
    own.update_batch(shingles(TEXT, 3))
    made, other = minhash(TEXT, 3, 64), minhash("完全不同的一段文字", 3, 64)
    loaded = signature_from_bytes(signature_bytes(made), 64)

    assert (made.hashvalues == own.hashvalues).all()
    assert made.permutations is other.permutations is loaded.permutations
    assert loaded.jaccard(own) == 1.0


def test_texts_of_nothing_but_different_punctuation_have_different_identities() -> None:
    assert content_hash("！！！") != content_hash("……") != content_hash("★★★")
    assert content_hash("★ ★ ★") == content_hash("★★★")  # white space still does not count
    index = NearDuplicateIndex(threshold=0.85, num_perm=128, shingle_size=3)
    index.add(1, index.signature("！！！"))
    assert index.find(index.signature("……")) is None
