"""Resumable training checkpoints: atomic writes, newest-valid-first loading, corrupt fallback.

Files ``<dir>/step-00001234.pt`` hold the model, optimiser, scheduler, loss (ArcFace weights) and
the loop position; ``<dir>/phase1.pt`` the finished phase-1 network (copied to the stage output at
the end). A checkpoint that cannot be read is renamed ``*.corrupt`` and the previous one is used,
with a message naming both. Checkpoints written for other inputs (:mod:`cdfv.train.fingerprint`:
params, code, data) are discarded, naming what changed; a completed run seals the folder (deletes
it) so the next run of the stage trains from step 0.
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
from cdfv.train.fingerprint import Fingerprint

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


class Checkpoints:
    """The checkpoint folder of one training run."""

    def __init__(self, folder: str | Path, fingerprint: Fingerprint, keep: int = 3, writer: bool = True) -> None:
        self.folder, self.fingerprint, self.keep, self.writer = Path(folder), fingerprint, keep, writer

    def _say(self, msg: str) -> None:
        """Report from the writing (main) process only: every DDP rank reads the same checkpoints."""
        if self.writer:
            print(f"[checkpoint] {msg}", file=sys.stderr, flush=True)

    @property
    def phase1_path(self) -> Path:
        """The finished phase-1 network of this run (written at the phase switch)."""
        return self.folder / "phase1.pt"

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
        payload = {
            "format": FORMAT,
            "fingerprint": self.fingerprint.digest,
            "fingerprint_parts": self.fingerprint.parts,
            **data,
        }
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
                self._say(
                    f"{path} is corrupt or unreadable ({type(err).__name__}: {err}); "
                    f"falling back to {nxt}. Moved aside as {path.name}.corrupt"
                )
                if self.writer:
                    path.replace(path.with_name(path.name + ".corrupt"))
                continue
            if data.get("fingerprint") != self.fingerprint.digest:
                changed = ", ".join(self.fingerprint.changed(data.get("fingerprint_parts")))
                self._say(f"{path} was written for different inputs (changed: {changed}); starting fresh")
                return None
            if data["state"]["phase"] == 2 and not self.phase1_path.is_file():
                self._say(f"{path} is a phase-2 checkpoint but {self.phase1_path} is missing; starting fresh")
                return None
            self._say(
                f"resuming from {path} (phase {data['state']['phase']}, epoch {data['state']['epoch']}, "
                f"batch {data['state']['batch']}, step {data['state']['step']})"
            )
            return Resume(path, data)
        return None

    def clear(self) -> None:
        """Remove every checkpoint (a fresh start under a new configuration)."""
        if self.writer and self.folder.exists():
            shutil.rmtree(self.folder)

    def seal(self) -> None:
        """The run completed: delete its checkpoints so no later run resumes from them."""
        self.clear()
