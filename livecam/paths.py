"""Where livecam keeps what it makes once: the demo clip, exported graphs, TensorRT engines."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$LIVECAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/livecam``, else ``~/.cache/livecam``."""
    if os.environ.get("LIVECAM_CACHE_DIR"):
        return Path(os.environ["LIVECAM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livecam"
