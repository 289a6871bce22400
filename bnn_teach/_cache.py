"""Where bnn_teach keeps its downloads: a module without torch, so the grader's sandbox can name it quickly."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache for downloads: ``$BNN_TEACH_CACHE`` or ``$XDG_CACHE_HOME/bnn_teach`` or ``~/.cache/bnn_teach``."""
    if os.environ.get("BNN_TEACH_CACHE"):
        return Path(os.environ["BNN_TEACH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "bnn_teach"
