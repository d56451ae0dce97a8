"""Upload files a stopped process left behind: removed once no live job can still need them.

A process killed between writing an upload and its job's end leaves the file under its
hidden name: a queued job's file (`.queued-<job id>-...`, in-memory store) or one half-way
to its name (`.upload-...`). Nothing else ever removes them. Several replicas may share the
upload directory, so a file is a leftover only when it is old (another replica may have
written it a second ago, and is the only one that knows its job without Redis) and no
queued or running job of the store is named in it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from service.uploads import HELD_PREFIX, QUEUED_PREFIX

if TYPE_CHECKING:
    from service.jobs import JobStore

log = logging.getLogger("rag.service")

# As long as Redis keeps a queued job's files (`jobs_redis.FILES_TTL_S`): an upload waits
# for a worker this long whichever the store, and is a leftover after.
LEFTOVER_AGE_S = 24 * 3600.0
# Each worker looks for leftovers when it starts, then this often.
SWEEP_S = 3600.0


def sweep_leftovers(
    directory: Path, store: JobStore, older_than: float = LEFTOVER_AGE_S
) -> list[Path]:
    """Remove the leftovers in `directory` and its collections' directories; which.

    Raises `service.shared.StateUnavailable` if the store cannot tell which jobs are live
    (then nothing more is removed).
    """
    removed = []
    oldest = time.time() - older_than
    for pattern in (f"{QUEUED_PREFIX}*", f"{HELD_PREFIX}*"):
        for path in sorted(directory.rglob(pattern)):
            try:
                if not path.is_file() or path.stat().st_mtime > oldest:
                    continue
            except FileNotFoundError:  # taken by its job meanwhile
                continue
            if path.name.startswith(QUEUED_PREFIX) and _needed(path.name, store):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.warning(
            "removed %d upload file(s) left by a stopped process: %s",
            len(removed),
            ", ".join(p.name for p in removed),
        )
    return removed


def _needed(name: str, store: JobStore) -> bool:
    """Whether a queued file's job (its name's `<job id>`) is still queued or running."""
    job_id = name[len(QUEUED_PREFIX) :].split("-", 1)[0]
    job = store.get(job_id) if job_id else None
    return job is not None and job.status in {"queued", "running"}
