"""Where livecam keeps what it makes once (the demo clip, exported graphs, TensorRT engines), and the check of a
weights file the user names."""

from __future__ import annotations

import os
from pathlib import Path

from livecam.errors import LivecamError


def cache_dir() -> Path:
    """``$LIVECAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/livecam``, else ``~/.cache/livecam``."""
    if os.environ.get("LIVECAM_CACHE_DIR"):
        return Path(os.environ["LIVECAM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livecam"


def check_weights_file(path: Path) -> None:
    """Refuse a weights path that is not a file, before anything loads."""
    if path.is_dir():
        raise LivecamError(f"weights {path} is a folder; pass the state-dict file in it, saved with "
                           "torch.save(model.state_dict(), FILE)")
    if not path.is_file():
        raise LivecamError(f"weights file {path} does not exist; pass the path of a state dict saved with torch.save")
