"""Signed, expiring citation tokens: proof that an answer cited a paragraph.

A publishable key is public (it sits in a web page), so it may open a paragraph only with
the token the answer gave for that citation. A token is

    v1.<passage_id>.<expires>.<signature>

where `expires` is a Unix time in whole seconds and `signature` is the unpadded base64url
HMAC-SHA256, under the first server secret, of the JSON array
`["v1", file, paragraph, passage_id, expires]`, with the collection appended for a collection
other than `default` (JSON: a file name may hold any character, and no two different tuples
encode alike). Collection, file and paragraph are not in the token: the request names them,
and a token signed for another collection, file or paragraph does not verify (a token of
`default` signs exactly what it did before collections existed).
Every configured secret verifies, so a rotated-out secret keeps opening the citations it
signed until they expire. The clock is injected: nothing here reads the time itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from rag.collections import DEFAULT

VERSION = "v1"


class InvalidCitationToken(Exception):
    """A token that does not open the paragraph asked for; the message says why."""


@dataclass(frozen=True)
class CitationGrant:
    """What a valid token allows: one paragraph of one file of one collection, until `expires`."""

    file: str
    paragraph: int
    passage_id: int
    expires: int
    collection: str = DEFAULT


class CitationTokens:
    """Issues and verifies citation tokens under a list of secrets (the first one signs)."""

    def __init__(self, secrets: Sequence[str | bytes], ttl_s: int) -> None:
        if not secrets:
            raise ValueError("citation tokens need at least one secret")
        if ttl_s < 1:
            raise ValueError(f"citation token lifetime must be at least 1 s, not {ttl_s}")
        self._secrets = [s.encode() if isinstance(s, str) else s for s in secrets]
        self.ttl_s = ttl_s

    def issue(
        self, file: str, paragraph: int, passage_id: int, now: float, collection: str = DEFAULT
    ) -> str:
        """A token for paragraph `paragraph` of `file` in `collection`, valid for `ttl_s`
        from `now`."""
        expires = int(now) + self.ttl_s
        signature = _sign(self._secrets[0], collection, file, paragraph, passage_id, expires)
        return f"{VERSION}.{passage_id}.{expires}.{signature}"

    def verify(
        self, token: str, file: str, paragraph: int, now: float, collection: str = DEFAULT
    ) -> CitationGrant:
        """The grant of `token` for this paragraph, file and collection, or
        InvalidCitationToken."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION:
            raise InvalidCitationToken("the citation token is malformed")
        _, passage, expiry, signature = parts
        if not (passage.isascii() and passage.isdigit() and expiry.isascii() and expiry.isdigit()):
            raise InvalidCitationToken("the citation token is malformed")
        # Bounded before int(): a megabyte of digits must not cost a quadratic conversion.
        if len(passage) > 20 or len(expiry) > 20:
            raise InvalidCitationToken("the citation token is malformed")
        passage_id, expires = int(passage), int(expiry)
        # Every secret is tried, without stopping early: timing must not tell which matched.
        matched = False
        for secret in self._secrets:
            expected = _sign(secret, collection, file, paragraph, passage_id, expires)
            matched |= hmac.compare_digest(expected.encode(), signature.encode())
        if not matched:
            raise InvalidCitationToken(
                f"the citation token was not issued for paragraph {paragraph} of this "
                "document in this collection (forged, altered, or for another citation)"
            )
        if now >= expires:
            raise InvalidCitationToken(
                "the citation token has expired; ask the question again for fresh citations"
            )
        return CitationGrant(file, paragraph, passage_id, expires, collection)


def _sign(
    secret: bytes, collection: str, file: str, paragraph: int, passage_id: int, expires: int
) -> str:
    signed: list[object] = [VERSION, file, paragraph, passage_id, expires]
    if collection != DEFAULT:
        signed.append(collection)
    message = json.dumps(signed, ensure_ascii=True)
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
