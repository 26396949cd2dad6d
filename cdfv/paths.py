"""Canonical locations of every stage output (relative to the DVC workspace root).

``dvc.yaml`` spells the same paths; CLI defaults come from here.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RAW = DATA / "raw"
INTERIM = DATA / "interim"
PROCESSED = DATA / "processed"
REPORTS = Path("reports")
METRICS = REPORTS / "metrics"
PLOTS = REPORTS / "plots"
FIGURES = REPORTS / "figures"

LFW_RAW = RAW / "lfw"
LFW_INTERIM = INTERIM / "lfw"
LFW_PNG = LFW_INTERIM / "png"
LFW_IMAGES = LFW_INTERIM / "images.parquet"
LFW_PAIRS = LFW_INTERIM / "pairs.parquet"

VGGFACE2_INTERIM = INTERIM / "vggface2"
VGGFACE2_PNG = VGGFACE2_INTERIM / "png"
VGGFACE2_IMAGES = VGGFACE2_INTERIM / "images.parquet"
