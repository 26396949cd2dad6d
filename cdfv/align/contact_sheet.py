"""Contact sheet of aligned faces, so a researcher can eyeball detection and alignment.

Each tile shows the source image with the chosen box (green: heuristic ok, orange: no-face
fallback) and the 5 landmarks, next to the aligned 224x224 face with the landmarks mapped through
the alignment transform (the eyes should sit on one horizontal line, drawn in cyan).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cdfv.detect.base import LANDMARK_COLUMNS, landmarks_of
from cdfv.io import encode_png, read_rgb, write_bytes_atomic

TILE = 224
LABEL = 20
COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 0, 255), (255, 160, 0)]  # per landmark (RGB)


def _draw_points(img: np.ndarray, pts: np.ndarray | None, scale: float = 1.0) -> None:
    if pts is None:
        return
    for (x, y), c in zip(pts * scale, COLOURS):
        cv2.circle(img, (int(round(x)), int(round(y))), 3, c, -1, lineType=cv2.LINE_AA)


def tile(source: np.ndarray, det: dict[str, Any], face: np.ndarray, face_row: dict[str, Any]) -> np.ndarray:
    """One ``(TILE + LABEL) x 2*TILE`` RGB tile: annotated source | annotated aligned face."""
    s = TILE / max(source.shape[:2])
    left = cv2.resize(source, (int(round(source.shape[1] * s)), int(round(source.shape[0] * s))))
    left = cv2.copyMakeBorder(left, 0, TILE - left.shape[0], 0, TILE - left.shape[1], cv2.BORDER_CONSTANT, value=0)
    box_colour = (0, 220, 0) if det["status"] == "ok" else (255, 140, 0)
    p1 = (int(round(det["x1"] * s)), int(round(det["y1"] * s)))
    p2 = (int(round(det["x2"] * s)) - 1, int(round(det["y2"] * s)) - 1)
    cv2.rectangle(left, p1, p2, box_colour, 2)
    _draw_points(left, landmarks_of(det), s)

    right = np.ascontiguousarray(face.copy())
    fl = landmarks_of({c: face_row.get(c) for c in LANDMARK_COLUMNS})
    if fl is not None:
        y = int(round(fl[0, 1]))
        cv2.line(right, (0, y), (TILE - 1, y), (0, 255, 255), 1)
    _draw_points(right, fl)

    out = np.zeros((TILE + LABEL, 2 * TILE, 3), np.uint8)
    out[:TILE, :TILE] = left
    out[:TILE, TILE:] = right
    score = f" s={det['score']:.3f} t={det['threshold_used']:.3f}" if det["status"] == "ok" else f" {det['status']}"
    text = f"{det['image_id'].split('/')[-1]}{score}"
    cv2.putText(out, text[:48], (4, TILE + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4) -> np.ndarray:
    """Grid of equally sized tiles (row-major), black where the last row is short."""
    if not tiles:
        h, w = TILE + LABEL, 2 * TILE
        out = np.zeros((h, w, 3), np.uint8)
        cv2.putText(out, "no aligned faces", (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 1)
        return out
    h, w = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * h : (r + 1) * h, c * w : (c + 1) * w] = t
    return out


def write_contact_sheet(
    root: Path,
    dets: Sequence[dict[str, Any]],
    faces: Sequence[dict[str, Any]],
    image_paths: dict[str, str],
    n: int,
    seed: int,
    out: Path,
) -> list[str]:
    """Sample ``n`` aligned faces (seeded), write the sheet PNG atomically; return the ids shown."""
    by_id = {d["image_id"]: d for d in dets}
    usable = [f for f in faces if f["path"] is not None]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(usable), size=min(n, len(usable)), replace=False).tolist()) if usable else []
    tiles = []
    for i in pick:
        f = usable[i]
        det = by_id[f["image_id"]]
        tiles.append(tile(read_rgb(root / image_paths[f["image_id"]]), det, read_rgb(root / f["path"]), f))
    write_bytes_atomic(out, encode_png(contact_sheet(tiles), compress_level=6))
    return [usable[i]["image_id"] for i in pick]
