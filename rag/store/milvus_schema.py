"""The Milvus backend's collections, their schemas, and the client each process shares.

An index is six collections named `<prefix><collection>_<part>`:

    meta       key -> value: the index config, `generation`, `next_id`, `dirty`
    files      file -> the id of its current document version (the flip readers follow)
    documents  one row per document version: hash, encoding, format, counts, ingested at
    blobs      a document version's extracted text and paragraph rows, in parts
    sources    where a passage occurs: document version, paragraph, page, sheet, line and
               char offsets, quote text, offset map
    passages   folded text, MinHash signature, our lexical tokens (fed to Milvus's BM25
               function, which fills `sparse`), and the dense vector

Milvus asks every collection for a vector field; the tables that have none carry a
two-dimension `pad` of zeros. Milvus Lite serves one process per file, so clients are
shared within the process by target and closed when the last user lets go.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from rag.store.base import StoreUnavailableError
from rag.store.location import Location, MilvusTarget

PARTS = ("meta", "files", "documents", "blobs", "sources", "passages")
MAX_VARCHAR = 65535  # bytes, Milvus's limit
# Characters per blob part: four UTF-8 bytes at most each, so a part always fits.
BLOB_CHARS = MAX_VARCHAR // 4
PAD = [0.0, 0.0]
IN_CHUNK = 1000  # ids per `in [...]` filter
# BM25 as bm25s computes it (k1 = 1.5, b = 0.75), so both backends score alike.
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}


def names(location: Location) -> dict[str, str]:
    """Collection name of each part of the index at `location`.

    Milvus names allow letters, digits and `_`: a collection name's `_` becomes `_0` and
    `-` becomes `_1`, so distinct names stay distinct (`a_b` -> `a_0b`, `a-b` -> `a_1b`).
    """
    assert location.milvus is not None
    name = location.collection.replace("_", "_0").replace("-", "_1")
    return {p: f"{location.milvus.prefix}{name}_{p}" for p in PARTS}


def _import() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise ImportError(
            "the milvus backend needs pymilvus (and milvus-lite for a file URI): "
            "install the 'milvus' extra: pip install .[milvus]"
        ) from None
    return pymilvus


_clients: dict[MilvusTarget, tuple[Any, int]] = {}
_clients_lock = threading.Lock()


def acquire_client(target: MilvusTarget) -> Any:
    """The process's client of `target` (opened on first use); pair with `release_client`."""
    with _clients_lock:
        client, users = _clients.get(target, (None, 0))
        if client is None:
            pymilvus = _import()
            # pymilvus logs every failed call at ERROR (and Lite's iterators warn on each
            # use) before raising; the exception is what callers act on.
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
            # Milvus Lite's in-process gRPC server logs a traceback for each call it does
            # not implement (the iterator's timestamp request, which then falls back).
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
            if target.lite:
                target.lite_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                client = pymilvus.MilvusClient(
                    uri=str(target.lite_path) if target.lite else target.uri,
                    token=target.token or "",
                    db_name=target.db if not target.lite else "",
                )
            except Exception as err:  # pymilvus raises its own exception types
                hint = (
                    " (Milvus Lite serves one process per file: is another process using it?)"
                    if target.lite
                    else ""
                )
                raise ConnectionError(f"cannot open milvus at {target.uri}: {err}{hint}") from err
            client = _Reporting(client, target.uri, pymilvus.MilvusException)
        _clients[target] = (client, users + 1)
        return client


class _Reporting:
    """A pymilvus client (or query iterator) whose failures are `StoreUnavailableError`.

    pymilvus raises its own exception types, which nothing above the store knows: a Milvus
    server that went away made every query a 500 "internal error" of the service and a
    traceback of the CLI, where a store that is down is a 503 and a message.
    """

    def __init__(self, wrapped: Any, uri: str, error: type[Exception]) -> None:
        self._wrapped = wrapped
        self._uri = uri
        self._error = error

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._wrapped, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except self._error as err:
                raise StoreUnavailableError(
                    f"milvus at {self._uri} failed ({name}): {err}"
                ) from err
            if name == "query_iterator":  # its batches are fetched as it is read
                return _Reporting(result, self._uri, self._error)
            return result

        return call


def release_client(target: MilvusTarget) -> None:
    with _clients_lock:
        client, users = _clients.get(target, (None, 0))
        if client is None:
            return
        if users <= 1:
            del _clients[target]
            client.close()
            if target.lite:
                _stop_lite(target)
        else:
            _clients[target] = (client, users - 1)


def _stop_lite(target: MilvusTarget) -> None:
    """Stops Milvus Lite's server of `target`, which runs in this process and outlives its
    clients: stopping it drains its background flushes and index builds and frees the file.

    Without this a closed store was not yet whole on disk: a copy taken after `close()`
    (found by the reliability loop) held a half-written index file, and Milvus Lite then
    refused to load the collection.
    """
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(target.lite_path))


def exists(client: Any, location: Location) -> bool:
    return bool(client.has_collection(names(location)["meta"]))


def create_collections(client: Any, location: Location, dim: int) -> None:
    """Create every collection but `meta`, which the caller creates last (it marks the
    index as existing), dropping any half-made set a killed creation left."""
    data_type = _import().DataType
    n = names(location)
    for name in n.values():
        if client.has_collection(name):
            client.drop_collection(name)
    i64, text = data_type.INT64, data_type.VARCHAR
    pk: dict[str, Any] = {"is_primary": True}
    long: dict[str, Any] = {"max_length": MAX_VARCHAR}
    path: dict[str, Any] = {"max_length": 4096}
    short: dict[str, Any] = {"max_length": 256}
    nullable: dict[str, Any] = {"nullable": True}
    _create(client, n["files"], [("file", text, {**path, **pk}), ("doc_id", i64, {})])
    _create(
        client,
        n["documents"],
        [
            ("id", i64, pk),
            ("file", text, path),
            ("path", text, path),
            ("content_hash", text, short),
            ("encoding", text, short),
            ("format", text, short),
            ("paragraphs", i64, {}),
            ("passages", i64, {}),
            ("ingested_at", text, short),
        ],
    )
    _create(
        client,
        n["blobs"],
        [
            ("key", text, {**short, **pk}),
            ("doc_id", i64, {}),
            ("kind", text, short),
            ("part", i64, {}),
            ("data", text, long),
        ],
    )
    _create(
        client,
        n["sources"],
        [("id", i64, pk), ("passage_id", i64, {}), ("doc_id", i64, {})]
        + [(f, i64, {}) for f in ("paragraph", "line_start", "line_end", "char_start", "char_end")]
        + [
            ("text", text, long),
            ("origin", text, long),
            ("page", i64, nullable),
            ("sheet", text, {**path, **nullable}),
            ("ocr_confidence", data_type.DOUBLE, nullable),
        ],
    )
    create_passages(client, n["passages"], dim)


def create_passages(client: Any, name: str, dim: int) -> None:
    """The passages collection, under `name` (`rag reindex` builds a second one aside)."""
    data_type = _import().DataType
    i64, text = data_type.INT64, data_type.VARCHAR
    long: dict[str, Any] = {"max_length": MAX_VARCHAR}
    _create(
        client,
        name,
        [
            # Defaults: a vector written alone (`VectorIndex.add` of a new id) makes a row.
            ("id", i64, {"is_primary": True}),
            ("hash", text, {"max_length": 256, "default_value": ""}),
            ("text", text, {**long, "default_value": ""}),
            ("folded", text, {**long, "default_value": ""}),
            ("signature", text, {"max_length": 16384, "default_value": ""}),
            (
                "lexical",
                text,
                {
                    **long,
                    "default_value": "",
                    "enable_analyzer": True,
                    "enable_match": True,
                    # Our tokens arrive hex-encoded and space-separated: the standard
                    # tokenizer keeps each whole, so BM25 counts exactly our bigrams.
                    "analyzer_params": {"tokenizer": "standard"},
                },
            ),
            ("sparse", data_type.SPARSE_FLOAT_VECTOR, {}),
            ("dense", data_type.FLOAT_VECTOR, {"dim": dim}),
        ],
        passages=True,
    )


def _create(
    client: Any,
    name: str,
    fields: Sequence[tuple[str, Any, dict[str, Any]]],
    passages: bool = False,
) -> None:
    pymilvus = _import()
    schema = client.create_schema(auto_id=False)
    for field, kind, extra in fields:
        schema.add_field(field, kind, **extra)
    index = client.prepare_index_params()
    if passages:
        schema.add_function(
            pymilvus.Function(
                name="bm25",
                function_type=pymilvus.FunctionType.BM25,
                input_field_names=["lexical"],
                output_field_names=["sparse"],
            )
        )
        index.add_index("dense", index_type="FLAT", metric_type="IP")
        index.add_index(
            "sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS
        )
    else:
        schema.add_field("pad", pymilvus.DataType.FLOAT_VECTOR, dim=2)
        index.add_index("pad", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")


def create_meta(client: Any, location: Location, meta: dict[str, str]) -> None:
    """Create the `meta` collection with the config: the last step of creating an index."""
    pymilvus = _import()
    schema = client.create_schema(auto_id=False)
    schema.add_field("key", pymilvus.DataType.VARCHAR, max_length=256, is_primary=True)
    schema.add_field("value", pymilvus.DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("pad", pymilvus.DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("pad", index_type="FLAT", metric_type="L2")
    name = names(location)["meta"]
    tmp = f"{name}_new"
    if client.has_collection(tmp):
        client.drop_collection(tmp)
    # Filled under a temporary name, then renamed: `meta` appears whole or not at all.
    client.create_collection(tmp, schema=schema, index_params=index, consistency_level="Strong")
    client.upsert(tmp, [{"key": k, "value": v, "pad": PAD} for k, v in meta.items()])
    client.rename_collection(tmp, name)
    client.load_collection(name)  # a renamed collection comes back released


def load_all(client: Any, location: Location) -> None:
    """Load every collection for search and query (a no-op for those already loaded).

    The passages may be missing while `rag reindex` swaps in their replacement (renamed
    aside, the new one not yet in place): whoever opens the index next finishes the swap.
    """
    passages = names(location)["passages"]
    for name in names(location).values():
        swapping = name == passages and client.has_collection(f"{name}_next")
        if swapping and not client.has_collection(name):
            continue
        state = client.get_load_state(name).get("state")
        if str(state) != "Loaded":
            client.load_collection(name)


def drop_all(client: Any, location: Location) -> None:
    passages = names(location)["passages"]
    # With what an interrupted `rag reindex` may have left beside the passages.
    for name in [*names(location).values(), f"{passages}_next", f"{passages}_old"]:
        if client.has_collection(name):
            client.drop_collection(name)


def chunks(ids: Sequence[int], size: int = IN_CHUNK) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield [int(x) for x in ids[i : i + size]]


def encode_tokens(tokens: Sequence[str]) -> str:
    """Our lexical tokens as the analyzer's words: hex keeps `a.b`, `2012` and CJK whole."""
    return " ".join(t.encode("utf-8").hex() for t in tokens)


def literal(value: str) -> str:
    """A string as a Milvus filter literal (the server's filter templates are not in Lite)."""
    return json.dumps(value, ensure_ascii=False)
