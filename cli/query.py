"""`rag ask` and `rag search`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import (
    CollectionOption,
    IndexOption,
    JsonOption,
    TopKOption,
    console,
    errors,
    open_pipeline_at,
    print_error,
    print_json,
)
from rag.collections import DEFAULT
from rag.types import Turn
from rag.wire import answer_payload, search_payload, turns_from_payload


def read_history(path: Path) -> tuple[Turn, ...]:
    """The turns of a JSONL file, one `{"question", "answer"}` a line, oldest first."""
    rows = []
    # utf-8-sig: a byte order mark (Windows editors) made line 1 "not JSON".
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON: {err}") from err
    return turns_from_payload(rows)


def ask(
    question: Annotated[
        str, typer.Argument(help="The question, in simplified or traditional Chinese")
    ],
    index: IndexOption = None,
    collection: CollectionOption = DEFAULT,
    top_k: TopKOption = None,
    as_json: JsonOption = False,
    history: Annotated[
        Path | None,
        typer.Option(
            help="Earlier turns of the conversation: JSONL, one {question, answer} a line",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Answer a question with cited sentences from the documents."""
    refuse_blank(question, "question")
    try:
        turns = read_history(history) if history else ()
    except (ValueError, UnicodeDecodeError) as err:
        print_error(err)
        raise typer.Exit(2) from err
    answer = open_pipeline_at(index, collection).ask(question, top_k, turns)
    if as_json:
        print_json(answer_payload(answer))
        return
    if answer.standalone_question not in (None, question):
        errors.print(
            f"[dim]understood as: {escape(answer.standalone_question)}[/dim]", highlight=False
        )
    if answer.short_answer is not None:
        # The answer itself first, then the cited sentences as its evidence.
        console.print(f"[bold]{escape(answer.short_answer.text)}[/bold]", highlight=False)
    # Documents' text and names are data: `[img]…[/img]` must print as is, not as markup.
    console.print(answer.answer, highlight=False, markup=False)
    for c in answer.citations:
        console.print(
            f"  [{c.n}] {escape(c.label)} (line {c.line_start}, chars {c.char_start}-{c.char_end})",
            highlight=False,
        )
    for sentence in answer.unsupported:
        console.print(f"  [yellow]unsupported[/yellow] {escape(sentence)}", highlight=False)
    if answer.note:
        errors.print(f"[yellow]note[/yellow] {escape(answer.note)}", highlight=False)


def search(
    query: Annotated[str, typer.Argument(help="Search text")],
    index: IndexOption = None,
    collection: CollectionOption = DEFAULT,
    top_k: TopKOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the passages retrieved for a query, with their fused 0-1 scores."""
    refuse_blank(query, "query")
    pipeline = open_pipeline_at(index, collection)
    retrieval = pipeline.search(query, top_k)
    if as_json:
        print_json(search_payload(retrieval))
        return
    for i, p in enumerate(retrieval.passages, 1):
        where = "; ".join(s.label for s in p.passage.sources)
        console.print(f"[bold]{i}. {p.score:.3f}[/bold] {escape(where)}", highlight=False)
        console.print(f"   {p.passage.text[:160]}", highlight=False, markup=False)


def refuse_blank(text: str, what: str) -> None:
    """Exit 2 on a blank question or query, as the HTTP API answers 422: nothing to ask."""
    if not text.strip():
        errors.print(f"[red]error:[/red] the {what} is empty")
        raise typer.Exit(2)
