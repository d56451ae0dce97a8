"""Citation tokens: a token opens its own file and paragraph, until it expires, under any
configured secret, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.citation_tokens import CitationGrant, CitationTokens, InvalidCitationToken
from service.settings import ServiceSettings

NOW = 1_800_000_000.0
TTL = 3600
FILE = "004_质检总局.txt"
CONTENT = "3f" * 32  # the cited version's content hash


def tokens(*secrets: str) -> CitationTokens:
    return CitationTokens(secrets or ("secret-a",), TTL)


def test_a_token_opens_its_paragraph_until_it_expires() -> None:
    token = tokens().issue(FILE, 3, 17, NOW)

    grant = tokens().verify(token, FILE, 3, NOW + TTL - 1)

    assert grant == CitationGrant(FILE, 3, 17, int(NOW) + TTL)
    with pytest.raises(InvalidCitationToken, match="expired"):
        tokens().verify(token, FILE, 3, NOW + TTL)


@pytest.mark.parametrize(
    ("file", "paragraph"), [("005_other.txt", 3), (FILE, 4), (FILE + " ", 3), ("004", 3)]
)
def test_a_token_opens_no_other_file_or_paragraph(file: str, paragraph: int) -> None:
    token = tokens().issue(FILE, 3, 17, NOW)

    with pytest.raises(InvalidCitationToken, match="not issued for"):
        tokens().verify(token, file, paragraph, NOW)


def test_a_token_signed_under_another_secret_is_refused() -> None:
    forged = tokens("attacker-guess").issue(FILE, 3, 17, NOW)

    with pytest.raises(InvalidCitationToken, match="not issued for"):
        tokens("secret-a").verify(forged, FILE, 3, NOW)


def test_a_rotated_out_secret_still_verifies_its_tokens() -> None:
    old = tokens("old").issue(FILE, 3, 17, NOW)
    rotated = tokens("new", "old")

    assert rotated.verify(old, FILE, 3, NOW).passage_id == 17
    # New tokens are signed with the first secret: a server that dropped it refuses them.
    with pytest.raises(InvalidCitationToken):
        tokens("old").verify(rotated.issue(FILE, 3, 17, NOW), FILE, 3, NOW)


def test_a_later_expiry_another_passage_or_version_breaks_the_signature() -> None:
    token = tokens().issue(FILE, 3, 17, NOW, content_hash=CONTENT)
    form, passage, expires, version, signature = token.split(".")
    longer = f"{form}.{passage}.{int(expires) + 10**6}.{version}.{signature}"
    other = f"{form}.18.{expires}.{version}.{signature}"
    newer = f"{form}.{passage}.{expires}.{'4e' * 8}.{signature}"

    for altered in (longer, other, newer):
        with pytest.raises(InvalidCitationToken, match="not issued for"):
            tokens().verify(altered, FILE, 3, NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v2",
        "v2.1.2",
        "v2.1.2.sig",
        "v3.1.2.3f.sig",
        "v2.-1.2.3f.sig",
        "v2.1.1e9.3f.sig",
        "v2.١.2.3f.sig",
        "v2.1." + "9" * 5000 + ".3f.sig",
        "v2.1.2." + "3f" * 9 + ".sig",
        "v2.1.2.3F.sig",
        "v2.1.2.3f.sig.extra",
    ],
)
def test_malformed_tokens_are_refused_with_a_clear_message(token: str) -> None:
    with pytest.raises(InvalidCitationToken, match="malformed"):
        tokens().verify(token, FILE, 3, NOW)


def test_a_token_opens_only_the_version_of_the_document_it_cited() -> None:
    """A file deleted and uploaded again under its name is another text: its paragraph 3 is
    not what the answer quoted."""
    grant = tokens().verify(tokens().issue(FILE, 3, 17, NOW, content_hash=CONTENT), FILE, 3, NOW)

    assert grant.cites(CONTENT)
    assert not grant.cites("4e" * 32)
    unversioned = tokens().verify(tokens().issue(FILE, 3, 17, NOW), FILE, 3, NOW)
    assert not unversioned.cites(CONTENT) and not unversioned.cites("")


def test_a_token_of_the_earlier_format_is_told_to_ask_again() -> None:
    """v1 tokens named no document version: any document under their name opened."""
    with pytest.raises(InvalidCitationToken, match=r"earlier format .* ask the question again"):
        tokens().verify("v1.17.1800003600.c2lnbmF0dXJl", FILE, 3, NOW)


def test_settings_that_cannot_sign_fail_at_start_up() -> None:
    with pytest.raises(ValueError, match="secret"):
        CitationTokens([], TTL)
    with pytest.raises(ValueError, match="lifetime"):
        CitationTokens(["s"], 0)


@given(
    file=st.text(min_size=1, max_size=40),
    paragraph=st.integers(1, 10**6),
    passage=st.integers(0, 10**9),
)
def test_any_citation_round_trips_and_the_token_is_url_safe(
    file: str, paragraph: int, passage: int
) -> None:
    token = tokens().issue(file, paragraph, passage, NOW)

    assert tokens().verify(token, file, paragraph, NOW).passage_id == passage
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in token)


def test_a_short_citation_secret_is_refused_by_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_CITATION_SECRETS", "a-long-enough-secret-1, short")
    with pytest.raises(ValidationError, match=r"number \[2\] are shorter than 16 characters"):
        ServiceSettings(index_dir=tmp_path)
    monkeypatch.setenv("RAG_CITATION_SECRETS", "new-secret-16-chars, old-secret-16-chars")
    assert ServiceSettings(index_dir=tmp_path).citation_secrets == [
        "new-secret-16-chars",
        "old-secret-16-chars",
    ]
