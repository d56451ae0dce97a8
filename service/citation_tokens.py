"""Signed, expiring citation tokens: proof that an answer cited a paragraph.

A publishable key is public (it sits in a web page), so it may open a paragraph only with
the token the answer gave for that citation. A token is

    v2.<passage_id>.<expires>.<version>.<signature>

where `expires` is a Unix time in whole seconds, `version` the first 16 hex digits of the
cited document's content hash (the version of the file the answer quoted), and `signature`
the unpadded base64url HMAC-SHA256, under the first server secret, of the JSON array
`["v2", file, paragraph, passage_id, expires, version]`, with the collection appended for a
collection other than `default` (JSON: a file name may hold any character, and no two
different tuples encode alike). Collection, file and paragraph are not in the token: the
request names them, and a token signed for another collection, file or paragraph does not
verify. The version is checked against the document the service holds now (`cites`): a
file deleted and uploaded again under its name is another text, whose paragraph N no
answer cited. Tokens of the earlier format (`v1`, without a version) are refused.
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

VERSION = "v2"
# Hex digits of the content hash a token names: 64 bits tell versions of one file apart,
# and the signature keeps them from being chosen.
DOCUMENT_DIGITS = 16


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
    version: str = ""  # the opening of the cited document's content hash

    def cites(self, content_hash: str) -> bool:
        """Whether the document with `content_hash` is the version the answer cited."""
        return bool(self.version) and content_hash[:DOCUMENT_DIGITS] == self.version


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
        self,
        file: str,
        paragraph: int,
        passage_id: int,
        now: float,
        collection: str = DEFAULT,
        content_hash: str = "",
    ) -> str:
        """A token for paragraph `paragraph` of the version `content_hash` of `file` in
        `collection`, valid for `ttl_s` from `now` (without a hash, it opens no document)."""
        expires = int(now) + self.ttl_s
        version = content_hash[:DOCUMENT_DIGITS]
        signature = _sign(
            self._secrets[0], collection, file, paragraph, passage_id, expires, version
        )
        return f"{VERSION}.{passage_id}.{expires}.{version}.{signature}"

    def verify(
        self, token: str, file: str, paragraph: int, now: float, collection: str = DEFAULT
    ) -> CitationGrant:
        """The grant of `token` for this paragraph, file and collection, or
        InvalidCitationToken."""
        parts = token.split(".")
        if len(parts) == 4 and parts[0] == "v1":
            raise InvalidCitationToken(
                "the citation token is of an earlier format that does not name the document "
                "version it cites; ask the question again for fresh citations"
            )
        if len(parts) != 5 or parts[0] != VERSION:
            raise InvalidCitationToken("the citation token is malformed")
        _, passage, expiry, version, signature = parts
        if not (passage.isascii() and passage.isdigit() and expiry.isascii() and expiry.isdigit()):
            raise InvalidCitationToken("the citation token is malformed")
        if len(version) > DOCUMENT_DIGITS or version.strip("0123456789abcdef"):
            raise InvalidCitationToken("the citation token is malformed")
        # Bounded before int(): a megabyte of digits must not cost a quadratic conversion.
        if len(passage) > 20 or len(expiry) > 20:
            raise InvalidCitationToken("the citation token is malformed")
        passage_id, expires = int(passage), int(expiry)
        # Every secret is tried, without stopping early: timing must not tell which matched.
        matched = False
        for secret in self._secrets:
            expected = _sign(secret, collection, file, paragraph, passage_id, expires, version)
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
        return CitationGrant(file, paragraph, passage_id, expires, collection, version)


def _sign(
    secret: bytes,
    collection: str,
    file: str,
    paragraph: int,
    passage_id: int,
    expires: int,
    version: str,
) -> str:
    signed: list[object] = [VERSION, file, paragraph, passage_id, expires, version]
    if collection != DEFAULT:
        signed.append(collection)
    message = json.dumps(signed, ensure_ascii=True)
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
