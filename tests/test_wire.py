"""The wire format is defined once: the HTTP models document exactly what `rag.wire` writes."""

from __future__ import annotations

from typing import get_args

from rag.answer.factory import COMPOSERS
from rag.types import Citation, Source
from rag.wire import LOCATION_FIELDS, citation_payload, source_payload
from service.schemas import AnswerOut, CitationOut, LocationOut, SourceOut

SOURCE = Source("a.pdf", 3, 4, 4, 10, 20, "质量是基础", page=2)
CITATION = Citation("a.pdf", 3, 4, 4, 12, 15, "是基础", 7, (("b.txt", 1),), n=1, sheet="表1")


def test_sources_and_citations_carry_every_location_field() -> None:
    assert (
        *("file", "paragraph", "line_start", "line_end", "char_start", "char_end"),
        *("page", "sheet", "ocr_confidence"),
    ) == LOCATION_FIELDS
    assert source_payload(SOURCE) == {
        **dict.fromkeys(LOCATION_FIELDS),
        **{"file": "a.pdf", "paragraph": 3, "line_start": 4, "line_end": 4},
        **{"char_start": 10, "char_end": 20, "page": 2},
    }
    cited = citation_payload(CITATION)
    assert cited["sheet"] == "表1" and cited["page"] is None and cited["n"] == 1
    assert cited["also_in"] == [{"file": "b.txt", "paragraph": 1}]


def test_the_http_models_match_the_wire_format() -> None:
    assert tuple(LocationOut.model_fields) == LOCATION_FIELDS
    assert set(SourceOut.model_fields) == set(source_payload(SOURCE))
    assert set(CitationOut.model_fields) == set(citation_payload(CITATION))
    assert SourceOut.model_validate(source_payload(SOURCE)).model_dump() == source_payload(SOURCE)
    assert CitationOut.model_validate(citation_payload(CITATION)).model_dump(
        mode="json"
    ) == citation_payload(CITATION)


def test_the_http_composer_names_are_the_factory_names() -> None:
    assert get_args(AnswerOut.model_fields["composer"].annotation) == tuple(COMPOSERS)
