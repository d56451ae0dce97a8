"""Helpers for the crash tests: what an index holds, document by document, and kill runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# file -> (content hash, sorted (paragraph, char_start, char_end, passage hash) of its sources)
DocumentStates = dict[str, tuple[str, tuple[tuple[int, int, int, str], ...]]]


def document_states(index: Path) -> DocumentStates:
    """Every document with exactly what it contributes, read straight from the store."""
    db = sqlite3.connect(f"{(index / 'store.sqlite').resolve().as_uri()}?mode=ro", uri=True)
    try:
        states: DocumentStates = {}
        for doc_id, file, digest in db.execute("SELECT id, file, content_hash FROM documents"):
            sources = db.execute(
                "SELECT s.paragraph, s.char_start, s.char_end, p.hash FROM sources s "
                "JOIN passages p ON p.id = s.passage_id WHERE s.document_id = ?",
                (doc_id,),
            ).fetchall()
            states[file] = (digest, tuple(sorted(sources)))
        return states
    finally:
        db.close()


def classify(state: DocumentStates, before: DocumentStates, after: DocumentStates) -> str:
    """ "before", "after" or "between" (some documents done); raises on anything else.

    Every document must be whole: exactly as before the change or exactly as after it.
    """
    for file, held in state.items():
        if held not in (before.get(file), after.get(file)):
            raise AssertionError(f"{file} is half-written: neither its old nor its new version")
    for file in before.keys() & after.keys():
        if file not in state:
            raise AssertionError(f"{file} was lost: it is in the index before and after")
    if state == before:
        return "before"
    if state == after:
        return "after"
    return "between"


@dataclass(frozen=True)
class KillRun:
    delay: float  # seconds after start when SIGKILL was sent
    killed: bool  # False: the command had already finished
    seconds: float


def run_and_kill(command: list[str], delay: float, env: dict[str, str]) -> KillRun:
    """Start `command`, SIGKILL it after `delay` seconds unless it has finished."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        process.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed = True
    return KillRun(delay, killed, time.monotonic() - started)
