"""`rag eval`: a question set through one pipeline, scored, written as JSON, JSONL and HTML."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TextIO

from eval.checks import (
    EvalError,
    check_outputs,
    compared_report,
    published,
    refuse_unused,
    without_password,
)
from eval.datasets import Question, SquadSet, load_jsonl, load_squad, write_corpus
from eval.runner import Ask, Outcome, run_questions
from eval.scoring import (
    SourceText,
    by_kind,
    failures,
    hit_curve,
    latency,
    score,
    summarise,
)
from eval.versions import SCORING_VERSION, against_this_run
from rag.text.script import to_script

PipelineName = Literal["ours", "langchain-baseline"]
ScriptName = Literal["original", "hans", "hant"]


@dataclass(frozen=True)
class EvalOptions:
    inputs: Sequence[Path]
    pipeline: PipelineName = "ours"
    index: Path | None = None  # keep (and reuse) the index built here
    docs: Path | None = None  # documents a JSONL question set is about
    url: str | None = None
    key: str | None = None
    predictions: Path | None = None
    out: Path | None = None
    html: Path | None = None
    compare: Path | None = None  # a report of another run (the baseline's) to show beside
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    script: ScriptName = "original"
    top_k: int = 10
    workers: int = 1
    # A collection (rag/collections.py): asked of the service, or opened (created, with
    # `docs`) under `index` or RAG_INDEX_DIR instead of a temporary index.
    collection: str | None = None


@dataclass(frozen=True)
class QuestionSet:
    questions: list[Question]
    squad: list[SquadSet]  # the SQuAD files the questions came from (their corpus), if any

    def evidence(self, question: Question) -> str | None:
        """The gold context of a SQuAD question, else the JSONL evidence."""
        if question.evidence or question.paragraph is None:
            return question.evidence
        for squad in self.squad:
            for article in squad.articles:
                if article.file == question.file:
                    return article.paragraphs[question.paragraph - 1]
        return None


def load_question_set(inputs: Sequence[Path]) -> QuestionSet:
    # Told by the suffix, in any case; any other input is refused, not skipped: a run that
    # left out one of the files named would report on fewer questions than asked for.
    other = [p for p in inputs if p.suffix.lower() not in (".json", ".jsonl")]
    if other:
        raise EvalError(
            f"no questions read from {', '.join(map(str, other))}: "
            "inputs must be SQuAD .json or .jsonl files"
        )
    places = [p.resolve() for p in inputs]
    given_twice = sorted(
        {str(p) for p, where in zip(inputs, places, strict=True) if places.count(where) > 1}
    )
    if given_twice:  # its questions would be asked and counted twice
        raise EvalError(f"given twice: {', '.join(given_twice)}")
    squad = [_squad(p) for p in inputs if p.suffix.lower() == ".json"]
    # A SQuAD file's name is its questions' kind and the folder of its documents: two of one
    # name (a/dev.json and b/dev.json) would write over each other's
    # documents, their questions pointing into the other's text, and count as one kind.
    names = [s.name for s in squad]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise EvalError(
            f"two SQuAD files named {', '.join(twice)}: their documents and kinds would mix; "
            "give each file its own name"
        )
    try:
        jsonl = [q for p in inputs if p.suffix.lower() == ".jsonl" for q in load_jsonl(p)]
    except (ValueError, UnicodeDecodeError) as err:
        raise EvalError(str(err)) from err
    except OSError as err:
        raise EvalError(f"cannot read {err.filename}: {err.strerror}") from err
    if squad and jsonl:
        raise EvalError("give SQuAD .json files or JSONL question sets, not both")
    questions = [q for s in squad for q in s.questions] if squad else jsonl
    if not questions:
        raise EvalError(f"no questions in {', '.join(map(str, inputs))}")
    return QuestionSet(questions, squad)


def _squad(path: Path) -> SquadSet:
    try:
        return load_squad(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise EvalError(f"{path}: {err}") from err
    except OSError as err:
        raise EvalError(f"cannot read {path}: {err.strerror}") from err
    except (KeyError, TypeError, AttributeError) as err:
        raise EvalError(f"{path}: not a SQuAD file ({type(err).__name__}: {err})") from err


def select(questions: list[Question], options: EvalOptions) -> list[Question]:
    chosen = questions
    if options.sample is not None:
        chosen = random.Random(options.seed).sample(chosen, min(options.sample, len(chosen)))
    if options.limit is not None:
        chosen = chosen[: options.limit]
    return chosen


def asked_text(question: Question, script: ScriptName) -> str:
    return question.question if script == "original" else to_script(question.question, script)


# -- who answers ------------------------------------------------------------------------------


@dataclass
class Target:
    """What answers the questions, and how to read the sources its citations point into."""

    ask: Ask  # the baseline's is not thread-safe: it is always asked one question at a time
    source_text: SourceText
    settings: dict[str, Any]


def _read_text(path: Path) -> str | None:
    from rag.ingest.document import read_source
    from rag.loaders.base import LoadError

    try:
        return read_source(path, 1 << 30).text
    except (LoadError, OSError):
        return None


@contextlib.contextmanager
def open_target(
    options: EvalOptions, qset: QuestionSet, log: Callable[[str], None]
) -> Iterator[Target]:
    """The pipeline to evaluate, built over the questions' documents; closed afterwards."""
    if options.url:
        yield _http_target(options)
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        docs = options.docs
        if qset.squad:
            docs = Path(tmp) / "corpus"
            write_corpus(qset.squad, docs)  # each article a document, each context a paragraph
        index = options.index or Path(tmp) / "index"
        if options.pipeline == "langchain-baseline":
            if docs is None:
                raise EvalError("the baseline needs the documents: give --docs DIR")
            yield _baseline_target(docs, index, log)
        else:
            if options.collection is not None:
                index = _collection_index(options, docs is not None)
            with _ours_target(docs, index, log) as target:
                yield target


def _http_target(options: EvalOptions) -> Target:
    import httpx

    from eval.runner import http_asker

    headers = {"Authorization": f"Bearer {options.key}"} if options.key else {}
    client = httpx.Client(base_url=options.url or "", headers=headers, timeout=60)
    asker = http_asker(client, options.collection)
    return Target(
        asker,
        lambda _: None,
        {"url": without_password(options.url or ""), "collection": options.collection},
    )


def _collection_index(options: EvalOptions, create: bool) -> Path:
    """The directory of `options.collection`, created first if `create` and missing."""
    from embeddings.factory import make_embedder
    from rag.collections import Collections, InvalidCollectionName
    from rag.pipeline import index_config
    from rag.settings import get_settings
    from rag.store.lock import IndexBusyError

    name = options.collection or ""
    settings = get_settings()
    if options.index is not None:
        settings = settings.model_copy(update={"index_dir": options.index})
    try:
        collections = Collections.of(settings)
        if not collections.exists(name):
            if not create:
                raise EvalError(f"no collection {name!r}: give --docs DIR to build it")
            collections.create(
                name,
                index_config(
                    settings, make_embedder(settings.embedder, settings.embedder_options())
                ),
            )
        return collections.location(name)
    except (InvalidCollectionName, IndexBusyError) as err:
        raise EvalError(str(err)) from err
    except OSError as err:  # --index naming a file, a folder that cannot be written
        raise EvalError(
            f"cannot open the index at {settings.index_dir}: {err.strerror or err}"
        ) from err


@contextlib.contextmanager
def _ours_target(docs: Path | None, index: Path, log: Callable[[str], None]) -> Iterator[Target]:
    from embeddings.factory import make_embedder
    from eval.runner import local_asker
    from rag.index.config import IndexMismatchError, NoIndexError
    from rag.index.index import read_config
    from rag.pipeline import open_pipeline
    from rag.settings import get_settings
    from rag.store.location import location_from_settings
    from rag.store.lock import IndexBusyError

    # What `rag ask` says of an index it cannot open, said here too: these ended the run in
    # a traceback (an index built with another embedder, --index naming a file, a writer
    # holding the index past the lock timeout).
    unusable = (IndexMismatchError, IndexBusyError, ImportError, ConnectionError)
    settings = get_settings()
    try:
        if docs is None:  # asked of an existing index: a mistyped --index must not build one
            read_config(location_from_settings(settings, index))
        pipeline = open_pipeline(
            settings, make_embedder(settings.embedder, settings.embedder_options()), index
        )
    except NoIndexError as err:
        raise EvalError(f"{err}: give --docs DIR to build one") from err
    except unusable as err:
        raise EvalError(str(err)) from err
    except OSError as err:
        raise EvalError(f"cannot open the index at {index}: {err.strerror or err}") from err
    try:
        if docs is not None:
            log(f"indexing {docs} into {index} (unchanged files are skipped)")
            try:
                report = pipeline.ingest([docs])
            except (IndexBusyError, OSError) as err:
                raise EvalError(f"cannot index {docs} into {index}: {err}") from err
            log(f"indexed {report.files} files, {report.new_passages} new passages")
            for skipped in report.skipped:  # as `rag ingest` lists them: their gold is lost
                log(f"skipped {skipped.path}: {skipped.reason}")
        if not len(pipeline):
            raise EvalError(f"the index at {index} is empty: give --docs DIR or --index DIR")
        # As the service does before it reports ready: otherwise the first question's time
        # holds loading jieba's dictionaries (about a second), which is no stage's own cost.
        pipeline.warm_up()

        @lru_cache(maxsize=256)
        def source_text(file: str) -> str | None:
            # The documents just indexed; else the path the index recorded at ingestion.
            if docs is not None and (docs / file).is_file():
                return _read_text(docs / file)
            row = pipeline.document(file)
            return None if row is None else _read_text(Path(row.path))

        shown = published(settings.model_dump(mode="json"))
        yield Target(local_asker(pipeline), source_text, shown)
    finally:
        pipeline.close()


# Beside a saved baseline: the documents it was built over, file name -> SHA-256.
BASELINE_DOCUMENTS = "documents.json"


def _documents(docs: Path) -> dict[str, str]:
    """Each document file under `docs` as the baseline names it, with its content's hash
    (contents, not times: a copy or a checkout keeps the documents, an edit does not)."""
    from rag.loaders.walk import iter_files
    from rag.pipeline import file_key

    return {file_key(path, docs): _digest(path) for path in iter_files([docs]) if path.is_file()}


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:  # the baseline skips it too, and says why
        return f"unreadable: {err.strerror or err}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _baseline_target(docs: Path, index: Path, log: Callable[[str], None]) -> Target:
    from embeddings.factory import make_embedder
    from eval.baselines.langchain_chatchat import LangChainBaseline
    from rag.settings import get_settings

    embedder = make_embedder(get_settings().embedder, get_settings().embedder_options())
    saved = index / "baseline"
    documents = _documents(docs)
    record = saved / BASELINE_DOCUMENTS
    # Else none, a save cut short, or built over other documents (or before they were
    # recorded): built again. It was reused whatever --docs held, so the baseline answered
    # from documents the questions were not about.
    built_over = _read_json(record) if LangChainBaseline.saved_at(saved) else None
    if built_over == documents:
        log(f"loading the baseline index from {saved}")
        try:
            baseline = LangChainBaseline.load(saved, embedder)
        except (ValueError, OSError) as err:  # another embedder, a damaged file
            raise EvalError(f"{err}; remove {saved} to build the baseline again") from err
    else:
        if LangChainBaseline.saved_at(saved):
            log(f"the baseline index at {saved} is not of the documents in {docs}: built again")
        log(f"indexing {docs} with the LangChain baseline")
        record.unlink(missing_ok=True)  # a rebuild cut short must not pass for this one
        baseline = LangChainBaseline(embedder)
        baseline.ingest([docs])
        baseline.save(saved)
        partial = record.with_suffix(".partial")
        partial.write_text(json.dumps(documents, ensure_ascii=False), encoding="utf-8")
        partial.replace(record)

    @lru_cache(maxsize=256)
    def source_text(file: str) -> str | None:
        return _read_text(docs / file)

    # The stock recipe has no conversations: a follow-up is asked as it is.
    return Target(
        lambda question, top_k, _history: baseline.ask(question, top_k),
        source_text,
        {"embedder": embedder.name, "recipe": "chatchat"},
    )


# -- the run ----------------------------------------------------------------------------------


def evaluate(
    options: EvalOptions,
    log: Callable[[str], None] = lambda _: None,
    progress: Callable[[int], Callable[[Outcome], None]] | None = None,
) -> dict[str, Any]:
    """Run the evaluation and write the requested files; return the report.

    `progress(total)` returns a callback called after each question (a progress bar).
    """
    qset = load_question_set(options.inputs)
    # Before the run, not after it: a typo in an output path or a bad --compare file must
    # not cost a whole run's answers and end in a traceback.
    refuse_unused(options, bool(qset.squad))
    other = compared_report(options.compare)
    check_outputs(options)
    scoring = against_this_run(other, str(options.compare)) if other is not None else None
    if scoring is not None and not scoring.comparable:
        log(f"warning: --compare: {scoring.note}")  # said now, while the run can be stopped
    chosen = select(qset.questions, options)
    items = [(q, asked_text(q, options.script)) for q in chosen]
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with _Finishing(log) as finishing:
        return _run(options, qset, items, other, started_at, finishing, log, progress)


def _run(
    options: EvalOptions,
    qset: QuestionSet,
    items: list[tuple[Question, str]],
    other: dict[str, Any] | None,
    started_at: str,
    finishing: _Finishing,
    log: Callable[[str], None],
    progress: Callable[[int], Callable[[Outcome], None]] | None,
) -> dict[str, Any]:
    with open_target(options, qset, log) as target, _predictions(options.predictions) as sink:
        tick = progress(len(items)) if progress else None

        def on_outcome(outcome: Outcome) -> None:
            if sink is not None:
                record = {"id": outcome.question.id, "question": outcome.question.question}
                if outcome.question.standalone is not None:  # a conversation set's gold
                    record["gold_standalone"] = outcome.question.standalone
                record |= outcome.answer or {"error": outcome.error}
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            if tick is not None:
                tick(outcome)

        clock = time.perf_counter()
        workers = 1 if options.pipeline == "langchain-baseline" else options.workers
        outcomes, interrupted = run_questions(items, target.ask, options.top_k, workers, on_outcome)
        seconds = time.perf_counter() - clock
        finishing.hold()  # the answers are in: a Ctrl-C or SIGTERM now must not lose them
        scored = [score(o, target.source_text) for o in outcomes]
        settings = target.settings
    report = {
        "run": {
            "pipeline": options.pipeline if not options.url else "service",
            "inputs": [str(p) for p in options.inputs],
            "index": str(options.index) if options.index else None,
            "url": without_password(options.url) if options.url else None,
            "script": options.script,
            "top_k": options.top_k,
            # Planned, not answered (that is metrics.questions): an interrupted run's report
            # says "after N of M" with this M.
            "questions": len(items),
            "sampled": {"n": options.sample, "seed": options.seed} if options.sample else None,
            "limit": options.limit,
            "workers": workers,  # the baseline is asked one question at a time
            "started_at": started_at,
            "seconds": round(seconds, 2),
            "interrupted": interrupted,
            # What the rates mean (eval/versions.py): --compare tells a report scored
            # another way, whose rates do not compare with these.
            "scoring_version": SCORING_VERSION,
            "settings": settings,
        },
        "metrics": {**summarise(scored, options.top_k), "latency_ms": latency(scored)},
        "hit_curve": hit_curve(scored, options.top_k),
        "latencies_ms": [
            o.answer["timings_ms"].get("total", o.seconds * 1000) if o.answer else o.seconds * 1000
            for o in outcomes
        ],
        "by_kind": by_kind(scored, options.top_k),
        "failures": failures(scored, qset.evidence),
    }
    if other is not None:  # whether its rates compare with these, for the page and scripts
        report["compared"] = against_this_run(other, str(options.compare)).as_dict()
    if options.out:
        options.out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    if options.html:
        from eval.report import write_html

        write_html(report, options.html, baseline=other)
    return report


class _Finishing:
    """Once `hold()` is called, a first Ctrl-C or SIGTERM waits for the report.

    Scoring and writing the report take seconds; an interrupt there ended the run with
    "Aborted!" and no report, every answer lost. A second signal stops at once. The
    handlers in place before are restored on leaving.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.received = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Finishing:
        return self

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread can set handlers, and only it gets signals
        for sig in self.SIGNALS:
            previous = signal.getsignal(sig)
            if previous is not signal.SIG_IGN:  # ignored (nohup, `&`): left ignored
                self.previous[sig] = previous
                signal.signal(sig, self._held)

    def _held(self, signum: int, _frame: object) -> None:
        self.received += 1
        if self.received > 1:
            raise KeyboardInterrupt
        self.log(
            "interrupted: writing the report of the answered questions first (again to stop now)"
        )

    def __exit__(self, *_: object) -> None:
        for sig, handler in self.previous.items():
            # None: a handler not set from Python, which cannot be set back; the default.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def _predictions(path: Path | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    with path.open("w", encoding="utf-8") as sink:
        yield sink
