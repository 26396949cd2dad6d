"""Resumable training checkpoints: atomic writes, newest-valid-first loading, corrupt fallback.

Files ``<dir>/step-00001234.pt`` hold the model, optimiser, scheduler, loss (ArcFace weights) and
the loop position. A checkpoint that cannot be read is renamed ``*.corrupt`` and the previous one
is used, with a message naming both. Checkpoints written under another configuration
(``fingerprint``) are ignored so a params change never resumes a stale run.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cdfv.io import atomic_path

FORMAT = "cdfv-train/1"
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


@dataclass
class Resume:
    """A loaded checkpoint: its file and content."""

    path: Path
    data: dict[str, Any]

    @property
    def state(self) -> dict[str, Any]:
        return self.data["state"]


def _say(msg: str) -> None:
    print(f"[checkpoint] {msg}", file=sys.stderr, flush=True)


class Checkpoints:
    """The checkpoint folder of one training run."""

    def __init__(self, folder: str | Path, fingerprint: str, keep: int = 3, writer: bool = True) -> None:
        self.folder, self.fingerprint, self.keep, self.writer = Path(folder), fingerprint, keep, writer

    def files(self) -> list[Path]:
        """Checkpoint files, newest (highest step) first."""
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def save(self, step: int, data: dict[str, Any]) -> Path | None:
        """Write ``step-<step>.pt`` atomically (main process only) and prune old ones."""
        if not self.writer:
            return None
        path = self.folder / f"step-{step:08d}.pt"
        payload = {"format": FORMAT, "fingerprint": self.fingerprint, **data}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        for old in self.files()[self.keep :]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> Resume | None:
        """The newest readable checkpoint of this configuration, or None (fresh start)."""
        files = self.files()
        for i, path in enumerate(files):
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
                if not isinstance(data, dict) or data.get("format") != FORMAT:
                    raise ValueError(f"not a {FORMAT} checkpoint")
            except Exception as err:  # noqa: BLE001 - truncated zip, unpickling, bad content
                nxt = files[i + 1].name if i + 1 < len(files) else "a fresh start"
                _say(f"{path} is corrupt or unreadable ({type(err).__name__}: {err}); "
                     f"falling back to {nxt}. Moved aside as {path.name}.corrupt")
                if self.writer:
                    path.replace(path.with_name(path.name + ".corrupt"))
                continue
            if data.get("fingerprint") != self.fingerprint:
                _say(f"{path} was written with different params/data; starting fresh")
                return None
            _say(f"resuming from {path} (phase {data['state']['phase']}, epoch {data['state']['epoch']}, "
                 f"batch {data['state']['batch']}, step {data['state']['step']})")
            return Resume(path, data)
        return None

    def clear(self) -> None:
        """Remove every checkpoint (a fresh start under a new configuration)."""
        if self.writer and self.folder.exists():
            shutil.rmtree(self.folder)
