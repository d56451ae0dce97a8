"""Keep the Hugging Face libraries from writing progress bars while a model loads.

transformers draws a "Loading weights" bar on stderr for every model it loads; in `rag ask
--json`, a service log or a test's captured output that is noise at best and breaks
parsing at worst. Called by every backend before it loads a model.
"""

from __future__ import annotations


def quiet_model_loading() -> None:
    """Turn off transformers' progress bars (idempotent, process-wide)."""
    from transformers.utils import logging

    logging.disable_progress_bar()  # type: ignore[no-untyped-call]
