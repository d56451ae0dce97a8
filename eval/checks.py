"""What `rag eval` checks before its first question, and what its report may not show.

A run takes minutes to hours: an option it would ignore, an output it could not write or a
--compare file it could not read is refused up front, not found once every answer is in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from eval.evaluate import EvalOptions


class EvalError(ValueError):
    """Options that cannot make a run, with the message the user gets."""


def refuse_unused(options: EvalOptions, squad: bool) -> None:
    """Refuse an option this run would not use: it was ignored, so the report measured
    something else than was asked for (the service instead of the baseline, its index
    instead of --index, a SQuAD file's own corpus instead of --docs)."""
    if options.url:
        unused = [
            ("--pipeline langchain-baseline", options.pipeline == "langchain-baseline"),
            ("--index", options.index is not None),
            ("--docs", options.docs is not None),
        ]
        named = [name for name, given in unused if given]
        if named:
            raise EvalError(
                f"{', '.join(named)}: not used with --url, which asks the running service"
            )
    if squad and options.docs is not None:
        raise EvalError("--docs: not used with SQuAD files, whose contexts are the documents")
    if options.docs is not None and not options.docs.exists():
        # Indexed as nothing, the run went on over what the index already held.
        raise EvalError(f"--docs {options.docs}: no such file or folder")
    if options.pipeline == "langchain-baseline" and options.collection is not None:
        raise EvalError("--collection: the LangChain baseline keeps no collections")


def compared_report(path: Path | None) -> dict[str, Any] | None:
    """The report of `--compare`, refused unless it is one `rag eval --out` wrote."""
    if path is None:
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvalError(f"--compare {path}: cannot read a report: {err}") from err
    if not isinstance(report, dict) or not all(
        isinstance(report.get(key), dict) for key in ("run", "metrics")
    ):
        raise EvalError(f"--compare {path}: not a report written by `rag eval --out`")
    problem = _unreadable_part(report)
    if problem:
        raise EvalError(f"--compare {path}: not a report written by `rag eval --out`: {problem}")
    return report


def _unreadable_part(report: dict[str, Any]) -> str | None:
    """What the HTML comparison would fail to read in `report`, or None.

    Checking `run` and `metrics` to be objects let a malformed `by_kind`, `hit_curve`,
    latency or metric value through: the render crashed after the whole run.
    """
    if not _number(report["run"].get("seconds")):
        return f"run.seconds is {report['run']['seconds']!r}, not a number"
    if not isinstance(report["run"].get("pipeline") or "", str):  # a plot's label
        return f"run.pipeline is {report['run']['pipeline']!r}, not a name"
    version = report["run"].get("scoring_version")  # absent before reports recorded it
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        return f"run.scoring_version is {version!r}, not a version number"
    problem = _unreadable_metrics(report["metrics"], "metrics")
    if problem:
        return problem
    latency = report["metrics"].get("latency_ms") or {}
    if not isinstance(latency, dict):
        return "metrics.latency_ms is not an object"
    for stage, values in latency.items():
        if not isinstance(values, dict) or not all(
            isinstance(values.get(p), (int, float)) and _number(values[p]) for p in ("p50", "p95")
        ):
            return f"metrics.latency_ms.{stage} needs p50 and p95 in ms"
    curve = report.get("hit_curve") or {}
    if not isinstance(curve, dict) or not all(
        str(k).isdigit() and v is not None and _number(v) for k, v in curve.items()
    ):
        return "hit_curve is not an object of k to a share"
    kinds = report.get("by_kind") or {}
    if not isinstance(kinds, dict):
        return "by_kind is not an object"
    for kind, values in kinds.items():
        problem = (
            _unreadable_metrics(values, f"by_kind.{kind}")
            if isinstance(values, dict)
            else f"by_kind.{kind} is not an object"
        )
        if problem:
            return problem
    return None


def _unreadable_metrics(values: dict[str, Any], where: str) -> str | None:
    from eval.report import COUNTS, HEADLINE

    read = {m.key for m in HEADLINE if not m.key.startswith("latency.")} | set(COUNTS)
    read |= {key for key in values if key.startswith("mrr@")}
    for key in sorted(read & values.keys()):
        if not _number(values[key]):
            return f"{where}.{key} is {values[key]!r}, not a number"
    return None


def _number(value: object) -> bool:
    """None (does not apply) or a number, as the report writes its measures."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _distinct_outputs(options: EvalOptions) -> None:
    """Refuse an output file that is a question set, the --compare report or another
    output of the run.

    `--predictions set.jsonl` for the input set.jsonl emptied the user's questions when the
    run opened it; two outputs at one path kept only the last written.
    """
    named = {
        "--out": options.out,
        "--html": options.html,
        "--predictions": options.predictions,
    }
    seen = {p.resolve(): str(p) for p in options.inputs}
    if options.compare is not None:  # the other run's report: often the costlier one
        seen[options.compare.resolve()] = f"the --compare report {options.compare}"
    for option, path in named.items():
        if path is None:
            continue
        where = path.resolve()
        if where in seen:
            raise EvalError(f"{option} {path} would overwrite {seen[where]}: give another file")
        seen[where] = f"the file of {option}"


def writable_output(path: Path | None) -> None:
    """Make the folder of an output file, and refuse a path that cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise EvalError(f"{path} is a directory: give a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EvalError(f"cannot write {path}: {err.strerror or err}") from err


def check_outputs(options: EvalOptions) -> None:
    """Refuse outputs that would overwrite an input or one another, and make their folders."""
    _distinct_outputs(options)
    for path in (options.out, options.html, options.predictions):
        writable_output(path)


# -- what a report may show ----------------------------------------------------------------


def without_password(url: str) -> str:
    """`url` with its password, if it has one, as ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:  # not a URL after all (a bracket where a host would be)
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def published(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as a report shows them: the password of any URL (RAG_REDIS_URL,
    RAG_MILVUS_URI, RAG_LLM_BASE_URL) masked, as the secrets themselves already are. The
    report goes on stdout, into --out and into the HTML page, which get shared."""
    return {k: without_password(v) if isinstance(v, str) else v for k, v in settings.items()}
